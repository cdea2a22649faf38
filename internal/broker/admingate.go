package broker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/store"
)

// FormatAdmin is the "format" of a held administrative operation: its
// program is the operation as JSON, with secret values only as HMACs.
const FormatAdmin = "admin"

// adminOp is an administrative operation that approval rules can gate
// (four eyes): the action (AdminRoles, AdminProviders, AdminKeys), a
// one-line summary for the approver, and the operation's parameters. The
// caller puts secret values in params only as their audit HMAC.
type adminOp struct {
	Action  string `json:"action"`
	Op      string `json:"op"` // PutRole, DeleteRole, SetProviderCredential, RotateKeys
	Target  string `json:"target,omitempty"`
	Summary string `json:"summary"`
	Params  any    `json:"params,omitempty"`
}

// gateAdmin runs the approval gate for an administrative operation. It
// returns nil when no rule asks for approval, or when c.ApprovalID names
// an approved request for exactly this operation by this caller (which it
// then spends); a *PendingError when the operation is now held; an error
// otherwise. ev is the operation's audit event.
func (b *Broker) gateAdmin(ctx context.Context, c Caller, caller core.Token, op adminOp, ev *audit.Event) error {
	body, err := json.Marshal(op)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	digest := hex.EncodeToString(sum[:])
	if c.ApprovalID != "" {
		ev.ApprovalID = c.ApprovalID
		return b.spendAdminApproval(ctx, caller, op, digest, c.ApprovalID)
	}
	var need *gateNeed
	local := b.now().In(b.cfg.Location)
	for _, r := range b.cfg.Approvals.Rules {
		if !slices.Contains(r.Actions, op.Action) || (len(r.Roles) > 0 && !slices.Contains(r.Roles, caller.Role)) {
			continue
		}
		why := "always"
		if h := r.OffHours; h != nil {
			weekend := local.Weekday() == time.Saturday || local.Weekday() == time.Sunday
			if local.Hour() >= h.Start && local.Hour() < h.End && !(h.Weekends && weekend) {
				continue
			}
			why = "outside business hours (" + local.Format("Mon 15:04 MST") + ")"
		}
		if need == nil {
			need = &gateNeed{rule: r.Name, consent: r.ApprovalConsent}
		}
		need.reasons = append(need.reasons, fmt.Sprintf("rule %s: %s %s", r.Name, op.Action, why))
	}
	if need == nil {
		return nil
	}
	if need.consent.TTL == 0 {
		need.consent.TTL = b.cfg.Approvals.TTL
	}
	id, err := newApprovalID()
	if err != nil {
		return err
	}
	now := b.now().UTC()
	a := core.Approval{
		ID: id, State: core.ApprovalPending,
		RequesterAgent: caller.AgentID, RequesterAccessor: caller.Accessor, ActingFor: b.personOf(caller),
		Role: caller.Role, SourceIP: hostOf(c.RemoteAddr),
		Action: op.Action, Device: op.Op + " " + op.Target, Program: body, Format: FormatAdmin, ProgramSHA256: digest,
		Reasons: need.reasons, Rule: need.rule, Required: need.consent.Approvals, Group: need.consent.Group,
		CreatedAt: now, ExpiresAt: now.Add(need.consent.TTL),
	}
	if err := b.cfg.Store.Approvals().Create(ctx, a); err != nil {
		return fmt.Errorf("record approval: %w", err)
	}
	hev := &audit.Event{Type: "approval", Action: "RequestApproval", ApprovalID: id, Agent: caller.AgentID, Accessor: caller.Accessor,
		Decision: "pending", Reason: op.Summary + ": " + strings.Join(need.reasons, "; ")}
	if err := b.record(ctx, c, hev); err != nil {
		return err
	}
	out := b.approvalData(a)
	b.approvalChanged(ApprovalRequested, out)
	return &PendingError{Approval: out}
}

// personOf is the person behind a token, for the rule that nobody
// approves their own request: the person a delegated token acts for, and
// root_person for root tokens.
func (b *Broker) personOf(t core.Token) string {
	switch {
	case t.ActingFor != "":
		return t.ActingFor
	case t.HasPolicy(PolicyRoot):
		return b.cfg.Approvals.RootPerson
	}
	return ""
}

func (b *Broker) spendAdminApproval(ctx context.Context, caller core.Token, op adminOp, digest, id string) error {
	a, err := b.cfg.Store.Approvals().Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return core.Errorf(core.KindNotFound, "approval %s not found", id)
	}
	if err != nil {
		return err
	}
	now := b.now()
	switch {
	case a.Format != FormatAdmin || a.RequesterAgent != caller.AgentID:
		return core.Errorf(core.KindPermissionDenied, "approval %s was given to another request; ask for your own", id)
	case a.State == core.ApprovalPending && !now.Before(a.ExpiresAt), a.State == core.ApprovalExpired:
		return core.Errorf(core.KindGone, "approval %s expired without enough approvals", id)
	case a.State == core.ApprovalPending:
		return core.Errorf(core.KindConflict, "approval %s is still pending (%d of %d approvals)", id, a.Approvals(), a.Required)
	case a.State == core.ApprovalDenied:
		return core.Errorf(core.KindPermissionDenied, "approval %s was denied by %s: %s", id, denier(a), a.Reason)
	case a.State == core.ApprovalIssued:
		return core.Errorf(core.KindConflict, "approval %s was already used; ask for a new approval", id)
	case !now.Before(a.DecidedAt.Add(b.cfg.Approvals.IssueWindow)):
		return core.Errorf(core.KindGone, "approval %s was not used within %s of its approval", id, b.cfg.Approvals.IssueWindow)
	case a.ProgramSHA256 != digest:
		return core.Errorf(core.KindPermissionDenied, "request differs from approval %s (approved: %s); other parameters need a new approval", id, summaryOf(a.Program))
	}
	if err := b.cfg.Store.Approvals().MarkIssued(ctx, id, "admin:"+op.Op); err != nil {
		if errors.Is(err, store.ErrClosed) {
			return core.Errorf(core.KindConflict, "approval %s was already used; ask for a new approval", id)
		}
		return err
	}
	return nil
}

func summaryOf(program []byte) string {
	var op adminOp
	if json.Unmarshal(program, &op) != nil {
		return "?"
	}
	return op.Summary
}
