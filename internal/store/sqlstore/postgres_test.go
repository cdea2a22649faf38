package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/store"
	"github.com/qbroker/qbroker/internal/store/storetest"
)

// The PostgreSQL tests run against a real server named by this variable
// (`make test` sets it); without it they are skipped, so a plain
// `go test ./...` needs no database.
const pgEnv = "QBROKER_TEST_POSTGRES"

// pgDSN returns the test server's DSN, or skips the test.
func pgDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(pgEnv)
	if dsn == "" {
		t.Skipf("%s is not set: skipping the PostgreSQL tests (set it to a DSN, e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)", pgEnv)
	}
	return dsn
}

// pgSchema creates an empty schema with a random name in the test
// database, dropped (with everything in it) at cleanup, and returns a DSN
// whose search_path is that schema: every run and every test gets tables
// of its own.
func pgSchema(t testing.TB) string {
	t.Helper()
	base := pgDSN(t)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	var b [8]byte
	rand.Read(b[:])
	name := "qbroker_test_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(context.Background(), `CREATE SCHEMA `+name); err != nil {
		admin.Close()
		t.Fatalf("create test schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), `DROP SCHEMA `+name+` CASCADE`); err != nil {
			t.Errorf("drop test schema %s: %v", name, err)
		}
		admin.Close()
	})
	return withSearchPath(t, base, name)
}

// withSearchPath adds search_path to a URL or key=value DSN.
func withSearchPath(t testing.TB, dsn, schema string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("%s is not a valid URL", pgEnv)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}

func openPG(t testing.TB, dsn string, opts Options) *Store {
	t.Helper()
	s, err := OpenPostgres(context.Background(), dsn, opts)
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	return s
}

func TestContractPostgres(t *testing.T) {
	pgDSN(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		return openPG(t, pgSchema(t), Options{})
	})
}

// Replicas starting together: four processes' worth of OpenPostgres on one
// fresh database all succeed, and each version is applied exactly once.
func TestPostgresMigrationRace(t *testing.T) {
	dsn := pgSchema(t)
	const n = 4
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = OpenPostgres(t.Context(), dsn, Options{MaxOpenConns: 2})
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: OpenPostgres: %v", i, err)
		}
		defer stores[i].Close()
	}
	rows, err := stores[0].w.QueryContext(t.Context(), `SELECT version, summary, applied_at FROM schema_migrations ORDER BY version`)
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
		if summary != schemaSummaries()[v-1] || at <= 0 {
			t.Errorf("version %d: summary %q applied_at %d", v, summary, at)
		}
		versions = append(versions, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := make([]int, len(schemaSummaries()))
	for i := range want {
		want[i] = i + 1
	}
	if !slices.Equal(versions, want) {
		t.Fatalf("ledger versions %v, want %v: each once", versions, want)
	}
	// Every replica works on the one schema.
	for i, s := range stores {
		name := fmt.Sprintf("k%d", i)
		if err := s.Secrets().Put(t.Context(), core.SealedSecret{Name: name, Blob: []byte{byte(i)}}); err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		if _, err := stores[(i+1)%n].Secrets().Get(t.Context(), name); err != nil {
			t.Fatalf("replica %d's write not seen by another: %v", i, err)
		}
	}
}

func TestPostgresRefusesNewerSchema(t *testing.T) {
	dsn := pgSchema(t)
	s := openPG(t, dsn, Options{})
	if _, err := s.w.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, summary, applied_at) VALUES (999, 'from the future', 1)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err := OpenPostgres(t.Context(), dsn, Options{})
	if err == nil {
		s.Close()
		t.Fatal("opened a database with a newer schema version")
	}
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("error %v, want ErrSchemaTooNew", err)
	}
}

// The pool limits and the session settings reach every connection.
func TestPostgresSessionSettings(t *testing.T) {
	dsn := pgSchema(t)
	s := openPG(t, dsn, Options{})
	defer s.Close()
	ctx := t.Context()
	if got := s.w.Stats().MaxOpenConnections; got != DefaultMaxOpenConns {
		t.Errorf("MaxOpenConnections %d, want %d", got, DefaultMaxOpenConns)
	}
	for setting, want := range map[string]string{
		"statement_timeout":                   "5s",
		"default_transaction_isolation":       "read committed",
		"idle_in_transaction_session_timeout": "1min",
		"application_name":                    "qbroker",
	} {
		var got string
		if err := s.w.QueryRowContext(ctx, `SELECT current_setting($1)`, setting).Scan(&got); err != nil || got != want {
			t.Errorf("%s = %q (err %v), want %q", setting, got, err, want)
		}
	}

	s2 := openPG(t, dsn, Options{MaxOpenConns: 3, StatementTimeout: 150 * time.Millisecond})
	defer s2.Close()
	if got := s2.w.Stats().MaxOpenConnections; got != 3 {
		t.Errorf("MaxOpenConnections %d, want 3", got)
	}
	// A statement past the timeout is ended by the server.
	begin := time.Now()
	_, err := s2.w.ExecContext(ctx, `SELECT pg_sleep(5)`)
	if err == nil || pgCode(err) != "57014" {
		t.Fatalf("pg_sleep(5) with a 150ms statement timeout: %v, want query_canceled (57014)", err)
	}
	if took := time.Since(begin); took > 3*time.Second {
		t.Fatalf("statement ran %v despite the timeout", took)
	}
	// So is a wait for a row lock: a writer holding a token's row stalls
	// a revocation of it only until the timeout.
	if err := s2.Tokens().Create(ctx, core.Token{Hash: "h", Accessor: "a"}); err != nil {
		t.Fatal(err)
	}
	tx, err := s2.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE tokens SET expires_at = 1 WHERE hash = 'h'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Tokens().Delete(ctx, "h"); pgCode(err) != "57014" {
		t.Fatalf("Delete of a locked row: %v, want query_canceled (57014)", err)
	}
}

