package broker

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/store"
)

// A budget check's metric, window and reset, built from a config limit.
type budgetCheck struct {
	store.BudgetCheck
	rate  bool      // a rate limit (429) rather than a budget (403)
	reset time.Time // when the window starts over; zero for in-flight
	unit  string
}

// class is the budget class of a device.
func class(dev Device) string {
	if dev.Kind == "qpu" {
		return "hardware"
	}
	return "simulator"
}

// budgetChecks are the limits a job token for (agent, role, team) on a
// device of class cls must stay within, at now.
func (b *Broker) budgetChecks(agent, role, team, cls string, now time.Time) []budgetCheck {
	local := now.In(b.cfg.Location)
	dayStart := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, b.cfg.Location)
	monthStart := time.Date(local.Year(), local.Month(), 1, 0, 0, 0, 0, b.cfg.Location)
	var out []budgetCheck
	for _, l := range b.cfg.Budgets.Limits {
		if l.Class != "" && l.Class != cls {
			continue
		}
		id := map[string]string{"agent": agent, "role": role, "team": team}[l.Scope]
		if id == "" || (l.Match != "*" && l.Match != id) {
			continue
		}
		add := func(metric string, limit float64, since, reset time.Time, rate bool, unit string) {
			if limit <= 0 {
				return
			}
			out = append(out, budgetCheck{BudgetCheck: store.BudgetCheck{Name: l.Name + "." + metric, ScopeKind: l.Scope, ScopeID: id, Class: l.Class,
				Metric: map[string]string{"jobs_per_minute": "jobs", "jobs_per_hour": "jobs", "shots_per_day": "shots", "usd_per_day": "usd", "usd_per_month": "usd",
					"qpu_seconds_per_day": "qpu_seconds", "qpu_seconds_per_month": "qpu_seconds", "in_flight": "in_flight"}[metric],
				Since: since, Limit: limit}, rate: rate, reset: reset, unit: unit})
		}
		add("jobs_per_minute", float64(l.JobsPerMinute), now.Add(-time.Minute), now.Add(time.Minute), true, "job tokens a minute")
		add("jobs_per_hour", float64(l.JobsPerHour), now.Add(-time.Hour), now.Add(time.Hour), true, "job tokens an hour")
		add("shots_per_day", float64(l.ShotsPerDay), dayStart, dayStart.AddDate(0, 0, 1), false, "shots a day")
		add("usd_per_day", l.USDPerDay, dayStart, dayStart.AddDate(0, 0, 1), false, "USD a day")
		add("usd_per_month", l.USDPerMonth, monthStart, monthStart.AddDate(0, 1, 0), false, "USD a month")
		add("qpu_seconds_per_day", l.QPUSecondsPerDay, dayStart, dayStart.AddDate(0, 0, 1), false, "QPU seconds a day")
		add("qpu_seconds_per_month", l.QPUSecondsPerMonth, monthStart, monthStart.AddDate(0, 1, 0), false, "QPU seconds a month")
		add("in_flight", float64(l.InFlight), time.Time{}, time.Time{}, false, "jobs in flight")
	}
	return out
}

func storeChecks(cs []budgetCheck) []store.BudgetCheck {
	out := make([]store.BudgetCheck, len(cs))
	for i, c := range cs {
		out[i] = c.BudgetCheck
	}
	return out
}

// budgetRefusal turns a store refusal into the caller's error: 429 for a
// rate limit, 403 for a budget, naming the limit, its value, what is used,
// what the request adds and when it resets.
func budgetRefusal(be *store.BudgetExceeded, cs []budgetCheck, r core.Reservation) error {
	var c budgetCheck
	for _, x := range cs {
		if x.Name == be.Check.Name {
			c = x
		}
	}
	adds := map[string]float64{"jobs": 1, "in_flight": 1, "shots": float64(r.Shots), "usd": r.EstimatedUSD, "qpu_seconds": r.EstimatedQPUSeconds}[be.Check.Metric]
	msg := fmt.Sprintf("%s limit %s for %s %s: %s %s, %s used, this request adds %s",
		map[bool]string{true: "rate", false: "budget"}[c.rate], be.Check.Name, be.Check.ScopeKind, be.Check.ScopeID,
		num(be.Check.Limit), c.unit, num(be.Used), num(adds))
	if !c.reset.IsZero() {
		msg += "; resets " + c.reset.UTC().Format(time.RFC3339)
	} else {
		msg += "; frees up as jobs finish or their tokens expire"
	}
	if c.rate {
		return core.Wrap(core.KindRateLimited, &RetryHint{After: time.Until(c.reset)}, msg)
	}
	return core.Errorf(core.KindPermissionDenied, "%s", msg)
}

