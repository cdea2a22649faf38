package broker

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/anomaly"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/policy"
	"github.com/qbroker/qbroker/internal/seal"
	"github.com/qbroker/qbroker/internal/store/sqlstore"
)

type zeroKEK struct{}

func (zeroKEK) KEK(context.Context) ([]byte, error) { return make([]byte, 32), nil }

// A finding whose action is suspend suspends the agent and revokes its
// tokens, and is itself audited.
func TestAnomalySuspendAction(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlstore.OpenSQLite(ctx, filepath.Join(dir, "q.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sealer, _ := seal.New(ctx, zeroKEK{})
	pol, _ := policy.New(policy.DefaultFiles())
	sink, err := audit.OpenFile(filepath.Join(dir, "audit.log"), audit.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	b, err := New(ctx, Config{Store: st, Sealer: sealer, Policy: pol, Audit: sink, Issuer: "http://b", Audience: "g"})
	if err != nil {
		t.Fatal(err)
	}
	agent := core.Agent{ID: "approle:demo:runaway", Name: "runaway", Role: "demo", CreatedAt: time.Now()}
	if err := st.Agents().Upsert(ctx, agent); err != nil {
		t.Fatal(err)
	}
	tok := core.Token{Hash: "h1", Accessor: "acc1", AgentID: agent.ID, Role: "demo", IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	if err := st.Tokens().Create(ctx, tok); err != nil {
		t.Fatal(err)
	}
	b.act(anomaly.Finding{Rule: anomaly.RuleBurst, Severity: anomaly.SeverityCritical, Actions: []anomaly.Action{anomaly.ActionSuspend}, Agent: agent.ID, Time: time.Now(), Detail: "3 AM burst"})
	a, err := st.Agents().Get(ctx, agent.ID)
	if err != nil || !a.Suspended {
		t.Fatalf("agent after suspend finding: %+v %v", a, err)
	}
	if _, err := st.Tokens().Get(ctx, "h1"); err == nil {
		t.Fatal("the agent's token survived the suspension")
	}
}

// An alert finding reaches the webhook as JSON.
func TestAnomalyAlertWebhook(t *testing.T) {
	got := make(chan []byte, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- b
	}))
	defer hook.Close()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlstore.OpenSQLite(ctx, filepath.Join(dir, "q.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sealer, _ := seal.New(ctx, zeroKEK{})
	pol, _ := policy.New(policy.DefaultFiles())
	sink, _ := audit.OpenFile(filepath.Join(dir, "audit.log"), audit.FileOptions{})
	defer sink.Close()
	b, err := New(ctx, Config{Store: st, Sealer: sealer, Policy: pol, Audit: sink, Issuer: "http://b", Audience: "g", AlertWebhook: hook.URL})
	if err != nil {
		t.Fatal(err)
	}
	b.act(anomaly.Finding{Rule: anomaly.RuleRepeatedDenials, Severity: anomaly.SeverityMedium, Actions: []anomaly.Action{anomaly.ActionAlert}, Agent: "approle:demo:prober", Time: time.Now(), Detail: "8 denials"})
	select {
	case body := <-got:
		if !strings.Contains(string(body), `"repeated_denials"`) || !strings.Contains(string(body), "approle:demo:prober") {
			t.Fatalf("webhook body %s", body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the webhook got nothing")
	}
}
