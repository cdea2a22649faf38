package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/anomaly"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/store"
)

// JobCanceller cancels a provider job with the real credential.
type JobCanceller interface {
	Cancel(ctx context.Context, provider, id string) (status string, err error)
}

// maxCancelJobs bounds how many of an agent's most recent jobs a revocation
// cancels.
const maxCancelJobs = 1000

// RevokeAgent revokes every broker token of an agent — and with them every
// job token issued under them, which can no longer be redeemed. With
// Suspend, the agent also cannot log in again until ResumeAgent; with
// CancelJobs, the agent's jobs are cancelled at the provider (each one
// audited), since revoking credentials alone leaves queued jobs running.
// When AWS credentials are configured, the agent's STS sessions are cut
// off on every IAM role the broker assumes (AWSSessions; a failure there
// is in the answer and the audit trail). Root only.
func (b *Broker) RevokeAgent(ctx context.Context, c Caller, caller core.Token, agentID string, req api.RevokeAgentRequest) (api.RevokeAgentData, error) {
	if err := requireRoot(caller); err != nil {
		return api.RevokeAgentData{}, b.refuse(ctx, c, &audit.Event{Type: "revoke", Action: "RevokeAgent", Agent: agentID, Accessor: caller.Accessor}, err)
	}
	n, err := b.revokeAgent(ctx, c, agentID, req.Suspend, caller.AgentID, req.Reason)
	out := api.RevokeAgentData{Agent: agentID, Revoked: n, Suspended: req.Suspend}
	if err == nil {
		// Its AWS STS sessions too: they live on at AWS otherwise.
		out.AWSSessions = b.cutAgentAWSSessions(ctx, c, agentID, caller.AgentID)
	}
	if err != nil || !req.CancelJobs {
		return out, err
	}
	if b.cfg.Canceller == nil {
		return out, core.Errorf(core.KindBadRequest, "tokens revoked, but this broker cannot cancel provider jobs (no provider upstream configured)")
	}
	jobs, err := b.cfg.Store.Jobs().ListByAgent(ctx, agentID, maxCancelJobs)
	if err != nil {
		return out, err
	}
	for _, j := range jobs {
		status, cerr := b.cfg.Canceller.Cancel(ctx, j.Provider, j.ID)
		ev := &audit.Event{Type: "cancel", Action: "CancelJob", Agent: agentID, Role: j.Role, Provider: j.Provider, Device: j.Device, JobID: j.ID,
			Reason: "revocation of the agent by " + caller.AgentID}
		res := api.CanceledJob{Provider: j.Provider, ID: j.ID, Status: status}
		if cerr != nil {
			ev.Decision, ev.Error = audit.DecisionError, cerr.Error()
			res.Error = core.UserMessage(cerr)
			if res.Error == "internal error" {
				res.Error = "cancel failed; see the broker log"
			}
			b.log.Warn("cancel on revocation failed", "agent", agentID, "job", j.ID, "err", cerr)
		} else {
			ev.Decision = audit.DecisionAllow
			ev.Reason += ": " + status
		}
		if err := b.record(ctx, c, ev); err != nil {
			return out, err
		}
		out.Jobs = append(out.Jobs, res)
	}
	return out, nil
}

func (b *Broker) revokeAgent(ctx context.Context, c Caller, agentID string, suspend bool, actor, reason string) (int, error) {
	var revoked []core.Token
	err := b.cfg.Store.Update(ctx, func(tx store.Aggregates) error {
		a, err := tx.Agents().Get(ctx, agentID)
		if errors.Is(err, store.ErrNotFound) {
			return core.Errorf(core.KindNotFound, "agent %q not found", agentID)
		}
		if err != nil {
			return err
		}
		if suspend && !a.Suspended {
			a.Suspended = true
			if err := tx.Agents().Upsert(ctx, a); err != nil {
				return err
			}
		}
		revoked, err = tx.Tokens().DeleteByAgent(ctx, agentID)
		return err
	})
	if err != nil {
		return 0, err
	}
	b.tokens.dropAgent(agentID)
	b.tell(ctx, "agent:"+agentID)
	accessors := make([]string, 0, len(revoked))
	for _, t := range revoked {
		accessors = append(accessors, t.Accessor)
	}
	if err := b.revokeChildren(ctx, accessors...); err != nil {
		return len(revoked), err
	}
	action := "RevokeAgent"
	if suspend {
		action = "SuspendAgent"
	}
	ev := &audit.Event{Type: "revoke", Action: action, Agent: agentID, Decision: audit.DecisionAllow,
		Reason: fmt.Sprintf("%d tokens revoked by %s: %s", len(revoked), actor, reason)}
	return len(revoked), b.record(ctx, c, ev)
}

