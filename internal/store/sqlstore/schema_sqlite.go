package sqlstore

// sqliteMigrations is the SQLite DDL of each schema version in schema.go's
// history. Never edit a released version; add a new one.
//
// SQLite specifics: every table is STRICT, so a type mix-up fails instead
// of being coerced; times, durations and booleans are INTEGER (64-bit),
// blobs BLOB, the estimated cost REAL.
func sqliteMigrations() []migration {
	return schemaMigrations(
		// v1
		[]string{
			`CREATE TABLE roles (
				name               TEXT    NOT NULL PRIMARY KEY,
				provider           TEXT    NOT NULL,
				devices            TEXT    NOT NULL,
				max_shots          INTEGER NOT NULL,
				token_ttl          INTEGER NOT NULL,
				token_max_ttl      INTEGER NOT NULL,
				job_token_ttl      INTEGER NOT NULL,
				secret_id_ttl      INTEGER NOT NULL,
				secret_id_num_uses INTEGER NOT NULL,
				owner              TEXT    NOT NULL,
				team               TEXT    NOT NULL,
				role_id            TEXT    NOT NULL,
				created_at         INTEGER NOT NULL,
				updated_at         INTEGER NOT NULL
			) STRICT`,
			`CREATE UNIQUE INDEX roles_role_id ON roles (role_id) WHERE role_id <> ''`,

			`CREATE TABLE secret_ids (
				hash       TEXT    NOT NULL PRIMARY KEY,
				accessor   TEXT    NOT NULL,
				role       TEXT    NOT NULL REFERENCES roles (name) ON DELETE CASCADE ON UPDATE CASCADE,
				agent      TEXT    NOT NULL,
				meta       TEXT    NOT NULL,
				created_at INTEGER NOT NULL,
				expires_at INTEGER NOT NULL,
				uses_left  INTEGER NOT NULL CHECK (uses_left >= 0)
			) STRICT`,
			`CREATE UNIQUE INDEX secret_ids_accessor ON secret_ids (accessor)`,
			`CREATE INDEX secret_ids_role ON secret_ids (role)`,
			`CREATE INDEX secret_ids_expires ON secret_ids (expires_at) WHERE expires_at <> 0`,

			`CREATE TABLE agents (
				id          TEXT    NOT NULL PRIMARY KEY,
				name        TEXT    NOT NULL,
				role        TEXT    NOT NULL,
				owner       TEXT    NOT NULL,
				team        TEXT    NOT NULL,
				auth_method TEXT    NOT NULL,
				labels      TEXT    NOT NULL,
				created_at  INTEGER NOT NULL,
				suspended   INTEGER NOT NULL
			) STRICT`,

			`CREATE TABLE tokens (
				hash           TEXT    NOT NULL PRIMARY KEY,
				accessor       TEXT    NOT NULL,
				agent_id       TEXT    NOT NULL,
				role           TEXT    NOT NULL,
				policies       TEXT    NOT NULL,
				display_name   TEXT    NOT NULL,
				auth_method    TEXT    NOT NULL,
				meta           TEXT    NOT NULL,
				issued_at      INTEGER NOT NULL,
				expires_at     INTEGER NOT NULL,
				max_expires_at INTEGER NOT NULL,
				creation_ttl   INTEGER NOT NULL,
				renewable      INTEGER NOT NULL
			) STRICT`,
			`CREATE UNIQUE INDEX tokens_accessor ON tokens (accessor)`,
			`CREATE INDEX tokens_expires ON tokens (expires_at) WHERE expires_at <> 0`,

			`CREATE TABLE job_grants (
				jti            TEXT    NOT NULL PRIMARY KEY,
				accessor       TEXT    NOT NULL,
				agent_id       TEXT    NOT NULL,
				role           TEXT    NOT NULL,
				provider       TEXT    NOT NULL,
				device         TEXT    NOT NULL,
				max_shots      INTEGER NOT NULL,
				program_sha256 TEXT    NOT NULL,
				issued_at      INTEGER NOT NULL,
				expires_at     INTEGER NOT NULL,
				redeemed_at    INTEGER NOT NULL
			) STRICT`,
			`CREATE INDEX job_grants_accessor ON job_grants (accessor)`,
			`CREATE INDEX job_grants_expires ON job_grants (expires_at)`,

			`CREATE TABLE jobs (
				provider   TEXT    NOT NULL,
				id         TEXT    NOT NULL,
				agent_id   TEXT    NOT NULL,
				role       TEXT    NOT NULL,
				jti        TEXT    NOT NULL,
				device     TEXT    NOT NULL,
				shots      INTEGER NOT NULL,
				created_at INTEGER NOT NULL,
				PRIMARY KEY (provider, id)
			) STRICT`,

			`CREATE TABLE secrets (
				name       TEXT    NOT NULL PRIMARY KEY,
				blob       BLOB    NOT NULL,
				created_at INTEGER NOT NULL
			) STRICT`,
		},
		// v2
		[]string{
			`CREATE INDEX tokens_agent ON tokens (agent_id)`,
			`CREATE INDEX jobs_agent ON jobs (agent_id)`,
		},
		// v3
		[]string{
			`ALTER TABLE tokens ADD COLUMN acting_for TEXT NOT NULL DEFAULT ''`,
			`ALTER TABLE tokens ADD COLUMN parent_accessor TEXT NOT NULL DEFAULT ''`,
			`CREATE INDEX tokens_parent ON tokens (parent_accessor) WHERE parent_accessor <> ''`,
		},
		// v4
		[]string{
			`CREATE TABLE approvals (
				id                 TEXT    NOT NULL PRIMARY KEY,
				state              TEXT    NOT NULL,
				requester_agent    TEXT    NOT NULL,
				requester_accessor TEXT    NOT NULL,
				acting_for         TEXT    NOT NULL,
				role               TEXT    NOT NULL,
				owner              TEXT    NOT NULL,
				team               TEXT    NOT NULL,
				source_ip          TEXT    NOT NULL,
				action             TEXT    NOT NULL,
				provider           TEXT    NOT NULL,
				device             TEXT    NOT NULL,
				device_kind        TEXT    NOT NULL,
				shots              INTEGER NOT NULL,
				program            BLOB    NOT NULL,
				format             TEXT    NOT NULL,
				program_sha256     TEXT    NOT NULL,
				estimated_cost_usd REAL    NOT NULL,
				reasons            TEXT    NOT NULL,
				rule               TEXT    NOT NULL,
				required           INTEGER NOT NULL,
				approver_group     TEXT    NOT NULL,
				created_at         INTEGER NOT NULL,
				expires_at         INTEGER NOT NULL,
				decided_at         INTEGER NOT NULL,
				reason             TEXT    NOT NULL,
				issued_jti         TEXT    NOT NULL
			) STRICT`,
			`CREATE INDEX approvals_pending ON approvals (expires_at) WHERE state = 'pending'`,
			`CREATE INDEX approvals_created ON approvals (created_at)`,
			`CREATE INDEX approvals_agent ON approvals (requester_agent, created_at)`,
			`CREATE TABLE approval_votes (
				approval_id TEXT    NOT NULL,
				approver    TEXT    NOT NULL,
				decision    TEXT    NOT NULL,
				reason      TEXT    NOT NULL,
				via         TEXT    NOT NULL,
				at          INTEGER NOT NULL,
				PRIMARY KEY (approval_id, approver)
			) STRICT`,
			`CREATE INDEX jobs_agent_device ON jobs (agent_id, provider, device)`,
		},
		// v5
		[]string{
			`CREATE TABLE reservations (
				jti           TEXT    NOT NULL PRIMARY KEY,
				agent_id      TEXT    NOT NULL,
				role          TEXT    NOT NULL,
				team          TEXT    NOT NULL,
				class         TEXT    NOT NULL,
				shots         INTEGER NOT NULL,
				estimated_usd REAL    NOT NULL,
				actual_usd    REAL    NOT NULL,
				state         TEXT    NOT NULL,
				created_at    INTEGER NOT NULL,
				expires_at    INTEGER NOT NULL
			) STRICT`,
			`CREATE INDEX reservations_agent ON reservations (agent_id, created_at)`,
			`CREATE INDEX reservations_role ON reservations (role, created_at)`,
			`CREATE INDEX reservations_team ON reservations (team, created_at)`,
			`CREATE INDEX reservations_open ON reservations (expires_at) WHERE state = 'reserved'`,
		},
		// v6
		[]string{
			`ALTER TABLE reservations ADD COLUMN estimated_qpu_seconds REAL NOT NULL DEFAULT 0`,
			`ALTER TABLE reservations ADD COLUMN actual_qpu_seconds REAL NOT NULL DEFAULT -1`,
			`CREATE INDEX reservations_created ON reservations (created_at)`,
		},
	)
}
