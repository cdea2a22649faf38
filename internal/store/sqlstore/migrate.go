package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"
)

// migrate brings db to the newest schema version the dialect knows. Each
// migration runs in its own transaction together with its ledger row in
// schema_migrations, so a crash leaves the schema at a whole version. A
// database at a version newer than the dialect knows is refused.
func migrate(ctx context.Context, db *sql.DB, d dialect, log *slog.Logger) error {
	ms := d.migrations()
	for i, m := range ms {
		if m.version != i+1 {
			return fmt.Errorf("%s: migration %d is numbered %d", d.name(), i+1, m.version)
		}
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		summary    TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("%s: create schema_migrations: %w", d.name(), err)
	}
	cur, err := schemaVersion(ctx, db)
	if err != nil {
		return fmt.Errorf("%s: %w", d.name(), err)
	}
	if cur > len(ms) {
		return fmt.Errorf("%s: database is at schema version %d, this binary knows up to %d: %w",
			d.name(), cur, len(ms), ErrSchemaTooNew)
	}
	for _, m := range ms[cur:] {
		applied, err := applyMigration(ctx, db, d, m)
		if err != nil {
			return fmt.Errorf("%s: migration %d (%s): %w", d.name(), m.version, m.summary, err)
		}
		if applied {
			log.InfoContext(ctx, "applied schema migration", "db", d.name(), "version", m.version, "summary", m.summary)
		}
	}
	return nil
}

// applyMigration applies m unless another process already has; it re-reads
// the version inside the (write-locked) transaction to know.
func applyMigration(ctx context.Context, db *sql.DB, d dialect, m migration) (applied bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer func() {
		if !applied {
			tx.Rollback()
		}
	}()
	cur, err := schemaVersion(ctx, tx)
	if err != nil {
		return false, err
	}
	if cur >= m.version {
		return false, nil
	}
	for _, stmt := range m.stmts {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return false, err
		}
	}
	if _, err := tx.ExecContext(ctx, d.rebind(`INSERT INTO schema_migrations (version, summary, applied_at) VALUES (?, ?, ?)`),
		m.version, m.summary, toNanos(time.Now())); err != nil {
		return false, err
	}
	if err := tx.Commit(); err != nil {
		return false, err
	}
	return true, nil
}

func schemaVersion(ctx context.Context, q querier) (int, error) {
	var v int
	if err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}
