// Package broker is qbroker's pipeline: authenticate → policy → issue →
// audit. It owns the broker tokens, AppRole credentials, signing keys and job
// grants, and answers the gateway's redemption and ownership questions.
//
// The broker never answers before its audit event is durable; if the audit
// sink fails, the operation fails with KindUnavailable (fail closed). Its
// errors are core.Errors whose messages are safe to show the caller.
package broker

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/anomaly"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/metrics"
	"github.com/qbroker/qbroker/internal/policy"
	"github.com/qbroker/qbroker/internal/provider"
	"github.com/qbroker/qbroker/internal/seal"
	"github.com/qbroker/qbroker/internal/store"
	"github.com/qbroker/qbroker/internal/token"
)

// Device is one entry of the device catalogue.
type Device struct {
	Provider string
	Name     string
	Kind     string // "qpu" or "simulator"
	Vendor   string // hardware maker
	ARN      string // the provider's id or ARN, when it has one
	Qubits   int
	MaxShots int
	Price    Price
	// QPUSecondsPerTask and QPUSecondsPerShot estimate a job's QPU time
	// (what qpu_seconds budgets reserve before it runs); 0: no estimate.
	QPUSecondsPerTask, QPUSecondsPerShot float64
}

// EstimateQPUSeconds is the QPU time a job of shots shots is expected to
// take, from the catalogue's estimate (0 when it has none).
func (d Device) EstimateQPUSeconds(shots int) float64 {
	return d.QPUSecondsPerTask + float64(shots)*d.QPUSecondsPerShot
}

// Price is a device's list price (see config.Price).
type Price struct {
	PerTaskUSD, PerShotUSD, PerMinuteUSD, MinMinutes float64
	// PerSecondUSD prices reported QPU time: what a finished job costs when
	// its provider reports QPU seconds but no cost.
	PerSecondUSD float64
}

// EstimateUSD is the list-price estimate of a job of shots shots: the
// per-task and per-shot fees, plus the minimum billed minutes for devices
// charged by time. It is what policy and budgets see before a job runs.
func (d Device) EstimateUSD(shots int) float64 {
	return d.Price.PerTaskUSD + float64(shots)*d.Price.PerShotUSD + d.Price.MinMinutes*d.Price.PerMinuteUSD
}

// rules is what a reload replaces, as one unit: no request sees a policy
// set from one reload and a catalogue from another.
type rules struct {
	policy  *policy.Engine
	devices map[string]Device // "provider/name"
	list    []Device
}

func newRules(p *policy.Engine, devices []Device) *rules {
	r := &rules{policy: p, devices: make(map[string]Device, len(devices)), list: slices.Clone(devices)}
	for _, d := range devices {
		r.devices[d.Provider+"/"+d.Name] = d
	}
	return r
}

// Config holds everything the broker needs. All fields but Logger and Now
// are required.
type Config struct {
	Store  store.Store
	Sealer *seal.Sealer
	Policy *policy.Engine
	Audit  audit.Sink

	Issuer      string // this broker's URL: the job tokens' iss
	Audience    string // the gateways' audience: the job tokens' aud
	GatewayAddr string // where agents send provider calls (returned with job tokens)
	Devices     []Device
	Location    *time.Location // zone of the hour/weekday policies see; default UTC

	// JWT is the JWT/OIDC auth method; nil when not configured.
	JWT JWTAuthenticator
	// Device is the device authorization grant; nil when not configured.
	Device DeviceFlow
	// SPIFFE is auth/cert and auth/spiffe-jwt; nil when not configured.
	SPIFFE SPIFFEAuthenticator
	// Canceller cancels provider jobs when an agent is revoked with
	// cancel_jobs; nil: not possible.
	Canceller JobCanceller
	// LoginLimits protect the login endpoints (see LoginLimits).
	LoginLimits LoginLimits
	// Anomaly, when set, sees every durable audit event; its findings are
	// audited and acted on (suspension revokes the agent's tokens).
	Anomaly *anomaly.Engine
	// AlertWebhook receives each finding as JSON (best effort, unsigned;
	// prefer OnFinding).
	AlertWebhook string
	// OnFinding is told of every anomaly finding whose actions include
	// alert (the signed approvals webhook); it must not block.
	OnFinding func(anomaly.Finding)
	// AWS mints dynamic AWS credentials (GET /v1/aws/creds/<role>); nil
	// when not configured.
	AWS *AWSCredentials
	// Minters turn sealed provider root credentials into the gateway's
	// upstream credentials, by provider (AWS's is added from AWS).
	Minters map[string]provider.Minter
	// Budgets are the spend and rate limits job tokens reserve against.
	Budgets config.Budgets
	// OnBudgetAlert is told when a budget crosses one of Budgets.AlertAt
	// (once per limit and window); it must not block.
	OnBudgetAlert func(api.BudgetUsage, float64)
	// Approvals configures the approval gate (groups, rules, windows).
	Approvals config.Approvals
	// OnApproval is told of new, decided and expired approvals (for the
	// webhook); it must not block.
	OnApproval func(event string, a api.Approval)
	// Metrics counts durable audit events by type and decision (optional).
	Metrics *metrics.Metrics

	// AuditKey verifies the audit trail's checkpoints; AuditHead reports the
	// trail's last durable line. Both optional (published by the API).
	AuditKey  ed25519.PublicKey
	AuditHead func() (seq uint64, hash string)
	// AuditPath is the trail's current file, for admins' tail (optional).
	AuditPath string
	// Instance names this process across restarts (kept in its data dir).
	// It prefixes the jti of every job token it issues, so that crash
	// recovery (Recover) touches only its own grants on a shared store.
	Instance string
	// KeyRotateEvery rotates the job-token signing key when the active one
	// is older (run by the sweeping replica); 0: only on request.
	KeyRotateEvery time.Duration
	// ExclusiveStore says no other process writes the store (SQLite):
	// recovery may then also undo redemptions, which any replica makes.
	ExclusiveStore bool

	Logger *slog.Logger
	Now    func() time.Time
}

