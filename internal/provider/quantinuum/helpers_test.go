package quantinuum

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/provider"
	"github.com/qbroker/qbroker/internal/sim/quantinuumsim"
)

const (
	testEmail    = "quantum-ops@example.com"
	testPassword = "Root-Passw0rd:with-colon-9f3a"
	// jobToken stands for the caller's qbroker job token (the adapter only
	// carries it; the gateway verifies it).
	jobToken = "eyJhbGciOiJFZERTQSJ9.eyJqdGkiOiJqb2ItMSJ9.c2lnbmF0dXJl"

	bellQASM2 = "OPENQASM 2.0;\ninclude \"hqslib1.inc\";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0],q[1];\nmeasure q[0] -> c[0];\nmeasure q[1] -> c[1];\n"
)

// bellJob is the exact body an agent sends to submit the Bell job.
func bellJob(t *testing.T, count int) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"name": "bell", "count": count, "machine": "H1-1E", "language": "OPENQASM 2.0", "program": bellQASM2, "priority": "normal"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// clock is a settable Config.Now shared by the emulator and the minter.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// seen is one request the emulator received.
type seen struct {
	method, path string
	header       http.Header
	body         []byte
}

// emu runs quantinuumsim on loopback behind a recorder of every request.
type emu struct {
	e   *quantinuumsim.Emulator
	url string
	clk *clock

	mu   sync.Mutex
	reqs []seen
}

func newEmu(t *testing.T, mutate func(*quantinuumsim.Config)) *emu {
	t.Helper()
	s := &emu{clk: &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}}
	cfg := quantinuumsim.Config{Email: testEmail, Password: testPassword, Now: s.clk.Now, StepDelay: 2 * time.Millisecond, Seed: 11}
	if mutate != nil {
		mutate(&cfg)
	}
	e, err := quantinuumsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.reqs = append(s.reqs, seen{method: r.Method, path: r.URL.Path, header: r.Header.Clone(), body: body})
		s.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		e.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { srv.Close(); e.Close() })
	s.e, s.url = e, srv.URL
	return s
}

func (s *emu) requests() []seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seen(nil), s.reqs...)
}

func (s *emu) minter() *Minter { return &Minter{BaseURL: s.url, Now: s.clk.Now} }

// passwordLogin logs in directly (as a person would, once) and returns the
// refresh token that becomes the root credential.
func (s *emu) passwordLogin(t *testing.T, extra map[string]string) string {
	t.Helper()
	req := map[string]string{"email": testEmail, "password": testPassword}
	for k, v := range extra {
		req[k] = v
	}
	b, _ := json.Marshal(req)
	resp, err := http.Post(s.url+"/v1/login", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans struct {
		Refresh string `json:"refresh-token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil || resp.StatusCode != 200 || ans.Refresh == "" {
		t.Fatalf("password login: %d %v", resp.StatusCode, err)
	}
	return ans.Refresh
}

// mint mints a credential from root with the emulator's minter.
func (s *emu) mint(t *testing.T, root string) provider.Credential {
	t.Helper()
	c, _, rotated, err := s.minter().Mint(context.Background(), root, "demo")
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	if rotated != "" {
		t.Fatalf("the emulator does not rotate, but Mint returned a rotated root")
	}
	return c
}

// gatewaySend sends one upstream request the way the gateway's frontSend
// builds it: the path as received under the prefix, the body from Prepare
// (or as received for reads and cancels), only Accept, User-Agent and
// Content-Type taken from the caller, then Authenticate. in holds the
// caller's headers (its token included), which must not reach upstream.
func gatewaySend(t *testing.T, a Adapter, base, method, rest, rawQuery string, in http.Header, body []byte, cred provider.Credential) (int, []byte) {
	t.Helper()
	u, err := url.Parse(base + rest)
	if err != nil {
		t.Fatal(err)
	}
	u.RawQuery = rawQuery
	req, err := http.NewRequestWithContext(context.Background(), method, u.String(), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(body))
	if len(body) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "qbroker-gateway")
	if v := in.Get("Accept"); v != "" {
		req.Header.Set("Accept", v)
	}
	if err := a.Authenticate(req.Context(), req, body, cred); err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// agentHeaders are the headers an agent sends: its qbroker token as the
// raw Authorization value, plus a cookie a Nexus-minded client might add.
func agentHeaders() http.Header {
	return http.Header{"Authorization": {jobToken}, "Cookie": {"myqos_id=agent-cookie"}, "Accept": {"application/json"}, "Content-Type": {"application/json"}}
}

func contains(haystack []byte, needles ...string) string {
	for _, n := range needles {
		if n != "" && bytes.Contains(haystack, []byte(n)) {
			return n
		}
	}
	return ""
}

func headerText(h http.Header) []byte {
	var b strings.Builder
	for k, vs := range h {
		for _, v := range vs {
			b.WriteString(k + ": " + v + "\n")
		}
	}
	return []byte(b.String())
}
