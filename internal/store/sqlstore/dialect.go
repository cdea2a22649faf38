package sqlstore

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
	// isUniqueViolation reports a unique or primary-key violation.
	isUniqueViolation(err error) bool
	// isForeignKeyViolation reports a foreign-key violation.
	isForeignKeyViolation(err error) bool
	// isRetryable reports a transient failure after which the whole
	// transaction may simply be run again.
	isRetryable(err error) bool
}

// migration is one schema version: the statements that take the schema
// from version-1 to version, run in one transaction with its ledger row.
type migration struct {
	version int
	summary string // one line, recorded in schema_migrations
	stmts   []string
}
