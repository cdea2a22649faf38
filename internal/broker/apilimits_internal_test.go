package broker

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/core"
)

// guardFixture is an APIGuard on a fake clock that keeps what it audits.
type guardFixture struct {
	g      *APIGuard
	now    time.Time
	mu     sync.Mutex
	events []audit.Event
}

func newGuardFixture(t *testing.T, l APILimits) *guardFixture {
	t.Helper()
	f := &guardFixture{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	f.g = newAPIGuard(l, func() time.Time { return f.now }, func(_ context.Context, c Caller, e *audit.Event) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		e.RemoteAddr = c.RemoteAddr
		f.events = append(f.events, *e)
		return nil
	})
	if f.g == nil {
		t.Fatal("no guard")
	}
	return f
}

func (f *guardFixture) source(addr string) error {
	return f.g.AdmitSource(context.Background(), Caller{RemoteAddr: addr, Path: "/v1/x"})
}

func (f *guardFixture) identity(t core.Token) error {
	return f.g.AdmitIdentity(context.Background(), Caller{RemoteAddr: "10.0.0.1:1"}, t)
}

// admitted counts admissions in n tries.
func admitted(n int, try func() error) int {
	ok := 0
	for range n {
		if try() == nil {
			ok++
		}
	}
	return ok
}

func TestAPIGuardOff(t *testing.T) {
	if g := NewAPIGuard(&Broker{}, APILimits{}); g != nil {
		t.Fatal("no limit on: want a nil guard")
	}
	var g *APIGuard // nil admits everything
	if g.AdmitSource(context.Background(), Caller{}) != nil || g.AdmitIdentity(context.Background(), Caller{}, core.Token{}) != nil {
		t.Fatal("nil guard refused")
	}
	// Only the identity limit on: sources are not limited.
	f := newGuardFixture(t, APILimits{PerIdentity: 1})
	if n := admitted(100, func() error { return f.source("10.0.0.1:1") }); n != 100 {
		t.Fatalf("per-source off, admitted %d of 100", n)
	}
}

func TestAPIGuardPerSource(t *testing.T) {
	f := newGuardFixture(t, APILimits{PerSource: 2, PerSourceBurst: 5})
	if n := admitted(8, func() error { return f.source("10.0.0.1:1111") }); n != 5 {
		t.Fatalf("admitted %d of 8, want the burst (5)", n)
	}
	// Another port of the same host shares the bucket; another host does not.
	err := f.source("10.0.0.1:2222")
	var rl *RateLimitError
	if core.KindOf(err) != core.KindRateLimited || !errors.As(err, &rl) {
		t.Fatalf("want a rate-limit refusal, got %v", err)
	}
	if rl.Limit != LimitPerSource || rl.PerSecond != 2 || rl.Burst != 5 || rl.RetryAfter != time.Second || rl.RetryAfterSeconds() != "1" {
		t.Fatalf("refusal: %+v", rl)
	}
	msg := core.UserMessage(err)
	for _, want := range []string{"rate limited", "too many requests from 10.0.0.1", "per-source limit: 2 requests per second, burst 5", "retry after 1s"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not say %q", msg, want)
		}
	}
	if n := admitted(5, func() error { return f.source("10.0.0.2:1111") }); n != 5 {
		t.Fatalf("another source admitted %d of 5", n)
	}
	// IPv4-mapped IPv6 is the same source.
	if err := f.source("[::ffff:10.0.0.1]:3"); err == nil {
		t.Fatal("::ffff:10.0.0.1 got a fresh bucket")
	}
	// Refill: 2 a second, so half a second buys one request, not two.
	f.now = f.now.Add(500 * time.Millisecond)
	if n := admitted(3, func() error { return f.source("10.0.0.1:1") }); n != 1 {
		t.Fatalf("after 500ms admitted %d, want 1", n)
	}
	f.now = f.now.Add(10 * time.Second)
	if n := admitted(8, func() error { return f.source("10.0.0.1:1") }); n != 5 {
		t.Fatalf("after 10s admitted %d, want the full burst", n)
	}
}

func TestAPIGuardRetryAfter(t *testing.T) {
	f := newGuardFixture(t, APILimits{PerSource: 0.1, PerSourceBurst: 1}) // one per 10 s
	_ = f.source("10.0.0.1:1")
	var rl *RateLimitError
	if err := f.source("10.0.0.1:1"); !errors.As(err, &rl) || rl.RetryAfter != 10*time.Second {
		t.Fatalf("want retry after 10s, got %v", err)
	}
	f.now = f.now.Add(2500 * time.Millisecond)
	if err := f.source("10.0.0.1:1"); !errors.As(err, &rl) || rl.RetryAfter != 8*time.Second || !strings.Contains(core.UserMessage(err), "retry after 8s") {
		t.Fatalf("want retry after 8s (7.5 rounded up), got %v", err)
	}
}

