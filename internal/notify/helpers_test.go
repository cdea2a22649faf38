package notify

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

var testSecret = []byte("test-hmac-secret-0123456789")

// received is one request as a receiver saw it.
type received struct {
	h    http.Header
	body []byte
	at   time.Time
}

// receiver records every request and answers with respond(n), n counting
// requests from 1.
type receiver struct {
	mu      sync.Mutex
	reqs    []received
	respond func(n int, w http.ResponseWriter) int
}

func newReceiver(t *testing.T, respond func(n int, w http.ResponseWriter) int) (*receiver, *httptest.Server) {
	t.Helper()
	rc := &receiver{respond: respond}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, received{h: r.Header.Clone(), body: body, at: time.Now()})
		n := len(rc.reqs)
		rc.mu.Unlock()
		code := http.StatusNoContent
		if rc.respond != nil {
			code = rc.respond(n, w)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	return rc, srv
}

func (rc *receiver) all() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.reqs...)
}

// syncBuffer collects log output written from the worker goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newNotifier starts a Notifier with test-sized backoffs and a captured
// debug log, closed at the end of the test.
func newNotifier(t *testing.T, url string, mod func(*Config)) (*Notifier, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	cfg := Config{
		URL:            url,
		Secret:         testSecret,
		InitialBackoff: time.Millisecond,
		MaxBackoff:     10 * time.Millisecond,
		Timeout:        2 * time.Second,
		Logger:         slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_ = n.Close(ctx)
	})
	return n, logs
}

// waitFor polls until cond holds on n's stats, or fails the test.
func waitFor(t *testing.T, n *Notifier, cond func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := n.Stats()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out; stats %+v", s)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func settled(want uint64) func(Stats) bool {
	return func(s Stats) bool { return s.Sent+s.Failed >= want && s.Queued == 0 }
}
