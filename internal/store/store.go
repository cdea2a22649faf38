// Package store defines qbroker's persistence contract, split by aggregate.
//
// Every method is its own transaction; Store.Update runs several changes in
// one. Implementations live in sub-packages (sqlstore: SQLite and
// PostgreSQL) and must pass the shared suite in storetest. Nothing
// secret is handed to a store in clear: tokens and secret IDs arrive hashed,
// key material arrives sealed.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/qbroker/qbroker/internal/core"
)

// Errors callers branch on. Implementations wrap them with detail.
var (
	ErrNotFound  = errors.New("not found")
	ErrConflict  = errors.New("already exists")
	ErrExpired   = errors.New("expired")
	ErrExhausted = errors.New("no uses left")
	ErrRedeemed  = errors.New("already redeemed")
	ErrRevoked   = errors.New("issuing token revoked or expired")
	ErrClosed    = errors.New("no longer pending")
)

// Aggregates gives access to each aggregate's operations.
type Aggregates interface {
	Roles() Roles
	SecretIDs() SecretIDs
	Agents() Agents
	Tokens() Tokens
	Grants() Grants
	Jobs() Jobs
	Secrets() Secrets
	Approvals() Approvals
	Budgets() Budgets
}

// Store is the whole persistence layer.
type Store interface {
	Aggregates
	// Update runs fn in one transaction: all of fn's changes commit, or none.
	// fn may be called again if the transaction has to be retried.
	Update(ctx context.Context, fn func(tx Aggregates) error) error
	Close() error
}

// Roles stores role definitions.
type Roles interface {
	Put(ctx context.Context, r core.Role) error // insert or replace by name
	Get(ctx context.Context, name string) (core.Role, error)
	GetByRoleID(ctx context.Context, roleID string) (core.Role, error)
	List(ctx context.Context) ([]string, error)
	Delete(ctx context.Context, name string) error
}

// SecretIDs stores AppRole secret IDs, hashed.
type SecretIDs interface {
	Create(ctx context.Context, s core.SecretID) error
	// Consume checks that the secret ID for role exists, is unexpired and has
	// uses left, and takes one use (deleting it on its last), atomically.
	// It returns ErrNotFound, ErrExpired or ErrExhausted otherwise.
	Consume(ctx context.Context, role, hash string, now time.Time) (core.SecretID, error)
	DeleteByAccessor(ctx context.Context, role, accessor string) error
	DeleteExpired(ctx context.Context, now time.Time) (int, error)
}

// Agents stores principals.
type Agents interface {
	Upsert(ctx context.Context, a core.Agent) error
	Get(ctx context.Context, id string) (core.Agent, error)
}

// Tokens stores broker tokens by hash.
type Tokens interface {
	Create(ctx context.Context, t core.Token) error
	Get(ctx context.Context, hash string) (core.Token, error)
	GetByAccessor(ctx context.Context, accessor string) (core.Token, error)
	// SetExpiry moves a token's expiry (renewal).
	SetExpiry(ctx context.Context, hash string, expiresAt time.Time) error
	// Delete revokes a token, returning what was deleted.
	Delete(ctx context.Context, hash string) (core.Token, error)
	DeleteByAccessor(ctx context.Context, accessor string) (core.Token, error)
	// DeleteByAgent revokes every token of an agent, returning them.
	DeleteByAgent(ctx context.Context, agentID string) ([]core.Token, error)
	// DeleteByRole revokes every token of a role, returning them.
	DeleteByRole(ctx context.Context, role string) ([]core.Token, error)
	// DeleteByParent revokes the tokens delegated under the token with
	// the given accessor, returning them.
	DeleteByParent(ctx context.Context, accessor string) ([]core.Token, error)
	DeleteExpired(ctx context.Context, now time.Time) (int, error)
}

// Grants stores issued job tokens for single-use redemption.
type Grants interface {
	Create(ctx context.Context, g core.JobGrant) error
	// Redeem marks the grant used, atomically, if it exists (ErrNotFound), is
	// unexpired (ErrExpired), unused (ErrRedeemed) and the broker token it was
	// issued under is still live (ErrRevoked).
	Redeem(ctx context.Context, jti string, now time.Time) (core.JobGrant, error)
	Get(ctx context.Context, jti string) (core.JobGrant, error)
	DeleteExpired(ctx context.Context, before time.Time) (int, error)
}

// Jobs maps provider job ids to their owners.
type Jobs interface {
	Create(ctx context.Context, j core.Job) error
	Get(ctx context.Context, provider, id string) (core.Job, error)
	// ListByAgent returns an agent's jobs, newest first, at most limit.
	ListByAgent(ctx context.Context, agentID string, limit int) ([]core.Job, error)
	// UsedDevice reports whether the agent has a recorded job on the device.
	UsedDevice(ctx context.Context, agentID, provider, device string) (bool, error)
}

// Approvals stores requests held for human consent, with their votes.
type Approvals interface {
	Create(ctx context.Context, a core.Approval) error // ErrConflict on a duplicate id
	Get(ctx context.Context, id string) (core.Approval, error)
	// List returns approvals newest first, at most limit; state and agent
	// filter when not empty.
	List(ctx context.Context, f ApprovalFilter) ([]core.Approval, error)
	// Vote records v on a pending approval, atomically: ErrNotFound;
	// ErrExpired when now is at or past its expiry; ErrClosed when it is
	// no longer pending; ErrConflict when v.Approver already voted. A deny
	// closes it as denied (with v's reason); the Required-th approve
	// closes it as approved. It returns the approval after the vote.
	Vote(ctx context.Context, id string, v core.Vote, now time.Time) (core.Approval, error)
	// MarkIssued moves an approved approval to issued with the job token's
	// id, once: ErrClosed when it is not (or no longer) approved.
	MarkIssued(ctx context.Context, id, jti string) error
	// ExpirePending closes the pending approvals whose expiry is at or
	// before now as expired, and returns them.
	ExpirePending(ctx context.Context, now time.Time) ([]core.Approval, error)
}

