package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/store"
)

func reservation(jti, role string, shots int, usd float64, at time.Time) core.Reservation {
	return core.Reservation{JTI: jti, AgentID: "agent-" + role, Role: role, Team: "team-q", Class: "hardware", Shots: shots,
		EstimatedUSD: usd, ActualUSD: -1, ActualQPUSeconds: -1, State: core.ReservationReserved, CreatedAt: at, ExpiresAt: at.Add(5 * time.Minute)}
}

func testBudgets(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	day := t0.Truncate(24 * time.Hour)
	usd := store.BudgetCheck{Name: "role-usd-day", ScopeKind: "role", ScopeID: "lab", Metric: "usd", Since: day, Limit: 10}
	shots := store.BudgetCheck{Name: "role-shots-day", ScopeKind: "role", ScopeID: "lab", Class: "hardware", Metric: "shots", Since: day, Limit: 250}
	inflight := store.BudgetCheck{Name: "agent-in-flight", ScopeKind: "agent", ScopeID: "agent-lab", Metric: "in_flight", Limit: 2}
	checks := []store.BudgetCheck{usd, shots, inflight}
	if err := s.Budgets().Reserve(ctx, reservation("j1", "lab", 100, 4, t0), checks); err != nil {
		t.Fatal(err)
	}
	if err := s.Budgets().Reserve(ctx, reservation("j2", "lab", 100, 4, t0.Add(time.Second)), checks); err != nil {
		t.Fatal(err)
	}
	// A third would exceed in-flight (2), shots (300 > 250) and usd (12 > 10): refused, nothing recorded.
	err := s.Budgets().Reserve(ctx, reservation("j3", "lab", 100, 4, t0.Add(2*time.Second)), checks)
	var be *store.BudgetExceeded
	if !errors.As(err, &be) || be.Check.Name != "role-usd-day" || be.Used != 8 {
		t.Fatalf("third reservation: %v, want the usd budget exceeded with 8 used", err)
	}
	if _, err := s.Budgets().Get(ctx, "j3"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused reservation was recorded: %v", err)
	}
	// Settling j1 at its actual cost frees budget: used = settled + outstanding.
	if err := s.Budgets().Confirm(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Budgets().Settle(ctx, "j1", 1.5, -1); err != nil {
		t.Fatal(err)
	}
	if err := s.Budgets().Settle(ctx, "j1", 9, 99); err != nil { // a second settlement changes nothing
		t.Fatal(err)
	}
	if u, err := s.Budgets().Used(ctx, usd); err != nil || u != 5.5 {
		t.Fatalf("usd used after settling j1 at 1.5: %v %v, want 5.5", u, err)
	}
	if u, _ := s.Budgets().Used(ctx, inflight); u != 1 {
		t.Fatalf("in flight after settling one of two: %v, want 1", u)
	}
	// An unused token's reservation is released at its expiry, and then counts for nothing.
	n, err := s.Budgets().ReleaseExpired(ctx, t0.Add(5*time.Minute+time.Second))
	if err != nil || n != 1 {
		t.Fatalf("release: %d %v, want j2 released", n, err)
	}
	if r, _ := s.Budgets().Get(ctx, "j2"); r.State != core.ReservationReleased {
		t.Fatalf("j2 is %s", r.State)
	}
	if u, _ := s.Budgets().Used(ctx, shots); u != 100 {
		t.Fatalf("shots used after the release: %v, want 100 (j1 only)", u)
	}
	// Yesterday does not count against today.
	if err := s.Budgets().Reserve(ctx, reservation("old", "lab", 1000, 100, day.Add(-time.Hour)), nil); err != nil {
		t.Fatal(err)
	}
	if u, _ := s.Budgets().Used(ctx, usd); u != 1.5 {
		t.Fatalf("usd used today: %v, want 1.5", u)
	}
	// Another class is not counted against a hardware-only limit.
	r := reservation("sim1", "lab", 100000, 0, t0)
	r.Class = "simulator"
	if err := s.Budgets().Reserve(ctx, r, []store.BudgetCheck{shots}); err != nil {
		t.Fatalf("a simulator job against a hardware limit: %v", err)
	}

	// Crash recovery reads the last moments, oldest first, and voids what
	// was never acknowledged: reserved or confirmed → released, once.
	recent, err := s.Budgets().ListSince(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recent {
		got = append(got, r.JTI)
	}
	if fmt.Sprint(got) != "[j1 sim1 j2]" {
		t.Fatalf("reservations since t0: %v, want [j1 sim1 j2] (created order; 'old' is before t0)", got)
	}
	if recent[0].State != core.ReservationSettled || recent[0].ActualUSD != 1.5 || !recent[0].CreatedAt.Equal(t0) {
		t.Fatalf("listed j1: %+v", recent[0])
	}
	for _, tc := range []struct {
		jti  string
		want bool
	}{{"sim1", true}, {"sim1", false}, {"j1", false}, {"j2", false}, {"nope", false}} {
		if changed, err := s.Budgets().Void(ctx, tc.jti); err != nil || changed != tc.want {
			t.Fatalf("void %s: %v %v, want %v (only a reserved or confirmed reservation is voided)", tc.jti, changed, err, tc.want)
		}
	}
	if r, _ := s.Budgets().Get(ctx, "j1"); r.State != core.ReservationSettled {
		t.Fatalf("voiding a settled reservation changed it: %s", r.State)
	}
	if err := s.Budgets().Reserve(ctx, reservation("c1", "lab", 10, 0, t0.Add(time.Minute)), nil); err != nil {
		t.Fatal(err)
	}
	s.Budgets().Confirm(ctx, "c1")
	if changed, err := s.Budgets().Void(ctx, "c1"); err != nil || !changed {
		t.Fatalf("void a confirmed reservation: %v %v", changed, err)
	}
	if u, _ := s.Budgets().Used(ctx, shots); u != 100 {
		t.Fatalf("shots used after voids: %v, want 100 (j1 only)", u)
	}

	// QPU seconds: outstanding reservations count their estimate, settled
	// ones what the provider reported (the estimate when it reported none).
	qpu := store.BudgetCheck{Name: "team-qpu-day", ScopeKind: "team", ScopeID: "team-q", Metric: "qpu_seconds", Since: t0.Add(time.Hour), Limit: 100}
	for i, est := range []float64{30, 30, 30} {
		r := reservation(fmt.Sprint("q", i), "ibm", 10, 0, t0.Add(2*time.Hour))
		r.EstimatedQPUSeconds = est
		if err := s.Budgets().Reserve(ctx, r, []store.BudgetCheck{qpu}); err != nil {
			t.Fatalf("reserve %d: %v", i, err)
		}
	}
	r4 := reservation("q3", "ibm", 10, 0, t0.Add(2*time.Hour))
	r4.EstimatedQPUSeconds = 30
	if err := s.Budgets().Reserve(ctx, r4, []store.BudgetCheck{qpu}); !errors.As(err, &be) || be.Used != 90 {
		t.Fatalf("a fourth 30 s reservation against 100 s with 90 held: %v, want refused", err)
	}
	s.Budgets().Settle(ctx, "q0", 0, 4.5) // reported 4.5 s
	s.Budgets().Settle(ctx, "q1", 0, -1)  // reported nothing: the estimate stands
	if u, _ := s.Budgets().Used(ctx, qpu); u != 64.5 {
		t.Fatalf("qpu seconds used: %v, want 4.5 + 30 + 30", u)
	}
	if r, _ := s.Budgets().Get(ctx, "q0"); r.ActualQPUSeconds != 4.5 || r.EstimatedQPUSeconds != 30 {
		t.Fatalf("q0 reads back %+v", r)
	}
	if err := s.Budgets().Reserve(ctx, r4, []store.BudgetCheck{qpu}); err != nil {
		t.Fatalf("after settling under the estimate, a 30 s reservation fits: %v", err)
	}
}

// testBudgetsConcurrent: 64 goroutines race to spend a budget that allows
// exactly N jobs; exactly N reserve. Repeated 100 times.
func testBudgetsConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().UTC()
	const racers, limit, rounds = 64, 10, 100
	for round := range rounds {
		role := fmt.Sprintf("race-%d", round)
		check := store.BudgetCheck{Name: "jobs-per-minute", ScopeKind: "role", ScopeID: role, Metric: "jobs", Since: now.Add(-time.Minute), Limit: limit}
		var ok, refused, other int
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				err := s.Budgets().Reserve(ctx, reservation(fmt.Sprintf("%s-%d", role, i), role, 1, 0.1, now), []store.BudgetCheck{check})
				var be *store.BudgetExceeded
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					ok++
				case errors.As(err, &be):
					refused++
				default:
					other++
					t.Errorf("reserve: %v", err)
				}
			})
		}
		wg.Wait()
		if ok != limit || refused != racers-limit {
			t.Fatalf("round %d: %d reserved, %d refused (%d errors); want exactly %d reserved", round, ok, refused, other, limit)
		}
		if u, _ := s.Budgets().Used(ctx, check); u != limit {
			t.Fatalf("round %d: %v used, want %d", round, u, limit)
		}
	}
}
