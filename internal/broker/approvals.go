package broker

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/policy"
	"github.com/qbroker/qbroker/internal/store"
)

// PendingError is what IssueJobToken returns when the request was held for
// human approval: nothing was issued, and Approval says what was asked,
// why, and where to approve it. The API answers it with 202.
type PendingError struct{ Approval api.Approval }

func (e *PendingError) Error() string {
	return fmt.Sprintf("approval required: request held as %s until %d of group %s approve", e.Approval.ID, e.Approval.Required, e.Approval.Group)
}

// Approval events passed to Config.OnApproval.
const (
	ApprovalRequested = "approval.requested"
	ApprovalApproved  = "approval.approved"
	ApprovalDenied    = "approval.denied"
	ApprovalExpired   = "approval.expired"
)

// Voter is a person deciding on an approval: signed in to the console
// (Person set, Token nil) or calling the API with a broker token.
type Voter struct {
	Person string      // console identity; empty for API callers
	Token  *core.Token // API callers
	Via    string      // "console" or "api"
}

// signal wakes long-polling waiters whenever any approval changes.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *signal) fire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// gateNeed is why a request needs approval and whose consent.
type gateNeed struct {
	reasons []string
	rule    string
	consent config.ApprovalConsent
}

// approvalNeeded applies the approval rules and the policy's verdict.
// allowedPlain is Cedar's answer without approval; allowedApproved with
// context.approved. It returns nil when no approval is needed, and an
// error when the request cannot be allowed even with approval.
func (b *Broker) approvalNeeded(ctx context.Context, caller core.Token, role core.Role, dev Device, req api.JobTokenRequest, est float64, plain, approved policy.Decision) (*gateNeed, error) {
	if !plain.Allowed && !approved.Allowed {
		return nil, nil // refused either way; the caller reports the plain decision
	}
	cfg := b.cfg.Approvals
	var need *gateNeed
	local := b.now().In(b.cfg.Location)
	for _, r := range cfg.Rules {
		ok, why, err := b.ruleMatches(ctx, r, caller, dev, req, est, local)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if need == nil {
			need = &gateNeed{rule: r.Name, consent: r.ApprovalConsent}
		}
		need.reasons = append(need.reasons, fmt.Sprintf("rule %s: %s", r.Name, why))
	}
	if h, held, err := b.heldBy(ctx, caller.AgentID); err != nil {
		return nil, err
	} else if held {
		if need == nil {
			need = &gateNeed{rule: "anomaly", consent: cfg.Policy}
		}
		need.reasons = append(need.reasons, fmt.Sprintf("anomaly rule %s holds this agent's requests for approval until %s", h.Rule, h.Until.Format(time.RFC3339)))
	}
	if !plain.Allowed {
		if need == nil {
			need = &gateNeed{rule: "policy", consent: cfg.Policy}
		}
		for _, id := range plain.Policies {
			need.reasons = append(need.reasons, fmt.Sprintf("policy %s permits this only with approval", id))
		}
		if len(plain.Policies) == 0 {
			need.reasons = append(need.reasons, "the policies permit this only with approval ("+approved.Reason+")")
		}
	}
	if need != nil && !approved.Allowed {
		return nil, core.Errorf(core.KindPermissionDenied, "permission denied: %s (approval would not change that)", approved.Reason)
	}
	if need != nil && need.consent.TTL == 0 {
		need.consent.TTL = cfg.TTL
	}
	if need != nil && need.consent.Group == "" {
		return nil, core.Errorf(core.KindPermissionDenied, "permission denied: this request needs approval (%s), but no approver group is configured (approvals.groups)", strings.Join(need.reasons, "; "))
	}
	return need, nil
}

