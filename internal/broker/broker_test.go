package broker_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/broker"
	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/policy"
	"github.com/qbroker/qbroker/internal/seal"
	"github.com/qbroker/qbroker/internal/store/sqlstore"
	"github.com/qbroker/qbroker/internal/token"
)

type staticKEK []byte

func (k staticKEK) KEK(context.Context) ([]byte, error) { return k, nil }

// fixture is a real broker: SQLite store, sealed secrets, Cedar, file audit.
type fixture struct {
	b        *broker.Broker
	st       *sqlstore.Store
	root     core.Token
	roleID   string
	secretID string
	auditLog string
	sink     *audit.FileSink
}

func newFixture(tb testing.TB, opts ...func(*broker.Config)) *fixture {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	st, err := sqlstore.OpenSQLite(ctx, filepath.Join(dir, "q.db"), sqlstore.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	sealer, err := seal.New(ctx, staticKEK(make([]byte, 32)))
	if err != nil {
		tb.Fatal(err)
	}
	pol, err := policy.New(policy.DefaultFiles())
	if err != nil {
		tb.Fatal(err)
	}
	f := &fixture{auditLog: filepath.Join(dir, "audit.log")}
	sink, err := audit.OpenFile(f.auditLog, audit.FileOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sink.Close() })
	f.st, f.sink = st, sink
	cfg := broker.Config{
		Store: st, Sealer: sealer, Policy: pol, Audit: sink, Issuer: "http://broker.test", Audience: "qbroker-gateway", AuditPath: f.auditLog,
		Devices: []broker.Device{{Provider: "ionq", Name: "simulator", Kind: "simulator", Qubits: 29}, {Provider: "ionq", Name: "qpu.forte-1", Kind: "qpu", Qubits: 36}},
	}
	for _, o := range opts {
		o(&cfg)
	}
	f.b, err = broker.New(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	c := broker.Caller{RequestID: "test"}
	raw, err := f.b.CreateRootToken(ctx, c, "test-root")
	if err != nil {
		tb.Fatal(err)
	}
	if f.root, err = f.b.Authenticate(ctx, raw); err != nil {
		tb.Fatal(err)
	}
	if _, err := f.b.PutRole(ctx, c, f.root, "demo", api.Role{Provider: "ionq", Devices: []string{"simulator", "qpu.forte-1"}, MaxShots: 10000}); err != nil {
		tb.Fatal(err)
	}
	if f.roleID, err = f.b.RoleID(ctx, f.root, "demo"); err != nil {
		tb.Fatal(err)
	}
	sid, err := f.b.NewSecretID(ctx, c, f.root, "demo", api.SecretIDRequest{Agent: "a1"})
	if err != nil {
		tb.Fatal(err)
	}
	f.secretID = sid.SecretID
	return f
}

func (f *fixture) login(tb testing.TB) (string, core.Token) {
	tb.Helper()
	ctx := context.Background()
	a, err := f.b.LoginAppRole(ctx, broker.Caller{}, api.AppRoleLoginRequest{RoleID: f.roleID, SecretID: f.secretID})
	if err != nil {
		tb.Fatal(err)
	}
	t, err := f.b.Authenticate(ctx, a.ClientToken)
	if err != nil {
		tb.Fatal(err)
	}
	return a.ClientToken, t
}

func TestJobTokenNeverOutlivesItsBrokerToken(t *testing.T) {
	f := newFixture(t)
	_, tok := f.login(t)
	tok.ExpiresAt = time.Now().Add(30 * time.Second) // a broker token about to expire
	d, err := f.b.IssueJobToken(context.Background(), broker.Caller{}, tok, "demo", api.JobTokenRequest{Provider: "ionq", Device: "simulator", Shots: 10})
	if err != nil {
		t.Fatal(err)
	}
	if d.ExpiresAt.After(tok.ExpiresAt) {
		t.Fatalf("job token expires %v, after its broker token %v", d.ExpiresAt, tok.ExpiresAt)
	}
}

func TestRoleCeilingsBeforePolicy(t *testing.T) {
	f := newFixture(t)
	_, tok := f.login(t)
	ctx := context.Background()
	for _, tc := range []struct {
		req  api.JobTokenRequest
		kind core.Kind
		want string
	}{
		{api.JobTokenRequest{Provider: "ionq", Device: "simulator", Shots: 10001}, core.KindPermissionDenied, "at most 10000 shots"},
		{api.JobTokenRequest{Provider: "ionq", Device: "nope", Shots: 1}, core.KindBadRequest, "unknown device"},
		{api.JobTokenRequest{Provider: "ionq", Device: "simulator", Shots: 0}, core.KindBadRequest, "shots"},
		{api.JobTokenRequest{Provider: "ionq", Device: "simulator", Shots: 1, ProgramSHA256: strings.Repeat("A", 64)}, core.KindBadRequest, "program_sha256"},
		{api.JobTokenRequest{Provider: "ionq", Device: "qpu.forte-1", Shots: 1}, core.KindPermissionDenied, "demo-no-qpu"},
	} {
		_, err := f.b.IssueJobToken(ctx, broker.Caller{}, tok, "demo", tc.req)
		if core.KindOf(err) != tc.kind || !strings.Contains(core.UserMessage(err), tc.want) {
			t.Errorf("%+v: got %v (kind %v), want kind %v mentioning %q", tc.req, err, core.KindOf(err), tc.kind, tc.want)
		}
	}
}

func TestRoleValidationReportsEveryProblem(t *testing.T) {
	f := newFixture(t)
	_, err := f.b.PutRole(context.Background(), broker.Caller{}, f.root, "Bad Name", api.Role{Devices: []string{"x"}, JobTokenTTL: api.Duration(time.Hour)})
	msg := core.UserMessage(err)
	for _, want := range []string{"name must be", "provider is required", "not in the  catalogue", "max_shots", "job_token_ttl"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
}

// BenchmarkAuthenticateCached is the broker-token lookup on the hot path.
func BenchmarkAuthenticateCached(b *testing.B) {
	f := newFixture(b)
	raw, _ := f.login(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := f.b.Authenticate(ctx, raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAuthenticateInvalid is a lookup of a well-formed unknown token:
// always a store read (nothing to cache).
func BenchmarkAuthenticateInvalid(b *testing.B) {
	f := newFixture(b)
	ctx := context.Background()
	unknown, err := token.NewBrokerToken() // well formed, never issued
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.b.Authenticate(ctx, unknown); err == nil {
			b.Fatal("unknown token accepted")
		}
	}
}

// BenchmarkIssueJobToken is the whole issuance pipeline: role read, Cedar,
// Ed25519 signing, grant write and durable audit (parallel, so writes and
// fsyncs are shared).
func BenchmarkIssueJobToken(b *testing.B) {
	f := newFixture(b)
	_, tok := f.login(b)
	ctx := context.Background()
	req := api.JobTokenRequest{Provider: "ionq", Device: "simulator", Shots: 100}
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := f.b.IssueJobToken(ctx, broker.Caller{}, tok, "demo", req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestLoginKeepsAgentCreationTimeAndRefusesSuspended(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, tok := f.login(t)
	first, err := f.st.Agents().Get(ctx, tok.AgentID)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	f.login(t)
	again, err := f.st.Agents().Get(ctx, tok.AgentID)
	if err != nil {
		t.Fatal(err)
	}
	if !again.CreatedAt.Equal(first.CreatedAt) {
		t.Fatalf("a second login moved created_at from %v to %v", first.CreatedAt, again.CreatedAt)
	}

	again.Suspended = true
	if err := f.st.Agents().Upsert(ctx, again); err != nil {
		t.Fatal(err)
	}
	_, err = f.b.LoginAppRole(ctx, broker.Caller{}, api.AppRoleLoginRequest{RoleID: f.roleID, SecretID: f.secretID})
	if core.KindOf(err) != core.KindPermissionDenied || !strings.Contains(core.UserMessage(err), "suspended") {
		t.Fatalf("suspended agent login: got %v", err)
	}
	if a, _ := f.st.Agents().Get(ctx, tok.AgentID); !a.Suspended {
		t.Fatal("a refused login un-suspended the agent")
	}
}

// After 10 failed logins from one address, that address is refused (429,
// audited) even with the right secret, until the budget refills; other
// addresses are not affected, and a refused attempt spends no secret use.
func TestFailedLoginsLockOutTheSource(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	f := newFixture(t, func(c *broker.Config) { c.Now = clock })
	ctx := context.Background()
	attacker := broker.Caller{RemoteAddr: "198.51.100.7:4000"}
	for i := range 10 {
		_, err := f.b.LoginAppRole(ctx, attacker, api.AppRoleLoginRequest{RoleID: f.roleID, SecretID: "guess-" + strings.Repeat("x", i)})
		if core.KindOf(err) != core.KindBadRequest {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	_, err := f.b.LoginAppRole(ctx, attacker, api.AppRoleLoginRequest{RoleID: f.roleID, SecretID: f.secretID})
	if core.KindOf(err) != core.KindRateLimited || !strings.Contains(core.UserMessage(err), "failed logins from 198.51.100.7") {
		t.Fatalf("11th attempt: want 429 naming the source, got %v", err)
	}
	var hint *broker.RetryHint
	if !errors.As(err, &hint) || hint.RetryAfterSeconds() != "6" { // 10 a minute: one more in 6 s
		t.Fatalf("the lockout's retry hint: %v, want 6 s", hint)
	}
	// Someone else is unaffected.
	if _, err := f.b.LoginAppRole(ctx, broker.Caller{RemoteAddr: "203.0.113.9:5000"}, api.AppRoleLoginRequest{RoleID: f.roleID, SecretID: f.secretID}); err != nil {
		t.Fatalf("another source: %v", err)
	}
	// A minute later the budget has refilled.
	now = now.Add(time.Minute)
	if _, err := f.b.LoginAppRole(ctx, attacker, api.AppRoleLoginRequest{RoleID: f.roleID, SecretID: f.secretID}); err != nil {
		t.Fatalf("after the refill: %v", err)
	}
	log, _ := os.ReadFile(f.auditLog)
	if n := strings.Count(string(log), "too many failed logins"); n != 1 {
		t.Fatalf("want the refusal audited once, found %d", n)
	}
}