// Two Updates locking the same rows in opposite orders deadlock; the
// server aborts one (40P01) and Update runs it again, so both succeed.
func TestPostgresUpdateRetriesDeadlock(t *testing.T) {
	s := openPG(t, pgSchema(t), Options{})
	defer s.Close()
	ctx := t.Context()
	for _, n := range []string{"a", "b"} {
		if err := s.Secrets().Put(ctx, core.SealedSecret{Name: n, Blob: []byte("0")}); err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu    sync.Mutex
		calls int
		both  sync.WaitGroup // both first writes are made (first attempts only)
	)
	both.Add(2)
	update := func(first, second string) error {
		attempt := 0
		return s.Update(ctx, func(tx store.Aggregates) error {
			attempt++
			mu.Lock()
			calls++
			mu.Unlock()
			if err := tx.Secrets().Put(ctx, core.SealedSecret{Name: first, Blob: []byte("1")}); err != nil {
				return err
			}
			if attempt == 1 {
				both.Done()
				both.Wait()
			}
			return tx.Secrets().Put(ctx, core.SealedSecret{Name: second, Blob: []byte("1")})
		})
	}
	errs := make(chan error, 2)
	go func() { errs <- update("a", "b") }()
	go func() { errs <- update("b", "a") }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("Update: %v", err)
		}
	}
	if calls != 3 {
		t.Fatalf("fn ran %d times, want 3 (one deadlock victim run again)", calls)
	}
}

