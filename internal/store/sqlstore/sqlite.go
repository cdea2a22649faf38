package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteBusyTimeoutMS is how long a connection waits for a lock held by
// another process before giving up with SQLITE_BUSY.
const sqliteBusyTimeoutMS = 5000

// OpenSQLite opens (creating if needed) the SQLite database at path and
// migrates it to the current schema. The file is created 0600 and, if
// missing, its directory 0700; an existing file readable by others is
// tightened to 0600. A database migrated by a newer binary is refused with
// ErrSchemaTooNew.
func OpenSQLite(ctx context.Context, path string, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: database path: %w", err)
	}
	if err := prepareSQLiteFile(abs, log); err != nil {
		return nil, err
	}

	d := sqliteDialect{}
	uri := "file:" + (&url.URL{Path: abs}).EscapedPath()

	// The writer: IMMEDIATE transactions, durable commits. Writes are
	// serialised by the group-commit batcher (batch.go), not by the pool; the
	// pool's second connection lets statements be prepared (and cached) while
	// the batcher's transaction holds the first.
	// SQLite's -wal and -shm files take the main file's permissions.
	w, err := sql.Open("sqlite", uri+"?_txlock=immediate"+
		fmt.Sprintf("&_busy_timeout=%d", sqliteBusyTimeoutMS)+
		"&_foreign_keys=1&_journal_mode=WAL&_synchronous=FULL")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open writer: %w", err)
	}
	w.SetMaxOpenConns(2)
	w.SetMaxIdleConns(2)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", abs, err)
	}
	if err := migrate(ctx, w, d, log); err != nil {
		w.Close()
		return nil, err
	}

	// The readers: read-only at the SQLite level (mode=ro), and query_only
	// besides. The writer above has already put the file in WAL mode.
	r, err := sql.Open("sqlite", uri+"?mode=ro"+
		fmt.Sprintf("&_busy_timeout=%d", sqliteBusyTimeoutMS)+
		"&_query_only=1")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open readers: %w", err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("sqlite: open readers on %s: %w", abs, err)
	}
	return newStore(d, w, r, log, true), nil
}

// prepareSQLiteFile creates the directory (0700) and the file (0600) before
// SQLite does, since SQLite would create the file with umask-derived
// permissions; an existing file open to group or others is tightened.
func prepareSQLiteFile(path string, log *slog.Logger) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("sqlite: create directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("sqlite: create database file: %w", err)
	}
	fi, err := f.Stat()
	f.Close()
	if err != nil {
		return fmt.Errorf("sqlite: stat database file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		log.Warn("database file was readable by others; tightening to 0600",
			"path", path, "mode", fs.FileMode(perm).String())
		if err := os.Chmod(path, 0o600); err != nil {
			return fmt.Errorf("sqlite: tighten database file mode: %w", err)
		}
	}
	return nil
}

// sqliteDialect is the SQLite dialect.
type sqliteDialect struct{}

var _ dialect = sqliteDialect{}

func (sqliteDialect) name() string { return "sqlite" }

func (sqliteDialect) lockKey(context.Context, querier, int64) error { return nil }
func (sqliteDialect) rebind(q string) string                        { return q }
func (sqliteDialect) migrations() []migration                       { return sqliteMigrations() }
func (sqliteDialect) rowLock(lockMode) string                       { return "" } // write transactions are serial

func (sqliteDialect) ledgerDDL() string {
	return `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		summary    TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	)`
}

// lockMigrations has nothing to do: the writer begins every transaction
// IMMEDIATE, which already excludes every other writer of the file.
func (sqliteDialect) lockMigrations(context.Context, *sql.Tx) error { return nil }

func (sqliteDialect) isUniqueViolation(err error) bool {
	c := sqliteCode(err)
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

func (sqliteDialect) isForeignKeyViolation(err error) bool {
	return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

func (sqliteDialect) isRetryable(err error) bool {
	c := sqliteCode(err) & 0xff // primary code
	return c == sqlite3.SQLITE_BUSY || c == sqlite3.SQLITE_LOCKED
}

// sqliteCode returns the extended result code carried by err, or 0.
func sqliteCode(err error) int {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}