// ResumeAgent lifts a suspension. Root only.
func (b *Broker) ResumeAgent(ctx context.Context, c Caller, caller core.Token, agentID string) error {
	ev := &audit.Event{Type: "admin", Action: "ResumeAgent", Agent: agentID, Accessor: caller.Accessor}
	if err := requireRoot(caller); err != nil {
		return b.refuse(ctx, c, ev, err)
	}
	err := b.cfg.Store.Update(ctx, func(tx store.Aggregates) error {
		a, err := tx.Agents().Get(ctx, agentID)
		if errors.Is(err, store.ErrNotFound) {
			return core.Errorf(core.KindNotFound, "agent %q not found", agentID)
		}
		if err != nil {
			return err
		}
		a.Suspended = false
		return tx.Agents().Upsert(ctx, a)
	})
	if err != nil {
		return err
	}
	if err := b.liftHold(ctx, agentID); err != nil {
		return err
	}
	ev.Decision = audit.DecisionAllow
	return b.record(ctx, c, ev)
}

// observe feeds a durable audit event to the anomaly rules and acts on
// what they find, off the request's path.
func (b *Broker) observe(e *audit.Event) {
	if b.cfg.Anomaly == nil || e.Type == "anomaly" {
		return
	}
	if b.sharing() {
		b.queueShare(e)
	}
	b.findings(*e)
}

// findings runs the rules over one event (this replica's or another's)
// and acts on what they find, if this replica is the one that acts.
func (b *Broker) findings(e audit.Event) {
	if e.Type == "anomaly" {
		return
	}
	for _, f := range b.cfg.Anomaly.Observe(e) {
		if b.actsOnFindings() {
			go b.act(f)
		}
	}
}

// act records a finding and carries out its actions. Suspension revokes
// the agent's tokens at once; require_approval holds every job request of
// the agent for a human approval (HoldDuration); alert is the audit event,
// a warning log and the webhook.
func (b *Broker) act(f anomaly.Finding) {
	ctx := context.Background()
	c := Caller{RequestID: "anomaly", Path: "anomaly"}
	ev := &audit.Event{Type: "anomaly", Agent: f.Agent, Decision: string(f.Severity), Reason: f.Rule + ": " + f.Detail}
	for _, a := range f.Actions {
		ev.Policies = append(ev.Policies, string(a))
	}
	if err := b.record(ctx, c, ev); err != nil {
		b.log.Error("anomaly: audit failed", "rule", f.Rule, "err", err)
	}
	b.log.Warn("anomaly", "rule", f.Rule, "severity", f.Severity, "agent", f.Agent, "actions", f.Actions, "detail", f.Detail)
	if f.Has(anomaly.ActionAlert) && b.cfg.OnFinding != nil {
		b.cfg.OnFinding(f)
	}
	if f.Has(anomaly.ActionAlert) && b.cfg.AlertWebhook != "" {
		b.alert(ctx, f)
	}
	if f.Has(anomaly.ActionRequireApproval) && f.Agent != "" {
		b.holdFinding(ctx, c, f.Agent, f.Rule, f.Detail)
	}
	if f.Has(anomaly.ActionSuspend) && f.Agent != "" {
		if _, err := b.revokeAgent(ctx, c, f.Agent, true, "anomaly rule "+f.Rule, f.Detail); err != nil {
			b.log.Error("anomaly: suspend failed", "agent", f.Agent, "err", err)
		} else {
			b.cutAgentAWSSessions(ctx, c, f.Agent, "anomaly rule "+f.Rule)
		}
	}
}

// RevokeRole revokes every broker token of a role (and the tokens delegated
// under them, and the job tokens issued under either). Root only.
func (b *Broker) RevokeRole(ctx context.Context, c Caller, caller core.Token, role, reason string) (int, error) {
	ev := &audit.Event{Type: "revoke", Action: "RevokeRole", Role: role, Agent: caller.AgentID, Accessor: caller.Accessor}
	if err := requireRoot(caller); err != nil {
		return 0, b.refuse(ctx, c, ev, err)
	}
	if _, err := b.role(ctx, role); err != nil {
		return 0, b.refuse(ctx, c, ev, err)
	}
	gone, err := b.cfg.Store.Tokens().DeleteByRole(ctx, role)
	if err != nil {
		return 0, err
	}
	accessors := make([]string, 0, len(gone))
	for _, t := range gone {
		b.tokens.drop(t.Hash)
		b.tell(ctx, "tok:"+t.Hash)
		accessors = append(accessors, t.Accessor)
	}
	if err := b.revokeChildren(ctx, accessors...); err != nil {
		return len(gone), err
	}
	ev.Decision, ev.Reason = audit.DecisionAllow, fmt.Sprintf("%d tokens revoked: %s", len(gone), reason)
	return len(gone), b.record(ctx, c, ev)
}

// alert POSTs a finding to the webhook. It runs off the request path (act
// is already a goroutine), times out, and only logs a failure.
func (b *Broker) alert(ctx context.Context, f anomaly.Finding) {
	body, err := json.Marshal(map[string]any{"source": "qbroker", "kind": "anomaly", "finding": f})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.cfg.AlertWebhook, bytes.NewReader(body))
	if err != nil {
		b.log.Error("anomaly alert: bad webhook URL", "err", err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // *url.Error quotes the whole URL, which may hold a secret
		}
		b.log.Warn("anomaly alert not delivered", "rule", f.Rule, "err", err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b.log.Warn("anomaly alert refused by the webhook", "rule", f.Rule, "status", resp.StatusCode)
	}
}
