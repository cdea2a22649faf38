package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
)

const testGatewayToken = "qbt_gatewaytokenforthetests"

// fakeBrokerAPI speaks the broker's gateway-facing HTTP contract.
type fakeBrokerAPI struct {
	mu          sync.Mutex
	redeemCode  map[string]int // jti -> status
	jobs        map[string]api.JobRecord
	agents      map[string]string // broker token -> entity id
	apiKey      string
	auditStatus int
	events      []audit.Event
	recorded    []api.JobRecord

	lookups   atomic.Int32
	credCalls atomic.Int32
	jobCalls  atomic.Int32
	badAuth   atomic.Int32
}

func (f *fakeBrokerAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(api.TokenHeader) != testGatewayToken {
		f.badAuth.Add(1)
		writeErrs(w, http.StatusForbidden, "permission denied")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/sys/gateway/redeem":
		var req api.RedeemRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		code, ok := f.redeemCode[req.JTI]
		if !ok {
			writeErrs(w, http.StatusNotFound, "unknown job token")
			return
		}
		if code == http.StatusNoContent {
			f.redeemCode[req.JTI] = http.StatusConflict
			w.WriteHeader(code)
			return
		}
		writeErrs(w, code, "refused")
	case r.Method == http.MethodPost && r.URL.Path == "/v1/sys/gateway/jobs":
		var j api.JobRecord
		if err := json.NewDecoder(r.Body).Decode(&j); err != nil {
			writeErrs(w, http.StatusBadRequest, "bad json")
			return
		}
		f.recorded = append(f.recorded, j)
		f.jobs[j.Provider+"/"+j.ID] = j
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/sys/gateway/jobs/"):
		f.jobCalls.Add(1)
		j, ok := f.jobs[strings.TrimPrefix(r.URL.Path, "/v1/sys/gateway/jobs/")]
		if !ok {
			writeErrs(w, http.StatusNotFound, "job not found")
			return
		}
		_ = json.NewEncoder(w).Encode(api.Response{Data: j})
	case r.Method == http.MethodPost && r.URL.Path == "/v1/auth/token/lookup":
		f.lookups.Add(1)
		var req api.TokenRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		agent, ok := f.agents[req.Token]
		if !ok {
			writeErrs(w, http.StatusForbidden, "bad token")
			return
		}
		_ = json.NewEncoder(w).Encode(api.Response{Data: api.TokenInfo{EntityID: agent}})
	case r.Method == http.MethodGet && r.URL.Path == "/v1/sys/gateway/credentials/ionq":
		f.credCalls.Add(1)
		_ = json.NewEncoder(w).Encode(api.Response{Data: api.ProviderCredential{Provider: "ionq", APIKey: f.apiKey}})
	case r.Method == http.MethodPost && r.URL.Path == "/v1/sys/gateway/audit":
		var e audit.Event
		_ = json.NewDecoder(r.Body).Decode(&e)
		if f.auditStatus != http.StatusNoContent {
			writeErrs(w, f.auditStatus, "audit sink unavailable")
			return
		}
		f.events = append(f.events, e)
		w.WriteHeader(http.StatusNoContent)
	default:
		writeErrs(w, http.StatusNotFound, "no handler")
	}
}

func writeErrs(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(api.ErrorResponse{Errors: []string{msg}})
}

func newFakeBrokerAPI(t *testing.T) (*fakeBrokerAPI, *RemoteBroker) {
	t.Helper()
	f := &fakeBrokerAPI{
		redeemCode: map[string]int{
			"fresh":   http.StatusNoContent,
			"used":    http.StatusConflict,
			"expired": http.StatusGone,
			"revoked": http.StatusForbidden,
			"broken":  http.StatusInternalServerError,
		},
		jobs:        map[string]api.JobRecord{},
		agents:      map[string]string{"qbt_alice": "agent-alice"},
		apiKey:      "real-ionq-key",
		auditStatus: http.StatusNoContent,
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, NewRemoteBroker(srv.URL+"/", testGatewayToken, srv.Client())
}

func TestRemoteBrokerRedeemStatusMapping(t *testing.T) {
	_, rb := newFakeBrokerAPI(t)
	ctx := context.Background()
	if err := rb.Redeem(ctx, "fresh"); err != nil {
		t.Fatalf("fresh: %v", err)
	}
	cases := map[string]error{
		"fresh":   ErrTokenUsed, // second redemption
		"used":    ErrTokenUsed,
		"expired": ErrTokenExpired,
		"revoked": ErrTokenRevoked,
		"missing": ErrUnknownToken,
	}
	for jti, want := range cases {
		if err := rb.Redeem(ctx, jti); !errors.Is(err, want) {
			t.Errorf("Redeem(%s) = %v, want %v", jti, err, want)
		}
	}
	err := rb.Redeem(ctx, "broken")
	for _, s := range []error{ErrTokenUsed, ErrTokenExpired, ErrTokenRevoked, ErrUnknownToken} {
		if errors.Is(err, s) {
			t.Fatalf("500 mapped to %v", s)
		}
	}
	if err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("500: got %v", err)
	}
}

