package jwtauth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// localSetup: one discovery-based issuer with RS256, ES256 and EdDSA keys, a
// second issuer ("other") for role/issuer mismatches, and a role per feature.
type localSetup struct {
	clk             *fakeClock
	idp, other      *testIdP
	rsa, ec, ed     testKey
	otherKey        testKey
	a               *Authenticator
	issuer, issuer2 string
}

func newLocal(t *testing.T) *localSetup {
	t.Helper()
	s := &localSetup{clk: newClock()}
	s.rsa = newKey(t, "rsa-1", jose.RS256)
	s.ec = newKey(t, "ec-1", jose.ES256)
	s.ed = newKey(t, "ed-1", jose.EdDSA)
	s.otherKey = newKey(t, "other-1", jose.RS256)
	s.idp = newIdP(t, s.rsa, s.ec, s.ed)
	s.other = newIdP(t, s.otherKey)
	s.issuer, s.issuer2 = s.idp.srv.URL, s.other.srv.URL
	issuers := []IssuerConfig{
		{Name: "corp", Issuer: s.issuer, DiscoveryURL: s.issuer},
		{Name: "other", Issuer: s.issuer2, DiscoveryURL: s.issuer2 + "/.well-known/openid-configuration"},
	}
	roles := []RoleConfig{
		{Name: "agent", Issuer: "corp", BoundAudiences: []string{"qbroker", "qbroker-alt"}, BrokerRole: "submit-only",
			ClaimMappings: map[string]string{"team": "team", "/ext/tier": "tier", "n": "number"}},
		{Name: "bound-sub", Issuer: "corp", BoundAudiences: []string{"qbroker"}, BoundSubject: "agent-1"},
		{Name: "bound-exact", Issuer: "corp", BoundAudiences: []string{"qbroker"},
			BoundClaims: map[string][]string{"team": {"quantum", "physics"}, "/ext/tier": {"gold"}}},
		{Name: "bound-glob", Issuer: "corp", BoundAudiences: []string{"qbroker"}, BoundClaimsType: "glob",
			BoundClaims: map[string][]string{"ref": {"refs/heads/release-*", "refs/tags/v*.*"}}},
		{Name: "fresh", Issuer: "corp", BoundAudiences: []string{"qbroker"}, MaxAge: time.Minute},
		{Name: "by-email", Issuer: "corp", BoundAudiences: []string{"qbroker"}, UserClaim: "email"},
		{Name: "other-role", Issuer: "other", BoundAudiences: []string{"qbroker"}},
	}
	s.a = newAuth(t, issuers, roles, s.clk)
	return s
}

func (s *localSetup) claims() map[string]any { return claimsAt(s.issuer, s.clk.Now()) }

func TestLoginAcceptsRS256ES256EdDSA(t *testing.T) {
	s := newLocal(t)
	for _, k := range []testKey{s.rsa, s.ec, s.ed} {
		t.Run(string(k.alg), func(t *testing.T) {
			c := s.claims()
			c["team"] = "quantum"
			c["ext"] = map[string]any{"tier": "gold"}
			c["n"] = 12345678901234567
			id, err := s.a.Login(context.Background(), "agent", sign(t, k, c))
			if err != nil {
				t.Fatal(err)
			}
			if id.Subject != "agent-1" || id.Name != "agent-1" || id.Role != "agent" || id.BrokerRole != "submit-only" || id.Issuer != s.issuer {
				t.Fatalf("identity %+v", id)
			}
			if !id.ExpiresAt.Equal(s.clk.Now().Add(5*time.Minute)) || !id.IssuedAt.Equal(s.clk.Now()) {
				t.Fatalf("times %v %v", id.IssuedAt, id.ExpiresAt)
			}
			want := map[string]string{"team": "quantum", "tier": "gold", "number": "12345678901234567"}
			if len(id.Metadata) != len(want) {
				t.Fatalf("metadata %v", id.Metadata)
			}
			for k, v := range want {
				if id.Metadata[k] != v {
					t.Fatalf("metadata %v, want %v", id.Metadata, want)
				}
			}
		})
	}
	if n := s.idp.fetches.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times for three logins with known kids, want 1", n)
	}
}

