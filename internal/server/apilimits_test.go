package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/config"
)

// newLimitedEnv is newEnv with api_limits (and, when given, budgets).
func newLimitedEnv(t *testing.T, l config.APILimits, budgets *config.Budgets) *env {
	t.Helper()
	var kb [16]byte
	if _, err := rand.Read(kb[:]); err != nil {
		t.Fatal(err)
	}
	key := "ionq-test-" + hex.EncodeToString(kb[:])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := StartDev(ctx, DevOptions{
		Addr: "127.0.0.1:0", GatewayAddr: "127.0.0.1:0", SimAddr: "127.0.0.1:0",
		DataDir: t.TempDir(), IonQKey: key, APILimits: &l, Budgets: budgets,
	})
	if err != nil {
		t.Fatalf("StartDev: %v", err)
	}
	e := &env{t: t, d: d, ionqKey: key, hc: &http.Client{Timeout: 20 * time.Second}}
	t.Cleanup(func() {
		e.hc.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

// from is a copy of e whose requests come from another loopback address
// (Linux routes all of 127.0.0.0/8 to lo).
func (e *env) from(t *testing.T, ip string) *env {
	t.Helper()
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: dialer.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	c := *e
	c.hc = &http.Client{Timeout: 20 * time.Second, Transport: tr}
	return &c
}

// wantLimited checks a rate-limit refusal: 429, a whole-second
// Retry-After of at least 1, and a message naming the limit and its rate.
func wantLimited(t *testing.T, what string, r result, limit, rate string) {
	t.Helper()
	want(t, what, r, http.StatusTooManyRequests, "^rate limited: ", limit+" limit: "+rate+" requests per second", `retry after \d+s$`)
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
		t.Fatalf("%s: Retry-After %q is not a whole number of seconds ≥ 1", what, r.header.Get("Retry-After"))
	}
}

func (e *env) rateLimitEvents() []audit.Event {
	var out []audit.Event
	for _, ev := range e.events() {
		if ev.Type == "ratelimit" {
			out = append(out, ev)
		}
	}
	return out
}

// TestAPILimitPerSource: a flood from one address is refused after the
// burst — before authentication, whatever X-Forwarded-For says — while
// another address, health checks, metrics and the gateway's own listener
// go on; refusals are audited sparingly and counted by route.
func TestAPILimitPerSource(t *testing.T) {
	e := newLimitedEnv(t, config.APILimits{PerSourcePerSecond: 0.01, PerSourceBurst: 8}, nil)
	// Setup within the burst: a login and a job token (2 requests).
	agent := e.agent()
	jt := e.mustJobToken(agent, "simulator", 100, "")
	ok := 2
	for ; ok < 20; ok++ {
		r := e.broker(http.MethodGet, "/v1/auth/token/lookup-self", agent, "")
		if r.status != http.StatusOK {
			wantLimited(t, "flood", r, "per-source", "0.01")
			if !strings.Contains(r.msg(), "too many requests from 127.0.0.1") {
				t.Fatalf("refusal does not name the source: %q", r.msg())
			}
			break
		}
	}
	if ok != 8 {
		t.Fatalf("%d requests admitted before the first refusal, want the burst (8)", ok)
	}
	// Refused before authentication: no token, a bad token, an unknown path.
	for _, tok := range []string{"", "hvs.not-a-token"} {
		wantLimited(t, "unauthenticated", e.broker(http.MethodGet, "/v1/auth/token/lookup-self", tok, ""), "per-source", "0.01")
	}
	wantLimited(t, "unknown path", e.broker(http.MethodGet, "/v1/no/such/path", "", ""), "per-source", "0.01")
	wantLimited(t, "login", e.login(e.d.RoleID, e.d.SecretID), "per-source", "0.01")
	// A forwarded-for header from an untrusted peer buys no fresh bucket.
	for _, h := range []string{"X-Forwarded-For", "X-Real-IP", "Forwarded"} {
		v := "10.9.8.7"
		if h == "Forwarded" {
			v = "for=10.9.8.7"
		}
		r := e.do(http.MethodGet, e.d.BrokerURL+"/v1/auth/token/lookup-self", "", "X-Vault-Token", agent, h, v)
		wantLimited(t, "spoofed "+h, r, "per-source", "0.01")
		if !strings.Contains(r.msg(), "from 127.0.0.1 ") {
			t.Fatalf("spoofed %s: refusal names %q, not the peer", h, r.msg())
		}
	}
	// The console beside the API is limited too.
	if r := e.do(http.MethodGet, e.d.BrokerURL+"/ui/approvals", ""); r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("console: %s", r)
	}
	// Health checks and metrics are never limited.
	for range 20 {
		if r := e.broker(http.MethodGet, "/v1/sys/health", "", ""); r.status != http.StatusOK {
			t.Fatalf("health: %s", r)
		}
	}
	m := e.do(http.MethodGet, e.d.BrokerURL+"/metrics", "")
	if m.status != http.StatusOK {
		t.Fatalf("metrics: %s", m)
	}
	for _, w := range []string{
		`qbroker_http_requests_total{code="429",route="GET /v1/auth/token/lookup-self"} 6`,
		`qbroker_http_requests_total{code="429",route="POST /v1/auth/approle/login"} 1`,
		`qbroker_http_requests_total{code="429",route="/ui/"} 1`,
		`qbroker_http_requests_total{code="200",route="GET /v1/sys/health"} 20`,
	} {
		if !strings.Contains(string(m.body), w) {
			t.Errorf("metrics lack %s", w)
		}
	}
	if strings.Contains(string(m.body), "127.0.0.1") {
		t.Error("metrics carry a source address")
	}
	// The gateway's listener is not the broker API: the job goes through
	// (its redemption is an in-process call).
	e.mustSubmit(jt.Token, bell())
	// Another address is unaffected.
	other := e.from(t, "127.0.0.2")
	for i := range 8 {
		if r := other.broker(http.MethodGet, "/v1/auth/token/lookup-self", agent, ""); r.status != http.StatusOK {
			t.Fatalf("other source, request %d: %s", i+1, r)
		}
	}
	wantLimited(t, "other source past its burst", other.broker(http.MethodGet, "/v1/auth/token/lookup-self", agent, ""), "per-source", "0.01")
	// Audited as refusals, but not one event per refused request.
	evs := e.rateLimitEvents()
	if len(evs) == 0 || len(evs) > 4 {
		t.Fatalf("%d ratelimit events for 11 refusals (within ~1s, two sources), want 1..4", len(evs))
	}
	for _, ev := range evs {
		if ev.Decision != audit.DecisionDeny || !strings.Contains(ev.Reason, "per-source limit") || !strings.HasPrefix(ev.RemoteAddr, "127.0.0.") {
			t.Fatalf("ratelimit event %+v", ev)
		}
	}
}

// TestAPILimitRefill: the bucket refills at the configured rate.
func TestAPILimitRefill(t *testing.T) {
	e := newLimitedEnv(t, config.APILimits{PerSourcePerSecond: 5, PerSourceBurst: 1}, nil)
	ping := func() result { return e.broker(http.MethodGet, "/v1/sys/freeze", e.d.RootToken, "") }
	if r := ping(); r.status != http.StatusOK {
		t.Fatalf("first: %s", r)
	}
	r := ping()
	wantLimited(t, "second at once", r, "per-source", "5")
	if r.header.Get("Retry-After") != "1" {
		t.Fatalf("Retry-After %q, want 1 (a token in 200ms, rounded up)", r.header.Get("Retry-After"))
	}
	time.Sleep(300 * time.Millisecond)
	if r := ping(); r.status != http.StatusOK {
		t.Fatalf("after 300ms at 5/s: %s", r)
	}
}

// TestAPILimitExemptSource: an exempt CIDR is never limited per source.
func TestAPILimitExemptSource(t *testing.T) {
	e := newLimitedEnv(t, config.APILimits{PerSourcePerSecond: 0.1, PerSourceBurst: 1, ExemptSources: []string{"127.0.0.2/32"}}, nil)
	exempt := e.from(t, "127.0.0.2")
	for i := range 30 {
		if r := exempt.broker(http.MethodGet, "/v1/sys/freeze", e.d.RootToken, ""); r.status != http.StatusOK {
			t.Fatalf("exempt source, request %d: %s", i+1, r)
		}
	}
	_ = e.broker(http.MethodGet, "/v1/sys/freeze", e.d.RootToken, "")
	wantLimited(t, "non-exempt source", e.broker(http.MethodGet, "/v1/sys/freeze", e.d.RootToken, ""), "per-source", "0.1")
}

// TestAPILimitPerIdentity: an agent's tokens share one bucket (more tokens
// buy no more rate), another agent and a gateway token are unaffected, and
// a refused job-token request issues nothing and reserves no budget.
func TestAPILimitPerIdentity(t *testing.T) {
	budgets := &config.Budgets{Limits: []config.BudgetLimit{{Name: "rate", Scope: "agent", Match: "*", JobsPerMinute: 100}}}
	e := newLimitedEnv(t, config.APILimits{PerIdentityPerSecond: 0.1, PerIdentityBurst: 10}, budgets)
	roleID := e.roleID(DemoRole)
	s1, s2, s3 := e.newSecretID(DemoRole, "runaway", ""), e.newSecretID(DemoRole, "runaway", ""), e.newSecretID(DemoRole, "calm", "")
	// Logins carry no token: not limited per identity.
	a1, a2, calm := e.mustLogin(roleID, s1.SecretID), e.mustLogin(roleID, s2.SecretID), e.mustLogin(roleID, s3.SecretID)
	if a1.EntityID != a2.EntityID || a1.EntityID == calm.EntityID || a1.ClientToken == a2.ClientToken {
		t.Fatalf("want two tokens of one agent and a third agent: %s %s %s", a1.EntityID, a2.EntityID, calm.EntityID)
	}
	lookup := func(tok string) result { return e.broker(http.MethodGet, "/v1/auth/token/lookup-self", tok, "") }
	// One job token (used below to show the budget counts), then nine
	// lookups alternating tokens: the burst of 10, shared.
	e.mustJobToken(a1.ClientToken, "simulator", 100, "")
	for i := range 9 {
		tok := a1.ClientToken
		if i%2 == 0 {
			tok = a2.ClientToken
		}
		if r := lookup(tok); r.status != http.StatusOK {
			t.Fatalf("request %d within the shared burst: %s", i+2, r)
		}
	}
	for _, tok := range []string{a1.ClientToken, a2.ClientToken} {
		r := lookup(tok)
		wantLimited(t, "past the agent's burst", r, "per-identity", "0.1")
		if !strings.Contains(r.msg(), "too many requests by "+a1.EntityID+" (all its tokens together)") {
			t.Fatalf("refusal does not name the agent: %q", r.msg())
		}
	}
	// A refused job-token request changes nothing.
	issued := func() int { return e.count(func(ev audit.Event) bool { return ev.Type == "issue" }) }
	used := func() float64 {
		r := e.broker(http.MethodGet, "/v1/sys/budgets?agent="+url.QueryEscape(a1.EntityID), e.d.RootToken, "")
		want(t, "budgets", r, http.StatusOK)
		var d struct {
			Budgets []struct {
				ScopeID string  `json:"scope_id"`
				Used    float64 `json:"used"`
			} `json:"budgets"`
		}
		decodeData(t, r, &d)
		if len(d.Budgets) != 1 || d.Budgets[0].ScopeID != a1.EntityID {
			t.Fatalf("budgets of %s: %s", a1.EntityID, r)
		}
		return d.Budgets[0].Used
	}
	before, beforeUsed := issued(), used()
	if beforeUsed != 1 {
		t.Fatalf("budget shows %v jobs, want the 1 issued", beforeUsed)
	}
	wantLimited(t, "job token", e.jobToken(a2.ClientToken, DemoRole, "simulator", 100, ""), "per-identity", "0.1")
	if n := issued(); n != before {
		t.Fatalf("a refused job-token request was issued: %d issue events, was %d", n, before)
	}
	if u := used(); u != beforeUsed {
		t.Fatalf("a refused job-token request reserved budget: %v jobs, was %v", u, beforeUsed)
	}
	// Another agent is unaffected.
	e.mustSubmit(e.mustJobToken(calm.ClientToken, "simulator", 100, "").Token, bell())
	// Gateway tokens carry many agents' traffic and are exempt.
	r := e.broker(http.MethodPost, "/v1/auth/token/create", e.d.RootToken, `{"policies":["gateway"]}`)
	want(t, "gateway token", r, http.StatusOK)
	var gw struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
	}
	if err := json.Unmarshal(r.body, &gw); err != nil || gw.Auth.ClientToken == "" {
		t.Fatalf("gateway token: %s (%v)", r, err)
	}
	for i := range 10 {
		if r := lookup(gw.Auth.ClientToken); r.status != http.StatusOK {
			t.Fatalf("gateway token, request %d: %s", i+1, r)
		}
	}
	evs := e.rateLimitEvents()
	if len(evs) == 0 || len(evs) > 2 || evs[0].Agent != a1.EntityID || !strings.Contains(evs[0].Reason, "per-identity limit") {
		t.Fatalf("ratelimit events %+v, want one or two for %s", evs, a1.EntityID)
	}
}

