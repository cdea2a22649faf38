package rigetti

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/provider"
	"github.com/qbroker/qbroker/internal/sim/rigettisim"
)

// initialRefresh is the refresh token the emulator starts with, as if the
// operator had logged in and enrolled it.
const initialRefresh = "qcs-initial-refresh-Vb7Kq2Lm9Xz4Rt6Wp1Nc8Hd3"

// signingKey is one RSA key per test binary, so harnesses do not each pay
// for key generation.
var signingKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// clock is a settable clock shared by the emulator and the Minter.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// qcs is rigettisim on loopback behind a counter of token requests.
type qcs struct {
	e      *rigettisim.Emulator
	srv    *httptest.Server
	clock  *clock
	tokens atomic.Int64 // requests that reached the token endpoint
	// wrap, when set, serves token requests instead of the emulator
	// directly (it may call the emulator itself).
	wrap func(w http.ResponseWriter, r *http.Request, emu http.Handler)
}

func newQCS(t *testing.T, mutate func(*rigettisim.Config)) *qcs {
	t.Helper()
	q := &qcs{clock: &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}}
	cfg := rigettisim.Config{RefreshToken: initialRefresh, Now: q.clock.Now, SigningKey: signingKey()}
	if mutate != nil {
		mutate(&cfg)
	}
	e, err := rigettisim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	q.e = e
	q.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/v1/token") {
			q.tokens.Add(1)
			if q.wrap != nil {
				q.wrap(w, r, e)
				return
			}
		}
		e.ServeHTTP(w, r)
	}))
	t.Cleanup(q.srv.Close)
	return q
}

func (q *qcs) issuer() string { return q.srv.URL + q.e.IssuerPath() }

func (q *qcs) minter() *Minter {
	return &Minter{Issuer: q.issuer(), ClientID: q.e.ClientID(), Now: q.clock.Now}
}

// mint mints with root and fails the test on error.
func (q *qcs) mint(t *testing.T, root string) (provider.Credential, string) {
	t.Helper()
	c, s, rotated, err := q.minter().Mint(context.Background(), root, "demo")
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	if c.Secret == "" || c.AccessKeyID != "" || c.SessionToken != "" || s != (provider.Scope{}) {
		t.Fatalf("credential %+v scope %+v", c, s)
	}
	if rotated == "" || rotated == root || rotated == c.Secret {
		t.Fatal("mint returned no new refresh token")
	}
	return c, rotated
}

// getUser calls QCS's authenticated REST route with the access token, as
// the QCS SDK does, and returns the status and the QCS error code.
func (q *qcs) getUser(t *testing.T, access string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, q.srv.URL+"/v1/auth:getUser", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+access)
	resp, err := q.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(b, &e)
	return resp.StatusCode, e.Code
}

// mustBeRejected asserts err is the re-enrol refusal and holds none of
// secrets.
func mustBeRejected(t *testing.T, err error, secrets ...string) {
	t.Helper()
	var te *TokenError
	if !errors.Is(err, ErrRefreshRejected) || !errors.As(err, &te) || te.Status != http.StatusBadRequest || te.Code != "invalid_grant" {
		t.Fatalf("want invalid_grant ErrRefreshRejected, got %v", err)
	}
	if !strings.Contains(err.Error(), "qbroker provider set rigetti") {
		t.Fatalf("refusal does not tell the operator to re-enrol: %v", err)
	}
	noSecrets(t, err, secrets...)
}

// noSecrets fails if err's text holds any of secrets.
func noSecrets(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("want an error")
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Fatalf("error text holds a token: %v", err)
		}
	}
}

// fake serves one canned token answer and records what it was sent.
func fake(t *testing.T, status int, body string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}