func TestLoginRefusals(t *testing.T) {
	s := newLocal(t)
	now := s.clk.Now()
	stranger := newKey(t, "rsa-1", jose.RS256) // same kid as the IdP's key, different key
	tok := func(mut func(c map[string]any)) string {
		c := s.claims()
		mut(c)
		return sign(t, s.rsa, c)
	}
	valid := tok(func(map[string]any) {})
	parts := strings.Split(valid, ".")
	cases := []struct {
		name, role, token, reason string
	}{
		{"unknown role", "nope", valid, ReasonUnknownRole},
		{"garbage", "agent", "not.a.jwt", ReasonMalformed},
		{"two segments", "agent", parts[0] + "." + parts[1], ReasonMalformed},
		{"expired", "agent", tok(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() }), ReasonExpired},
		{"expired beyond leeway", "agent", tok(func(c map[string]any) { c["exp"] = now.Add(-11 * time.Second).Unix() }), ReasonExpired},
		{"no exp", "agent", tok(func(c map[string]any) { delete(c, "exp") }), ReasonMissingExpiry},
		{"exp not a number", "agent", tok(func(c map[string]any) { c["exp"] = "tomorrow" }), ReasonMalformed},
		{"not yet valid", "agent", tok(func(c map[string]any) { c["nbf"] = now.Add(time.Minute).Unix() }), ReasonNotYetValid},
		{"iat in the future", "agent", tok(func(c map[string]any) { c["iat"] = now.Add(time.Minute).Unix() }), ReasonIssuedInFuture},
		{"unknown iss", "agent", tok(func(c map[string]any) { c["iss"] = "https://evil.example" }), ReasonIssuer},
		{"iss with trailing slash", "agent", tok(func(c map[string]any) { c["iss"] = s.issuer + "/" }), ReasonIssuer},
		{"iss of another configured issuer", "agent", tok(func(c map[string]any) { c["iss"] = s.issuer2 }), ReasonIssuerMismatch},
		{"corp token for other's role", "other-role", valid, ReasonIssuerMismatch},
		{"wrong aud", "agent", tok(func(c map[string]any) { c["aud"] = "someone-else" }), ReasonAudience},
		{"no aud", "agent", tok(func(c map[string]any) { delete(c, "aud") }), ReasonAudience},
		{"bound_subject", "bound-sub", tok(func(c map[string]any) { c["sub"] = "agent-2" }), ReasonSubject},
		{"bound_claims exact value", "bound-exact", tok(func(c map[string]any) {
			c["team"] = "quantum-x"
			c["ext"] = map[string]any{"tier": "gold"}
		}), ReasonBoundClaim + ": team"},
		{"bound_claims nested value", "bound-exact", tok(func(c map[string]any) {
			c["team"] = "quantum"
			c["ext"] = map[string]any{"tier": "silver"}
		}), ReasonBoundClaim + ": /ext/tier"},
		{"bound_claims missing", "bound-exact", tok(func(c map[string]any) { c["team"] = "quantum" }), ReasonBoundClaim + ": /ext/tier"},
		{"bound_claims array none match", "bound-exact", tok(func(c map[string]any) {
			c["team"] = []string{"chemistry", "biology"}
			c["ext"] = map[string]any{"tier": "gold"}
		}), ReasonBoundClaim + ": team"},
		{"bound_claims exact is not glob", "bound-exact", tok(func(c map[string]any) {
			c["team"] = "*"
			c["ext"] = map[string]any{"tier": "gold"}
		}), ReasonBoundClaim + ": team"},
		{"bound_claims glob", "bound-glob", tok(func(c map[string]any) { c["ref"] = "refs/heads/main" }), ReasonBoundClaim + ": ref"},
		{"bound_claims glob prefix only", "bound-glob", tok(func(c map[string]any) { c["ref"] = "refs/tags/v1" }), ReasonBoundClaim + ": ref"},
		{"too old", "fresh", tok(func(c map[string]any) { c["iat"] = now.Add(-2 * time.Minute).Unix() }), ReasonTooOld},
		{"max_age needs iat", "fresh", tok(func(c map[string]any) { delete(c, "iat") }), ReasonMissingIssuedAt},
		{"user claim missing", "by-email", valid, ReasonUserClaim},
		{"user claim not a string", "by-email", tok(func(c map[string]any) { c["email"] = []string{"a@b"} }), ReasonUserClaim},
		{"claim mapping not scalar", "agent", tok(func(c map[string]any) { c["team"] = map[string]any{"x": 1} }), ReasonClaimMapping},
		{"unknown kid", "agent", sign(t, newKey(t, "ghost", jose.RS256), s.claims()), ReasonUnknownKey},
		{"bad signature (right kid, wrong key)", "agent", sign(t, stranger, s.claims()), ReasonSignature},
		{"tampered payload", "agent", parts[0] + "." + b64(t, map[string]any{
			"iss": s.issuer, "sub": "root", "aud": "qbroker", "exp": now.Add(time.Hour).Unix()}) + "." + parts[2], ReasonSignature},
		{"signature stripped", "agent", parts[0] + "." + parts[1] + ".", ReasonSignature},
		{"key type confusion (ES256 header, RSA kid)", "agent", sign(t, testKey{kid: "rsa-1", alg: jose.ES256, priv: s.ec.priv}, s.claims()), ReasonSignature},
		{"alg none", "agent", unsigned(t, map[string]any{"alg": "none", "typ": "JWT"}, s.claims()), ReasonAlgorithm},
		{"alg None", "agent", unsigned(t, map[string]any{"alg": "None", "typ": "JWT"}, s.claims()), ReasonAlgorithm},
		{"HS256 with the RSA public key", "agent", hs256WithPublicKey(t, s.rsa, s.claims()), ReasonAlgorithm},
		{"alg not in allow-list", "agent", unsigned(t, map[string]any{"alg": "PS256", "kid": "rsa-1"}, s.claims()), ReasonAlgorithm},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.a.Login(context.Background(), tc.role, tc.token)
			wantRefused(t, err, tc.reason)
			if !errors.Is(err, &LoginError{Reason: tc.reason}) {
				t.Fatal("errors.Is does not match the reason")
			}
			for _, secret := range []string{tc.token, parts[2]} {
				if len(secret) > 20 && strings.Contains(err.Error(), secret) {
					t.Fatal("error leaks token material")
				}
			}
		})
	}

	// The boundaries that must still pass: leeway, glob matches, arrays, max age.
	ok := []struct{ name, role, token string }{
		{"expired within leeway", "agent", tok(func(c map[string]any) { c["exp"] = now.Add(-9 * time.Second).Unix() })},
		{"nbf within leeway", "agent", tok(func(c map[string]any) { c["nbf"] = now.Add(9 * time.Second).Unix() })},
		{"aud as string, second bound audience", "agent", tok(func(c map[string]any) { c["aud"] = "qbroker-alt" })},
		{"bound_claims array any element", "bound-exact", tok(func(c map[string]any) {
			c["team"] = []string{"chemistry", "physics"}
			c["ext"] = map[string]any{"tier": "gold"}
		})},
		{"bound_claims glob branch", "bound-glob", tok(func(c map[string]any) { c["ref"] = "refs/heads/release-2026.11" })},
		{"bound_claims glob tag", "bound-glob", tok(func(c map[string]any) { c["ref"] = "refs/tags/v1.2" })},
		{"max age just inside", "fresh", tok(func(c map[string]any) { c["iat"] = now.Add(-time.Minute).Unix() })},
		{"no iat without max_age", "agent", tok(func(c map[string]any) { delete(c, "iat") })},
	}
	for _, tc := range ok {
		t.Run("ok/"+tc.name, func(t *testing.T) {
			if _, err := s.a.Login(context.Background(), tc.role, tc.token); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestAlgorithmRefusedBeforeAnyKeyLookup(t *testing.T) {
	s := newLocal(t)
	for _, raw := range []string{
		unsigned(t, map[string]any{"alg": "none"}, s.claims()),
		hs256WithPublicKey(t, s.rsa, s.claims()),
		unsigned(t, map[string]any{"alg": "HS512", "kid": "rsa-1"}, s.claims()),
	} {
		_, err := s.a.Login(context.Background(), "agent", raw)
		wantRefused(t, err, ReasonAlgorithm)
	}
	if n := s.idp.fetches.Load(); n != 0 {
		t.Fatalf("refused algorithms caused %d JWKS fetches", n)
	}
}

// TestKubernetesServiceAccountToken: a projected SA token as the API server
// mints it, keys from a static JWKS URL (the API server's /openid/v1/jwks).
func TestKubernetesServiceAccountToken(t *testing.T) {
	clk := newClock()
	k := newKey(t, "k8s-sa-1", jose.RS256)
	idp := newIdP(t, k)
	const iss = "https://kubernetes.default.svc.cluster.local"
	a := newAuth(t, []IssuerConfig{{Name: "kubernetes", Issuer: iss, JWKSURL: idp.srv.URL + "/jwks", Algorithms: []string{"RS256"}}},
		[]RoleConfig{{
			Name: "quantum-workers", Issuer: "kubernetes", BoundAudiences: []string{"qbroker"},
			BoundClaims:     map[string][]string{"/kubernetes.io/namespace": {"quantum"}, "/kubernetes.io/serviceaccount/name": {"runner-*"}},
			BoundClaimsType: "glob",
			ClaimMappings: map[string]string{
				"/kubernetes.io/namespace": "namespace", "/kubernetes.io/serviceaccount/name": "service_account",
				"/kubernetes.io/pod/name": "pod",
			},
			BrokerRole: "submit-only",
		}}, clk)
	sa := func(ns, name string) map[string]any {
		now := clk.Now()
		return map[string]any{
			"aud": []string{"qbroker"}, "iss": iss, "sub": "system:serviceaccount:" + ns + ":" + name,
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(), "jti": "8f1c",
			"kubernetes.io": map[string]any{
				"namespace":      ns,
				"node":           map[string]any{"name": "node-a", "uid": "3a1"},
				"pod":            map[string]any{"name": "runner-7d9f", "uid": "b2c"},
				"serviceaccount": map[string]any{"name": name, "uid": "c3d"},
			},
		}
	}
	id, err := a.Login(context.Background(), "quantum-workers", sign(t, k, sa("quantum", "runner-bell")))
	if err != nil {
		t.Fatal(err)
	}
	if id.Name != "system:serviceaccount:quantum:runner-bell" || id.Metadata["namespace"] != "quantum" ||
		id.Metadata["service_account"] != "runner-bell" || id.Metadata["pod"] != "runner-7d9f" {
		t.Fatalf("identity %+v", id)
	}
	_, err = a.Login(context.Background(), "quantum-workers", sign(t, k, sa("default", "runner-bell")))
	wantRefused(t, err, ReasonBoundClaim+": /kubernetes.io/namespace")
	_, err = a.Login(context.Background(), "quantum-workers", sign(t, k, sa("quantum", "admin")))
	wantRefused(t, err, ReasonBoundClaim+": /kubernetes.io/serviceaccount/name")
	// A top-level claim literally named "kubernetes.io/namespace" is not the nested one.
	c := sa("default", "runner-bell")
	c["kubernetes.io/namespace"] = "quantum"
	_, err = a.Login(context.Background(), "quantum-workers", sign(t, k, c))
	wantRefused(t, err, ReasonBoundClaim+": /kubernetes.io/namespace")
}

func TestStaticPublicKeysNeedNoNetwork(t *testing.T) {
	clk := newClock()
	k := newKey(t, "", jose.EdDSA)
	der, err := x509.MarshalPKIXPublicKey(k.public().Key)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	a := newAuth(t, []IssuerConfig{{Name: "ci", Issuer: "https://ci.example", PublicKeys: []string{pemKey}}},
		[]RoleConfig{{Name: "ci", Issuer: "ci", BoundAudiences: []string{"qbroker"}}}, clk)
	if _, err := a.Login(context.Background(), "ci", sign(t, k, claimsAt("https://ci.example", clk.Now()))); err != nil {
		t.Fatal(err)
	}
	k.kid = "whatever" // PEM keys have no kid: any kid is checked against all keys
	if _, err := a.Login(context.Background(), "ci", sign(t, k, claimsAt("https://ci.example", clk.Now()))); err != nil {
		t.Fatal(err)
	}
	_, err = a.Login(context.Background(), "ci", sign(t, newKey(t, "", jose.EdDSA), claimsAt("https://ci.example", clk.Now())))
	wantRefused(t, err, ReasonSignature)
}

// TestLazyStartAndUnavailableIdP: New succeeds with the IdP down; logins fail
// as unavailable (not as the caller's fault) and recover once it is up.
func TestLazyStartAndUnavailableIdP(t *testing.T) {
	clk := newClock()
	k := newKey(t, "k1", jose.ES256)
	idp := newIdP(t, k)
	idp.setFail(true)
	a := newAuth(t, []IssuerConfig{{Name: "corp", Issuer: idp.srv.URL, DiscoveryURL: idp.srv.URL}},
		[]RoleConfig{{Name: "r", Issuer: "corp", BoundAudiences: []string{"qbroker"}}}, clk)
	raw := sign(t, k, claimsAt(idp.srv.URL, clk.Now()))
	_, err := a.Login(context.Background(), "r", raw)
	var le *LoginError
	if !errors.Is(err, ErrIssuerUnavailable) || errors.As(err, &le) {
		t.Fatalf("want ErrIssuerUnavailable, got %v", err)
	}
	idp.setFail(false)
	if _, err := a.Login(context.Background(), "r", raw); !errors.Is(err, ErrIssuerUnavailable) {
		t.Fatalf("retry within MinRefreshInterval must not refetch: %v", err)
	}
	clk.Advance(DefaultMinRefreshInterval)
	raw = sign(t, k, claimsAt(idp.srv.URL, clk.Now()))
	if _, err := a.Login(context.Background(), "r", raw); err != nil {
		t.Fatal(err)
	}
}

func TestDiscoveryMustNameTheIssuer(t *testing.T) {
	clk := newClock()
	k := newKey(t, "k1", jose.RS256)
	idp := newIdP(t, k)
	idp.issuer = "https://evil.example"
	a := newAuth(t, []IssuerConfig{{Name: "corp", Issuer: idp.srv.URL, DiscoveryURL: idp.srv.URL}},
		[]RoleConfig{{Name: "r", Issuer: "corp", BoundAudiences: []string{"qbroker"}}}, clk)
	_, err := a.Login(context.Background(), "r", sign(t, k, claimsAt(idp.srv.URL, clk.Now())))
	if !errors.Is(err, ErrIssuerUnavailable) {
		t.Fatalf("want ErrIssuerUnavailable, got %v", err)
	}
	if idp.fetches.Load() != 0 {
		t.Fatal("JWKS fetched despite a discovery document naming another issuer")
	}
}

func b64(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func unsigned(t *testing.T, hdr, claims map[string]any) string {
	return b64(t, hdr) + "." + b64(t, claims) + "."
}

// hs256WithPublicKey is the classic key-confusion attack: an HMAC keyed with the
// bytes of the issuer's RSA public key, which a naive verifier would accept.
func hs256WithPublicKey(t *testing.T, k testKey, claims map[string]any) string {
	der, err := x509.MarshalPKIXPublicKey(k.public().Key)
	if err != nil {
		t.Fatal(err)
	}
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	signing := b64(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": k.kid}) + "." + b64(t, claims)
	m := hmac.New(sha256.New, pub)
	m.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// TestEmbeddedKeyIgnored: a token carrying its own key in the "jwk" header (and
// the IdP's kid) is checked against the IdP's key, never the embedded one.
func TestEmbeddedKeyIgnored(t *testing.T) {
	s := newLocal(t)
	attacker := newKey(t, "rsa-1", jose.RS256)
	opts := (&jose.SignerOptions{EmbedJWK: true}).WithType("JWT")
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: attacker.priv, KeyID: "rsa-1"}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(s.claims())
	obj, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := obj.CompactSerialize()
	hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	if !strings.Contains(string(hdr), `"jwk"`) {
		t.Fatalf("no embedded jwk in %s", hdr)
	}
	_, err = s.a.Login(context.Background(), "agent", raw)
	wantRefused(t, err, ReasonSignature)
}
