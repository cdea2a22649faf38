package broker

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"time"

	"golang.org/x/time/rate"

	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/core"
)

// APILimits are request rate limits on the broker API, separate from the
// spend rates of budgets (which count job tokens, not requests). Zero
// rates are off; a zero burst is twice the rate (at least 1).
type APILimits struct {
	PerSource      float64 // requests per second per client address, before authentication
	PerSourceBurst int
	// PerIdentity limits each agent: one bucket shared by all its tokens,
	// so minting more tokens buys no more rate. Gateway tokens are exempt.
	PerIdentity      float64
	PerIdentityBurst int
	// ExemptSources are never limited per source (per identity still applies).
	ExemptSources []netip.Prefix
}

// The limits a refusal names.
const (
	LimitPerSource   = "per-source"
	LimitPerIdentity = "per-identity"
)

// RateLimitError is the cause of an API rate-limit refusal (inside a
// core.KindRateLimited error): which limit, its rate, and when to retry.
type RateLimitError struct {
	Limit      string // LimitPerSource or LimitPerIdentity
	PerSecond  float64
	Burst      int
	RetryAfter time.Duration // whole seconds, at least 1
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("%s rate limit (%s per second, burst %d) exceeded", e.Limit, formatRate(e.PerSecond), e.Burst)
}

// RetryAfterSeconds is the Retry-After header's value.
func (e *RateLimitError) RetryAfterSeconds() string {
	return strconv.Itoa(int(e.RetryAfter / time.Second))
}

func formatRate(r float64) string { return strconv.FormatFloat(r, 'g', -1, 64) }

// Refusals are audited, but a flood must not flood the trail: at most one
// audited refusal per limit and key per second, and at most
// auditRefusalsPerSecond across all keys (a flood from many addresses).
// The rest are still refused (and counted by the HTTP metrics).
const auditRefusalsPerSecond = 10

// APIGuard applies APILimits. Its methods are safe for concurrent use; a
// nil *APIGuard admits everything.
type APIGuard struct {
	l                      APILimits
	perSource, perIdentity *limiters
	auditKeys              *limiters     // one audited refusal per key per second
	auditAll               *rate.Limiter // and a ceiling across keys
	now                    func() time.Time
	record                 func(context.Context, Caller, *audit.Event) error
}

// NewAPIGuard builds the guard for l, auditing refusals to b's trail. It
// returns nil when no limit is on.
func NewAPIGuard(b *Broker, l APILimits) *APIGuard {
	return newAPIGuard(l, b.now, b.record)
}

func newAPIGuard(l APILimits, now func() time.Time, record func(context.Context, Caller, *audit.Event) error) *APIGuard {
	if l.PerSource <= 0 && l.PerIdentity <= 0 {
		return nil
	}
	l.PerSourceBurst = burstFor(l.PerSource, l.PerSourceBurst)
	l.PerIdentityBurst = burstFor(l.PerIdentity, l.PerIdentityBurst)
	return &APIGuard{
		l:           l,
		perSource:   newLimiters(l.PerSource, l.PerSourceBurst),
		perIdentity: newLimiters(l.PerIdentity, l.PerIdentityBurst),
		auditKeys:   newLimiters(1, 1),
		auditAll:    rate.NewLimiter(auditRefusalsPerSecond, auditRefusalsPerSecond),
		now:         now,
		record:      record,
	}
}

func burstFor(perSecond float64, burst int) int {
	if perSecond <= 0 {
		return 0
	}
	if burst > 0 {
		return burst
	}
	return max(1, int(math.Ceil(2*perSecond)))
}

// sourceKey is the bucket key for a client address: the host of
// remoteAddr (the TCP peer, as for login limits: X-Forwarded-For is never
// trusted), IPv4-mapped IPv6 unmapped. exempt reports an ExemptSources
// match.
func (g *APIGuard) sourceKey(remoteAddr string) (key string, exempt bool) {
	host := hostOf(remoteAddr)
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host, false
	}
	a = a.Unmap().WithZone("")
	for _, p := range g.l.ExemptSources {
		if p.Contains(a) {
			return "", true
		}
	}
	return sourceBucket(a.String()), false
}

// AdmitSource is called for every API request (but health checks) before
// anything else, authentication included.
func (g *APIGuard) AdmitSource(ctx context.Context, c Caller) error {
	if g == nil || g.perSource == nil {
		return nil
	}
	key, exempt := g.sourceKey(c.RemoteAddr)
	if exempt {
		return nil
	}
	now := g.now()
	lim := g.perSource.get(key)
	if lim.AllowN(now, 1) {
		return nil
	}
	err := g.refusal(LimitPerSource, g.l.PerSource, g.l.PerSourceBurst, lim, now,
		fmt.Sprintf("too many requests from %s", key))
	g.audit(ctx, c, "source:"+key, now, &audit.Event{Type: "ratelimit", Action: "Request", Decision: audit.DecisionDeny, Reason: core.UserMessage(err)})
	return err
}

// AdmitIdentity is called once a request's broker token is known. The
// bucket is the token's agent (every token of one agent shares it; root
// tokens' identity is token:<name>), or the token itself when it has no
// agent id. Gateway tokens are
// exempt: they carry many agents' traffic, each agent limited on its own
// requests to the broker.
func (g *APIGuard) AdmitIdentity(ctx context.Context, c Caller, t core.Token) error {
	if g == nil || g.perIdentity == nil || t.HasPolicy(PolicyGateway) {
		return nil
	}
	key, who := "agent:"+t.AgentID, t.AgentID
	if t.AgentID == "" {
		key, who = "token:"+t.Accessor, "token "+t.Accessor
	}
	now := g.now()
	lim := g.perIdentity.get(key)
	if lim.AllowN(now, 1) {
		return nil
	}
	err := g.refusal(LimitPerIdentity, g.l.PerIdentity, g.l.PerIdentityBurst, lim, now,
		fmt.Sprintf("too many requests by %s (all its tokens together)", who))
	g.audit(ctx, c, "identity:"+key, now, &audit.Event{Type: "ratelimit", Action: "Request", Decision: audit.DecisionDeny,
		Agent: t.AgentID, Role: t.Role, Accessor: t.Accessor, AuthMethod: t.AuthMethod, Reason: core.UserMessage(err)})
	return err
}

func (g *APIGuard) refusal(limit string, perSecond float64, burst int, lim *rate.Limiter, now time.Time, what string) error {
	wait := retryAfter(lim, now)
	rl := &RateLimitError{Limit: limit, PerSecond: perSecond, Burst: burst, RetryAfter: wait}
	return core.Wrap(core.KindRateLimited, rl, fmt.Sprintf("rate limited: %s (%s limit: %s requests per second, burst %d); retry after %ds",
		what, limit, formatRate(perSecond), burst, int(wait/time.Second)))
}

// audit records a refusal unless this key was audited in the last second
// or the trail already took auditRefusalsPerSecond refusals this second.
// The request is refused either way; an audit failure is not the caller's
// concern here (nothing was done).
func (g *APIGuard) audit(ctx context.Context, c Caller, key string, now time.Time, ev *audit.Event) {
	if g.record == nil || !g.auditKeys.get(key).AllowN(now, 1) || !g.auditAll.AllowN(now, 1) {
		return
	}
	_ = g.record(context.WithoutCancel(ctx), c, ev)
}
