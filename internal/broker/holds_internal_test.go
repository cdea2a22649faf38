package broker

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/anomaly"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/policy"
	"github.com/qbroker/qbroker/internal/seal"
	"github.com/qbroker/qbroker/internal/store/sqlstore"
)

// A require_approval finding holds the agent: its next job requests, even
// for the simulator that needs no approval otherwise, wait for a person;
// the hold survives a restart and resume lifts it.
func TestAnomalyRequireApprovalHolds(t *testing.T) {
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
	cfg := Config{
		Store: st, Sealer: sealer, Policy: pol, Audit: sink, Issuer: "http://b", Audience: "g",
		Devices: []Device{{Provider: "ionq", Name: "simulator", Kind: "simulator", Qubits: 29}},
		Approvals: config.Approvals{
			TTL: time.Hour, IssueWindow: time.Minute, RootPerson: "root",
			Groups: []config.ApproverGroup{{Name: "admins", RootTokens: true}},
			Policy: config.ApprovalConsent{Approvals: 1, Group: "admins"},
		},
	}
	b, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Roles().Put(ctx, core.Role{Name: "demo", Provider: "ionq", Devices: []string{"simulator"}, MaxShots: 1000}); err != nil {
		t.Fatal(err)
	}
	agent := core.Token{Hash: "h1", Accessor: "acc1", AgentID: "approle:demo:big", Role: "demo", IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	req := api.JobTokenRequest{Provider: "ionq", Device: "simulator", Shots: 10,
		Program: json.RawMessage(`{"qubits":1,"circuit":[{"gate":"h","target":0}]}`)}
	issue := func(b *Broker) error {
		_, err := b.IssueJobToken(ctx, Caller{RequestID: "t"}, agent, "demo", req)
		return err
	}
	if err := issue(b); err != nil {
		t.Fatalf("before the finding: %v", err)
	}
	b.act(anomaly.Finding{Rule: anomaly.RuleJobSize, Severity: anomaly.SeverityHigh, Actions: []anomaly.Action{anomaly.ActionRequireApproval},
		Agent: agent.AgentID, Time: time.Now(), Detail: "100x its usual shots"})
	var pending *PendingError
	if err := issue(b); !errors.As(err, &pending) || pending.Approval.Rule != "anomaly" || !strings.Contains(strings.Join(pending.Approval.Reasons, ";"), "job_size") {
		t.Fatalf("after the finding: %v, want held by the anomaly rule", err)
	}
	// Another agent is not held.
	other := agent
	other.AgentID, other.Hash = "approle:demo:other", "h2"
	if _, err := b.IssueJobToken(ctx, Caller{}, other, "demo", req); err != nil {
		t.Fatalf("another agent: %v", err)
	}

	// A restart keeps the hold.
	b2, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := issue(b2); !errors.As(err, &pending) {
		t.Fatalf("after restart: %v, want still held", err)
	}
	root := core.Token{AgentID: "initial-root", Policies: []string{PolicyRoot}}
	if err := st.Agents().Upsert(ctx, core.Agent{ID: agent.AgentID, Role: "demo", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := b2.ResumeAgent(ctx, Caller{}, root, agent.AgentID); err != nil {
		t.Fatal(err)
	}
	if err := issue(b2); err != nil {
		t.Fatalf("after resume: %v", err)
	}
}
