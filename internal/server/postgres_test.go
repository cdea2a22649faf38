package server

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", to make the test's schema

	"github.com/qbroker/qbroker/internal/config"
)

// envPostgres holds a PostgreSQL DSN for the tests that need a real one
// (`make test` sets it; plain `go test` skips them).
const envPostgres = "QBROKER_TEST_POSTGRES"

// postgresDSN makes a fresh schema for the test and returns a DSN whose
// search_path is that schema; the schema is dropped at cleanup.
func postgresDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv(envPostgres)
	if dsn == "" {
		t.Skipf("%s not set: the PostgreSQL tests run under `make test`", envPostgres)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var b [6]byte
	rand.Read(b[:])
	schema := "qbroker_srv_" + hex.EncodeToString(b[:])
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() { db.Exec("DROP SCHEMA " + schema + " CASCADE") })
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// The whole dev flow on PostgreSQL: login, a simulator job through the
// gateway, and a Forte request held for approval, approved and issued once;
// a restart on the same database keeps everything.
func TestDevOnPostgres(t *testing.T) {
	t.Setenv("QB_TEST_PG_DSN", postgresDSN(t))
	store := config.Store{Type: "postgres", DSNEnv: "QB_TEST_PG_DSN"}
	dir := t.TempDir()
	d := startDevWith(t, DevOptions{Store: store, DataDir: dir})
	e := &env{t: t, d: d, hc: &http.Client{Timeout: 20 * time.Second}}
	agent := e.agent()
	jt := e.mustJobToken(agent, "simulator", 100, "")
	e.mustSubmit(jt.Token, bell())
	a := e.mustHold(agent, DemoRole, "qpu.forte-1", 10, bellInput)
	want(t, "approve", e.vote(d.RootToken, a.ID, "approve", "on postgres"), http.StatusOK)
	want(t, "issue", e.askHeld(agent, DemoRole, "qpu.forte-1", 10, bellInput, a.ID), http.StatusOK)
	want(t, "issue twice", e.askHeld(agent, DemoRole, "qpu.forte-1", 10, bellInput, a.ID), http.StatusConflict, "already used")
	root := d.RootToken
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	d2 := startDevWith(t, DevOptions{Store: store, DataDir: dir})
	e2 := &env{t: t, d: d2, hc: &http.Client{Timeout: 20 * time.Second}}
	want(t, "the approval after a restart", e2.broker(http.MethodGet, "/v1/sys/approvals/"+a.ID, root, ""), http.StatusOK, "")
	want(t, "the agent token after a restart", e2.broker(http.MethodGet, "/v1/auth/token/lookup-self", agent, ""), http.StatusOK, "")
}
