package sqlstore

// postgresMigrations is the PostgreSQL DDL of each schema version in
// schema.go's history, table for table, column for column and index for
// index the same as sqliteMigrations (a test compares them). Never edit a
// released version; add a new one.
//
// PostgreSQL specifics: times, durations, counters and booleans are BIGINT
// (the nanosecond times need 64 bits), blobs BYTEA, the estimated cost
// DOUBLE PRECISION. Every text column is COLLATE "C": names and hashes
// compare and sort byte-wise, as on SQLite, whatever the database's
// default collation.
func postgresMigrations() []migration {
	return schemaMigrations(
		// v1
		[]string{
			`CREATE TABLE roles (
				name               TEXT COLLATE "C" NOT NULL PRIMARY KEY,
				provider           TEXT COLLATE "C" NOT NULL,
				devices            TEXT COLLATE "C" NOT NULL,
				max_shots          BIGINT NOT NULL,
				token_ttl          BIGINT NOT NULL,
				token_max_ttl      BIGINT NOT NULL,
				job_token_ttl      BIGINT NOT NULL,
				secret_id_ttl      BIGINT NOT NULL,
				secret_id_num_uses BIGINT NOT NULL,
				owner              TEXT COLLATE "C" NOT NULL,
				team               TEXT COLLATE "C" NOT NULL,
				role_id            TEXT COLLATE "C" NOT NULL,
				created_at         BIGINT NOT NULL,
				updated_at         BIGINT NOT NULL
			)`,
			`CREATE UNIQUE INDEX roles_role_id ON roles (role_id) WHERE role_id <> ''`,

			`CREATE TABLE secret_ids (
				hash       TEXT COLLATE "C" NOT NULL PRIMARY KEY,
				accessor   TEXT COLLATE "C" NOT NULL,
				role       TEXT COLLATE "C" NOT NULL REFERENCES roles (name) ON DELETE CASCADE ON UPDATE CASCADE,
				agent      TEXT COLLATE "C" NOT NULL,
				meta       TEXT COLLATE "C" NOT NULL,
				created_at BIGINT NOT NULL,
				expires_at BIGINT NOT NULL,
				uses_left  BIGINT NOT NULL CHECK (uses_left >= 0)
			)`,
			`CREATE UNIQUE INDEX secret_ids_accessor ON secret_ids (accessor)`,
			`CREATE INDEX secret_ids_role ON secret_ids (role)`,
			`CREATE INDEX secret_ids_expires ON secret_ids (expires_at) WHERE expires_at <> 0`,

			`CREATE TABLE agents (
				id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
				name        TEXT COLLATE "C" NOT NULL,
				role        TEXT COLLATE "C" NOT NULL,
				owner       TEXT COLLATE "C" NOT NULL,
				team        TEXT COLLATE "C" NOT NULL,
				auth_method TEXT COLLATE "C" NOT NULL,
				labels      TEXT COLLATE "C" NOT NULL,
				created_at  BIGINT NOT NULL,
				suspended   BIGINT NOT NULL
			)`,

			`CREATE TABLE tokens (
				hash           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
				accessor       TEXT COLLATE "C" NOT NULL,
				agent_id       TEXT COLLATE "C" NOT NULL,
				role           TEXT COLLATE "C" NOT NULL,
				policies       TEXT COLLATE "C" NOT NULL,
				display_name   TEXT COLLATE "C" NOT NULL,
				auth_method    TEXT COLLATE "C" NOT NULL,
				meta           TEXT COLLATE "C" NOT NULL,
				issued_at      BIGINT NOT NULL,
				expires_at     BIGINT NOT NULL,
				max_expires_at BIGINT NOT NULL,
				creation_ttl   BIGINT NOT NULL,
				renewable      BIGINT NOT NULL
			)`,
			`CREATE UNIQUE INDEX tokens_accessor ON tokens (accessor)`,
			`CREATE INDEX tokens_expires ON tokens (expires_at) WHERE expires_at <> 0`,

			`CREATE TABLE job_grants (
				jti            TEXT COLLATE "C" NOT NULL PRIMARY KEY,
				accessor       TEXT COLLATE "C" NOT NULL,
				agent_id       TEXT COLLATE "C" NOT NULL,
				role           TEXT COLLATE "C" NOT NULL,
				provider       TEXT COLLATE "C" NOT NULL,
				device         TEXT COLLATE "C" NOT NULL,
				max_shots      BIGINT NOT NULL,
				program_sha256 TEXT COLLATE "C" NOT NULL,
				issued_at      BIGINT NOT NULL,
				expires_at     BIGINT NOT NULL,
				redeemed_at    BIGINT NOT NULL
			)`,
			`CREATE INDEX job_grants_accessor ON job_grants (accessor)`,
			`CREATE INDEX job_grants_expires ON job_grants (expires_at)`,

			`CREATE TABLE jobs (
				provider   TEXT COLLATE "C" NOT NULL,
				id         TEXT COLLATE "C" NOT NULL,
				agent_id   TEXT COLLATE "C" NOT NULL,
				role       TEXT COLLATE "C" NOT NULL,
				jti        TEXT COLLATE "C" NOT NULL,
				device     TEXT COLLATE "C" NOT NULL,
				shots      BIGINT NOT NULL,
				created_at BIGINT NOT NULL,
				PRIMARY KEY (provider, id)
			)`,

			`CREATE TABLE secrets (
				name       TEXT COLLATE "C" NOT NULL PRIMARY KEY,
				blob       BYTEA  NOT NULL,
				created_at BIGINT NOT NULL
			)`,
		},
		// v2
		[]string{
			`CREATE INDEX tokens_agent ON tokens (agent_id)`,
			`CREATE INDEX jobs_agent ON jobs (agent_id)`,
		},
		// v3
		[]string{
			`ALTER TABLE tokens ADD COLUMN acting_for TEXT COLLATE "C" NOT NULL DEFAULT ''`,
			`ALTER TABLE tokens ADD COLUMN parent_accessor TEXT COLLATE "C" NOT NULL DEFAULT ''`,
			`CREATE INDEX tokens_parent ON tokens (parent_accessor) WHERE parent_accessor <> ''`,
		},
		// v4
		[]string{
			`CREATE TABLE approvals (
				id                 TEXT COLLATE "C" NOT NULL PRIMARY KEY,
				state              TEXT COLLATE "C" NOT NULL,
				requester_agent    TEXT COLLATE "C" NOT NULL,
				requester_accessor TEXT COLLATE "C" NOT NULL,
				acting_for         TEXT COLLATE "C" NOT NULL,
				role               TEXT COLLATE "C" NOT NULL,
				owner              TEXT COLLATE "C" NOT NULL,
				team               TEXT COLLATE "C" NOT NULL,
				source_ip          TEXT COLLATE "C" NOT NULL,
				action             TEXT COLLATE "C" NOT NULL,
				provider           TEXT COLLATE "C" NOT NULL,
				device             TEXT COLLATE "C" NOT NULL,
				device_kind        TEXT COLLATE "C" NOT NULL,
				shots              BIGINT NOT NULL,
				program            BYTEA  NOT NULL,
				format             TEXT COLLATE "C" NOT NULL,
				program_sha256     TEXT COLLATE "C" NOT NULL,
				estimated_cost_usd DOUBLE PRECISION NOT NULL,
				reasons            TEXT COLLATE "C" NOT NULL,
				rule               TEXT COLLATE "C" NOT NULL,
				required           BIGINT NOT NULL,
				approver_group     TEXT COLLATE "C" NOT NULL,
				created_at         BIGINT NOT NULL,
				expires_at         BIGINT NOT NULL,
				decided_at         BIGINT NOT NULL,
				reason             TEXT COLLATE "C" NOT NULL,
				issued_jti         TEXT COLLATE "C" NOT NULL
			)`,
			`CREATE INDEX approvals_pending ON approvals (expires_at) WHERE state = 'pending'`,
			`CREATE INDEX approvals_created ON approvals (created_at)`,
			`CREATE INDEX approvals_agent ON approvals (requester_agent, created_at)`,
			`CREATE TABLE approval_votes (
				approval_id TEXT COLLATE "C" NOT NULL,
				approver    TEXT COLLATE "C" NOT NULL,
				decision    TEXT COLLATE "C" NOT NULL,
				reason      TEXT COLLATE "C" NOT NULL,
				via         TEXT COLLATE "C" NOT NULL,
				at          BIGINT NOT NULL,
				PRIMARY KEY (approval_id, approver)
			)`,
			`CREATE INDEX jobs_agent_device ON jobs (agent_id, provider, device)`,
		},
		// v5
		[]string{
			`CREATE TABLE reservations (
				jti           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
				agent_id      TEXT COLLATE "C" NOT NULL,
				role          TEXT COLLATE "C" NOT NULL,
				team          TEXT COLLATE "C" NOT NULL,
				class         TEXT COLLATE "C" NOT NULL,
				shots         BIGINT NOT NULL,
				estimated_usd DOUBLE PRECISION NOT NULL,
				actual_usd    DOUBLE PRECISION NOT NULL,
				state         TEXT COLLATE "C" NOT NULL,
				created_at    BIGINT NOT NULL,
				expires_at    BIGINT NOT NULL
			)`,
			`CREATE INDEX reservations_agent ON reservations (agent_id, created_at)`,
			`CREATE INDEX reservations_role ON reservations (role, created_at)`,
			`CREATE INDEX reservations_team ON reservations (team, created_at)`,
			`CREATE INDEX reservations_open ON reservations (expires_at) WHERE state = 'reserved'`,
		},
		// v6
		[]string{
			`ALTER TABLE reservations ADD COLUMN estimated_qpu_seconds DOUBLE PRECISION NOT NULL DEFAULT 0`,
			`ALTER TABLE reservations ADD COLUMN actual_qpu_seconds DOUBLE PRECISION NOT NULL DEFAULT -1`,
			`CREATE INDEX reservations_created ON reservations (created_at)`,
		},
	)
}
