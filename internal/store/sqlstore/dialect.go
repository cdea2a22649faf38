package sqlstore

import (
	"context"
	"database/sql"
)

// dialect is what differs between databases. Everything else — the SQL of
// every aggregate, transactions, migrations bookkeeping — is shared.
//
// The shared SQL sticks to what SQLite and PostgreSQL both accept: '?'
// placeholders (rebound per dialect), INSERT ... ON CONFLICT ... DO UPDATE,
// DELETE ... RETURNING, substr/length, integers for times and booleans.
type dialect interface {
	// name is the database's name, for messages.
	name() string
	// rebind rewrites '?' placeholders into the database's own form.
	rebind(query string) string
	// migrations lists the schema versions in order, starting at 1.
	migrations() []migration
	// ledgerDDL creates the schema_migrations table if it is missing.
	ledgerDDL() string
	// lockMigrations runs first in every migration transaction and makes
	// it exclusive among all processes migrating the same database, so
	// replicas starting at once apply each version exactly once.
	lockMigrations(ctx context.Context, tx *sql.Tx) error
	// rowLock is the clause appended to a SELECT whose rows the
	// transaction goes on to check and change: it makes concurrent
	// read-check-writes of the same rows take turns. Empty where
	// write transactions are serial anyway (SQLite).
	rowLock(m lockMode) string
	// lockKey takes a transaction-scoped lock on key, so that
	// transactions computing a sum and inserting against it take turns
	// across processes. A no-op where write transactions are serial.
	lockKey(ctx context.Context, q querier, key int64) error
	// isUniqueViolation reports a unique or primary-key violation.
	isUniqueViolation(err error) bool
	// isForeignKeyViolation reports a foreign-key violation.
	isForeignKeyViolation(err error) bool
	// isRetryable reports a transient failure after which the whole
	// transaction may simply be run again.
	isRetryable(err error) bool
}

// lockMode is how strongly a SELECT locks the rows it returns.
type lockMode int

const (
	// lockUpdate: the transaction will change or delete the rows; other
	// lockers wait until it ends, then read the rows as it left them.
	lockUpdate lockMode = iota + 1
	// lockShare: the transaction relies on the rows staying as read;
	// writers wait, other sharers do not.
	lockShare
)

// migration is one schema version: the statements that take the schema
// from version-1 to version, run in one transaction with its ledger row.
type migration struct {
	version int
	summary string // one line, recorded in schema_migrations
	stmts   []string
}