func (b *Broker) ruleMatches(ctx context.Context, r config.ApprovalRule, caller core.Token, dev Device, req api.JobTokenRequest, est float64, local time.Time) (bool, string, error) {
	if !slices.Contains(r.Actions, policy.ActionSubmitJob) {
		return false, "", nil
	}
	if len(r.Roles) > 0 && !slices.Contains(r.Roles, caller.Role) {
		return false, "", nil
	}
	var why []string
	if r.DeviceKind != "" {
		if dev.Kind != r.DeviceKind {
			return false, "", nil
		}
		why = append(why, dev.Kind+" device")
	}
	if len(r.Devices) > 0 {
		if !slices.Contains(r.Devices, dev.Provider+"/"+dev.Name) {
			return false, "", nil
		}
		why = append(why, "device "+dev.Provider+"/"+dev.Name)
	}
	if r.CostOverUSD != nil {
		if est <= *r.CostOverUSD {
			return false, "", nil
		}
		why = append(why, fmt.Sprintf("estimated cost $%.2f over $%.2f", est, *r.CostOverUSD))
	}
	if r.ShotsOver > 0 {
		if req.Shots <= r.ShotsOver {
			return false, "", nil
		}
		why = append(why, fmt.Sprintf("%d shots over %d", req.Shots, r.ShotsOver))
	}
	if h := r.OffHours; h != nil {
		weekend := local.Weekday() == time.Saturday || local.Weekday() == time.Sunday
		inHours := local.Hour() >= h.Start && local.Hour() < h.End && !(h.Weekends && weekend)
		if inHours {
			return false, "", nil
		}
		why = append(why, "outside business hours ("+local.Format("Mon 15:04 MST")+")")
	}
	if r.NewDevice {
		used, err := b.cfg.Store.Jobs().UsedDevice(ctx, caller.AgentID, dev.Provider, dev.Name)
		if err != nil {
			return false, "", err
		}
		if used {
			return false, "", nil
		}
		why = append(why, "first use of "+dev.Provider+"/"+dev.Name+" by this agent")
	}
	if len(why) == 0 {
		why = append(why, "always")
	}
	return true, strings.Join(why, ", "), nil
}

// hold records the request as a pending approval and answers PendingError.
func (b *Broker) hold(ctx context.Context, c Caller, caller core.Token, role core.Role, dev Device, req api.JobTokenRequest, est float64, need *gateNeed, ev *audit.Event) error {
	if len(req.Program) == 0 {
		return b.refuse(ctx, c, ev, core.Errorf(core.KindBadRequest,
			"this request needs approval (%s): include the program and its format so the approver sees what will run", strings.Join(need.reasons, "; ")))
	}
	id, err := newApprovalID()
	if err != nil {
		return err
	}
	now := b.now().UTC()
	a := core.Approval{
		ID: id, State: core.ApprovalPending,
		RequesterAgent: caller.AgentID, RequesterAccessor: caller.Accessor, ActingFor: caller.ActingFor,
		Role: role.Name, Owner: role.Owner, Team: role.Team, SourceIP: hostOf(c.RemoteAddr),
		Action: policy.ActionSubmitJob, Provider: dev.Provider, Device: dev.Name, DeviceKind: dev.Kind, Shots: req.Shots,
		Program: req.Program, Format: req.Format, ProgramSHA256: req.ProgramSHA256, EstimatedCostUSD: est,
		Reasons: need.reasons, Rule: need.rule, Required: need.consent.Approvals, Group: need.consent.Group,
		CreatedAt: now, ExpiresAt: now.Add(need.consent.TTL),
	}
	wait, err := store.UpdatePipelined(ctx, b.cfg.Store, func(tx store.Aggregates) error { return tx.Approvals().Create(ctx, a) })
	if err != nil {
		return fmt.Errorf("record approval: %w", err)
	}
	ev.Type, ev.Action, ev.ApprovalID, ev.Decision = "approval", "RequestApproval", id, "pending"
	ev.Owner, ev.EstimatedCostUSD, ev.Reason = role.Owner, audit.USD(est), strings.Join(need.reasons, "; ")
	commitErr, auditErr := b.commitAndRecord(ctx, c, wait, ev)
	if commitErr != nil {
		return fmt.Errorf("record approval: %w", commitErr)
	}
	if auditErr != nil {
		return auditErr
	}
	out := b.approvalData(a)
	b.approvalChanged(ApprovalRequested, out)
	return &PendingError{Approval: out}
}