func TestAPIGuardExemptSources(t *testing.T) {
	f := newGuardFixture(t, APILimits{PerSource: 1, PerSourceBurst: 1, PerIdentity: 1, PerIdentityBurst: 1,
		ExemptSources: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00::/8")}})
	for _, addr := range []string{"10.1.2.3:4", "[fd00::1]:4", "[::ffff:10.1.9.9]:1"} {
		if n := admitted(50, func() error { return f.source(addr) }); n != 50 {
			t.Errorf("exempt %s admitted %d of 50", addr, n)
		}
	}
	if n := admitted(3, func() error { return f.source("10.2.0.1:4") }); n != 1 {
		t.Errorf("non-exempt source admitted %d of 3", n)
	}
	// Exempt sources exempt nothing from the identity limit.
	agent := core.Token{AgentID: "approle:r:a", Accessor: "acc1", Policies: []string{PolicyDefault, "r"}}
	if n := admitted(3, func() error { return f.identity(agent) }); n != 1 {
		t.Errorf("identity admitted %d of 3", n)
	}
}

func TestAPIGuardPerIdentity(t *testing.T) {
	f := newGuardFixture(t, APILimits{PerIdentity: 1, PerIdentityBurst: 4})
	tok1 := core.Token{AgentID: "approle:r:a", Accessor: "acc1", Role: "r", Policies: []string{PolicyDefault, "r"}}
	tok2 := core.Token{AgentID: "approle:r:a", Accessor: "acc2", Role: "r", Policies: []string{PolicyDefault, "r"}}
	other := core.Token{AgentID: "approle:r:b", Accessor: "acc3", Role: "r", Policies: []string{PolicyDefault, "r"}}
	// Two tokens of one agent share one bucket: 4 in all, not 4 each.
	n := admitted(3, func() error { return f.identity(tok1) }) + admitted(3, func() error { return f.identity(tok2) })
	if n != 4 {
		t.Fatalf("one agent's two tokens admitted %d, want 4 together", n)
	}
	err := f.identity(tok2)
	var rl *RateLimitError
	if !errors.As(err, &rl) || rl.Limit != LimitPerIdentity || !strings.Contains(core.UserMessage(err), "too many requests by approle:r:a (all its tokens together) (per-identity limit: 1 requests per second, burst 4)") {
		t.Fatalf("refusal: %v", err)
	}
	if n := admitted(4, func() error { return f.identity(other) }); n != 4 {
		t.Fatalf("another agent admitted %d of 4", n)
	}
	// Gateway tokens carry many agents' traffic: exempt.
	gw := core.Token{Accessor: "gw", Policies: []string{PolicyGateway}}
	if n := admitted(50, func() error { return f.identity(gw) }); n != 50 {
		t.Fatalf("gateway admitted %d of 50", n)
	}
	// A token without an agent id is limited on its own.
	root1, root2 := core.Token{Accessor: "r1", Policies: []string{PolicyRoot}}, core.Token{Accessor: "r2", Policies: []string{PolicyRoot}}
	if a, b := admitted(6, func() error { return f.identity(root1) }), admitted(6, func() error { return f.identity(root2) }); a != 4 || b != 4 {
		t.Fatalf("root tokens admitted %d and %d, want 4 each", a, b)
	}
}

// TestAPIGuardAuditThrottled: a flood is refused every time but audited at
// most once per key per second, and at most auditRefusalsPerSecond a
// second across keys.
func TestAPIGuardAuditThrottled(t *testing.T) {
	f := newGuardFixture(t, APILimits{PerSource: 1, PerSourceBurst: 1, PerIdentity: 1, PerIdentityBurst: 1})
	if n := admitted(1000, func() error { return f.source("10.0.0.1:1") }); n != 1 {
		t.Fatalf("admitted %d", n)
	}
	if len(f.events) != 1 {
		t.Fatalf("999 refusals from one source in one instant audited %d times, want 1", len(f.events))
	}
	ev := f.events[0]
	if ev.Type != "ratelimit" || ev.Decision != audit.DecisionDeny || ev.RemoteAddr != "10.0.0.1:1" || !strings.Contains(ev.Reason, "per-source limit") {
		t.Fatalf("audited %+v", ev)
	}
	f.now = f.now.Add(time.Second)
	_ = f.source("10.0.0.1:1")                            // admitted (refilled)
	_, _ = f.source("10.0.0.1:1"), f.source("10.0.0.1:1") // refused, one audited
	if len(f.events) != 2 {
		t.Fatalf("a second later: %d events, want 2", len(f.events))
	}
	// Identity refusals carry the agent.
	tok := core.Token{AgentID: "approle:r:a", Accessor: "acc1", Role: "r"}
	_, _ = f.identity(tok), f.identity(tok)
	if last := f.events[len(f.events)-1]; last.Agent != "approle:r:a" || last.Accessor != "acc1" || !strings.Contains(last.Reason, "per-identity limit") {
		t.Fatalf("identity refusal audited as %+v", last)
	}
	// Many sources in one instant: every one refused after its first
	// request, the audit capped across keys.
	f.now = f.now.Add(time.Minute)
	f.events = nil
	refused := 0
	for i := range 200 {
		addr := netip.AddrFrom4([4]byte{10, 9, byte(i / 250), byte(i % 250)}).String() + ":1"
		_ = f.source(addr)
		if f.source(addr) != nil {
			refused++
		}
	}
	if refused != 200 || len(f.events) != auditRefusalsPerSecond {
		t.Fatalf("200 sources: %d refused, %d audited; want 200 and %d", refused, len(f.events), auditRefusalsPerSecond)
	}
}

// TestAPIGuardAuditFailureStillRefuses: a failing trail does not turn the
// refusal into anything else.
func TestAPIGuardAuditFailureStillRefuses(t *testing.T) {
	g := newAPIGuard(APILimits{PerSource: 1, PerSourceBurst: 1}, time.Now, func(context.Context, Caller, *audit.Event) error {
		return errors.New("disk full")
	})
	_ = g.AdmitSource(context.Background(), Caller{RemoteAddr: "10.0.0.1:1"})
	if err := g.AdmitSource(context.Background(), Caller{RemoteAddr: "10.0.0.1:1"}); core.KindOf(err) != core.KindRateLimited {
		t.Fatalf("want 429, got %v", err)
	}
}
