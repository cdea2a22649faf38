package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestWireFormatAndSignature(t *testing.T) {
	rc, srv := newReceiver(t, nil)
	n, _ := newNotifier(t, srv.URL+"/hook", nil)
	at := time.Date(2026, 3, 4, 5, 6, 7, 890, time.FixedZone("CET", 3600))
	n.Notify(Event{ID: "apr_1:requested", Type: "approval.requested", At: at,
		Text: "*demo-agent* asks to run 100 shots", Data: map[string]any{"shots": 100}})
	waitFor(t, n, settled(1))

	reqs := rc.all()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	for h, want := range map[string]string{
		"Content-Type":  "application/json",
		"User-Agent":    "qbroker-webhook/1",
		HeaderEvent:     "approval.requested",
		HeaderDelivery:  "apr_1:requested",
		"Authorization": "",
	} {
		if got := r.h.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	if err := Verify(testSecret, r.h, r.body, time.Now(), time.Minute); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if err := Verify([]byte("not-the-secret-0123456"), r.h, r.body, time.Now(), time.Minute); !errors.Is(err, ErrBadSignature) {
		t.Errorf("Verify with the wrong secret = %v, want ErrBadSignature", err)
	}
	var got map[string]any
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"text": "*demo-agent* asks to run 100 shots",
		"blocks": []any{map[string]any{"type": "section",
			"text": map[string]any{"type": "mrkdwn", "text": "*demo-agent* asks to run 100 shots"}}},
		"qbroker": map[string]any{"id": "apr_1:requested", "type": "approval.requested",
			"at": "2026-03-04T04:06:07.00000089Z", "data": map[string]any{"shots": float64(100)}},
	}
	if g, w := fmt.Sprint(got), fmt.Sprint(want); g != w {
		t.Errorf("body\n got %s\nwant %s", g, w)
	}
}

func TestDefaultsFillIDAndTime(t *testing.T) {
	rc, srv := newReceiver(t, nil)
	fixed := time.Unix(1_800_000_000, 0)
	n, _ := newNotifier(t, srv.URL, func(c *Config) { c.Now = func() time.Time { return fixed } })
	n.Notify(Event{Type: "budget.threshold", Text: "80% of the monthly budget"})
	n.Notify(Event{Type: "budget.threshold", Text: "90% of the monthly budget"})
	waitFor(t, n, settled(2))
	reqs := rc.all()
	id1, id2 := reqs[0].h.Get(HeaderDelivery), reqs[1].h.Get(HeaderDelivery)
	if !strings.HasPrefix(id1, "evt_") || len(id1) < 20 || id1 == id2 {
		t.Errorf("generated ids %q, %q: want distinct random evt_ ids", id1, id2)
	}
	if ts := reqs[0].h.Get(HeaderTimestamp); ts != "1800000000" {
		t.Errorf("timestamp %s, want Config.Now's", ts)
	}
	if !strings.Contains(string(reqs[0].body), `"at":"2027-01-15T08:00:00Z"`) {
		t.Errorf("at not filled from Config.Now: %s", reqs[0].body)
	}
}

