package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/qbroker/qbroker/internal/store"
)

// Group commit. With synchronous=FULL every SQLite commit is an fsync, and
// one writer connection serialises them: a durable write per request would
// cap the broker at one request per fsync. Instead every write — a single
// statement or an Update — is queued to one goroutine that runs everything
// queued in ONE transaction, each caller's work inside its own SAVEPOINT, and
// commits once. A caller whose work fails is rolled back to its savepoint
// alone; a failed commit fails every caller in the batch. Each caller is
// answered only after the commit that made its work durable.

// maxWriteBatch bounds how many callers share one commit.
const maxWriteBatch = 256

var errClosed = errors.New("store is closed")

type writeReq struct {
	ctx  context.Context
	fn   func(q querier) error
	done chan error // the final outcome, after the commit
	ran  chan error // optional: fn's own result, as soon as it has run
	sent bool       // ran has been sent (a retried batch reports through done only)
}

type batcher struct {
	mu     sync.RWMutex // held for reading while enqueuing; Close takes it to stop intake
	closed bool
	queue  chan *writeReq
	exited chan struct{}
}

func (s *Store) startBatcher() {
	s.queue = make(chan *writeReq, maxWriteBatch)
	s.exited = make(chan struct{})
	go s.batchLoop()
}

// stopBatcher refuses new writes, finishes the queued ones, and waits.
func (s *Store) stopBatcher() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.queue)
	}
	s.mu.Unlock()
	<-s.exited
}

// writeTx runs fn in a write transaction: shared with other queued writers
// when grouped, a plain one of its own otherwise.
func (s *Store) writeTx(ctx context.Context, fn func(q querier) error) error {
	if !s.grouped {
		return s.plainTx(ctx, fn)
	}
	req := &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	if err := s.enqueue(ctx, req); err != nil {
		return err
	}
	// Once queued, wait for the outcome even if ctx ends: the work may
	// already be committed, and the caller must not be told otherwise.
	return <-req.done
}

// UpdatePipelined implements store.Pipeliner: fn runs in the next group
// commit (SQLite) or in a transaction of its own whose commit is in flight
// when this returns (PostgreSQL).
func (s *Store) UpdatePipelined(ctx context.Context, fn func(tx store.Aggregates) error) (func() error, error) {
	if !s.grouped {
		return s.plainPipelined(ctx, func(q querier) error {
			return fn(txAggregates{handle{s: s, r: q, w: q, inTx: true}})
		})
	}
	req := &writeReq{ctx: ctx, done: make(chan error, 1), ran: make(chan error, 1)}
	req.fn = func(q querier) error {
		return fn(txAggregates{handle{s: s, r: q, w: q, inTx: true}})
	}
	if err := s.enqueue(ctx, req); err != nil {
		return nil, err
	}
	return req.pipelined()
}

// pipelined waits for fn's own result (ran) or the batch's end (done),
// whichever comes first, and returns the wait for the commit.
func (req *writeReq) pipelined() (func() error, error) {
	select {
	case err := <-req.ran:
		if err != nil {
			<-req.done // rolled back to its savepoint; wait so the batch owns nothing of ours
			return nil, err
		}
		return func() error { return <-req.done }, nil
	case err := <-req.done:
		if err != nil { // fn failed, or the batch did before fn's result was known
			return nil, err
		}
		// fn ran and its batch committed before this select looked at ran
		// (both were ready, and select picks at random): done is spent.
		return func() error { return nil }, nil
	}
}

func (s *Store) enqueue(ctx context.Context, req *writeReq) error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return errClosed
	}
	select {
	case s.queue <- req:
	case <-ctx.Done():
		s.mu.RUnlock()
		return ctx.Err()
	}
	s.mu.RUnlock()
	return nil
}