// Caller describes the request an operation serves, for audit.
type Caller struct {
	RequestID  string
	RemoteAddr string
	Path       string
	// ApprovalID releases an administrative operation that an approval
	// rule held (the X-Qbroker-Approval header).
	ApprovalID string
	// Client is the self-declared client software (X-Qbroker-Client, see
	// core.CleanClientName), recorded in every audit event of the request.
	Client string
}

// Broker is the pipeline. It is safe for concurrent use.
type Broker struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	keys   *token.KeyRing
	hasher *audit.Hasher
	rules  atomic.Pointer[rules]
	guard  *loginGuard
	freeze atomic.Pointer[string] // non-nil: QPU work is frozen, for this reason
	tokens *tokenCache
	jobs   *jobCache
	roles  *roleCache

	approvals   signal      // wakes long polls when an approval changes
	holds       sync.Map    // agent id → hold: anomaly holds in force (see holds.go)
	leader      atomic.Bool // holds the sweeper lease (acts on anomaly findings; see anomshare.go)
	share       anomShare
	upstreams   upstreamCache
	auditDown   atomic.Bool // the last audit write failed
	draining    atomic.Bool // shutting down: health says 503 so load balancers move on
	healthCache atomic.Pointer[storeHealth]
	alerted     sync.Map                  // "<limit>|<scope id>|<window start>|<threshold>" → alert sent // the store check, reused for a second
	scopes      map[string]provider.Scope // guarded by upstreams.mu

	credMu sync.RWMutex
	creds  map[string]string // provider → upstream credential, unsealed in memory only
}

// Names under which sealed secrets are stored.
const (
	secretAuditKey      = "audit-hmac-key"
	secretSigningPrefix = "signing-key/"
	secretProviderFmt   = "provider/%s/api-key"
)

// New builds a broker, loading its signing keys and audit key from the
// store (creating them, sealed, on first start).
func New(ctx context.Context, cfg Config) (*Broker, error) {
	if cfg.Store == nil || cfg.Sealer == nil || cfg.Policy == nil || cfg.Audit == nil {
		return nil, errors.New("broker: store, sealer, policy and audit are required")
	}
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("broker: issuer and audience are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	b := &Broker{
		cfg:    cfg,
		log:    cfg.Logger,
		now:    cfg.Now,
		tokens: newTokenCache(100_000),
		guard:  newLoginGuard(cfg.LoginLimits),
		jobs:   newJobCache(100_000),
		roles:  newRoleCache(5 * time.Second),
		creds:  map[string]string{},
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
		b.cfg.Location = time.UTC
	}
	b.cfg.Minters = maps.Clone(cfg.Minters)
	if cfg.AWS != nil && cfg.AWS.Minter != nil {
		if b.cfg.Minters == nil {
			b.cfg.Minters = map[string]provider.Minter{}
		}
		b.cfg.Minters["aws"] = awsRoleMinter{cfg.AWS}
	}
	b.rules.Store(newRules(cfg.Policy, cfg.Devices))
	key, err := b.loadOrCreateSecret(ctx, secretAuditKey, 32)
	if err != nil {
		return nil, fmt.Errorf("broker: audit key: %w", err)
	}
	b.hasher = audit.NewHasher(key)
	if b.keys, err = b.loadKeyRing(ctx); err != nil {
		return nil, fmt.Errorf("broker: signing keys: %w", err)
	}
	if err := b.loadFreeze(ctx); err != nil {
		return nil, fmt.Errorf("broker: hardware freeze: %w", err)
	}
	if err := b.loadHolds(ctx); err != nil {
		return nil, fmt.Errorf("broker: anomaly holds: %w", err)
	}
	return b, nil
}

// JWKS returns the public job-token verification keys.
func (b *Broker) JWKS() []byte { return b.keys.JWKS() }

// KeyRing exposes the signing keys as a verification key source for an
// in-process gateway.
func (b *Broker) KeyRing() *token.KeyRing { return b.keys }

// Devices returns the catalogue.
func (b *Broker) Devices() []Device { return b.rules.Load().list }

// SetRules replaces the policy set and the device catalogue together,
// atomically: requests already deciding finish with the old ones.
func (b *Broker) SetRules(p *policy.Engine, devices []Device) error {
	if p == nil {
		return errors.New("broker: nil policy engine")
	}
	b.rules.Store(newRules(p, devices))
	return nil
}