func TestInOrder(t *testing.T) {
	rc, srv := newReceiver(t, nil)
	n, _ := newNotifier(t, srv.URL, nil)
	for i := range 100 {
		n.Notify(Event{ID: "e" + strconv.Itoa(i), Type: "anomaly.finding", Text: "finding " + strconv.Itoa(i)})
	}
	s := waitFor(t, n, settled(100))
	if s.Sent != 100 || s.Failed != 0 || s.Dropped != 0 {
		t.Fatalf("stats %+v", s)
	}
	for i, r := range rc.all() {
		if got := r.h.Get(HeaderDelivery); got != "e"+strconv.Itoa(i) {
			t.Fatalf("request %d is %s: out of order", i, got)
		}
		if err := Verify(testSecret, r.h, r.body, time.Now(), time.Minute); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
}

func TestRetryKeepsIDAndOrderWithFreshSignatures(t *testing.T) {
	rc, srv := newReceiver(t, func(n int, _ http.ResponseWriter) int {
		if n <= 2 {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	var tick atomic.Int64
	base := time.Unix(1_700_000_000, 0)
	n, _ := newNotifier(t, srv.URL, func(c *Config) {
		c.Now = func() time.Time { return base.Add(time.Duration(tick.Add(1)) * time.Second) }
	})
	n.Notify(Event{ID: "first", Type: "approval.requested", Text: "one"})
	n.Notify(Event{ID: "second", Type: "approval.approved", Text: "two"})
	s := waitFor(t, n, settled(2))
	if s.Sent != 2 || s.Failed != 0 || s.Retries != 2 {
		t.Fatalf("stats %+v, want 2 sent after 2 retries", s)
	}
	reqs := rc.all()
	var ids []string
	seen := map[string]bool{}
	for _, r := range reqs {
		ids = append(ids, r.h.Get(HeaderDelivery))
		ts := r.h.Get(HeaderTimestamp)
		if seen[ts] {
			t.Errorf("timestamp %s reused across attempts", ts)
		}
		seen[ts] = true
		if err := Verify(testSecret, r.h, r.body, base.Add(10*time.Second), time.Minute); err != nil {
			t.Errorf("attempt with ts %s: %v", ts, err)
		}
	}
	if got := strings.Join(ids, ","); got != "first,first,first,second" {
		t.Fatalf("deliveries %s, want first×3 then second", got)
	}
	if string(reqs[0].body) != string(reqs[2].body) {
		t.Error("body changed between attempts")
	}
}

func TestRetryableStatuses(t *testing.T) {
	for _, code := range []int{500, 502, 503, 504, 408, 429} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			rc, srv := newReceiver(t, func(n int, _ http.ResponseWriter) int {
				if n == 1 {
					return code
				}
				return http.StatusAccepted
			})
			n, _ := newNotifier(t, srv.URL, nil)
			n.Notify(Event{Type: "approval.expired", Text: "x"})
			s := waitFor(t, n, settled(1))
			if s.Sent != 1 || s.Retries != 1 || len(rc.all()) != 2 {
				t.Fatalf("stats %+v, %d requests; want one retry then success", s, len(rc.all()))
			}
		})
	}
}

func TestClientErrorsGiveUpAtOnce(t *testing.T) {
	for _, code := range []int{400, 401, 403, 404, 410, 413, 422} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			rc, srv := newReceiver(t, func(n int, _ http.ResponseWriter) int {
				if n == 1 {
					return code
				}
				return http.StatusOK
			})
			n, _ := newNotifier(t, srv.URL, nil)
			n.Notify(Event{ID: "refused", Type: "approval.denied", Text: "x"})
			n.Notify(Event{ID: "next", Type: "approval.denied", Text: "y"})
			s := waitFor(t, n, settled(2))
			if s.Failed != 1 || s.Sent != 1 || s.Retries != 0 {
				t.Fatalf("stats %+v, want the first given up without retry", s)
			}
			reqs := rc.all()
			if len(reqs) != 2 || reqs[1].h.Get(HeaderDelivery) != "next" {
				t.Fatalf("%d requests, want refused then next", len(reqs))
			}
		})
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	rc, srv := newReceiver(t, func(int, http.ResponseWriter) int { return http.StatusServiceUnavailable })
	n, _ := newNotifier(t, srv.URL, func(c *Config) { c.MaxAttempts = 4 })
	n.Notify(Event{Type: "anomaly.finding", Text: "x"})
	s := waitFor(t, n, settled(1))
	if s.Failed != 1 || s.Retries != 3 || len(rc.all()) != 4 {
		t.Fatalf("stats %+v, %d requests; want 4 attempts then give up", s, len(rc.all()))
	}
}

func TestRetryAfterHonouredWithinMaxBackoff(t *testing.T) {
	rc, srv := newReceiver(t, func(n int, w http.ResponseWriter) int {
		if n == 1 {
			w.Header().Set("Retry-After", "2")
			return http.StatusTooManyRequests
		}
		return http.StatusOK
	})
	n, _ := newNotifier(t, srv.URL, func(c *Config) { c.MaxBackoff = 300 * time.Millisecond })
	n.Notify(Event{Type: "anomaly.finding", Text: "x"})
	waitFor(t, n, settled(1))
	reqs := rc.all()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	// InitialBackoff is 1ms: the wait comes from Retry-After, capped at
	// MaxBackoff rather than the 2s asked for.
	if gap := reqs[1].at.Sub(reqs[0].at); gap < 290*time.Millisecond || gap > 1500*time.Millisecond {
		t.Fatalf("waited %s between attempts, want about 300ms", gap)
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	var hits atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(target.Close)
	callers := &http.Client{} // follows redirects by default
	for _, tc := range []struct {
		name   string
		code   int
		client *http.Client
	}{
		{"302 default client", http.StatusFound, nil},
		{"307 caller client that follows", http.StatusTemporaryRedirect, callers},
		{"308 caller client that follows", http.StatusPermanentRedirect, callers},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc, srv := newReceiver(t, func(_ int, w http.ResponseWriter) int {
				w.Header().Set("Location", target.URL+"/stolen")
				return tc.code
			})
			n, _ := newNotifier(t, srv.URL, func(c *Config) { c.Client = tc.client })
			n.Notify(Event{Type: "approval.requested", Text: "x"})
			s := waitFor(t, n, settled(1))
			if s.Failed != 1 || s.Retries != 0 || len(rc.all()) != 1 {
				t.Fatalf("stats %+v, %d requests; want one attempt, a failure", s, len(rc.all()))
			}
			if hits.Load() != 0 {
				t.Fatal("the redirect target received the event")
			}
		})
	}
	if callers.CheckRedirect != nil {
		t.Fatal("the caller's client was modified")
	}
}

