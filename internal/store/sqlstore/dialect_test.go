package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// Both dialects declare the same schema versions with the same summaries:
// the shared history's.
func TestDialectsShareTheHistory(t *testing.T) {
	for _, d := range []dialect{sqliteDialect{}, postgresDialect{}} {
		ms := d.migrations()
		if err := checkMigrations(d.name(), ms); err != nil {
			t.Fatal(err)
		}
		var sums []string
		for _, m := range ms {
			sums = append(sums, m.summary)
		}
		if !slices.Equal(sums, schemaSummaries()) {
			t.Errorf("%s summaries %q", d.name(), sums)
		}
	}
	if len(sqliteMigrations()) != len(postgresMigrations()) {
		t.Fatal("dialects declare different numbers of versions")
	}
	// A dialect short of a version is refused before it touches a database.
	if err := checkMigrations("short", sqliteMigrations()[:3]); err == nil {
		t.Fatal("a dialect missing a version passed the check")
	}
}

func TestPgRebind(t *testing.T) {
	cases := map[string]string{
		`SELECT 1`:                                 `SELECT 1`,
		`SELECT a FROM t WHERE b = ? AND c = ?`:    `SELECT a FROM t WHERE b = $1 AND c = $2`,
		`WHERE (? = '' OR state = ?) LIMIT ?`:      `WHERE ($1 = '' OR state = $2) LIMIT $3`,
		`SELECT '?', "a?b", ? FROM t`:              `SELECT '?', "a?b", $1 FROM t`,
		`SELECT 'it''s ?', ? FROM t`:               `SELECT 'it''s ?', $1 FROM t`,
		`VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`: `VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
	}
	for in, want := range cases {
		if got := pgRebind(in); got != want {
			t.Errorf("pgRebind(%q) = %q, want %q", in, got, want)
		}
	}
}

// The PostgreSQL error codes are recognised however deeply wrapped, and
// nothing else is taken for them.
func TestPostgresErrorCodes(t *testing.T) {
	d := postgresDialect{}
	wrap := func(code string) error {
		return fmt.Errorf("grant j: %w", fmt.Errorf("commit: %w", &pgconn.PgError{Code: code}))
	}
	for _, c := range []struct {
		code                  string
		unique, fk, retryable bool
	}{
		{"23505", true, false, false},
		{"23503", false, true, false},
		{"40001", false, false, true},
		{"40P01", false, false, true},
		{"23514", false, false, false}, // check violation
		{"57014", false, false, false}, // statement timeout: not retried
	} {
		err := wrap(c.code)
		if d.isUniqueViolation(err) != c.unique || d.isForeignKeyViolation(err) != c.fk || d.isRetryable(err) != c.retryable {
			t.Errorf("%s: unique %v fk %v retryable %v", c.code, d.isUniqueViolation(err), d.isForeignKeyViolation(err), d.isRetryable(err))
		}
	}
	if d.isRetryable(fmt.Errorf("x: %w", context.DeadlineExceeded)) || d.isUniqueViolation(nil) {
		t.Error("a non-PostgreSQL error was classified")
	}
	if got := d.rowLock(lockUpdate); got != " FOR UPDATE" {
		t.Errorf("rowLock(update) = %q", got)
	}
	if got := d.rowLock(lockShare); got != " FOR SHARE" {
		t.Errorf("rowLock(share) = %q", got)
	}
	if got := (sqliteDialect{}).rowLock(lockUpdate); got != "" {
		t.Errorf("sqlite rowLock = %q, want none", got)
	}
}

// A DSN's password never shows in an error, whether the DSN fails to
// parse or the server cannot be reached.
func TestOpenPostgresErrorsHideThePassword(t *testing.T) {
	const pw = "s3cr3t-pw"
	for _, dsn := range []string{
		"postgres://qb:" + pw + "@127.0.0.1:notaport/db",
		"host=127.0.0.1 port=notaport password=" + pw,
		"postgres://qb:" + pw + "@127.0.0.1:1/db?sslmode=disable&connect_timeout=2",
		"host=127.0.0.1 port=1 user=qb password=" + pw + " sslmode=disable connect_timeout=2",
	} {
		s, err := OpenPostgres(t.Context(), dsn, Options{})
		if err == nil {
			s.Close()
			t.Fatalf("opened %q", strings.ReplaceAll(dsn, pw, "***"))
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("error shows the password: %v", strings.ReplaceAll(err.Error(), pw, "***"))
		}
	}
	if _, err := OpenPostgres(t.Context(), "", Options{}); err == nil {
		t.Error("empty DSN accepted")
	}
}

func TestOptionsDefaults(t *testing.T) {
	o := Options{}.withDefaults()
	if o.MaxOpenConns != DefaultMaxOpenConns || o.MaxIdleConns != DefaultMaxOpenConns ||
		o.ConnMaxLifetime != DefaultConnMaxLifetime || o.StatementTimeout != DefaultStatementTimeout {
		t.Fatalf("defaults %+v", o)
	}
	o = Options{MaxOpenConns: 3, MaxIdleConns: -1, ConnMaxLifetime: -1, StatementTimeout: -1}.withDefaults()
	if o.MaxOpenConns != 3 || o.MaxIdleConns != -1 || o.ConnMaxLifetime != -1 || o.StatementTimeout != -1 {
		t.Fatalf("explicit values not kept: %+v", o)
	}
}
