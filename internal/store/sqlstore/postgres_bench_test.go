package sqlstore

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/store"
)

// The PostgreSQL benchmarks need QBROKER_TEST_POSTGRES, like the tests:
//
//	QBROKER_TEST_POSTGRES=postgres://... go test -run '^$' -bench Postgres ./internal/store/sqlstore/

func pgBenchToken(i int, exp time.Time) core.Token {
	return core.Token{
		Hash: fmt.Sprintf("%064x", i), Accessor: fmt.Sprintf("acc-%d", i), AgentID: "approle:demo:agent",
		Role: "demo", Policies: []string{"demo"}, Meta: map[string]string{"role": "demo"},
		IssuedAt: time.Now(), ExpiresAt: exp, CreationTTL: time.Hour, Renewable: true,
	}
}

// BenchmarkPostgresTokenGet measures a token lookup by hash.
func BenchmarkPostgresTokenGet(b *testing.B) {
	s := openPG(b, pgSchema(b), Options{})
	defer s.Close()
	ctx := b.Context()
	const n = 1000
	exp := time.Now().Add(time.Hour)
	err := s.Update(ctx, func(tx store.Aggregates) error {
		for i := range n {
			if err := tx.Tokens().Create(ctx, pgBenchToken(i, exp)); err != nil {
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
				if _, err := s.Tokens().Get(ctx, fmt.Sprintf("%064x", next.Add(1)%n)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkPostgresTokenCreate measures a durable token insert (one
// autocommit statement), one at a time and from many goroutines.
func BenchmarkPostgresTokenCreate(b *testing.B) {
	s := openPG(b, pgSchema(b), Options{})
	defer s.Close()
	ctx := b.Context()
	exp := time.Now().Add(time.Hour)
	var next atomic.Int64
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if err := s.Tokens().Create(ctx, pgBenchToken(int(next.Add(1)), exp)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.Tokens().Create(ctx, pgBenchToken(int(next.Add(1)), exp)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkPostgresLogin measures an AppRole login's transaction (take a
// use of a secret ID, upsert the agent, create the token) from many
// goroutines: on distinct secret IDs, and all on one unlimited secret ID,
// whose row lock makes the logins take turns.
func BenchmarkPostgresLogin(b *testing.B) {
	s := openPG(b, pgSchema(b), Options{})
	defer s.Close()
	ctx := b.Context()
	now := time.Now()
	if err := s.Roles().Put(ctx, core.Role{Name: "demo"}); err != nil {
		b.Fatal(err)
	}
	const ids = 64
	for i := range ids {
		sid := core.SecretID{Hash: fmt.Sprintf("sid-%d", i), Accessor: fmt.Sprintf("sacc-%d", i), Role: "demo"}
		if err := s.SecretIDs().Create(ctx, sid); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	login := func(sid string) error {
		i := int(next.Add(1))
		return s.Update(ctx, func(tx store.Aggregates) error {
			if _, err := tx.SecretIDs().Consume(ctx, "demo", sid, now); err != nil {
				return err
			}
			if err := tx.Agents().Upsert(ctx, core.Agent{ID: "approle:demo:" + sid, Role: "demo"}); err != nil {
				return err
			}
			return tx.Tokens().Create(ctx, pgBenchToken(i, now.Add(time.Hour)))
		})
	}
	for _, shared := range []bool{false, true} {
		name := map[bool]string{false: "distinct-secret-ids", true: "one-secret-id"}[shared]
		b.Run(name, func(b *testing.B) {
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					sid := "sid-0"
					if !shared {
						sid = fmt.Sprintf("sid-%d", next.Load()%ids)
					}
					if err := login(sid); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkPostgresRedeem measures parallel redemption of distinct grants
// under one broker token (which each redemption holds FOR SHARE).
func BenchmarkPostgresRedeem(b *testing.B) {
	s := openPG(b, pgSchema(b), Options{})
	defer s.Close()
	ctx := b.Context()
	now := time.Now()
	if err := s.Tokens().Create(ctx, pgBenchToken(0, now.Add(time.Hour))); err != nil {
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
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Grants().Redeem(ctx, fmt.Sprintf("jti-%d", next.Add(1)-1), now); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
