package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Plain transactions, for databases that commit concurrent transactions
// well on their own (PostgreSQL): each write transaction is its own, on a
// connection of the pool, READ COMMITTED whatever the server's default —
// the row locks of the aggregates are designed for it (package doc).

// retryBackoff is the longest pause before a retried transaction, times
// the attempt: a little jitter so deadlocked peers do not collide again.
const retryBackoff = 5 * time.Millisecond

// plainTx runs fn in a transaction and commits it, running the whole again
// when the database asks for a retry.
func (s *Store) plainTx(ctx context.Context, fn func(q querier) error) error {
	return s.retrying(ctx, func() error {
		tx, err := s.runInTx(ctx, fn)
		if err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		return nil
	})
}

// plainPipelined runs fn in a transaction (retrying it like plainTx) and
// returns once fn has succeeded, with the commit under way; wait reports
// the commit's outcome. A commit that fails for a retryable reason is not
// retried (fn's result was already reported): wait returns that error and
// nothing fn did persisted.
func (s *Store) plainPipelined(ctx context.Context, fn func(q querier) error) (func() error, error) {
	var tx *sql.Tx
	err := s.retrying(ctx, func() (err error) {
		tx, err = s.runInTx(ctx, fn)
		return err
	})
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() {
		if err := tx.Commit(); err != nil {
			done <- fmt.Errorf("commit: %w", err)
			return
		}
		done <- nil
	}()
	return sync.OnceValue(func() error { return <-done }), nil
}

// runInTx begins a transaction and runs fn in it. On success the
// transaction is left open for the caller to commit; on failure it is
// rolled back.
func (s *Store) runInTx(ctx context.Context, fn func(q querier) error) (*sql.Tx, error) {
	tx, err := s.w.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return nil, fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(s.wrap(tx)); err != nil {
		if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
			s.log.Warn("rollback failed", "err", rbErr)
		}
		return nil, err
	}
	return tx, nil
}

// retrying runs attempt until it succeeds, fails for a reason the dialect
// does not call retryable, ctx ends, or maxTxAttempts have been made.
func (s *Store) retrying(ctx context.Context, attempt func() error) error {
	for n := 1; ; n++ {
		err := attempt()
		if err == nil || !s.d.isRetryable(err) || n >= maxTxAttempts {
			return err
		}
		s.log.DebugContext(ctx, "retrying transaction", "db", s.d.name(), "attempt", n, "err", err)
		pause := time.NewTimer(rand.N(time.Duration(n) * retryBackoff))
		select {
		case <-ctx.Done():
			pause.Stop()
			return err
		case <-pause.C:
		}
	}
}
