package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/store"
	"github.com/qbroker/qbroker/internal/store/sqlstore"
	"github.com/qbroker/qbroker/internal/store/storetest"
)

func openAt(t testing.TB, path string) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.OpenSQLite(context.Background(), path, sqlstore.Options{})
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openAt(t, filepath.Join(t.TempDir(), "qbroker.db"))
	})
}

// rawDB opens the file directly, bypassing the store, to look at what is
// really on disk.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "qbroker.db")
	s := openAt(t, path)
	exp := time.Date(2031, 1, 2, 3, 4, 5, 6, time.UTC)
	tok := core.Token{Hash: "h", Accessor: "a", Policies: []string{"root"}, ExpiresAt: exp}
	if err := s.Tokens().Create(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := s.Grants().Create(ctx, core.JobGrant{JTI: "j", Accessor: "a", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Grants().Redeem(ctx, "j", exp.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	s = openAt(t, path)
	defer s.Close()
	got, err := s.Tokens().Get(ctx, "h")
	if err != nil {
		t.Fatalf("token lost across reopen: %v", err)
	}
	if !got.ExpiresAt.Equal(exp) {
		t.Fatalf("ExpiresAt %v, want %v", got.ExpiresAt, exp)
	}
	// Redemption is durable: a restart does not make a grant redeemable again.
	if _, err := s.Grants().Redeem(ctx, "j", exp.Add(-time.Minute)); !errors.Is(err, store.ErrRedeemed) {
		t.Fatalf("Redeem after reopen: %v, want ErrRedeemed", err)
	}
}

func TestMigrationLedger(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qbroker.db")
	openAt(t, path).Close()
	openAt(t, path).Close() // reopening applies nothing twice

	db := rawDB(t, path)
	rows, err := db.Query(`SELECT version, summary, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var versions []int
	for rows.Next() {
		var (
			v       int
			summary string
			at      int64
		)
		if err := rows.Scan(&v, &summary, &at); err != nil {
			t.Fatal(err)
		}
		if summary == "" || at <= 0 {
			t.Errorf("version %d: summary %q applied_at %d", v, summary, at)
		}
		versions = append(versions, v)
	}
	if len(versions) == 0 || versions[0] != 1 {
		t.Fatalf("ledger versions %v, want 1..n", versions)
	}
	for i, v := range versions {
		if v != i+1 {
			t.Fatalf("ledger versions %v, want 1..n without gaps or repeats", versions)
		}
	}
	for _, table := range []string{"roles", "secret_ids", "agents", "tokens", "job_grants", "jobs", "secrets"} {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`, table).Scan(&n); err != nil || n != 1 {
			t.Errorf("table %s: count %d, err %v", table, n, err)
		}
	}
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode %q (err %v), want wal", mode, err)
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qbroker.db")
	openAt(t, path).Close()
	db := rawDB(t, path)
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, summary, applied_at) VALUES (999, 'from the future', 1)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := sqlstore.OpenSQLite(t.Context(), path, sqlstore.Options{})
	if err == nil {
		s.Close()
		t.Fatal("opened a database with a newer schema version")
	}
	if !errors.Is(err, sqlstore.ErrSchemaTooNew) {
		t.Fatalf("error %v, want ErrSchemaTooNew", err)
	}
}

func TestFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "db")
	path := filepath.Join(dir, "qbroker.db")
	s := openAt(t, path)
	defer s.Close()
	if err := s.Tokens().Create(t.Context(), core.Token{Hash: "h", Accessor: "a"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s: mode %v, want 0600", filepath.Base(p), perm)
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("created directory: mode %v, want 0700", perm)
	}
}

// An existing database readable by others is tightened on open.
func TestTightensLooseFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qbroker.db")
	openAt(t, path).Close()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	openAt(t, path).Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("mode %v after reopen, want 0600", perm)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := sqlstore.OpenSQLite(t.Context(), "", sqlstore.Options{}); err == nil {
		t.Error("empty path accepted")
	}
	// A path whose parent is a regular file cannot be created.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := sqlstore.OpenSQLite(t.Context(), filepath.Join(file, "qbroker.db"), sqlstore.Options{}); err == nil {
		s.Close()
		t.Error("path under a regular file accepted")
	}
	// A file that is not a database is refused, not overwritten.
	junk := filepath.Join(t.TempDir(), "junk.db")
	if err := os.WriteFile(junk, []byte("this is not an SQLite database, not even close to one......"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := sqlstore.OpenSQLite(t.Context(), junk, sqlstore.Options{}); err == nil {
		s.Close()
		t.Error("non-database file accepted")
	}
}

// Paths with characters that mean something in a URI still name the file.
func TestPathWithURICharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a dir?x=1#frag%20")
	path := filepath.Join(dir, "q b.db")
	s := openAt(t, path)
	if err := s.Secrets().Put(t.Context(), core.SealedSecret{Name: "k", Blob: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Secrets().Get(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at the given path: %v", err)
	}
}