func num(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// BudgetStatus reports usage against every limit that applies to the
// caller (root and approvers: every named limit; agents: their own).
func (b *Broker) BudgetStatus(ctx context.Context, t core.Token, agent string) ([]api.BudgetUsage, error) {
	if agent == "" || !t.HasPolicy(PolicyRoot) {
		agent = t.AgentID
	}
	var role, team string
	if t.HasPolicy(PolicyRoot) && agent != t.AgentID {
		if a, err := b.cfg.Store.Agents().Get(ctx, agent); err == nil {
			role = a.Role
		}
	} else {
		role = t.Role
	}
	if role != "" {
		if r, err := b.role(ctx, role); err == nil {
			team = r.Team
		}
	}
	var out []api.BudgetUsage
	now := b.now()
	for _, cls := range []string{"hardware", "simulator"} {
		for _, c := range b.budgetChecks(agent, role, team, cls, now) {
			if c.Class == "" && cls == "simulator" {
				continue // listed once, under hardware
			}
			used, err := b.cfg.Store.Budgets().Used(ctx, c.BudgetCheck)
			if err != nil {
				return nil, err
			}
			u := api.BudgetUsage{Limit: c.Name, Scope: c.ScopeKind, ScopeID: c.ScopeID, Class: c.Class, Metric: c.Metric, Max: c.Limit, Used: used}
			if !c.reset.IsZero() {
				r := c.reset.UTC()
				u.ResetsAt = &r
			}
			out = append(out, u)
		}
	}
	return out, nil
}

// ReleaseExpiredReservations releases what unused, expired job tokens
// held (the sweeper calls it).
func (b *Broker) ReleaseExpiredReservations(ctx context.Context) (int, error) {
	return b.cfg.Store.Budgets().ReleaseExpired(ctx, b.now())
}

// SettleJob settles the reservation of the job token s.JTI once its job
// finished: at s.ActualUSD when the provider reported a cost, otherwise at
// the estimate (completed) or at zero (failed or cancelled, as providers
// do not bill those); with the QPU time the provider reported, if any. The
// first settlement wins; it is audited.
func (b *Broker) SettleJob(ctx context.Context, c Caller, s api.SettleRequest) error {
	jti, completed, actualUSD := s.JTI, s.Completed, s.ActualUSD
	qpu := -1.0
	if s.QPUSeconds != nil && *s.QPUSeconds >= 0 {
		qpu = *s.QPUSeconds
	}
	r, err := b.cfg.Store.Budgets().Get(ctx, jti)
	if err != nil {
		return nil // no reservation (issued before budgets existed): nothing to settle
	}
	if r.State == core.ReservationSettled || r.State == core.ReservationReleased {
		return nil
	}
	cost := actualUSD
	if cost < 0 && qpu >= 0 {
		if p := b.perSecondUSD(ctx, jti); p > 0 {
			cost = qpu * p // priced QPU time, as the provider bills it
		}
	}
	switch {
	case cost >= 0:
	case completed:
		cost = r.EstimatedUSD
	default:
		cost = 0
	}
	// The record first, then the store: a crash between the two leaves a
	// settlement the trail holds and the store lacks, which Recover (or the
	// gateway's next report of the job) completes; the other order would
	// leave a settlement no one could account for.
	ev := &audit.Event{Type: "settle", Action: "Settle", JTI: jti, Agent: r.AgentID, Role: r.Role, Decision: audit.DecisionAllow,
		ActualCostUSD: audit.USD(cost), EstimatedCostUSD: audit.USD(r.EstimatedUSD)}
	if qpu >= 0 {
		ev.QPUSeconds = audit.USD(qpu)
	}
	if err := b.record(ctx, c, ev); err != nil {
		return err
	}
	if err := b.cfg.Store.Budgets().Settle(ctx, jti, cost, qpu); err != nil {
		fix := *ev
		fix.Decision, fix.Reason, fix.Error = audit.DecisionError, withdrawnReason, err.Error()
		if rerr := b.record(context.WithoutCancel(ctx), c, &fix); rerr != nil {
			b.log.Error("audit correction failed", "type", ev.Type, "err", rerr)
		}
		return fmt.Errorf("settle %s: %w", jti, err)
	}
	return nil
}

// perSecondUSD is the QPU-time price of the device the job token jti was
// issued for (0 when unknown or not priced by time).
func (b *Broker) perSecondUSD(ctx context.Context, jti string) float64 {
	g, err := b.cfg.Store.Grants().Get(ctx, jti)
	if err != nil {
		return 0
	}
	dev, ok := b.rules.Load().devices[g.Provider+"/"+g.Device]
	if !ok {
		return 0
	}
	return dev.Price.PerSecondUSD
}

// budgetAlerts checks, off the request path, whether the reservation just
// made took a budget across an alert threshold, and tells OnBudgetAlert
// once per limit, scope, window and threshold.
func (b *Broker) budgetAlerts(checks []budgetCheck) {
	if b.cfg.OnBudgetAlert == nil || len(b.cfg.Budgets.AlertAt) == 0 {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, c := range checks {
			if c.rate {
				continue
			}
			used, err := b.cfg.Store.Budgets().Used(ctx, c.BudgetCheck)
			if err != nil {
				return
			}
			for _, at := range b.cfg.Budgets.AlertAt {
				if used < at*c.Limit {
					continue
				}
				key := fmt.Sprintf("%s|%s|%d|%v", c.Name, c.ScopeID, c.Since.Unix(), at)
				if _, dup := b.alerted.LoadOrStore(key, true); dup {
					continue
				}
				u := api.BudgetUsage{Limit: c.Name, Scope: c.ScopeKind, ScopeID: c.ScopeID, Class: c.Class, Metric: c.Metric, Max: c.Limit, Used: used}
				if !c.reset.IsZero() {
					r := c.reset.UTC()
					u.ResetsAt = &r
				}
				b.cfg.OnBudgetAlert(u, at)
			}
		}
	}()
}
