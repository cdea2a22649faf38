package server

import (
	"fmt"

	"github.com/qbroker/qbroker/internal/anomaly"
	"os"
	"strings"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/notify"
)

// newNotifier builds the signed webhook for approval events, or nil when
// none is configured.
func newNotifier(w config.Webhook, o Options) (*notify.Notifier, error) {
	if w.URL == "" {
		return nil, nil
	}
	secret := os.Getenv(w.SecretEnv)
	if secret == "" {
		return nil, fmt.Errorf("approvals.webhook: %s (secret_env) is empty; events must be signed", w.SecretEnv)
	}
	n, err := notify.New(notify.Config{URL: w.URL, Secret: []byte(secret), Logger: o.Logger})
	if err != nil {
		return nil, fmt.Errorf("approvals.webhook: %w", err)
	}
	return n, nil
}

// onFinding sends an anomaly finding that asks for an alert through the
// signed webhook, when one is configured.
func (s *Server) onFinding(f anomaly.Finding) {
	if s.notifier == nil {
		return
	}
	id := fmt.Sprintf("finding.%s.%d", f.Rule, f.Time.UnixNano())
	text := fmt.Sprintf("Anomaly *%s* (%s) for agent %s: %s", notify.Escape(f.Rule), f.Severity, notify.Escape(f.Agent), notify.Escape(f.Detail))
	s.notifier.Notify(notify.Event{ID: id, Type: "anomaly.finding", Text: text, Data: f})
}

// onBudgetAlert tells the webhook a budget crossed an alert threshold.
func (s *Server) onBudgetAlert(u api.BudgetUsage, at float64) {
	s.log.Warn("budget alert", "limit", u.Limit, "scope", u.Scope, "used", u.Used, "max", u.Max, "threshold", at)
	if s.notifier == nil {
		return
	}
	id := fmt.Sprintf("budget.%s.%d.%d", strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '-'
	}, u.Limit), int(at*100), time.Now().UnixNano())
	text := fmt.Sprintf("Budget *%s* for %s %s is at %.0f%%: %v of %v used", notify.Escape(u.Limit), u.Scope, notify.Escape(u.ScopeID), 100*u.Used/u.Max, u.Used, u.Max)
	s.notifier.Notify(notify.Event{ID: id, Type: "budget.threshold", Text: text, Data: u})
}

// onApproval tells people about new, decided and expired approvals: a log
// line, and the signed webhook when configured (never blocking).
func (s *Server) onApproval(event string, a api.Approval) {
	s.log.Info("approval", "event", event, "approval_id", a.ID, "requester", a.Requester, "device", a.Provider+"/"+a.Device, "state", a.State)
	if s.notifier == nil {
		return
	}
	var text string
	who := notify.Escape(a.Requester)
	what := fmt.Sprintf("%d shots on %s/%s (≈ $%.2f)", a.Shots, notify.Escape(a.Provider), notify.Escape(a.Device), a.EstimatedCostUSD)
	switch event {
	case "approval.requested":
		text = fmt.Sprintf("*%s* asks to run %s; needs %d of group %s: <%s|review>", who, what, a.Required, notify.Escape(a.Group), a.ConsoleURL)
	case "approval.approved":
		text = fmt.Sprintf("Approved: %s may run %s", who, what)
	case "approval.denied":
		text = fmt.Sprintf("Denied: %s may not run %s: %s", who, what, notify.Escape(a.Reason))
	case "approval.expired":
		text = fmt.Sprintf("Expired without a decision: %s's request to run %s", who, what)
	default:
		return
	}
	data := a
	data.Program = nil // the webhook carries the digest, not the program
	s.notifier.Notify(notify.Event{ID: a.ID + "." + strings.TrimPrefix(event, "approval."), Type: event, Text: text, Data: data})
}
