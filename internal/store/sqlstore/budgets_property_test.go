package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/store"
)

// Issue 7, criterion 4: for any sequence of reserve / confirm / settle /
// expire operations, used never exceeds the limit, and used equals the sum
// of settled costs plus the estimates of outstanding reservations — as
// computed by a model kept beside the store.
func TestBudgetProperty(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	run := 0
	rapid.Check(t, func(rt *rapid.T) {
		run++
		s, err := OpenSQLite(ctx, filepath.Join(dir, fmt.Sprintf("p%d.db", run)), Options{})
		if err != nil {
			rt.Fatal(err)
		}
		defer s.Close()
		t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
		limit := float64(rapid.IntRange(1, 50).Draw(rt, "limit"))
		check := store.BudgetCheck{Name: "usd", ScopeKind: "role", ScopeID: "r", Metric: "usd", Since: t0.Add(-time.Hour), Limit: limit}
		model := map[string]*propRes{}
		now := t0
		var ids []string
		for i := range rapid.IntRange(1, 60).Draw(rt, "ops") {
			switch op := rapid.IntRange(0, 3).Draw(rt, fmt.Sprintf("op%d", i)); op {
			case 0: // reserve
				est := float64(rapid.IntRange(0, 20).Draw(rt, fmt.Sprintf("est%d", i)))
				ttl := time.Duration(rapid.IntRange(1, 10).Draw(rt, fmt.Sprintf("ttl%d", i))) * time.Minute
				id := fmt.Sprintf("j%d", i)
				r := core.Reservation{JTI: id, AgentID: "a", Role: "r", Class: "hardware", Shots: 1, EstimatedUSD: est, ActualUSD: -1,
					State: core.ReservationReserved, CreatedAt: now, ExpiresAt: now.Add(ttl)}
				err := s.Budgets().Reserve(ctx, r, []store.BudgetCheck{check})
				used := modelUsed(model)
				var be *store.BudgetExceeded
				switch {
				case err == nil:
					if used+est > limit {
						rt.Fatalf("reserve %s (%v) accepted with %v used of %v", id, est, used, limit)
					}
					model[id] = &propRes{est: est, state: core.ReservationReserved, expires: now.Add(ttl)}
					ids = append(ids, id)
				case errors.As(err, &be):
					if used+est <= limit {
						rt.Fatalf("reserve %s (%v) refused with %v used of %v", id, est, used, limit)
					}
				default:
					rt.Fatal(err)
				}
			case 1: // confirm
				if len(ids) == 0 {
					continue
				}
				id := rapid.SampledFrom(ids).Draw(rt, fmt.Sprintf("c%d", i))
				if err := s.Budgets().Confirm(ctx, id); err != nil {
					rt.Fatal(err)
				}
				if model[id].state == core.ReservationReserved {
					model[id].state = core.ReservationConfirmed
				}
			case 2: // settle at an actual cost
				if len(ids) == 0 {
					continue
				}
				id := rapid.SampledFrom(ids).Draw(rt, fmt.Sprintf("s%d", i))
				actual := float64(rapid.IntRange(0, 20).Draw(rt, fmt.Sprintf("a%d", i)))
				if err := s.Budgets().Settle(ctx, id, actual, -1); err != nil {
					rt.Fatal(err)
				}
				if st := model[id].state; st == core.ReservationReserved || st == core.ReservationConfirmed {
					model[id].state, model[id].actual = core.ReservationSettled, actual
				}
			case 3: // time passes; unused tokens expire
				now = now.Add(time.Duration(rapid.IntRange(1, 5).Draw(rt, fmt.Sprintf("t%d", i))) * time.Minute)
				if _, err := s.Budgets().ReleaseExpired(ctx, now); err != nil {
					rt.Fatal(err)
				}
				for _, r := range model {
					if r.state == core.ReservationReserved && !now.Before(r.expires) {
						r.state = core.ReservationReleased
					}
				}
			}
			got, err := s.Budgets().Used(ctx, check)
			if err != nil {
				rt.Fatal(err)
			}
			want := modelUsed(model)
			if got != want {
				rt.Fatalf("after op %d: store says %v used, settled + outstanding is %v", i, got, want)
			}
			if got > limit+settledOver(model) {
				rt.Fatalf("used %v exceeds the limit %v", got, limit)
			}
		}
	})
}

// propRes is the model's view of one reservation.
type propRes struct {
	est, actual float64
	state       string
	expires     time.Time
}

// settledOver is how far settled costs went above their estimates: real
// costs can exceed an estimate, and only that can take used past the limit.
func settledOver(m map[string]*propRes) float64 {
	var o float64
	for _, r := range m {
		if r.state == core.ReservationSettled && r.actual > r.est {
			o += r.actual - r.est
		}
	}
	return o
}

// modelUsed is settled costs plus outstanding estimates.
func modelUsed(m map[string]*propRes) float64 {
	var u float64
	for _, r := range m {
		switch r.state {
		case core.ReservationSettled:
			u += r.actual
		case core.ReservationReserved, core.ReservationConfirmed:
			u += r.est
		}
	}
	return u
}