// Budgets holds the reservations job tokens make against spend and rate
// limits. Usage is always the sum of what reservations hold, so used =
// settled + outstanding by construction.
type Budgets interface {
	// Reserve records r if, with it, every check stays within its limit;
	// otherwise it records nothing and returns a *BudgetExceeded. The
	// checks and the insert are one atomic step across every process on
	// the database.
	Reserve(ctx context.Context, r core.Reservation, checks []BudgetCheck) error
	// Used sums what the reservations matching c hold (c.Limit ignored).
	Used(ctx context.Context, c BudgetCheck) (float64, error)
	// Confirm marks a reservation's job submitted (reserved → confirmed).
	Confirm(ctx context.Context, jti string) error
	// Settle records the job's actual cost and QPU time (qpuSeconds < 0:
	// not reported), once: the first settlement wins (a repeated one
	// changes nothing), and a released reservation stays released.
	Settle(ctx context.Context, jti string, actualUSD, qpuSeconds float64) error
	// ReleaseExpired releases the reservations of tokens that expired
	// unused, returning how many.
	ReleaseExpired(ctx context.Context, now time.Time) (int, error)
	// Void releases a reservation that is reserved or confirmed, whatever
	// its expiry: crash recovery's undo of a grant that was committed but
	// never acknowledged. It reports whether anything changed.
	Void(ctx context.Context, jti string) (bool, error)
	// ListSince returns the reservations created at or after since, oldest
	// first (crash recovery reads the last moments before a crash).
	ListSince(ctx context.Context, since time.Time) ([]core.Reservation, error)
	Get(ctx context.Context, jti string) (core.Reservation, error)
}

// BudgetCheck is one limit a reservation must stay within.
type BudgetCheck struct {
	Name      string    // the limit's name, for the refusal
	ScopeKind string    // "agent", "role" or "team"
	ScopeID   string    // the agent id, role name or team
	Class     string    // "hardware", "simulator", or "" for both
	Metric    string    // "jobs", "shots", "usd", "qpu_seconds" or "in_flight"
	Since     time.Time // the window's start (ignored for in_flight)
	Limit     float64
}

// BudgetExceeded is Reserve's refusal: which check, and what is used.
type BudgetExceeded struct {
	Check BudgetCheck
	Used  float64
}

func (e *BudgetExceeded) Error() string {
	return "budget " + e.Check.Name + " exceeded"
}

// ApprovalFilter selects approvals for List.
type ApprovalFilter struct {
	State string
	Agent string
	Limit int // 0: 100
}

// Secrets stores sealed blobs by name (signing keys, audit key, provider
// credentials). The store never sees them in clear.
type Secrets interface {
	Put(ctx context.Context, s core.SealedSecret) error // insert or replace
	Get(ctx context.Context, name string) (core.SealedSecret, error)
	List(ctx context.Context, prefix string) ([]core.SealedSecret, error)
	Delete(ctx context.Context, name string) error
}

// Pipeliner is an optional extra a Store may implement: UpdatePipelined
// runs fn in the next group commit and returns as soon as fn itself has run
// — with fn's error, or nil and a wait function that reports whether the
// commit made fn's changes durable. A caller can do other durable work (an
// audit write) while the commit is in flight, and must call wait before it
// acts on the outcome. If wait fails, nothing fn did persisted.
type Pipeliner interface {
	UpdatePipelined(ctx context.Context, fn func(tx Aggregates) error) (wait func() error, err error)
}

// Broadcaster is an optional extra a Store may implement: a message one
// process publishes reaches every process subscribed to the same database
// (PostgreSQL's LISTEN/NOTIFY), so replicas can drop cached state another
// replica changed (a revoked token, an edited role).
type Broadcaster interface {
	Publish(ctx context.Context, msg string) error
	// Subscribe calls fn for each message (this process's own included)
	// until ctx ends, and reset whenever the subscription (re)starts,
	// since messages may have been missed before it. It returns at once
	// when the store has no other processes to hear (SQLite).
	Subscribe(ctx context.Context, fn func(msg string), reset func()) error
}

// UpdatePipelined uses s's Pipeliner when it has one, and Update otherwise.
func UpdatePipelined(ctx context.Context, s Store, fn func(tx Aggregates) error) (wait func() error, err error) {
	if p, ok := s.(Pipeliner); ok {
		return p.UpdatePipelined(ctx, fn)
	}
	if err := s.Update(ctx, fn); err != nil {
		return nil, err
	}
	return func() error { return nil }, nil
}

// Leaser is an optional extra a Store may implement: a named lease that
// one process at a time holds, so that background work (expiry sweeps)
// runs on one replica and moves to another when that one dies. On
// PostgreSQL it is a session advisory lock on a dedicated connection,
// released when the process or its connection dies.
type Leaser interface {
	// TryLead takes the lease name if nobody holds it. While held, alive
	// reports whether it still is (the connection may have died); release
	// gives it up.
	TryLead(ctx context.Context, name string) (alive func(context.Context) bool, release func(), ok bool, err error)
}
