package jwtauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// fakeClock is the Authenticator's Now; tests advance it explicitly.
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

type testKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv any
}

func (k testKey) public() jose.JSONWebKey {
	jwk := jose.JSONWebKey{Key: k.priv, KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
	return jwk.Public()
}

func newKey(t testing.TB, kid string, alg jose.SignatureAlgorithm) testKey {
	t.Helper()
	var priv any
	var err error
	switch alg {
	case jose.RS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("no key type for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid: kid, alg: alg, priv: priv}
}

// sign mints a compact JWS over claims with k.
func sign(t testing.TB, k testKey, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// testIdP is a locally minted issuer: discovery document and a JWKS we control,
// counting every JWKS fetch.
type testIdP struct {
	srv       *httptest.Server
	mu        sync.Mutex
	published []testKey
	issuer    string // what discovery claims; defaults to srv.URL
	fail      bool
	delay     time.Duration
	fetches   atomic.Int64
}

func newIdP(t testing.TB, keys ...testKey) *testIdP {
	t.Helper()
	p := &testIdP{published: keys}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		iss, fail := p.issuer, p.fail
		p.mu.Unlock()
		if fail {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if iss == "" {
			iss = p.srv.URL
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": iss, "jwks_uri": p.srv.URL + "/jwks",
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256", "EdDSA"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		p.fetches.Add(1)
		p.mu.Lock()
		fail, delay := p.fail, p.delay
		set := jose.JSONWebKeySet{}
		for _, k := range p.published {
			set.Keys = append(set.Keys, k.public())
		}
		p.mu.Unlock()
		time.Sleep(delay)
		if fail {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *testIdP) publish(keys ...testKey) {
	p.mu.Lock()
	p.published = keys
	p.mu.Unlock()
}

func (p *testIdP) setFail(b bool) {
	p.mu.Lock()
	p.fail = b
	p.mu.Unlock()
}

// claimsAt is a valid claim set for issuer iss at time now.
func claimsAt(iss string, now time.Time) map[string]any {
	return map[string]any{
		"iss": iss,
		"sub": "agent-1",
		"aud": []string{"qbroker"},
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(5 * time.Minute).Unix(),
	}
}

func newAuth(t testing.TB, issuers []IssuerConfig, roles []RoleConfig, clk *fakeClock) *Authenticator {
	t.Helper()
	a, err := New(context.Background(), issuers, roles, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

func wantRefused(t *testing.T, err error, reason string) {
	t.Helper()
	var le *LoginError
	if !errors.As(err, &le) {
		t.Fatalf("want LoginError %q, got %v", reason, err)
	}
	if le.Reason != reason {
		t.Fatalf("want reason %q, got %q", reason, le.Reason)
	}
}
