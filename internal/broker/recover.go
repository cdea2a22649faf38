package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/store"
)

// recoveryWindow is how far back from the trail's last event recovery
// looks. Only what was in flight when the process died can disagree, and
// that is at the very end; the window is generous so that a slow disk or
// a long batch does not hide anything.
const recoveryWindow = 2 * time.Minute

// Recovery is what Recover found and put right.
type Recovery struct {
	// VoidedGrants: job tokens the store committed but that were never
	// audited, so never handed out; their reservations are released.
	VoidedGrants int
	// VoidedRedemptions: redemptions the store committed but that were never
	// audited, so no gateway forwarded the job; their reservations are
	// released (exclusive stores only).
	VoidedRedemptions int
	// Withdrawn: audited issuances and redemptions the store never
	// committed; each gets its correction in the trail.
	Withdrawn int
	// Settled: settlements the trail records and the store lacked, now
	// applied.
	Settled int
}

// Recover reconciles the store with the end of this process's audit trail
// after a crash, before any request is served. Issuance, redemption and
// settlement each change the store and write an audit event; a crash
// between the two leaves one without the other. The rule throughout: the
// answer to the caller waited for both, so whatever only one of them holds
// was never acknowledged, and is undone (a grant nobody received is voided,
// an event nothing backs is withdrawn) — except a settlement, which is a
// fact about a job that ran and is completed from the trail. Running it
// again changes nothing.
func (b *Broker) Recover(ctx context.Context) (Recovery, error) {
	var rec Recovery
	if b.cfg.AuditPath == "" || (b.cfg.Instance == "" && !b.cfg.ExclusiveStore) {
		return rec, nil
	}
	evs, last, err := audit.ReadWindow(b.cfg.AuditPath, recoveryWindow)
	if err != nil || last.IsZero() {
		return rec, err
	}
	type trail struct {
		issued, redeemed, voided bool
		settled, qpu             *float64
	}
	seen := map[string]*trail{}
	var order []string
	for _, e := range evs {
		if e.JTI == "" {
			continue
		}
		t := seen[e.JTI]
		if t == nil {
			t = &trail{}
			seen[e.JTI] = t
			order = append(order, e.JTI)
		}
		withdrawn := e.Decision == audit.DecisionError && strings.HasPrefix(e.Reason, "withdrawn:")
		switch {
		case e.Type == "issue" && e.Decision == audit.DecisionAllow:
			t.issued = true
		case e.Type == "issue" && withdrawn:
			t.issued = false
		case e.Type == "redeem" && e.Decision == audit.DecisionAllow:
			t.redeemed = true
		case e.Type == "redeem" && withdrawn:
			t.redeemed = false
		case e.Type == "settle" && e.Decision == audit.DecisionAllow && t.settled == nil && e.ActualCostUSD != nil:
			t.settled, t.qpu = e.ActualCostUSD, e.QPUSeconds
		case e.Type == "settle" && withdrawn:
			t.settled = nil
		case e.Type == "recover":
			t.voided = true
		}
	}

	// The store's side: what it committed in the last moments.
	resv, err := b.cfg.Store.Budgets().ListSince(ctx, last.Add(-recoveryWindow/2))
	if err != nil {
		return rec, fmt.Errorf("recover: %w", err)
	}
	state := make(map[string]string, len(resv))
	for _, r := range resv {
		state[r.JTI] = r.State
		t := seen[r.JTI]
		if t == nil {
			t = &trail{}
		}
		if t.voided || !b.own(r.JTI) {
			continue
		}
		switch {
		case r.State == core.ReservationReserved && !t.issued:
			// Committed, never audited, so never answered: nobody holds
			// this token. Spend it and release what it reserved.
			if err := b.voidGrant(ctx, r, "committed but never audited, so never handed out: voided"); err != nil {
				return rec, err
			}
			rec.VoidedGrants++
			state[r.JTI] = core.ReservationReleased
		case r.State == core.ReservationConfirmed && !t.redeemed && b.cfg.ExclusiveStore:
			// Redeemed in the store, but the gateway forwards only after
			// the redemption's record is durable: the job never ran.
			if err := b.voidGrant(ctx, r, "redemption committed but never audited, so never forwarded: released"); err != nil {
				return rec, err
			}
			rec.VoidedRedemptions++
			state[r.JTI] = core.ReservationReleased
		}
	}

	// The trail's side: what it records that the store never committed.
	for _, jti := range order {
		t := seen[jti]
		st, ok := state[jti]
		if !ok {
			r, err := b.cfg.Store.Budgets().Get(ctx, jti)
			switch {
			case errors.Is(err, store.ErrNotFound):
			case err != nil:
				return rec, fmt.Errorf("recover: %w", err)
			default:
				st, ok = r.State, true
			}
		}
		if t.issued && !ok && !t.voided {
			if err := b.withdraw(ctx, "issue", jti, "the store never committed it (recovered after a crash)"); err != nil {
				return rec, err
			}
			rec.Withdrawn++
		}
		if t.redeemed && ok && st == core.ReservationReserved {
			if err := b.withdraw(ctx, "redeem", jti, "the store never committed it (recovered after a crash); the token was never forwarded"); err != nil {
				return rec, err
			}
			rec.Withdrawn++
		}
		if t.settled != nil && ok && (st == core.ReservationReserved || st == core.ReservationConfirmed) {
			qpu := -1.0
			if t.qpu != nil {
				qpu = *t.qpu
			}
			if err := b.cfg.Store.Budgets().Settle(ctx, jti, *t.settled, qpu); err != nil {
				return rec, fmt.Errorf("recover: %w", err)
			}
			rec.Settled++
		}
	}
	if rec != (Recovery{}) {
		b.log.Warn("recovered after a crash", "voided_grants", rec.VoidedGrants, "voided_redemptions", rec.VoidedRedemptions,
			"withdrawn_events", rec.Withdrawn, "settlements_completed", rec.Settled)
	}
	return rec, nil
}

// own reports whether this process issued the job token jti.
func (b *Broker) own(jti string) bool {
	if b.cfg.Instance == "" {
		return b.cfg.ExclusiveStore
	}
	return strings.HasPrefix(jti, b.cfg.Instance+".")
}

// voidGrant spends a grant nobody received and releases its reservation,
// audited as type "recover".
func (b *Broker) voidGrant(ctx context.Context, r core.Reservation, reason string) error {
	err := b.cfg.Store.Update(ctx, func(tx store.Aggregates) error {
		if _, err := tx.Grants().Redeem(ctx, r.JTI, b.now()); err != nil && !errors.Is(err, store.ErrRedeemed) &&
			!errors.Is(err, store.ErrExpired) && !errors.Is(err, store.ErrRevoked) && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		_, err := tx.Budgets().Void(ctx, r.JTI)
		return err
	})
	if err != nil {
		return fmt.Errorf("recover: void %s: %w", r.JTI, err)
	}
	return b.record(ctx, Caller{}, &audit.Event{Type: "recover", Action: "Void", JTI: r.JTI, Agent: r.AgentID, Role: r.Role,
		Shots: r.Shots, EstimatedCostUSD: audit.USD(r.EstimatedUSD), Decision: audit.DecisionAllow, Reason: reason})
}

// withdraw appends the correction for an audited change the store lacks.
func (b *Broker) withdraw(ctx context.Context, typ, jti, why string) error {
	return b.record(ctx, Caller{}, &audit.Event{Type: typ, JTI: jti, Decision: audit.DecisionError,
		Reason: "withdrawn: " + why})
}