// issueApproved checks that req is exactly what approval req.ApprovalID
// released, for the agent that asked, and returns the need to issue it.
func (b *Broker) checkApproved(ctx context.Context, caller core.Token, req api.JobTokenRequest) (core.Approval, error) {
	a, err := b.cfg.Store.Approvals().Get(ctx, req.ApprovalID)
	if errors.Is(err, store.ErrNotFound) {
		return a, core.Errorf(core.KindNotFound, "approval %s not found", req.ApprovalID)
	}
	if err != nil {
		return a, err
	}
	now := b.now()
	switch {
	case a.RequesterAgent != caller.AgentID || a.Role != caller.Role:
		return a, core.Errorf(core.KindPermissionDenied, "approval %s was given to another agent's request; ask for your own", a.ID)
	case a.State == core.ApprovalPending && !now.Before(a.ExpiresAt), a.State == core.ApprovalExpired:
		return a, core.Errorf(core.KindGone, "approval %s expired at %s without enough approvals", a.ID, a.ExpiresAt.UTC().Format(time.RFC3339))
	case a.State == core.ApprovalPending:
		return a, core.Errorf(core.KindConflict, "approval %s is still pending (%d of %d approvals)", a.ID, a.Approvals(), a.Required)
	case a.State == core.ApprovalDenied:
		return a, core.Errorf(core.KindPermissionDenied, "approval %s was denied by %s: %s", a.ID, denier(a), a.Reason)
	case a.State == core.ApprovalIssued:
		return a, core.Errorf(core.KindConflict, "approval %s was already used (job token %s); ask for a new approval", a.ID, a.IssuedJTI)
	case a.State != core.ApprovalApproved:
		return a, core.Errorf(core.KindConflict, "approval %s is %s", a.ID, a.State)
	case !now.Before(a.DecidedAt.Add(b.cfg.Approvals.IssueWindow)):
		return a, core.Errorf(core.KindGone, "approval %s was approved at %s but not used within %s; ask for a new approval",
			a.ID, a.DecidedAt.UTC().Format(time.RFC3339), b.cfg.Approvals.IssueWindow)
	}
	var diff []string
	if req.Provider != a.Provider || req.Device != a.Device {
		diff = append(diff, fmt.Sprintf("device %s/%s, approved %s/%s", req.Provider, req.Device, a.Provider, a.Device))
	}
	if req.Shots != a.Shots {
		diff = append(diff, fmt.Sprintf("shots %d, approved %d", req.Shots, a.Shots))
	}
	if req.ProgramSHA256 != a.ProgramSHA256 {
		diff = append(diff, "a different program (sha256 "+short(req.ProgramSHA256)+", approved "+short(a.ProgramSHA256)+")")
	}
	if len(diff) > 0 {
		return a, core.Errorf(core.KindPermissionDenied, "request differs from approval %s: %s; other parameters need a new approval", a.ID, strings.Join(diff, "; "))
	}
	return a, nil
}

func short(d string) string {
	if d == "" {
		return "none"
	}
	if len(d) > 12 {
		return d[:12] + "…"
	}
	return d
}

func denier(a core.Approval) string {
	for _, v := range a.Votes {
		if v.Decision == core.VoteDeny {
			return v.Approver
		}
	}
	return "an approver"
}

// approverPerson is who v is in group g, or "" when v may not approve.
func (b *Broker) approverPerson(g config.ApproverGroup, v Voter) string {
	if v.Token == nil {
		if v.Person != "" && slices.Contains(g.People, v.Person) {
			return v.Person
		}
		return ""
	}
	t := v.Token
	switch {
	case t.HasPolicy(PolicyRoot):
		if g.RootTokens {
			return b.cfg.Approvals.RootPerson
		}
		return ""
	case t.Role != "" && slices.Contains(g.Roles, t.Role):
		if t.ActingFor != "" {
			return t.ActingFor
		}
		return t.AgentID
	case slices.Contains(g.People, t.AgentID) && t.ActingFor == "":
		return t.AgentID
	}
	return ""
}

func (b *Broker) group(name string) (config.ApproverGroup, bool) {
	for _, g := range b.cfg.Approvals.Groups {
		if g.Name == name {
			return g, true
		}
	}
	return config.ApproverGroup{}, false
}

// voterName names a voter in audit and errors.
func voterName(v Voter) string {
	if v.Token != nil {
		return v.Token.AgentID
	}
	return v.Person
}

// CanDecide reports whether v may vote on a, and if not, why.
func (b *Broker) CanDecide(v Voter, a api.Approval) (person string, why string) {
	g, ok := b.group(a.Group)
	if !ok {
		return "", "approver group " + a.Group + " is not configured"
	}
	person = b.approverPerson(g, v)
	switch {
	case person == "":
		return "", "you are not in approver group " + a.Group
	case a.State != api.ApprovalPending:
		return "", "the request is " + a.State
	case person == a.Requester || person == a.ActingFor || person == a.Owner || (v.Token != nil && v.Token.AgentID == a.Requester):
		return "", "you cannot approve a request you made or own"
	}
	for _, vote := range a.Votes {
		if vote.Approver == person {
			return "", "you already voted (" + vote.Decision + ")"
		}
	}
	return person, ""
}

