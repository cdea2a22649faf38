package sqlstore

import "fmt"

// The schema history, shared by every dialect: one summary per version,
// recorded in schema_migrations. Each dialect supplies the DDL of every
// version (schema_sqlite.go, schema_postgres.go); schemaMigrations pairs
// them, so the dialects cannot disagree on which versions exist or what
// they are called, and a test checks that they create the same tables,
// columns and indexes. Never edit a released version; add a new one, to
// the summaries and to every dialect.
//
// Ledger:
//
//	v1  Initial schema. roles (devices as JSON text; role_id unique when set),
//	    secret_ids (FK to roles, cascading on role delete; uses_left >= 0),
//	    agents (labels JSON), tokens (policies/meta JSON; unique accessor),
//	    job_grants, jobs (PK provider,id), secrets (sealed blob). Times are
//	    integer unix nanoseconds UTC, 0 meaning "zero time"; durations are
//	    integer nanoseconds; booleans integer 0/1. Partial indexes on
//	    expires_at for the expiry sweeps; accessor indexes for lookups.
//	v2  Index tokens and jobs by agent, for revoking every token of an agent
//	    and finding its jobs.
//	v3  Delegated tokens (token exchange): tokens.acting_for (the subject the
//	    agent acts for) and tokens.parent_accessor (revoked with that token),
//	    indexed for the cascade.
//	v4  Approvals (a request held for human consent, with the program and
//	    its estimated cost) and approval_votes (one per approver); jobs
//	    indexed by agent and device for "first use of a device" rules.
//	v5  Budget reservations: one per job token (keyed by its jti), with the
//	    agent, role, team and device class it counts against, its shots,
//	    estimated and settled cost, state and times; indexed by each scope
//	    and time for the windowed sums.
//	v6  QPU seconds on reservations (estimated at issuance, actual at
//	    settlement, -1 until reported) for qpu_seconds limits; reservations
//	    indexed by creation time for crash recovery's look at the last
//	    moments.
//
// schemaSummaries()[i] is the summary of version i+1.
func schemaSummaries() []string {
	return []string{
		"initial schema: roles, secret_ids, agents, tokens, job_grants, jobs, secrets", // v1
		"index tokens and jobs by agent",                                               // v2
		"delegated tokens: acting_for and parent_accessor",                             // v3
		"approvals and their votes",                                                    // v4
		"budget reservations",                                                          // v5
		"qpu seconds on reservations",                                                  // v6
	}
}

// schemaMigrations numbers a dialect's DDL, one slice of statements per
// version in order, and gives each version its shared summary. A dialect
// with more or fewer versions than the history is a programming error,
// reported by migrate (and caught by the schema tests) rather than a panic.
func schemaMigrations(ddl ...[]string) []migration {
	sums := schemaSummaries()
	out := make([]migration, len(ddl))
	for i, stmts := range ddl {
		out[i] = migration{version: i + 1, stmts: stmts}
		if i < len(sums) {
			out[i].summary = sums[i]
		}
	}
	return out
}

// checkMigrations verifies that ms matches the shared history.
func checkMigrations(name string, ms []migration) error {
	sums := schemaSummaries()
	if len(ms) != len(sums) {
		return fmt.Errorf("%s: %d schema versions, the history has %d", name, len(ms), len(sums))
	}
	for i, m := range ms {
		if m.version != i+1 || m.summary != sums[i] || len(m.stmts) == 0 {
			return fmt.Errorf("%s: migration %d is numbered %d (%q), want %q with statements",
				name, i+1, m.version, m.summary, sums[i])
		}
	}
	return nil
}