// Behind a trusted load balancer the client's address (X-Forwarded-For)
// is the source: each client gets its own bucket and is audited as
// itself; a client that is not the balancer cannot name its own source.
func TestTrustedProxyNamesTheClient(t *testing.T) {
	var kb [16]byte
	rand.Read(kb[:])
	key := "ionq-test-" + hex.EncodeToString(kb[:])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := StartDev(ctx, DevOptions{
		Addr: "127.0.0.1:0", GatewayAddr: "127.0.0.1:0", SimAddr: "127.0.0.1:0", DataDir: t.TempDir(), IonQKey: key,
		APILimits: &config.APILimits{PerSourcePerSecond: 0.01, PerSourceBurst: 4}, TrustedProxies: []string{"127.0.0.1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	e := &env{t: t, d: d, ionqKey: key, hc: &http.Client{Timeout: 20 * time.Second}}
	lookup := func(e *env, xff string) int {
		return e.do(http.MethodGet, d.BrokerURL+"/v1/auth/token/lookup-self", "", "X-Vault-Token", d.RootToken, "X-Forwarded-For", xff).status
	}
	// Client A, through the balancer (127.0.0.1): 4, then refused.
	for i := range 4 {
		if st := lookup(e, "198.51.100.1"); st != http.StatusOK {
			t.Fatalf("client A's request %d: %d", i+1, st)
		}
	}
	r := e.do(http.MethodGet, d.BrokerURL+"/v1/auth/token/lookup-self", "", "X-Vault-Token", d.RootToken, "X-Forwarded-For", "198.51.100.1")
	want(t, "client A past its burst", r, http.StatusTooManyRequests, "198.51.100.1")
	// Client B through the same balancer has its own bucket, even when it
	// writes client A's address into the header itself.
	for i := range 4 {
		if st := lookup(e, "198.51.100.1, 198.51.100.2"); st != http.StatusOK {
			t.Fatalf("client B's request %d: %d", i+1, st)
		}
	}
	// A client that is not the balancer (127.0.0.2) cannot name a source:
	// it is limited as itself whatever it writes.
	other := e.from(t, "127.0.0.2")
	for i := range 4 {
		if st := lookup(other, "203.0.113."+strconv.Itoa(i)); st != http.StatusOK {
			t.Fatalf("direct client's request %d: %d", i+1, st)
		}
	}
	r = other.do(http.MethodGet, d.BrokerURL+"/v1/auth/token/lookup-self", "", "X-Vault-Token", d.RootToken, "X-Forwarded-For", "203.0.113.99")
	want(t, "a direct client naming a fresh source", r, http.StatusTooManyRequests, "127.0.0.2")
	// The trail names the client, not the balancer.
	if e.count(func(ev audit.Event) bool {
		return ev.Type == "ratelimit" && strings.HasPrefix(ev.RemoteAddr, "198.51.100.1:")
	}) != 1 {
		t.Fatal("client A's refusal is not audited under its own address")
	}
	if e.count(func(ev audit.Event) bool {
		return strings.HasPrefix(ev.RemoteAddr, "127.0.0.1:") && ev.Type == "ratelimit"
	}) != 0 {
		t.Fatal("a refusal is audited as the balancer")
	}
}
