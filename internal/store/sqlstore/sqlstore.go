// Package sqlstore implements store.Store on SQL databases: one SQL
// implementation of every aggregate, and a thin dialect per database for
// what genuinely differs (DSNs, DDL, error codes, placeholders, row locks).
// SQLite, through the pure-Go modernc.org/sqlite driver, is the embedded
// default (OpenSQLite); PostgreSQL, through pgx's database/sql driver, is
// for several replicas sharing one database (OpenPostgres). Both run the
// same contract suite (storetest) and the same SQL.
//
// Shape of the SQLite store:
//
//   - one writer goroutine (batch.go) that runs every queued write in a
//     shared IMMEDIATE transaction, each in its own savepoint, and commits
//     once per batch (group commit), so write transactions queue in Go
//     instead of failing to upgrade a read lock;
//   - a reader pool of several read-only connections for plain reads, which
//     under WAL never block the writer;
//   - WAL journal with synchronous=FULL: a commit that returned is on disk.
//
// Shape of the PostgreSQL store (postgres.go, tx.go):
//
//   - one connection pool for reads and writes; a single write is one
//     autocommit statement, an atomic operation or Update one READ
//     COMMITTED transaction of its own (the server commits concurrent
//     transactions in groups itself, so there is no batcher);
//   - a statement timeout on every connection, and a whole transaction
//     retried (up to maxTxAttempts) after a serialization failure or a
//     deadlock;
//   - migrations serialised across replicas by a transaction-scoped
//     advisory lock.
//
// Concurrency. Under SQLite write transactions are serial. Under
// PostgreSQL's READ COMMITTED they are not, so every read-check-write —
// SecretIDs.Consume, Grants.Redeem, Approvals.Vote and ExpirePending —
// first locks the rows it will decide on with SELECT ... FOR UPDATE (the
// dialect's rowLock; nothing on SQLite): a concurrent caller waits for the
// lock and then reads the row as the winner left it, so a 3-use secret ID
// logs in exactly three times and a grant redeems once, without the
// spurious failures and retries that SERIALIZABLE would bring under the
// same contention. Redeem holds the issuing token FOR SHARE, so a
// revocation waits for (or is seen by) a redemption in flight. Every such
// write is still guarded (uses_left = what was read, redeemed_at = 0,
// state = 'pending') with its row count checked, and single-statement
// operations (token deletes with RETURNING, MarkIssued) are atomic on
// their own. A read-then-write sequence that callers compose inside
// Update from plain Gets (say, read an agent then upsert it) is last
// writer wins across replicas, as with any READ COMMITTED database.
//
// Every method runs as its own statement or transaction; Store.Update runs
// several in one. Inside Update, use only the Aggregates passed to fn: the
// Store's own methods run outside the transaction and a write through them
// would wait for the writer connection (SQLite) or the row locks (PostgreSQL)
// that fn holds. On PostgreSQL a statement that fails inside Update (a
// conflict, say) aborts the whole transaction: fn must return its error,
// as every caller does, not carry on.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/qbroker/qbroker/internal/store"
)

// ErrSchemaTooNew is returned by Open when the database was migrated by a
// newer qbroker than this binary: opening it could corrupt data the newer
// schema relies on.
var ErrSchemaTooNew = errors.New("database schema is newer than this binary supports")

// maxTxAttempts bounds how many times Update retries a transaction that the
// database asked to be retried (SQLITE_BUSY from another process, a
// serialization failure on PostgreSQL).
const maxTxAttempts = 3

// Options configures a Store. The pool and timeout fields apply to
// PostgreSQL only (SQLite's connections are fixed by its design); zero
// means the default.
type Options struct {
	// Logger receives migration and maintenance messages; nil discards them.
	Logger *slog.Logger

	// MaxOpenConns bounds the connections to the database (default 10).
	// Size it with the server's max_connections and the replica count.
	MaxOpenConns int
	// MaxIdleConns is how many idle connections are kept (default
	// MaxOpenConns; negative keeps none).
	MaxIdleConns int
	// ConnMaxLifetime closes a connection after this long, so a pool
	// follows a failover or a changed DNS name (default 30 minutes;
	// negative never).
	ConnMaxLifetime time.Duration
	// StatementTimeout ends any statement that runs longer, waiting for a
	// lock included (default 5 s; negative: no limit). Migrations are not
	// bound by it: the ctx given to OpenPostgres bounds them.
	StatementTimeout time.Duration
}

// Defaults of the PostgreSQL Options.
const (
	DefaultMaxOpenConns     = 10
	DefaultConnMaxLifetime  = 30 * time.Minute
	DefaultStatementTimeout = 5 * time.Second
)

// querier is what the aggregates need: satisfied by *sql.DB and *sql.Tx, so
// one implementation serves both single calls and Update.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

var (
	_ querier = (*sql.DB)(nil)
	_ querier = (*sql.Tx)(nil)
)

// rebound applies the dialect's placeholder rewriting to every query, so the
// SQL in this package is written once with '?' placeholders.
type rebound struct {
	q      querier
	rebind func(string) string
}

