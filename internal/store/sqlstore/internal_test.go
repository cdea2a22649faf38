package sqlstore

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/core"
)

// The reader pool cannot write, whatever SQL reaches it.
func TestReadersAreReadOnly(t *testing.T) {
	s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "q.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.r.ExecContext(t.Context(), `INSERT INTO secrets (name, blob, created_at) VALUES ('k', x'00', 1)`); err == nil {
		t.Fatal("write through the reader pool succeeded")
	}
	if _, err := s.r.ExecContext(t.Context(), `PRAGMA query_only = 0`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.r.ExecContext(t.Context(), `INSERT INTO secrets (name, blob, created_at) VALUES ('k', x'00', 1)`); err == nil {
		t.Fatal("write through the reader pool succeeded once query_only was lifted (mode=ro missing)")
	}
	var sync int
	if err := s.w.QueryRowContext(t.Context(), `PRAGMA synchronous`).Scan(&sync); err != nil || sync != 2 {
		t.Fatalf("writer synchronous = %d (err %v), want 2 (FULL)", sync, err)
	}
	var fk int
	if err := s.w.QueryRowContext(t.Context(), `PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Fatalf("writer foreign_keys = %d (err %v), want 1", fk, err)
	}
}

func TestNanos(t *testing.T) {
	cases := []struct {
		in   time.Time
		want int64
	}{
		{time.Time{}, 0},
		{time.Unix(0, 0), -1},
		{time.Unix(0, 1), 1},
		{time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), math.MaxInt64},
		{time.Date(1, 1, 2, 0, 0, 0, 0, time.UTC), math.MinInt64 + 1},
	}
	for _, c := range cases {
		if got := toNanos(c.in); got != c.want {
			t.Errorf("toNanos(%v) = %d, want %d", c.in, got, c.want)
		}
	}
	if !fromNanos(0).IsZero() {
		t.Error("fromNanos(0) is not the zero time")
	}
	if got := fromNanos(5); !got.Equal(time.Unix(0, 5)) || got.Location() != time.UTC {
		t.Errorf("fromNanos(5) = %v", got)
	}
}

// A cancelled first call does not poison the prepared-statement cache.
func TestStmtCacheSurvivesCancelledContext(t *testing.T) {
	s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "q.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Secrets().Get(cancelled, "k"); err == nil {
		t.Fatal("Get with a cancelled context succeeded")
	}
	if err := s.Secrets().Put(cancelled, core.SealedSecret{Name: "k", Blob: []byte("x")}); err == nil {
		t.Fatal("Put with a cancelled context succeeded")
	}
	if err := s.Secrets().Put(t.Context(), core.SealedSecret{Name: "k", Blob: []byte("x")}); err != nil {
		t.Fatalf("Put after a cancelled call: %v", err)
	}
	if _, err := s.Secrets().Get(t.Context(), "k"); err != nil {
		t.Fatalf("Get after a cancelled call: %v", err)
	}
}

// A pipelined write whose batch commits before the caller looks at fn's
// result still hands back a wait: both channels are ready then, and select
// picks either (found by CI as a nil wait, and a panic, under load).
func TestPipelinedWhenTheBatchCommittedFirst(t *testing.T) {
	for range 200 {
		req := &writeReq{done: make(chan error, 1), ran: make(chan error, 1)}
		req.ran <- nil
		req.done <- nil
		wait, err := req.pipelined()
		if err != nil || wait == nil {
			t.Fatalf("fn ran and its batch committed: wait=%v err=%v, want a wait and no error", wait != nil, err)
		}
		if err := wait(); err != nil {
			t.Fatal(err)
		}
	}
	// fn's own failure, whichever channel is read.
	errBoom := errors.New("boom")
	for range 200 {
		req := &writeReq{done: make(chan error, 1), ran: make(chan error, 1)}
		req.ran <- errBoom
		req.done <- errBoom
		if wait, err := req.pipelined(); !errors.Is(err, errBoom) || wait != nil {
			t.Fatalf("fn failed: err=%v", err)
		}
	}
}
