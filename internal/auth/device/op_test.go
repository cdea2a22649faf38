package device

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/testidp"
)

// testOP is the shared in-process OP (internal/testidp) under the names
// these tests use.
type testOP struct {
	*testidp.OP
	issuer string
}

func startOP(t *testing.T) *testOP {
	t.Helper()
	op := testidp.Start(t)
	return &testOP{OP: op, issuer: op.Issuer}
}

func (p *testOP) count(path string) int { return p.Count(path) }

func (p *testOP) lastDeviceCode(t *testing.T) string { return p.LastDeviceCode(t) }

func (p *testOP) userAct(t *testing.T, userCode, username, password, action string) {
	t.Helper()
	p.ApproveWith(t, userCode, username, password, action)
}

// fakeClock drives the Flow's Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newFlow(t *testing.T, op *testOP, clk *fakeClock, mut ...func(*Config)) *Flow {
	t.Helper()
	cfg := Config{Issuer: op.issuer, ClientID: "device", ClientSecret: "devsecret",
		Scopes: []string{"openid", "profile"}, Now: clk.Now}
	for _, m := range mut {
		m(&cfg)
	}
	f, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestWrongClientSecret: the real OP refuses the broker's client; the error
// names neither secret.
func TestWrongClientSecret(t *testing.T) {
	op := startOP(t)
	f := newFlow(t, op, newClock(), func(c *Config) { c.ClientSecret = "wrong-secret" })
	_, err := f.Start(context.Background())
	if !errors.Is(err, ErrIdPRefused) {
		t.Fatalf("want ErrIdPRefused, got %v", err)
	}
	if strings.Contains(err.Error(), "wrong-secret") || strings.Contains(err.Error(), "devsecret") {
		t.Fatalf("error leaks a secret: %v", err)
	}
}