func (r rebound) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return r.q.ExecContext(ctx, r.rebind(query), args...)
}

func (r rebound) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return r.q.QueryContext(ctx, r.rebind(query), args...)
}

func (r rebound) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return r.q.QueryRowContext(ctx, r.rebind(query), args...)
}

// Store is a store.Store backed by SQL.
type Store struct {
	d   dialect
	w   *sql.DB // writer pool: SQLite's is used only by the batcher (and to prepare statements)
	r   *sql.DB // readers: read-only connections on SQLite; the same pool as w on PostgreSQL
	log *slog.Logger

	// grouped: writes go through the group-commit batcher (SQLite);
	// otherwise each is a plain transaction of its own (tx.go).
	grouped bool

	pg *pgBroadcast // PostgreSQL's LISTEN/NOTIFY settings; nil on SQLite

	base   handle     // the aggregates outside any transaction
	wc, rc *stmtCache // SQLite's prepared statements; nil when not grouped

	closeOnce sync.Once
	closeErr  error

	batcher
}

var _ store.Store = (*Store)(nil)

// handle is what every aggregate holds: where to read, where to write, and
// whether writes are already inside a transaction.
type handle struct {
	s    *Store
	r    querier // reads
	w    querier // writes
	inTx bool
}

// atomic runs fn in a write transaction, or directly when the handle is
// already inside one (Update).
func (h handle) atomic(ctx context.Context, fn func(q querier) error) error {
	if h.inTx {
		return fn(h.w)
	}
	return h.s.writeTx(ctx, fn)
}

func (h handle) dialect() dialect { return h.s.d }

// newStore builds the Store over migrated pools. With grouped, writes go
// through the group-commit batcher and statements through prepared-statement
// caches (SQLite); without, reads and single writes go straight to the pool,
// whose driver caches statements itself (pgx).
func newStore(d dialect, w, r *sql.DB, log *slog.Logger, grouped bool) *Store {
	s := &Store{d: d, w: w, r: r, log: log, grouped: grouped}
	if grouped {
		s.wc, s.rc = newStmtCache(w), newStmtCache(r)
		s.base = handle{s: s, r: s.wrap(s.rc), w: batchedWrites{s}}
		s.startBatcher()
	} else {
		s.base = handle{s: s, r: s.wrap(r), w: s.wrap(w)}
	}
	return s
}

func (s *Store) wrap(q querier) querier { return rebound{q: q, rebind: s.d.rebind} }

// Roles implements store.Aggregates.
func (s *Store) Roles() store.Roles { return roles{s.base} }

// SecretIDs implements store.Aggregates.
func (s *Store) SecretIDs() store.SecretIDs { return secretIDs{s.base} }

// Agents implements store.Aggregates.
func (s *Store) Agents() store.Agents { return agents{s.base} }

// Tokens implements store.Aggregates.
func (s *Store) Tokens() store.Tokens { return tokens{s.base} }

// Grants implements store.Aggregates.
func (s *Store) Grants() store.Grants { return grants{s.base} }

// Jobs implements store.Aggregates.
func (s *Store) Jobs() store.Jobs { return jobs{s.base} }

// Secrets implements store.Aggregates.
func (s *Store) Secrets() store.Secrets { return secrets{s.base} }

// Approvals implements store.Aggregates.
func (s *Store) Approvals() store.Approvals { return approvals{s.base} }

// Budgets implements store.Aggregates.
func (s *Store) Budgets() store.Budgets { return budgets{s.base} }

// txAggregates is the view of the store that Update hands to fn.
type txAggregates struct{ h handle }

var _ store.Aggregates = txAggregates{}

func (a txAggregates) Roles() store.Roles         { return roles(a) }
func (a txAggregates) SecretIDs() store.SecretIDs { return secretIDs(a) }
func (a txAggregates) Agents() store.Agents       { return agents(a) }
func (a txAggregates) Tokens() store.Tokens       { return tokens(a) }
func (a txAggregates) Grants() store.Grants       { return grants(a) }
func (a txAggregates) Jobs() store.Jobs           { return jobs(a) }
func (a txAggregates) Secrets() store.Secrets     { return secrets(a) }
func (a txAggregates) Approvals() store.Approvals { return approvals(a) }
func (a txAggregates) Budgets() store.Budgets     { return budgets(a) }

// Update runs fn in one write transaction. fn's reads see its own writes.
// fn may run more than once if the database asks for a retry.
func (s *Store) Update(ctx context.Context, fn func(tx store.Aggregates) error) error {
	return s.writeTx(ctx, func(q querier) error {
		return fn(txAggregates{handle{s: s, r: q, w: q, inTx: true}})
	})
}

// Close finishes queued writes and closes the pools. It is safe to call
// more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if !s.grouped {
			s.closeErr = s.w.Close()
			if s.r != s.w {
				s.closeErr = errors.Join(s.closeErr, s.r.Close())
			}
			return
		}
		s.stopBatcher()
		s.rc.close()
		s.wc.close()
		s.closeErr = errors.Join(s.r.Close(), s.w.Close())
	})
	return s.closeErr
}