// DecideApproval records v's approve or deny vote on approval id, under the
// rules of consent: only the approver group votes; the requester, the
// person it acts for and the role's owner never do; one person counts
// once; nothing counts after expiry; a denial ends the request and needs a
// reason. Every attempt is audited.
func (b *Broker) DecideApproval(ctx context.Context, c Caller, v Voter, id string, approve bool, reason string) (api.Approval, error) {
	decision := core.VoteDeny
	if approve {
		decision = core.VoteApprove
	}
	ev := &audit.Event{Type: "approval", Action: "Vote", ApprovalID: id, Approver: voterName(v), Reason: reason}
	if v.Token != nil {
		ev.Accessor, ev.AuthMethod = v.Token.Accessor, v.Token.AuthMethod
	}
	reason = strings.TrimSpace(reason)
	if len(reason) > 2000 {
		return api.Approval{}, b.refuse(ctx, c, ev, core.Errorf(core.KindBadRequest, "reason is longer than 2000 characters"))
	}
	if !approve && reason == "" {
		return api.Approval{}, b.refuse(ctx, c, ev, core.Errorf(core.KindBadRequest, "a denial needs a reason, so the agent learns why"))
	}
	a, err := b.cfg.Store.Approvals().Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return api.Approval{}, b.refuse(ctx, c, ev, core.Errorf(core.KindNotFound, "approval %s not found", id))
	}
	if err != nil {
		return api.Approval{}, err
	}
	ev.Agent, ev.Role, ev.Provider, ev.Device, ev.Shots = a.RequesterAgent, a.Role, a.Provider, a.Device, a.Shots
	view := b.approvalData(a)
	person, why := b.CanDecide(v, view)
	if person == "" {
		kind := core.KindPermissionDenied
		switch view.State {
		case api.ApprovalExpired:
			kind = core.KindGone
		case api.ApprovalApproved, api.ApprovalDenied, api.ApprovalIssued:
			kind = core.KindConflict
		}
		if strings.HasPrefix(why, "you already voted") {
			kind = core.KindConflict
		}
		return api.Approval{}, b.refuse(ctx, c, ev, core.Errorf(kind, "cannot %s approval %s: %s", decision, id, why))
	}
	ev.Approver = person
	now := b.now().UTC()
	var after core.Approval
	wait, err := store.UpdatePipelined(ctx, b.cfg.Store, func(tx store.Aggregates) (err error) {
		after, err = tx.Approvals().Vote(ctx, id, core.Vote{Approver: person, Decision: decision, Reason: reason, Via: v.Via, At: now}, now)
		return err
	})
	switch {
	case err == nil:
	case errors.Is(err, store.ErrConflict):
		return api.Approval{}, b.refuse(ctx, c, ev, core.Errorf(core.KindConflict, "cannot %s approval %s: you already voted", decision, id))
	case errors.Is(err, store.ErrExpired):
		return api.Approval{}, b.refuse(ctx, c, ev, core.Errorf(core.KindGone, "cannot %s approval %s: it expired at %s", decision, id, a.ExpiresAt.UTC().Format(time.RFC3339)))
	case errors.Is(err, store.ErrClosed):
		return api.Approval{}, b.refuse(ctx, c, ev, core.Errorf(core.KindConflict, "cannot %s approval %s: it is no longer pending", decision, id))
	default:
		return api.Approval{}, fmt.Errorf("vote: %w", err)
	}
	ev.Decision = "allow"
	ev.Action = map[bool]string{true: "Approve", false: "Deny"}[approve]
	commitErr, auditErr := b.commitAndRecord(ctx, c, wait, ev)
	if commitErr != nil {
		return api.Approval{}, fmt.Errorf("vote: %w", commitErr)
	}
	if auditErr != nil {
		return api.Approval{}, auditErr
	}
	out := b.approvalData(after)
	switch after.State {
	case core.ApprovalApproved:
		b.approvalChanged(ApprovalApproved, out)
	case core.ApprovalDenied:
		b.approvalChanged(ApprovalDenied, out)
	default:
		b.approvalChanged("", out)
	}
	return out, nil
}

// mayRead: the requester, approvers of its group and root read an approval.
func (b *Broker) mayRead(t core.Token, a core.Approval) bool {
	if t.HasPolicy(PolicyRoot) || t.AgentID == a.RequesterAgent {
		return true
	}
	return b.isApprover(Voter{Token: &t})
}

// isApprover: v is in some approver group.
func (b *Broker) isApprover(v Voter) bool {
	for _, g := range b.cfg.Approvals.Groups {
		if b.approverPerson(g, v) != "" {
			return true
		}
	}
	return false
}

