// Package core is qbroker's shared vocabulary: the principals, roles, tokens
// and grants that every other package talks about, and the user-safe error
// type that keeps what a caller may see apart from the internal cause.
//
// core imports nothing from qbroker and does no I/O.
package core

import (
	"slices"
	"time"
)

// Role binds identities to what they may do. Its limits are hard ceilings:
// policy can narrow them but never widen them.
type Role struct {
	Name     string
	Provider string   // the provider this role may use, e.g. "ionq"
	Devices  []string // device names within Provider the role may target
	MaxShots int      // ceiling on shots per job token

	TokenTTL    time.Duration // broker token default TTL
	TokenMaxTTL time.Duration // broker token ceiling, renewals included
	JobTokenTTL time.Duration // job token lifetime, at most MaxJobTokenTTL

	SecretIDTTL     time.Duration // default TTL of new AppRole secret IDs (0 = no expiry)
	SecretIDNumUses int           // default use limit of new secret IDs (0 = unlimited)

	Owner string // person or team accountable for the role's agents
	Team  string

	RoleID string // the AppRole role_id (not secret; identifies the role at login)

	CreatedAt time.Time
	UpdatedAt time.Time
}

// MaxJobTokenTTL is the longest a job token may live, whatever a role says.
const MaxJobTokenTTL = 5 * time.Minute

// AllowsDevice reports whether the role names the device.
func (r Role) AllowsDevice(provider, device string) bool {
	return provider == r.Provider && slices.Contains(r.Devices, device)
}

// Agent is the principal: created by an auth method from a verified identity.
type Agent struct {
	ID         string // stable id, e.g. "approle:demo:demo-agent"
	Name       string
	Role       string
	Owner      string
	Team       string
	AuthMethod string // "approle", "token", ...
	Labels     map[string]string
	CreatedAt  time.Time
	Suspended  bool
}

// Token is a broker token as stored: never the token itself, only its hash.
type Token struct {
	Hash         string // hex SHA-256 of the token
	Accessor     string // public handle for lookup/revoke by others
	AgentID      string
	Role         string
	Policies     []string // "root" for administrators, "gateway" for gateways, role names for agents
	DisplayName  string
	AuthMethod   string
	Meta         map[string]string
	IssuedAt     time.Time
	ExpiresAt    time.Time // current expiry; zero means never (root tokens only)
	MaxExpiresAt time.Time // renewals never pass this; zero means no ceiling
	CreationTTL  time.Duration
	Renewable    bool

	// Delegation (token exchange): the token lets AgentID act for
	// ActingFor, and dies with the token whose accessor is ParentAccessor.
	ActingFor      string
	ParentAccessor string
}

// Live reports whether the token is usable at now.
func (t Token) Live(now time.Time) bool {
	return t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt)
}

// HasPolicy reports whether the token carries the named policy.
func (t Token) HasPolicy(p string) bool { return slices.Contains(t.Policies, p) }

// SecretID is an AppRole secret ID as stored: hashed, with TTL and uses.
type SecretID struct {
	Hash      string
	Accessor  string
	Role      string
	Agent     string // agent name the secret logs in as
	Meta      map[string]string
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never
	UsesLeft  int       // 0: unlimited; otherwise remaining uses
}

// JobGrant records an issued job token so it can be redeemed exactly once.
type JobGrant struct {
	JTI           string
	Accessor      string // accessor of the broker token it was issued under
	AgentID       string
	Role          string
	Provider      string
	Device        string
	MaxShots      int
	ProgramSHA256 string
	IssuedAt      time.Time
	ExpiresAt     time.Time
	RedeemedAt    time.Time // zero until redeemed
}

// Job is a provider job submitted through the gateway, remembered so that
// only its owner can read it.
type Job struct {
	Provider  string
	ID        string // the provider's job id
	AgentID   string
	Role      string
	JTI       string
	Device    string
	Shots     int
	CreatedAt time.Time
}

// SealedSecret is an opaque sealed blob stored under a name.
type SealedSecret struct {
	Name      string
	Blob      []byte
	CreatedAt time.Time
}

// Approval states.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalDenied   = "denied"
	ApprovalExpired  = "expired"
	ApprovalIssued   = "issued"
)

// Approval is a request held for human consent. Everything needed to issue
// exactly what was approved is kept with it: the parameters, the program
// and its digest, and the cost estimate.
type Approval struct {
	ID                string
	State             string
	RequesterAgent    string
	RequesterAccessor string
	ActingFor         string
	Role, Owner, Team string
	SourceIP          string

	Action           string
	Provider, Device string
	DeviceKind       string
	Shots            int
	Program          []byte
	Format           string
	ProgramSHA256    string
	EstimatedCostUSD float64

	Reasons  []string
	Rule     string
	Required int    // approvals needed
	Group    string // approver group

	CreatedAt, ExpiresAt time.Time
	DecidedAt            time.Time // zero while pending
	Reason               string    // the denier's reason, or why it expired
	IssuedJTI            string
	Votes                []Vote
}

// Approvals counts the approve votes.
func (a Approval) Approvals() int {
	n := 0
	for _, v := range a.Votes {
		if v.Decision == VoteApprove {
			n++
		}
	}
	return n
}

// Vote decisions.
const (
	VoteApprove = "approve"
	VoteDeny    = "deny"
)

// Vote is one person's decision on an approval.
type Vote struct {
	Approver string
	Decision string
	Reason   string
	Via      string // console or api
	At       time.Time
}

// Reservation states.
const (
	ReservationReserved  = "reserved"  // the job token is out; its estimate counts
	ReservationConfirmed = "confirmed" // the gateway submitted the job
	ReservationSettled   = "settled"   // the job finished; its actual cost counts
	ReservationReleased  = "released"  // the token expired unused; nothing counts
)

// Reservation is what one job token holds against the budgets: its shots
// and estimated cost, counted against its agent, role and team.
type Reservation struct {
	JTI          string
	AgentID      string
	Role, Team   string
	Class        string // "hardware" or "simulator"
	Shots        int
	EstimatedUSD float64
	ActualUSD    float64 // settled cost; -1 until settled
	// EstimatedQPUSeconds is the QPU time reserved at issuance (0 when the
	// device gives no estimate); ActualQPUSeconds what the provider
	// reported at settlement, -1 until then or when it reports none.
	EstimatedQPUSeconds, ActualQPUSeconds float64
	State                                 string
	CreatedAt                             time.Time
	ExpiresAt                             time.Time // the job token's expiry: unused, it is released then
}
