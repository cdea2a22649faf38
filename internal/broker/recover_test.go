package broker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/broker"
	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/store"
)

// TestRecoverPutsRightWhatACrashLeftHalfDone builds, by hand, each state a
// SIGKILL can leave between a store commit and its audit record, and checks
// that Recover undoes what was never acknowledged, completes settlements,
// leaves whole operations alone, and does nothing the second time.
func TestRecoverPutsRightWhatACrashLeftHalfDone(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, func(c *broker.Config) { c.Instance, c.ExclusiveStore = "inst", true })
	_, tok := f.login(t)
	issue := func() string {
		t.Helper()
		d, err := f.b.IssueJobToken(ctx, broker.Caller{}, tok, "demo", api.JobTokenRequest{Provider: "ionq", Device: "simulator", Shots: 10})
		if err != nil {
			t.Fatal(err)
		}
		return d.JTI
	}
	write := func(e audit.Event) {
		t.Helper()
		if err := f.sink.Write(ctx, &e); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC()

	whole := issue() // issued and audited: nothing to do
	if len(whole) < 6 || whole[:5] != "inst." {
		t.Fatalf("jti %q does not carry the instance", whole)
	}
	// A: the grant and its reservation committed, the record never written.
	unaudited := "inst.unaudited"
	err := f.st.Update(ctx, func(tx store.Aggregates) error {
		if err := tx.Budgets().Reserve(ctx, core.Reservation{JTI: unaudited, AgentID: tok.AgentID, Role: "demo", Class: "simulator", Shots: 10,
			ActualUSD: -1, State: core.ReservationReserved, CreatedAt: now, ExpiresAt: now.Add(5 * time.Minute)}, nil); err != nil {
			return err
		}
		return tx.Grants().Create(ctx, core.JobGrant{JTI: unaudited, Accessor: tok.Accessor, AgentID: tok.AgentID, Role: "demo",
			Provider: "ionq", Device: "simulator", MaxShots: 10, IssuedAt: now, ExpiresAt: now.Add(5 * time.Minute)})
	})
	if err != nil {
		t.Fatal(err)
	}
	// B: the issuance recorded, the store never committed it.
	write(audit.Event{Type: "issue", Decision: audit.DecisionAllow, JTI: "inst.uncommitted", Agent: tok.AgentID, Shots: 10})
	// C: a settlement recorded, not yet in the store.
	settled := issue()
	if err := f.b.Redeem(ctx, broker.Caller{}, settled); err != nil {
		t.Fatal(err)
	}
	write(audit.Event{Type: "settle", Decision: audit.DecisionAllow, JTI: settled, ActualCostUSD: audit.USD(0.42)})
	// D: a redemption recorded, the store never committed it.
	redeemAudited := issue()
	write(audit.Event{Type: "redeem", Decision: audit.DecisionAllow, JTI: redeemAudited})
	// E: a redemption committed, never recorded (so never forwarded).
	redeemUnaudited := issue()
	err = f.st.Update(ctx, func(tx store.Aggregates) error {
		if _, err := tx.Grants().Redeem(ctx, redeemUnaudited, time.Now()); err != nil {
			return err
		}
		return tx.Budgets().Confirm(ctx, redeemUnaudited)
	})
	if err != nil {
		t.Fatal(err)
	}

	rec, err := f.b.Recover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := broker.Recovery{VoidedGrants: 1, VoidedRedemptions: 1, Withdrawn: 2, Settled: 1}
	if rec != want {
		t.Fatalf("recovery = %+v, want %+v", rec, want)
	}
	state := func(jti string) core.Reservation {
		r, err := f.st.Budgets().Get(ctx, jti)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := state(whole); r.State != core.ReservationReserved {
		t.Errorf("a whole issuance was touched: %s", r.State)
	}
	if r := state(unaudited); r.State != core.ReservationReleased {
		t.Errorf("the unaudited grant's reservation is %s, want released", r.State)
	}
	if err := f.b.Redeem(ctx, broker.Caller{}, unaudited); !errors.Is(err, broker.ErrTokenUsed) {
		t.Errorf("the voided grant could still be redeemed: %v", err)
	}
	if r := state(settled); r.State != core.ReservationSettled || r.ActualUSD != 0.42 {
		t.Errorf("the recorded settlement: %s %v, want settled at 0.42", r.State, r.ActualUSD)
	}
	if r := state(redeemUnaudited); r.State != core.ReservationReleased {
		t.Errorf("the unaudited redemption's reservation is %s, want released", r.State)
	}
	// D's token was never forwarded: it can still be used, once.
	if err := f.b.Redeem(ctx, broker.Caller{}, redeemAudited); err != nil {
		t.Errorf("the withdrawn redemption's token: %v", err)
	}
	evs, err := audit.ReadEvents(f.auditLog, audit.Filter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var voids, withdrawals int
	for _, e := range evs {
		switch {
		case e.Type == "recover" && (e.JTI == unaudited || e.JTI == redeemUnaudited):
			voids++
		case e.Decision == audit.DecisionError && (e.JTI == "inst.uncommitted" && e.Type == "issue" || e.JTI == redeemAudited && e.Type == "redeem"):
			withdrawals++
		}
	}
	if voids != 2 || withdrawals != 2 {
		t.Errorf("the trail records %d voids and %d withdrawals, want 2 and 2", voids, withdrawals)
	}

	if again, err := f.b.Recover(ctx); err != nil || again != (broker.Recovery{}) {
		t.Fatalf("a second recovery: %+v %v, want nothing to do", again, err)
	}
}

// TestRecoverLeavesOtherReplicasAlone: on a shared store, a replica voids
// only the grants it issued, and never undoes a redemption (any replica
// may have made it, audited in its own trail).
func TestRecoverLeavesOtherReplicasAlone(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, func(c *broker.Config) { c.Instance = "mine" })
	_, tok := f.login(t)
	now := time.Now().UTC()
	for _, jti := range []string{"theirs.x", "mine.y"} {
		err := f.st.Update(ctx, func(tx store.Aggregates) error {
			if err := tx.Budgets().Reserve(ctx, core.Reservation{JTI: jti, AgentID: tok.AgentID, Role: "demo", Class: "simulator", Shots: 10,
				ActualUSD: -1, State: core.ReservationReserved, CreatedAt: now, ExpiresAt: now.Add(5 * time.Minute)}, nil); err != nil {
				return err
			}
			return tx.Grants().Create(ctx, core.JobGrant{JTI: jti, Accessor: tok.Accessor, AgentID: tok.AgentID, Role: "demo",
				Provider: "ionq", Device: "simulator", MaxShots: 10, IssuedAt: now, ExpiresAt: now.Add(5 * time.Minute)})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	d, err := f.b.IssueJobToken(ctx, broker.Caller{}, tok, "demo", api.JobTokenRequest{Provider: "ionq", Device: "simulator", Shots: 10})
	if err != nil {
		t.Fatal(err)
	}
	// Redeemed elsewhere: confirmed here with no redemption in this trail.
	if err := f.st.Update(ctx, func(tx store.Aggregates) error {
		if _, err := tx.Grants().Redeem(ctx, d.JTI, time.Now()); err != nil {
			return err
		}
		return tx.Budgets().Confirm(ctx, d.JTI)
	}); err != nil {
		t.Fatal(err)
	}
	rec, err := f.b.Recover(ctx)
	if err != nil || rec != (broker.Recovery{VoidedGrants: 1}) {
		t.Fatalf("recovery = %+v %v, want only its own unaudited grant voided", rec, err)
	}
	for jti, want := range map[string]string{"theirs.x": core.ReservationReserved, "mine.y": core.ReservationReleased, d.JTI: core.ReservationConfirmed} {
		if r, _ := f.st.Budgets().Get(ctx, jti); r.State != want {
			t.Errorf("%s is %s, want %s", jti, r.State, want)
		}
	}
}