// IsApprover reports whether a console person is in any approver group.
func (b *Broker) IsApprover(person string) bool { return b.isApprover(Voter{Person: person}) }

// Approval returns approval id to its requester, an approver or root.
func (b *Broker) Approval(ctx context.Context, t core.Token, id string) (api.Approval, error) {
	a, err := b.cfg.Store.Approvals().Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !b.mayRead(t, a)) {
		return api.Approval{}, core.Errorf(core.KindNotFound, "approval %s not found", id)
	}
	if err != nil {
		return api.Approval{}, err
	}
	return b.approvalData(a), nil
}

// ApprovalFor returns approval id to a console person (approvers only).
func (b *Broker) ApprovalFor(ctx context.Context, person, id string) (api.Approval, error) {
	if !b.IsApprover(person) {
		return api.Approval{}, core.Errorf(core.KindPermissionDenied, "%s is not in any approver group", person)
	}
	a, err := b.cfg.Store.Approvals().Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return api.Approval{}, core.Errorf(core.KindNotFound, "approval %s not found", id)
	}
	if err != nil {
		return api.Approval{}, err
	}
	return b.approvalData(a), nil
}

// WaitApproval is Approval that, while the request is pending, waits up to
// wait for it to be decided (long poll).
func (b *Broker) WaitApproval(ctx context.Context, t core.Token, id string, wait time.Duration) (api.Approval, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		changed := b.approvals.wait()
		a, err := b.Approval(ctx, t, id)
		if err != nil || a.State != api.ApprovalPending || wait <= 0 {
			return a, err
		}
		// Re-read at the expiry and at least every 2 s (another replica
		// may have decided it).
		poll := time.NewTimer(min(2*time.Second, max(time.Until(a.ExpiresAt), 10*time.Millisecond)))
		select {
		case <-changed:
		case <-poll.C:
		case <-deadline.C:
			poll.Stop()
			return b.Approval(ctx, t, id)
		case <-ctx.Done():
			poll.Stop()
			return api.Approval{}, ctx.Err()
		}
		poll.Stop()
	}
}

// ListApprovals lists approvals: all of them for root and approvers, the
// caller's own for agents.
func (b *Broker) ListApprovals(ctx context.Context, t core.Token, state string, limit int) ([]api.Approval, error) {
	f := store.ApprovalFilter{State: state, Limit: limit}
	if !t.HasPolicy(PolicyRoot) && !b.isApprover(Voter{Token: &t}) {
		f.Agent = t.AgentID
	}
	return b.listApprovals(ctx, f)
}

// ListApprovalsFor lists approvals for a console person (approvers only).
func (b *Broker) ListApprovalsFor(ctx context.Context, person, state string, limit int) ([]api.Approval, error) {
	if !b.IsApprover(person) {
		return nil, core.Errorf(core.KindPermissionDenied, "%s is not in any approver group", person)
	}
	return b.listApprovals(ctx, store.ApprovalFilter{State: state, Limit: limit})
}

func (b *Broker) listApprovals(ctx context.Context, f store.ApprovalFilter) ([]api.Approval, error) {
	switch f.State {
	case "", api.ApprovalPending, api.ApprovalApproved, api.ApprovalDenied, api.ApprovalExpired, api.ApprovalIssued:
	default:
		return nil, core.Errorf(core.KindBadRequest, "state %q is not one of pending, approved, denied, expired, issued", f.State)
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	as, err := b.cfg.Store.Approvals().List(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]api.Approval, 0, len(as))
	for _, a := range as {
		d := b.approvalData(a)
		if f.State == api.ApprovalPending && d.State != api.ApprovalPending {
			continue // expired, not yet swept
		}
		out = append(out, d)
	}
	return out, nil
}

// ExpireApprovals closes pending approvals past their expiry, audits and
// announces each. The sweeper calls it.
func (b *Broker) ExpireApprovals(ctx context.Context) (int, error) {
	var expired []core.Approval
	err := b.cfg.Store.Update(ctx, func(tx store.Aggregates) (err error) {
		expired, err = tx.Approvals().ExpirePending(ctx, b.now().UTC())
		return err
	})
	if err != nil {
		return 0, err
	}
	c := Caller{RequestID: "sweeper", Path: "sweeper"}
	for _, a := range expired {
		ev := &audit.Event{Type: "approval", Action: "Expire", ApprovalID: a.ID, Agent: a.RequesterAgent, Role: a.Role,
			Provider: a.Provider, Device: a.Device, Shots: a.Shots, Decision: "deny", Reason: a.Reason}
		if err := b.record(ctx, c, ev); err != nil {
			return 0, err
		}
		b.approvalChanged(ApprovalExpired, b.approvalData(a))
	}
	return len(expired), nil
}