func TestHangingReceiverNeverBlocksNotify(t *testing.T) {
	release := make(chan struct{})
	var arrived atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // lets the server notice the client leaving
		arrived.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	n, logs := newNotifier(t, srv.URL, func(c *Config) { c.Timeout = 5 * time.Second; c.QueueSize = 0 })

	n.Notify(Event{ID: "stuck", Type: "approval.requested", Text: "first"})
	for arrived.Load() == 0 { // the worker is now stuck on the receiver
		time.Sleep(time.Millisecond)
	}
	const calls = 10_000
	start := time.Now()
	for i := range calls {
		n.Notify(Event{Type: "approval.requested", Text: "approve job " + strconv.Itoa(i), Data: map[string]int{"shots": i}})
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Fatalf("%d Notify calls took %s with a hanging receiver", calls, took)
	}
	s := n.Stats()
	accepted := uint64(calls) - s.Dropped
	if accepted != DefaultQueueSize || s.Queued != DefaultQueueSize+1 || s.Sent != 0 {
		t.Fatalf("stats %+v: want the queue (%d) full, the rest dropped", s, DefaultQueueSize)
	}

	if got := strings.Count(logs.String(), "webhook event dropped"); got < 1 || got > 3 {
		t.Errorf("%d drop warnings, want a rate-limited few", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	err := n.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want DeadlineExceeded", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Close took %s past its deadline", took)
	}
	if s := n.Stats(); s.Failed != DefaultQueueSize+1 || s.Queued != 0 {
		t.Fatalf("after Close: %+v, want everything queued counted failed", s)
	}
	// Every drop is accounted for in the log, by a line or a count.
	var total uint64
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec struct {
			Msg   string
			Also  uint64 `json:"also_dropped_since_last_warning"`
			Count uint64
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasPrefix(rec.Msg, "webhook event dropped"):
			total += 1 + rec.Also
		case strings.HasPrefix(rec.Msg, "webhook events dropped"):
			total += rec.Count
		}
	}
	if s := n.Stats(); total != s.Dropped {
		t.Errorf("logs account for %d drops, stats say %d", total, s.Dropped)
	}
}

func TestDeadPortRetriesThenGivesUp(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	n, logs := newNotifier(t, "http://"+addr+"/hook", func(c *Config) { c.MaxAttempts = 3 })
	start := time.Now()
	for range 3 {
		n.Notify(Event{Type: "anomaly.finding", Text: "x"})
	}
	if took := time.Since(start); took > 20*time.Millisecond {
		t.Fatalf("Notify took %s with a dead receiver", took)
	}
	s := waitFor(t, n, settled(3))
	if s.Failed != 3 || s.Retries != 6 || s.Sent != 0 {
		t.Fatalf("stats %+v, want 3 failed after 2 retries each", s)
	}
	if !strings.Contains(logs.String(), "refused") {
		t.Errorf("the transport error is not logged: %s", logs)
	}
}

func TestCloseDrains(t *testing.T) {
	rc, srv := newReceiver(t, func(n int, _ http.ResponseWriter) int {
		time.Sleep(5 * time.Millisecond)
		if n%3 == 0 {
			return http.StatusInternalServerError // one retry every few
		}
		return http.StatusOK
	})
	n, _ := newNotifier(t, srv.URL, nil)
	for i := range 20 {
		n.Notify(Event{ID: "e" + strconv.Itoa(i), Type: "approval.requested", Text: "x"})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if s := n.Stats(); s.Sent != 20 || s.Queued != 0 {
		t.Fatalf("after Close: %+v, want all 20 sent", s)
	}
	// Attempts come in order: e0 (retried as needed), then e1, and so on.
	next := 0
	for _, r := range rc.all() {
		switch id := r.h.Get(HeaderDelivery); id {
		case "e" + strconv.Itoa(next):
			next++
		case "e" + strconv.Itoa(next-1): // a retry of the one before
		default:
			t.Fatalf("delivery %s out of order after e%d", id, next-1)
		}
	}
	if next != 20 {
		t.Fatalf("deliveries reached e%d, want e19", next-1)
	}

	n.Notify(Event{Type: "approval.requested", Text: "late"})
	if s := n.Stats(); s.Dropped != 1 {
		t.Fatalf("Notify after Close: %+v, want dropped", s)
	}
	if err := n.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestConcurrentNotifyAndClose(t *testing.T) {
	_, srv := newReceiver(t, nil)
	n, _ := newNotifier(t, srv.URL, func(c *Config) { c.QueueSize = 16 })
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				n.Notify(Event{Type: "anomaly.finding", Text: "x"})
			}
		})
	}
	time.Sleep(time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	s := n.Stats()
	if s.Sent+s.Failed+s.Dropped != 8*200 || s.Queued != 0 {
		t.Fatalf("stats %+v do not account for %d events", s, 8*200)
	}
}

