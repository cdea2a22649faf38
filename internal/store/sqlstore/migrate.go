package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// migrate brings db to the newest schema version the dialect knows. Each
// migration runs in its own transaction together with its ledger row in
// schema_migrations, so a crash leaves the schema at a whole version. A
// database at a version newer than the dialect knows is refused.
//
// Several processes may migrate the same database at once (replicas
// starting together): every transaction here begins with the dialect's
// migration lock and re-reads the version under it, so each version is
// applied exactly once and the others wait, then find it done.
func migrate(ctx context.Context, db *sql.DB, d dialect, log *slog.Logger) error {
	ms := d.migrations()
	if err := checkMigrations(d.name(), ms); err != nil {
		return err
	}
	if err := inMigrationTx(ctx, db, d, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, d.ledgerDDL())
		return err
	}); err != nil {
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

// errAlreadyApplied rolls back a migration transaction that found its
// version already applied by another process.
var errAlreadyApplied = errors.New("already applied")

// applyMigration applies m unless another process already has; it re-reads
// the version inside the (locked) transaction to know.
func applyMigration(ctx context.Context, db *sql.DB, d dialect, m migration) (applied bool, err error) {
	err = inMigrationTx(ctx, db, d, func(tx *sql.Tx) error {
		cur, err := schemaVersion(ctx, tx)
		if err != nil {
			return err
		}
		if cur >= m.version {
			return errAlreadyApplied
		}
		for _, stmt := range m.stmts {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, d.rebind(`INSERT INTO schema_migrations (version, summary, applied_at) VALUES (?, ?, ?)`),
			m.version, m.summary, toNanos(time.Now()))
		return err
	})
	if errors.Is(err, errAlreadyApplied) {
		return false, nil
	}
	return err == nil, err
}

// inMigrationTx runs fn in a transaction that holds the dialect's
// migration lock, committing if fn succeeds.
func inMigrationTx(ctx context.Context, db *sql.DB, d dialect, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := d.lockMigrations(ctx, tx); err != nil {
		tx.Rollback()
		return fmt.Errorf("take the migration lock: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func schemaVersion(ctx context.Context, q querier) (int, error) {
	var v int
	if err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}