func (b *Broker) approvalChanged(event string, a api.Approval) {
	b.approvals.fire()
	b.tell(context.Background(), "appr")
	if event != "" && b.cfg.OnApproval != nil {
		b.cfg.OnApproval(event, a)
	}
}

// approvalData is the API view of a, with a pending request past its
// expiry shown as expired.
func (b *Broker) approvalData(a core.Approval) api.Approval {
	out := api.Approval{
		ID: a.ID, State: a.State, Requester: a.RequesterAgent, ActingFor: a.ActingFor, Role: a.Role, Owner: a.Owner, Team: a.Team, Source: a.SourceIP,
		Action: a.Action, Provider: a.Provider, Device: a.Device, DeviceKind: a.DeviceKind, Shots: a.Shots,
		Format: a.Format, ProgramSHA256: a.ProgramSHA256, EstimatedCostUSD: a.EstimatedCostUSD,
		Reasons: a.Reasons, Rule: a.Rule, Required: a.Required, Group: a.Group, Approved: a.Approvals(),
		CreatedAt: a.CreatedAt, ExpiresAt: a.ExpiresAt, Reason: a.Reason, JTI: a.IssuedJTI, ConsoleURL: b.consoleURL(a.ID),
	}
	if len(a.Program) > 0 {
		out.Program = a.Program
	}
	if dev, ok := b.rules.Load().devices[a.Provider+"/"+a.Device]; ok {
		out.Price = &api.DevicePrice{PerTaskUSD: dev.Price.PerTaskUSD, PerShotUSD: dev.Price.PerShotUSD, PerMinuteUSD: dev.Price.PerMinuteUSD,
			MinMinutes: dev.Price.MinMinutes, PerSecondUSD: dev.Price.PerSecondUSD}
	}
	if !a.DecidedAt.IsZero() {
		d := a.DecidedAt.UTC()
		out.DecidedAt = &d
		if a.State == core.ApprovalApproved || a.State == core.ApprovalIssued {
			by := d.Add(b.cfg.Approvals.IssueWindow)
			out.IssueBy = &by
		}
	}
	for _, v := range a.Votes {
		out.Votes = append(out.Votes, api.Vote{Approver: v.Approver, Decision: v.Decision, Reason: v.Reason, Via: v.Via, At: v.At.UTC()})
	}
	if a.State == core.ApprovalPending && !b.now().Before(a.ExpiresAt) {
		out.State = api.ApprovalExpired
		out.Reason = "expired: no decision before " + a.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return out
}

func (b *Broker) consoleURL(id string) string {
	base := b.cfg.Approvals.ConsoleURL
	if base == "" {
		base = strings.TrimSuffix(b.cfg.Issuer, "/") + "/ui/"
	}
	return strings.TrimSuffix(base, "/") + "/approvals/" + id
}

func newApprovalID() (string, error) {
	var b [15]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "apr_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])), nil
}

// RecentEventsFor returns the recent audit trail, newest first, to a
// console person who is an approver.
func (b *Broker) RecentEventsFor(person string, limit int) ([]audit.Event, error) {
	if !b.IsApprover(person) {
		return nil, core.Errorf(core.KindPermissionDenied, "%s is not in any approver group", person)
	}
	if b.cfg.AuditPath == "" {
		return nil, core.Errorf(core.KindNotFound, "this broker has no readable audit file")
	}
	evs, err := audit.ReadEvents(b.cfg.AuditPath, audit.Filter{Limit: limit})
	if err != nil {
		return nil, err
	}
	slices.Reverse(evs)
	return evs, nil
}

// LocalKey returns the sealed random key stored under name (n bytes),
// creating it on first use: for keys every replica must share, such as the
// console's session key.
func (b *Broker) LocalKey(ctx context.Context, name string, n int) ([]byte, error) {
	return b.loadOrCreateSecret(ctx, "local-key/"+name, n)
}

// refuseUnlessPending audits and returns a refusal, but passes a
// *PendingError (already audited as a request for approval) through.
func (b *Broker) refuseUnlessPending(ctx context.Context, c Caller, ev *audit.Event, err error) error {
	var pending *PendingError
	if errors.As(err, &pending) {
		return err
	}
	return b.refuse(ctx, c, ev, err)
}