func (s *Store) batchLoop() {
	defer close(s.exited)
	batch := make([]*writeReq, 0, maxWriteBatch)
	for first := range s.queue {
		batch = append(batch[:0], first)
	fill:
		for len(batch) < maxWriteBatch {
			select {
			case r, ok := <-s.queue:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		s.runBatch(batch)
	}
}

func (s *Store) runBatch(batch []*writeReq) {
	var results []error
	var err error
	for attempt := 1; ; attempt++ {
		results, err = s.tryBatch(batch)
		if err == nil || !s.d.isRetryable(err) || attempt >= maxTxAttempts {
			break
		}
		s.log.Debug("retrying write batch", "attempt", attempt, "size", len(batch), "err", err)
	}
	for i, r := range batch {
		e := results[i]
		if e == nil {
			e = err
		}
		r.done <- e
	}
}

// tryBatch runs the batch in one transaction. results[i] is caller i's own
// failure; the returned error is the transaction's (it fails everyone whose
// result is nil).
func (s *Store) tryBatch(batch []*writeReq) ([]error, error) {
	results := make([]error, len(batch))
	tx, err := s.w.BeginTx(context.Background(), nil)
	if err != nil {
		return results, fmt.Errorf("begin transaction: %w", err)
	}
	abort := func(cause error) ([]error, error) {
		if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
			s.log.Warn("rollback failed", "err", rbErr)
		}
		return results, cause
	}
	ts := txStmts{tx: tx, c: s.wc}
	q := s.wrap(ts)
	exec := func(stmt string) error { _, err := ts.ExecContext(context.Background(), stmt); return err }
	single := len(batch) == 1
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		if !single {
			if err := exec("SAVEPOINT w"); err != nil {
				return abort(fmt.Errorf("savepoint: %w", err))
			}
		}
		ferr := r.fn(q)
		if r.ran != nil && !r.sent {
			r.sent = true
			r.ran <- ferr // buffered: never blocks
		}
		if ferr != nil {
			results[i] = ferr
			if single {
				_, _ = abort(nil)
				return results, nil
			}
			if err := exec("ROLLBACK TO w"); err != nil {
				// The statement took the whole transaction with it.
				return abort(fmt.Errorf("rollback to savepoint: %w", err))
			}
		}
		if !single {
			if err := exec("RELEASE w"); err != nil {
				return abort(fmt.Errorf("release savepoint: %w", err))
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return results, fmt.Errorf("commit: %w", err)
	}
	return results, nil
}

// batchedWrites is the writer the aggregates use outside Update: every
// statement becomes a batched write of its own.
type batchedWrites struct{ s *Store }

var _ querier = batchedWrites{}

func (b batchedWrites) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	var res staticResult
	err := b.s.writeTx(ctx, func(q querier) error {
		r, err := q.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		res.rows, res.rowsErr = r.RowsAffected()
		res.id, res.idErr = r.LastInsertId()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// QueryContext and QueryRowContext cannot outlive a shared transaction;
// writes that return rows use handle.atomic instead. These serve reads made
// through the writer, outside any batch.
func (b batchedWrites) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return b.s.wrap(b.s.wc).QueryContext(ctx, query, args...)
}

func (b batchedWrites) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return b.s.wrap(b.s.wc).QueryRowContext(ctx, query, args...)
}

type staticResult struct {
	rows, id       int64
	rowsErr, idErr error
}

func (r staticResult) RowsAffected() (int64, error) { return r.rows, r.rowsErr }
func (r staticResult) LastInsertId() (int64, error) { return r.id, r.idErr }

// txStmts runs a batch's statements through the writer's prepared-statement
// cache (SQL parsing dominated the batcher's time without it).
type txStmts struct {
	tx *sql.Tx
	c  *stmtCache
}

func (t txStmts) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := t.c.stmt(ctx, query)
	if err != nil {
		return t.tx.ExecContext(ctx, query, args...)
	}
	return t.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
}

func (t txStmts) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := t.c.stmt(ctx, query)
	if err != nil {
		return t.tx.QueryContext(ctx, query, args...)
	}
	return t.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
}

func (t txStmts) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := t.c.stmt(ctx, query)
	if err != nil {
		return t.tx.QueryRowContext(ctx, query, args...)
	}
	return t.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
}