// A revocation committing while a redemption checks the token is never
// missed: Redeem waits for the revoking transaction's lock on the token
// row, then finds the token gone.
func TestPostgresRedeemSeesRevocationInFlight(t *testing.T) {
	s := openPG(t, pgSchema(t), Options{})
	defer s.Close()
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	if err := s.Tokens().Create(ctx, core.Token{Hash: "th", Accessor: "tacc", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	if err := s.Grants().Create(ctx, core.JobGrant{JTI: "j", Accessor: "tacc", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	revoke, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer revoke.Rollback()
	if _, err := revoke.ExecContext(ctx, `DELETE FROM tokens WHERE accessor = 'tacc'`); err != nil {
		t.Fatal(err)
	}
	result := make(chan error, 1)
	go func() {
		_, err := s.Grants().Redeem(ctx, "j", time.Now())
		result <- err
	}()
	select {
	case err := <-result:
		t.Fatalf("Redeem finished (%v) while the revocation of its token was in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := revoke.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-result; !errors.Is(err, store.ErrRevoked) {
		t.Fatalf("Redeem after the revocation committed: %v, want ErrRevoked", err)
	}
}

// An approval decided while the sweeper runs is not reported expired.
func TestPostgresExpireSkipsApprovalDecidedInFlight(t *testing.T) {
	s := openPG(t, pgSchema(t), Options{})
	defer s.Close()
	ctx := t.Context()
	t0 := time.Now().UTC()
	ap := core.Approval{ID: "a", State: core.ApprovalPending, Required: 1, CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)}
	if err := s.Approvals().Create(ctx, ap); err != nil {
		t.Fatal(err)
	}
	vote, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer vote.Rollback()
	if _, err := vote.ExecContext(ctx, `UPDATE approvals SET state = 'approved' WHERE id = 'a'`); err != nil {
		t.Fatal(err)
	}
	type res struct {
		exp []core.Approval
		err error
	}
	result := make(chan res, 1)
	go func() {
		exp, err := s.Approvals().ExpirePending(ctx, t0.Add(time.Hour))
		result <- res{exp, err}
	}()
	time.Sleep(200 * time.Millisecond)
	if err := vote.Commit(); err != nil {
		t.Fatal(err)
	}
	r := <-result
	if r.err != nil || len(r.exp) != 0 {
		t.Fatalf("ExpirePending = %v %v, want nothing: the approval was approved", ids(r.exp), r.err)
	}
	got, err := s.Approvals().Get(ctx, "a")
	if err != nil || got.State != core.ApprovalApproved {
		t.Fatalf("approval %s %v, want approved", got.State, err)
	}
}

func ids(as []core.Approval) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.ID)
	}
	return out
}

// UpdatePipelined returns with the commit in flight; wait reports it, and
// the changes are visible once it has.
func TestPostgresUpdatePipelined(t *testing.T) {
	s := openPG(t, pgSchema(t), Options{})
	defer s.Close()
	ctx := t.Context()
	wait, err := store.UpdatePipelined(ctx, s, func(tx store.Aggregates) error {
		return tx.Secrets().Put(ctx, core.SealedSecret{Name: "k", Blob: []byte("x")})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatalf("wait: %v", err)
	}
	if err := wait(); err != nil {
		t.Fatalf("second wait: %v", err)
	}
	if _, err := s.Secrets().Get(ctx, "k"); err != nil {
		t.Fatalf("pipelined write not committed: %v", err)
	}
	boom := errors.New("boom")
	wait, err = store.UpdatePipelined(ctx, s, func(tx store.Aggregates) error {
		if err := tx.Secrets().Put(ctx, core.SealedSecret{Name: "k2", Blob: []byte("x")}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) || wait != nil {
		t.Fatalf("UpdatePipelined with a failing fn: %v, want boom and no wait", err)
	}
	if _, err := s.Secrets().Get(ctx, "k2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("failed pipelined write persisted: %v", err)
	}
}

// Both dialects create the same tables with the same columns (name, type
// family, nullability) in the same order, and the same indexes (table,
// unique, partial).
func TestSchemaParity(t *testing.T) {
	dsn := pgSchema(t)
	pg := openPG(t, dsn, Options{})
	defer pg.Close()
	lite, err := OpenSQLite(t.Context(), t.TempDir()+"/q.db", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	ctx := t.Context()

	type column struct{ name, typ, null string }
	liteTypes := map[string]string{"TEXT": "text", "INTEGER": "integer", "BLOB": "blob", "REAL": "real"}
	pgTypes := map[string]string{"text": "text", "bigint": "integer", "bytea": "blob", "double precision": "real"}

	var tables []string
	rows, err := lite.w.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	var pgTables []string
	rows, err = pg.w.QueryContext(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		rows.Scan(&n)
		pgTables = append(pgTables, n)
	}
	rows.Close()
	if !slices.Equal(tables, pgTables) || len(tables) < 10 {
		t.Fatalf("tables differ:\n sqlite   %v\n postgres %v", tables, pgTables)
	}

	for _, table := range tables {
		var lc, pc []column
		// A primary key is NOT NULL on PostgreSQL; SQLite's INTEGER
		// PRIMARY KEY (schema_migrations.version) is too, without saying so.
		rows, err := lite.w.QueryContext(ctx, `SELECT name, type, "notnull" OR pk > 0 FROM pragma_table_info(?) ORDER BY cid`, table)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var c column
			var notNull int
			rows.Scan(&c.name, &c.typ, &notNull)
			c.typ, c.null = liteTypes[c.typ], map[bool]string{true: "NO", false: "YES"}[notNull == 1]
			lc = append(lc, c)
		}
		rows.Close()
		rows, err = pg.w.QueryContext(ctx, `SELECT column_name, data_type, is_nullable FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`, table)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var c column
			rows.Scan(&c.name, &c.typ, &c.null)
			c.typ = pgTypes[c.typ]
			pc = append(pc, c)
		}
		rows.Close()
		if !slices.Equal(lc, pc) || len(lc) == 0 {
			t.Errorf("table %s differs:\n sqlite   %v\n postgres %v", table, lc, pc)
		}
	}

	type index struct {
		name, table     string
		unique, partial bool
	}
	var li, pi []index
	rows, err = lite.w.QueryContext(ctx, `SELECT name, tbl_name, sql FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var ix index
		var def string
		rows.Scan(&ix.name, &ix.table, &def)
		ix.unique, ix.partial = strings.Contains(def, "UNIQUE"), strings.Contains(def, " WHERE ")
		li = append(li, ix)
	}
	rows.Close()
	rows, err = pg.w.QueryContext(ctx, `SELECT indexname, tablename, indexdef FROM pg_indexes
		WHERE schemaname = current_schema() AND indexname NOT LIKE '%\_pkey' ORDER BY indexname`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var ix index
		var def string
		rows.Scan(&ix.name, &ix.table, &def)
		ix.unique, ix.partial = strings.Contains(def, "UNIQUE"), strings.Contains(def, " WHERE ")
		pi = append(pi, ix)
	}
	rows.Close()
	if !slices.Equal(li, pi) || len(li) < 10 {
		t.Errorf("indexes differ:\n sqlite   %v\n postgres %v", li, pi)
	}
}
