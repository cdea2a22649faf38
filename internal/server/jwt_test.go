package server

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/config"
)

// idp is a minimal OpenID provider: discovery and a JWKS, and tokens
// signed with its key.
type idp struct {
	srv *httptest.Server
	key *rsa.PrivateKey
	kid string
}

func newIDP(t *testing.T) *idp {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &idp{key: key, kid: "k1"}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": p.srv.URL, "jwks_uri": p.srv.URL + "/jwks", "id_token_signing_alg_values_supported": []string{"RS256"}})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &p.key.PublicKey, KeyID: p.kid, Algorithm: "RS256", Use: "sig"}}})
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *idp) token(t *testing.T, claims map[string]any) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: p.key}, (&jose.SignerOptions{}).WithHeader("kid", p.kid).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	base := map[string]any{"iss": p.srv.URL, "aud": "https://broker.test", "sub": "agent-42", "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
	for k, v := range claims {
		base[k] = v
	}
	raw, err := jwt.Signed(sig).Claims(base).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func startDevWithJWT(t *testing.T, p *idp) *env {
	t.Helper()
	d, err := StartDev(context.Background(), DevOptions{
		Addr: "127.0.0.1:0", GatewayAddr: "127.0.0.1:0", SimAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		Auth: config.Auth{JWT: config.JWTAuth{
			Issuers: []config.JWTIssuer{{Name: "corp", Issuer: p.srv.URL, DiscoveryURL: p.srv.URL}},
			Roles: []config.JWTRole{{
				Name: "agent-role", Issuer: "corp", BoundAudiences: []string{"https://broker.test"},
				BoundClaims: map[string][]string{"client_id": {"quantum-*"}}, BoundClaimsType: "glob",
				ClaimMappings: map[string]string{"client_id": "client", "/team/name": "team"}, MaxAge: time.Hour, BrokerRole: DemoRole,
			}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	return &env{t: t, d: d, hc: &http.Client{Timeout: 10 * time.Second}}
}

// The article's sample agent, as plain HTTP: OIDC login with {"role","jwt"},
// then X-Vault-Token for everything after; the job-token flow works with it
// and the token's metadata carries the mapped claims.
func TestOIDCLoginAsTheSampleAgent(t *testing.T) {
	p := newIDP(t)
	e := startDevWithJWT(t, p)
	jwtTok := p.token(t, map[string]any{"client_id": "quantum-nightly", "team": map[string]any{"name": "research"}})
	r := e.broker(http.MethodPost, "/v1/auth/oidc/login", "", `{"role":"agent-role","jwt":"`+jwtTok+`"}`)
	var resp api.Response
	resp.Auth = &api.Auth{}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &resp) != nil || resp.Auth.ClientToken == "" {
		t.Fatalf("oidc login: %s", r)
	}
	vaultToken := resp.Auth.ClientToken
	if resp.Auth.EntityID != "oidc:corp:agent-42" || resp.Auth.Metadata["client"] != "quantum-nightly" || resp.Auth.Metadata["team"] != "research" {
		t.Fatalf("auth block %+v", resp.Auth)
	}
	var info api.TokenInfo
	decodeData(t, e.broker(http.MethodGet, "/v1/auth/token/lookup-self", vaultToken, ""), &info)
	if info.Path != "auth/oidc/login" || info.Role != DemoRole {
		t.Fatalf("lookup-self %+v", info)
	}
	jt := e.mustJobToken(vaultToken, "simulator", 100, "")
	e.mustSubmit(jt.Token, bell())
	e.wantNotInAudit(jwtTok)

	// auth/jwt is the same method under Vault's other mount name.
	want(t, "jwt login", e.broker(http.MethodPost, "/v1/auth/jwt/login", "", `{"role":"agent-role","jwt":"`+jwtTok+`"}`), http.StatusOK)
}

func TestJWTLoginRefusals(t *testing.T) {
	p := newIDP(t)
	e := startDevWithJWT(t, p)
	other := newIDP(t) // another issuer, another key
	for _, c := range []struct {
		name, jwt, reason string
	}{
		{"wrong audience", p.token(t, map[string]any{"client_id": "quantum-a", "aud": "https://elsewhere"}), "audience"},
		{"claim not bound", p.token(t, map[string]any{"client_id": "billing-bot"}), "bound claim mismatch: client_id"},
		{"expired", p.token(t, map[string]any{"client_id": "quantum-a", "exp": time.Now().Add(-time.Hour).Unix(), "iat": time.Now().Add(-2 * time.Hour).Unix()}), "expired"},
		{"too old", p.token(t, map[string]any{"client_id": "quantum-a", "iat": time.Now().Add(-3 * time.Hour).Unix()}), "too old"},
		{"another issuer", other.token(t, map[string]any{"client_id": "quantum-a"}), "issuer"},
		{"tampered", tamper(p.token(t, map[string]any{"client_id": "quantum-a"})), "signature"},
	} {
		r := e.broker(http.MethodPost, "/v1/auth/oidc/login", "", `{"role":"agent-role","jwt":"`+c.jwt+`"}`)
		want(t, c.name, r, http.StatusBadRequest, c.reason)
	}
	want(t, "unknown role", e.broker(http.MethodPost, "/v1/auth/oidc/login", "", `{"role":"nope","jwt":"x.y.z"}`), http.StatusBadRequest, "not found")
	var denied int
	for _, ev := range e.events() {
		if ev.Type == "login" && ev.AuthMethod == "oidc" && ev.Decision == "deny" {
			denied++
		}
	}
	if denied != 7 {
		t.Fatalf("want 7 audited refusals, got %d", denied)
	}
}

// tamper changes the payload's subject without re-signing.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	payload = []byte(strings.Replace(string(payload), `"agent-42"`, `"admin-00"`, 1))
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}
