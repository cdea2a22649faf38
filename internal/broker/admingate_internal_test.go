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
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/policy"
	"github.com/qbroker/qbroker/internal/seal"
	"github.com/qbroker/qbroker/internal/store/sqlstore"
)

// Four eyes on administration: a rule on AdminRoles and AdminProviders
// holds root's changes until another person approves; the approved change
// is applied exactly as approved, once; root never approves its own; a
// held credential change never shows the key.
func TestAdminActionsNeedApproval(t *testing.T) {
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
	b, err := New(ctx, Config{
		Store: st, Sealer: sealer, Policy: pol, Audit: sink, Issuer: "http://b", Audience: "g",
		Devices: []Device{{Provider: "ionq", Name: "simulator", Kind: "simulator", Qubits: 29}},
		Approvals: config.Approvals{
			TTL: time.Hour, IssueWindow: time.Minute, RootPerson: "ops-lead",
			Groups: []config.ApproverGroup{{Name: "admins", People: []string{"alice@example.test"}, RootTokens: true}},
			Rules: []config.ApprovalRule{{Name: "four-eyes", Actions: []string{"AdminRoles", "AdminProviders"}, Always: true,
				ApprovalConsent: config.ApprovalConsent{Approvals: 1, Group: "admins"}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	root := core.Token{AgentID: "initial-root", Accessor: "root-acc", Policies: []string{PolicyRoot}}
	role := api.Role{Provider: "ionq", Devices: []string{"simulator"}, MaxShots: 100}
	var pending *PendingError
	_, err = b.PutRole(ctx, Caller{}, root, "lab", role)
	if !errors.As(err, &pending) || pending.Approval.Action != "AdminRoles" || pending.Approval.Format != FormatAdmin {
		t.Fatalf("PutRole under four eyes: %v, want held", err)
	}
	id := pending.Approval.ID
	if _, err := st.Roles().Get(ctx, "lab"); err == nil {
		t.Fatal("the held role change was applied")
	}
	// Root approving its own change: refused (root approves as ops-lead, who asked).
	if _, err := b.DecideApproval(ctx, Caller{}, Voter{Token: &root, Via: "api"}, id, true, ""); core.KindOf(err) != core.KindPermissionDenied {
		t.Fatalf("root approves its own change: %v, want refused", err)
	}
	if _, err := b.PutRole(ctx, Caller{ApprovalID: id}, root, "lab", role); core.KindOf(err) != core.KindConflict {
		t.Fatalf("apply while pending: %v, want 409", err)
	}
	if _, err := b.DecideApproval(ctx, Caller{}, Voter{Person: "alice@example.test", Via: "console"}, id, true, "ok"); err != nil {
		t.Fatal(err)
	}
	wider := role
	wider.MaxShots = 100000
	if _, err := b.PutRole(ctx, Caller{ApprovalID: id}, root, "lab", wider); core.KindOf(err) != core.KindPermissionDenied || !strings.Contains(err.Error(), "differs") {
		t.Fatalf("apply other parameters: %v, want 403 differs", err)
	}
	if _, err := b.PutRole(ctx, Caller{ApprovalID: id}, root, "lab", role); err != nil {
		t.Fatalf("apply the approved change: %v", err)
	}
	if r, err := st.Roles().Get(ctx, "lab"); err != nil || r.MaxShots != 100 {
		t.Fatalf("role after the approved change: %+v %v", r, err)
	}
	if _, err := b.PutRole(ctx, Caller{ApprovalID: id}, root, "lab", role); core.KindOf(err) != core.KindConflict {
		t.Fatalf("apply twice: %v, want 409", err)
	}

	// A credential change: held, and the key never appears in the request.
	const key = "ionq-secret-key-0123456789abcdef"
	err = b.SetProviderCredential(ctx, Caller{}, root, "ionq", key)
	if !errors.As(err, &pending) {
		t.Fatalf("SetProviderCredential: %v, want held", err)
	}
	held, _ := json.Marshal(pending.Approval)
	stored, _ := st.Approvals().Get(ctx, pending.Approval.ID)
	if strings.Contains(string(held), key) || strings.Contains(string(stored.Program), key) || !strings.Contains(string(held), "hmac-sha256:") {
		t.Fatalf("held credential change shows the key or no HMAC: %s", held)
	}
	if _, err := b.Credential(ctx, "ionq"); err == nil {
		t.Fatal("the held credential was stored")
	}
	// Key rotation is not under the rule: it runs.
	if _, _, _, err := b.RotateKeys(ctx, Caller{}, root); err != nil {
		t.Fatalf("RotateKeys (not gated): %v", err)
	}
}
