package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// pgMigrationLockKey is the advisory lock every migration transaction
// takes (pg_advisory_xact_lock): the ASCII of "qbroker1". It is per
// database, so schemas of one database migrate one at a time.
const pgMigrationLockKey int64 = 0x7162726f6b657231

// pgIdleInTxTimeout ends a session whose transaction sits idle this long
// (a stalled process), releasing the row locks it held.
const pgIdleInTxTimeout = time.Minute

// PostgreSQL error codes the store acts on.
const (
	pgUniqueViolation      = "23505"
	pgForeignKeyViolation  = "23503"
	pgSerializationFailure = "40001"
	pgDeadlockDetected     = "40P01"
)

// OpenPostgres connects to the PostgreSQL database named by dsn (a URL,
// postgres://user@host:5432/db?sslmode=verify-full, or key=value pairs, as
// libpq takes them; the tables go in the connection's search_path) and
// migrates it to the current schema. Several processes may open the same
// database at once: migrations are serialised by an advisory lock. A
// database migrated by a newer binary is refused with ErrSchemaTooNew.
//
// opts sizes the pool and sets the statement timeout (Options). Every
// connection is READ COMMITTED by default, which the store's row locking
// is designed for. Errors never show the DSN, which may hold a password.
func OpenPostgres(ctx context.Context, dsn string, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if dsn == "" {
		return nil, errors.New("postgres: empty DSN")
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx redacts passwords from its parse errors only on a best-effort
		// basis, so its message is not passed on.
		return nil, errors.New("postgres: cannot parse the DSN (not shown: it may hold a password)")
	}
	o := opts.withDefaults()
	params := cfg.RuntimeParams
	params["statement_timeout"] = strconv.FormatInt(max(o.StatementTimeout, 0).Milliseconds(), 10)
	params["idle_in_transaction_session_timeout"] = strconv.FormatInt(pgIdleInTxTimeout.Milliseconds(), 10)
	params["default_transaction_isolation"] = "read committed"
	if params["application_name"] == "" {
		params["application_name"] = "qbroker"
	}

	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(o.MaxOpenConns)
	db.SetMaxIdleConns(o.MaxIdleConns)
	db.SetConnMaxLifetime(o.ConnMaxLifetime)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	d := postgresDialect{}
	if err := migrate(ctx, db, d, log); err != nil {
		db.Close()
		return nil, err
	}
	st := newStore(d, db, db, log, false)
	st.pg = &pgBroadcast{cfg: cfg, channel: pgChannel(cfg)}
	return st, nil
}

// withDefaults fills in the PostgreSQL defaults of zero fields; negative
// fields mean "none" and are passed on as database/sql takes them (<= 0).
func (o Options) withDefaults() Options {
	if o.MaxOpenConns <= 0 {
		o.MaxOpenConns = DefaultMaxOpenConns
	}
	if o.MaxIdleConns == 0 {
		o.MaxIdleConns = o.MaxOpenConns
	}
	if o.ConnMaxLifetime == 0 {
		o.ConnMaxLifetime = DefaultConnMaxLifetime
	}
	if o.StatementTimeout == 0 {
		o.StatementTimeout = DefaultStatementTimeout
	}
	return o
}

// postgresDialect is the PostgreSQL dialect.
type postgresDialect struct{}

var _ dialect = postgresDialect{}

func (postgresDialect) name() string { return "postgres" }

func (postgresDialect) lockKey(ctx context.Context, q querier, key int64) error {
	_, err := q.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, key)
	return err
}
func (postgresDialect) rebind(q string) string  { return pgRebind(q) }
func (postgresDialect) migrations() []migration { return postgresMigrations() }

func (postgresDialect) ledgerDDL() string {
	return `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    BIGINT NOT NULL PRIMARY KEY,
		summary    TEXT   NOT NULL,
		applied_at BIGINT NOT NULL
	)`
}

// lockMigrations takes the migration advisory lock for the rest of the
// transaction. Waiting for it, and the migration itself, are exempt from
// the statement timeout (another replica's migration may take longer);
// the caller's ctx bounds them.
func (postgresDialect) lockMigrations(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, `SET LOCAL statement_timeout = 0`); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, pgMigrationLockKey)
	return err
}

func (postgresDialect) rowLock(m lockMode) string {
	switch m {
	case lockShare:
		return " FOR SHARE"
	default:
		return " FOR UPDATE"
	}
}

func (postgresDialect) isUniqueViolation(err error) bool {
	return pgCode(err) == pgUniqueViolation
}

func (postgresDialect) isForeignKeyViolation(err error) bool {
	return pgCode(err) == pgForeignKeyViolation
}

func (postgresDialect) isRetryable(err error) bool {
	c := pgCode(err)
	return c == pgSerializationFailure || c == pgDeadlockDetected
}

// pgCode returns the SQLSTATE carried by err, or "".
func pgCode(err error) string {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// pgRebind turns the shared SQL's '?' placeholders into $1, $2, ... It
// leaves alone what sits in single-quoted literals and double-quoted
// identifiers; the shared SQL has no comments or dollar quoting.
func pgRebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	var quote byte // the quote character we are inside, or 0
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			if c == quote { // a doubled quote leaves and re-enters: still right
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