// Policy returns the policy engine in force.
func (b *Broker) Policy() *policy.Engine { return b.rules.Load().policy }

// Issuer returns the job tokens' issuer.
func (b *Broker) Issuer() string { return b.cfg.Issuer }

// Audience returns the job tokens' audience.
func (b *Broker) Audience() string { return b.cfg.Audience }

// HMAC returns the audit HMAC of a secret value, for finding it in the log.
func (b *Broker) HMAC(v string) string { return b.hasher.HMAC(v) }

// record writes an audit event, durably; failure fails the operation.
func (b *Broker) record(ctx context.Context, c Caller, e *audit.Event) error {
	e.Time = b.now().UTC()
	e.RequestID = c.RequestID
	e.RemoteAddr = c.RemoteAddr
	if e.Path == "" {
		e.Path = c.Path
	}
	if e.Client == "" {
		e.Client = c.Client
	}
	if err := b.cfg.Audit.Write(ctx, e); err != nil {
		b.auditDown.Store(true)
		b.log.Error("audit write failed; refusing request", "type", e.Type, "err", err)
		return core.Wrap(core.KindUnavailable, err, "audit log unavailable; request refused")
	}
	if b.auditDown.Load() {
		b.auditDown.Store(false)
	}
	b.cfg.Metrics.Event(e.Type, e.Decision)
	b.observe(e)
	return nil
}

// stage records how long a stage that began at start took (metrics).
func (b *Broker) stage(name string, start time.Time) {
	b.cfg.Metrics.Stage(name, time.Since(start))
}

// Audit records an event on behalf of a gateway.
func (b *Broker) Audit(ctx context.Context, c Caller, e *audit.Event) error {
	return b.record(ctx, c, e)
}

// commitAndRecord overlaps the two durable writes behind a state change: it
// writes ev while the store commit it was given (store.UpdatePipelined) is
// in flight, and returns both outcomes. ev describes the change as fn
// already made it, so it is only ever wrong if the commit then fails — and
// in that case a correcting event follows it in the log.
// withdrawnReason marks an audit correction: the event before it with the
// same type and jti did not take effect (crash recovery and audit
// readers look for this prefix).
const withdrawnReason = "withdrawn: the store could not commit the change above"

func (b *Broker) commitAndRecord(ctx context.Context, c Caller, wait func() error, ev *audit.Event) (commitErr, auditErr error) {
	audited := make(chan error, 1)
	go func() { audited <- b.record(ctx, c, ev) }()
	commitErr = wait()
	auditErr = <-audited
	if commitErr != nil {
		fix := *ev
		fix.Decision = audit.DecisionError
		fix.Reason = withdrawnReason
		fix.Error = commitErr.Error()
		if err := b.record(context.WithoutCancel(ctx), c, &fix); err != nil {
			b.log.Error("audit correction failed", "type", ev.Type, "err", err)
		}
	}
	return commitErr, auditErr
}

// AuditPublicKey describes the audit trail's checkpoint key and its head.
func (b *Broker) AuditPublicKey() (pub ed25519.PublicKey, seq uint64, head string) {
	if b.cfg.AuditHead != nil {
		seq, head = b.cfg.AuditHead()
	}
	return b.cfg.AuditKey, seq, head
}

// AuditHash returns the audit HMAC of value, for an operator searching the
// trail for a known secret. Root only; the request itself is audited with
// the value only as its HMAC.
func (b *Broker) AuditHash(ctx context.Context, c Caller, caller core.Token, value string) (string, error) {
	ev := &audit.Event{Type: "admin", Action: "AuditHash", Agent: caller.AgentID, Accessor: caller.Accessor}
	if err := requireRoot(caller); err != nil {
		return "", b.refuse(ctx, c, ev, err)
	}
	if value == "" {
		return "", b.refuse(ctx, c, ev, core.Errorf(core.KindBadRequest, "value is required"))
	}
	h := b.hasher.HMAC(value)
	b.hasher.Add(ev, "value", value)
	ev.Decision = audit.DecisionAllow
	if err := b.record(ctx, c, ev); err != nil {
		return "", err
	}
	return h, nil
}

// AuditEvents returns recent audit events for an administrator. Root only;
// the read itself is not audited per call (it changes nothing), but a
// refusal is.
func (b *Broker) AuditEvents(ctx context.Context, c Caller, caller core.Token, f audit.Filter) ([]audit.Event, error) {
	if err := requireRoot(caller); err != nil {
		return nil, b.refuse(ctx, c, &audit.Event{Type: "admin", Action: "ReadAudit", Agent: caller.AgentID, Accessor: caller.Accessor}, err)
	}
	if b.cfg.AuditPath == "" {
		return nil, core.Errorf(core.KindNotFound, "this broker has no readable audit file")
	}
	return audit.ReadEvents(b.cfg.AuditPath, f)
}

// SetCanceller sets how revocations cancel provider jobs (at start-up, before
// serving).
func (b *Broker) SetCanceller(c JobCanceller) { b.cfg.Canceller = c }