func TestDataIsSnapshotAtNotify(t *testing.T) {
	release := make(chan struct{})
	rc, srv := newReceiver(t, func(int, http.ResponseWriter) int { <-release; return http.StatusOK })
	n, _ := newNotifier(t, srv.URL, nil)
	data := map[string]string{"agent": "demo-agent"}
	n.Notify(Event{Type: "approval.requested", Text: "x", Data: data})
	data["agent"] = "changed-later"
	close(release)
	waitFor(t, n, settled(1))
	if b := string(rc.all()[0].body); !strings.Contains(b, "demo-agent") || strings.Contains(b, "changed-later") {
		t.Fatalf("body %s: want the data as it was at Notify", b)
	}
}

func TestBadEventsRefused(t *testing.T) {
	rc, srv := newReceiver(t, nil)
	n, logs := newNotifier(t, srv.URL, nil)
	n.Notify(Event{Type: "approval.requested\r\nX-Evil: yes", Text: "x"})
	n.Notify(Event{ID: "has space", Type: "approval.requested", Text: "x"})
	n.Notify(Event{Type: "anomaly.finding", Text: "x", Data: make(chan int)})
	n.Notify(Event{Type: "anomaly.finding", Text: "ok"})
	s := waitFor(t, n, settled(4))
	if s.Failed != 3 || s.Sent != 1 || len(rc.all()) != 1 {
		t.Fatalf("stats %+v, %d requests; want 3 refused, 1 sent", s, len(rc.all()))
	}
	if strings.Contains(logs.String(), "X-Evil") || strings.Contains(logs.String(), "has space") {
		t.Fatalf("a malformed type or id was echoed into the log: %s", logs)
	}
}

func TestNewValidates(t *testing.T) {
	ok := Config{URL: "https://hooks.example/x", Secret: testSecret}
	tests := map[string]func(*Config){
		"no url":              func(c *Config) { c.URL = "" },
		"ftp":                 func(c *Config) { c.URL = "ftp://hooks.example/x?token=querysecret" },
		"no scheme":           func(c *Config) { c.URL = "hooks.example/x?token=querysecret" },
		"no host":             func(c *Config) { c.URL = "https:///x?token=querysecret" },
		"port only":           func(c *Config) { c.URL = "https://:443/x?token=querysecret" },
		"userinfo":            func(c *Config) { c.URL = "https://user:querysecret@hooks.example/x" },
		"unparsable":          func(c *Config) { c.URL = "https://hooks.example/%zz?token=querysecret" },
		"short secret":        func(c *Config) { c.Secret = []byte("fifteen-bytes!!") },
		"no secret":           func(c *Config) { c.Secret = nil },
		"negative queue":      func(c *Config) { c.QueueSize = -1 },
		"negative attempts":   func(c *Config) { c.MaxAttempts = -1 },
		"negative timeout":    func(c *Config) { c.Timeout = -time.Second },
		"backoff over max":    func(c *Config) { c.InitialBackoff = time.Minute },
		"negative backoff":    func(c *Config) { c.InitialBackoff = -time.Second },
		"negative maxbackoff": func(c *Config) { c.MaxBackoff = -time.Second },
	}
	for name, mod := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := ok
			mod(&cfg)
			n, err := New(cfg)
			if err == nil {
				n.Close(context.Background())
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %v does not wrap ErrInvalidConfig", err)
			}
			if strings.Contains(err.Error(), "querysecret") || strings.Contains(err.Error(), string(testSecret)) {
				t.Errorf("error leaks a secret: %v", err)
			}
		})
	}
	t.Run("every problem at once", func(t *testing.T) {
		_, err := New(Config{URL: "ftp://x", QueueSize: -1})
		if err == nil || !strings.Contains(err.Error(), "scheme") || !strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), "queue") {
			t.Fatalf("err = %v, want scheme, secret and queue problems", err)
		}
	})
	n, err := New(ok)
	if err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}