func TestRemoteBrokerJobs(t *testing.T) {
	f, rb := newFakeBrokerAPI(t)
	ctx := context.Background()
	if _, err := rb.Job(ctx, "ionq", "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing job: %v", err)
	}
	rec := api.JobRecord{Provider: "ionq", ID: "job-1", AgentID: "agent-alice", Shots: 10, CreatedAt: time.Now().UTC()}
	if err := rb.RecordJob(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if len(f.recorded) != 1 || f.recorded[0].ID != "job-1" {
		t.Fatalf("broker saw %+v", f.recorded)
	}
	// Another gateway (no cache) reads it from the broker.
	other := NewRemoteBroker(rb.base, testGatewayToken, rb.client)
	got, err := other.Job(ctx, "ionq", "job-1")
	if err != nil || got.AgentID != "agent-alice" {
		t.Fatalf("Job = %+v, %v", got, err)
	}
	before := f.jobCalls.Load()
	if _, err := other.Job(ctx, "ionq", "job-1"); err != nil {
		t.Fatal(err)
	}
	if f.jobCalls.Load() != before {
		t.Fatalf("found job records should be cached")
	}
}

func TestRemoteBrokerAgentForToken(t *testing.T) {
	f, rb := newFakeBrokerAPI(t)
	ctx := context.Background()
	now := time.Now()
	rb.now = func() time.Time { return now }

	agent, err := rb.AgentForToken(ctx, "qbt_alice")
	if err != nil || agent != "agent-alice" {
		t.Fatalf("AgentForToken = %q, %v", agent, err)
	}
	if _, err := rb.AgentForToken(ctx, "qbt_mallory"); !errors.Is(err, ErrBadBrokerToken) {
		t.Fatalf("unknown token: %v", err)
	}
	if _, err := rb.AgentForToken(ctx, ""); !errors.Is(err, ErrBadBrokerToken) {
		t.Fatalf("empty token: %v", err)
	}
	// Cached within the TTL...
	n := f.lookups.Load()
	if _, err := rb.AgentForToken(ctx, "qbt_alice"); err != nil || f.lookups.Load() != n {
		t.Fatalf("second lookup within TTL should be cached (err %v)", err)
	}
	// ...and revocation bites once the TTL (≤ 1 s) has passed.
	f.mu.Lock()
	delete(f.agents, "qbt_alice")
	f.mu.Unlock()
	now = now.Add(AgentCacheTTL)
	if _, err := rb.AgentForToken(ctx, "qbt_alice"); !errors.Is(err, ErrBadBrokerToken) {
		t.Fatalf("revoked token after TTL: %v", err)
	}
	if AgentCacheTTL > time.Second {
		t.Fatalf("AgentCacheTTL %s exceeds one second", AgentCacheTTL)
	}
}

func TestRemoteBrokerCredentialCacheAndInvalidate(t *testing.T) {
	f, rb := newFakeBrokerAPI(t)
	ctx := context.Background()
	for range 3 {
		k, err := rb.Credential(ctx, "ionq")
		if err != nil || k != "real-ionq-key" {
			t.Fatalf("Credential = %q, %v", k, err)
		}
	}
	if f.credCalls.Load() != 1 {
		t.Fatalf("credential fetched %d times, want 1", f.credCalls.Load())
	}
	f.mu.Lock()
	f.apiKey = "rotated-key"
	f.mu.Unlock()
	rb.InvalidateCredential("ionq")
	k, err := rb.Credential(ctx, "ionq")
	if err != nil || k != "rotated-key" || f.credCalls.Load() != 2 {
		t.Fatalf("after invalidate: %q, %v, calls %d", k, err, f.credCalls.Load())
	}
	if _, err := rb.Credential(ctx, "braket"); err == nil {
		t.Fatal("unknown provider credential: want error")
	}
}

func TestRemoteBrokerAudit(t *testing.T) {
	f, rb := newFakeBrokerAPI(t)
	ctx := context.Background()
	if err := rb.Audit(ctx, &audit.Event{Type: "submit", JobID: "j1", Decision: audit.DecisionAllow}); err != nil {
		t.Fatal(err)
	}
	if len(f.events) != 1 || f.events[0].JobID != "j1" {
		t.Fatalf("broker saw %+v", f.events)
	}
	f.mu.Lock()
	f.auditStatus = http.StatusServiceUnavailable
	f.mu.Unlock()
	if err := rb.Audit(ctx, &audit.Event{Type: "submit"}); err == nil {
		t.Fatal("audit 503: want error")
	}
}

func TestRemoteBrokerSendsGatewayToken(t *testing.T) {
	f, rb := newFakeBrokerAPI(t)
	bad := NewRemoteBroker(rb.base, "qbt_wrong", rb.client)
	if _, err := bad.Credential(context.Background(), "ionq"); err == nil {
		t.Fatal("wrong gateway token: want error")
	}
	if f.badAuth.Load() != 1 {
		t.Fatalf("badAuth = %d", f.badAuth.Load())
	}
	if _, err := rb.Credential(context.Background(), "ionq"); err != nil {
		t.Fatal(err)
	}
	if f.badAuth.Load() != 1 {
		t.Fatal("right gateway token was refused")
	}
}
