package rigettisim

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testRefresh = "initial-refresh-token-0123456789"
	testSecret  = "client-secret-abcdef"
)

// testKey returns one RSA key per test binary run, generated lazily, so
// that each harness does not pay for key generation.
var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// clock is a settable Config.Now.
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

type harness struct {
	t     *testing.T
	e     *Emulator
	srv   *httptest.Server
	clock *clock
}

func newHarness(t *testing.T, mutate func(*Config)) *harness {
	t.Helper()
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	cfg := Config{RefreshToken: testRefresh, ClientSecret: testSecret, Now: clk.Now, SigningKey: testKey()}
	if mutate != nil {
		mutate(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return &harness{t: t, e: e, srv: srv, clock: clk}
}

func (h *harness) issuer() string { return h.srv.URL + h.e.IssuerPath() }

// post sends a form to the token endpoint; basic is "id:secret" or "".
func (h *harness) post(form url.Values, basic string) (int, map[string]any, http.Header) {
	h.t.Helper()
	req, err := http.NewRequest("POST", h.issuer()+"/v1/token", strings.NewReader(form.Encode()))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic != "" {
		id, secret, _ := strings.Cut(basic, ":")
		req.SetBasicAuth(id, secret)
	}
	return h.send(req)
}

func (h *harness) send(req *http.Request) (int, map[string]any, http.Header) {
	h.t.Helper()
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		h.t.Fatalf("%s %s: not JSON: %s", req.Method, req.URL.Path, b)
	}
	return resp.StatusCode, m, resp.Header
}

// refresh runs the SDK's refresh request (form client_id + refresh_token).
func (h *harness) refresh(tok string) (int, map[string]any) {
	h.t.Helper()
	code, m, _ := h.post(url.Values{"grant_type": {"refresh_token"}, "client_id": {DefaultClientID}, "refresh_token": {tok}}, "")
	return code, m
}

// mustRefresh refreshes and returns the new access and refresh tokens.
func (h *harness) mustRefresh(tok string) (access, refresh string) {
	h.t.Helper()
	code, m := h.refresh(tok)
	if code != 200 {
		h.t.Fatalf("refresh: %d %v", code, m)
	}
	access, _ = m["access_token"].(string)
	refresh, _ = m["refresh_token"].(string)
	if access == "" || refresh == "" || m["token_type"] != "Bearer" || m["expires_in"] != h.e.cfg.AccessTokenTTL.Seconds() {
		h.t.Fatalf("token answer %v", m)
	}
	return access, refresh
}

// api calls a REST route with the whole Authorization value ("" for none).
func (h *harness) api(path, auth string) (int, map[string]any, http.Header) {
	h.t.Helper()
	req, err := http.NewRequest("GET", h.srv.URL+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return h.send(req)
}

func oauthErr(t *testing.T, m map[string]any) string {
	t.Helper()
	code, _ := m["error"].(string)
	if code == "" || m["error_description"] == nil {
		t.Fatalf("not an OAuth error: %v", m)
	}
	return code
}
