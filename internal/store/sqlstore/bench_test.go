package sqlstore_test

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/store"
)

func benchToken(i int, exp time.Time) core.Token {
	return core.Token{
		Hash:        fmt.Sprintf("%064x", i),
		Accessor:    fmt.Sprintf("acc-%d", i),
		AgentID:     "approle:demo:agent",
		Role:        "demo",
		Policies:    []string{"demo"},
		Meta:        map[string]string{"role": "demo"},
		IssuedAt:    time.Now(),
		ExpiresAt:   exp,
		CreationTTL: time.Hour,
		Renewable:   true,
	}
}

// BenchmarkTokenGet measures a token lookup by hash on the reader pool.
func BenchmarkTokenGet(b *testing.B) {
	s := openAt(b, filepath.Join(b.TempDir(), "q.db"))
	defer s.Close()
	ctx := b.Context()
	const n = 1000
	exp := time.Now().Add(time.Hour)
	err := s.Update(ctx, func(tx store.Aggregates) error {
		for i := range n {
			if err := tx.Tokens().Create(ctx, benchToken(i, exp)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, err := s.Tokens().Get(ctx, fmt.Sprintf("%064x", i%n)); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := next.Add(1)
				if _, err := s.Tokens().Get(ctx, fmt.Sprintf("%064x", i%n)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkTokenCreate measures a durable (synchronous=FULL) token insert.
func BenchmarkTokenCreate(b *testing.B) {
	s := openAt(b, filepath.Join(b.TempDir(), "q.db"))
	defer s.Close()
	ctx := b.Context()
	exp := time.Now().Add(time.Hour)
	i := 0
	for b.Loop() {
		if err := s.Tokens().Create(ctx, benchToken(i, exp)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkRedeem measures parallel redemption of distinct grants, each a
// write transaction through the single writer.
func BenchmarkRedeem(b *testing.B) {
	s := openAt(b, filepath.Join(b.TempDir(), "q.db"))
	defer s.Close()
	ctx := b.Context()
	now := time.Now()
	if err := s.Tokens().Create(ctx, benchToken(0, now.Add(time.Hour))); err != nil {
		b.Fatal(err)
	}
	n := b.N
	err := s.Update(ctx, func(tx store.Aggregates) error {
		for i := range n {
			g := core.JobGrant{JTI: fmt.Sprintf("jti-%d", i), Accessor: "acc-0", ExpiresAt: now.Add(time.Hour)}
			if err := tx.Grants().Create(ctx, g); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			if _, err := s.Grants().Redeem(ctx, fmt.Sprintf("jti-%d", i), now); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkReserve measures parallel budget reservations with durable
// commits: each sums three windows (jobs a minute, shots a day, USD a
// day) for a role and inserts, atomically, through the single writer.
func BenchmarkReserve(b *testing.B) {
	s := openAt(b, filepath.Join(b.TempDir(), "q.db"))
	defer s.Close()
	ctx := b.Context()
	now := time.Now().UTC()
	checks := []store.BudgetCheck{
		{Name: "rate", ScopeKind: "role", ScopeID: "demo", Metric: "jobs", Since: now.Add(-time.Minute), Limit: 1e12},
		{Name: "shots", ScopeKind: "role", ScopeID: "demo", Metric: "shots", Since: now.Add(-24 * time.Hour), Limit: 1e15},
		{Name: "usd", ScopeKind: "role", ScopeID: "demo", Metric: "usd", Since: now.Add(-24 * time.Hour), Limit: 1e15},
	}
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			r := core.Reservation{JTI: fmt.Sprintf("r%d", i), AgentID: "a", Role: "demo", Class: "simulator", Shots: 100, EstimatedUSD: 0.1,
				ActualUSD: -1, State: core.ReservationReserved, CreatedAt: now, ExpiresAt: now.Add(5 * time.Minute)}
			if err := s.Budgets().Reserve(ctx, r, checks); err != nil {
				b.Fatal(err)
			}
		}
	})
}
