package jwtauth

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestConfigErrorsReportedTogether(t *testing.T) {
	issuers := []IssuerConfig{
		{Name: "mac", Issuer: "https://a.example", JWKSURL: "https://a.example/jwks", Algorithms: []string{"RS256", "HS256"}},
		{Name: "none", Issuer: "https://b.example", JWKSURL: "https://b.example/jwks", Algorithms: []string{"none"}},
		{Name: "skew", Issuer: "https://c.example", JWKSURL: "https://c.example/jwks", Leeway: 3 * time.Minute},
		{Name: "two-sources", Issuer: "https://d.example", JWKSURL: "https://d.example/jwks", DiscoveryURL: "https://d.example"},
		{Name: "no-source", Issuer: "https://e.example"},
		{Name: "bad-url", Issuer: "https://f.example", JWKSURL: "ftp://f.example/jwks"},
		{Name: "bad-pem", Issuer: "https://g.example", PublicKeys: []string{"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"}},
		{Name: "weird-alg", Issuer: "https://h.example", JWKSURL: "https://h.example/jwks", Algorithms: []string{"RS1"}},
		{Name: "dup-iss", Issuer: "https://a.example", JWKSURL: "https://a.example/jwks"},
		{Issuer: "https://i.example", JWKSURL: "https://i.example/jwks"},
	}
	roles := []RoleConfig{
		{Name: "no-aud", Issuer: "mac"},
		{Name: "ghost-issuer", Issuer: "ghost", BoundAudiences: []string{"x"}},
		{Name: "bad-type", Issuer: "mac", BoundAudiences: []string{"x"}, BoundClaimsType: "regex"},
		{Name: "bad-pointer", Issuer: "mac", BoundAudiences: []string{"x"}, BoundClaims: map[string][]string{"/a//b": {"v"}}},
		{Name: "empty-values", Issuer: "mac", BoundAudiences: []string{"x"}, BoundClaims: map[string][]string{"team": nil}},
		{Name: "dup-meta", Issuer: "mac", BoundAudiences: []string{"x"}, ClaimMappings: map[string]string{"a": "k", "b": "k"}},
		{Name: "neg-age", Issuer: "mac", BoundAudiences: []string{"x"}, MaxAge: -time.Second},
		{Name: "neg-age", Issuer: "mac", BoundAudiences: []string{"x"}},
	}
	_, err := New(context.Background(), issuers, roles, Options{})
	if err == nil {
		t.Fatal("invalid configuration accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		`"HS256" (shared-secret MAC) is never allowed`, `"none" is never allowed`, "leeway 3m0s exceeds",
		`"two-sources": exactly one of`, `"no-source": exactly one of`, `"bad-url": jwks_url`, `"bad-pem": public_keys[0]`,
		`unknown algorithm "RS1"`, `same iss "https://a.example"`, "name is required",
		`"no-aud": bound_audiences is required`, `unknown issuer "ghost"`, `bound_claims_type must be`,
		`"bad-pointer": bound_claims "/a//b"`, `"empty-values": bound_claims "team": at least one value`,
		`both map to metadata key "k"`, "max_age must not be negative", `role "neg-age": duplicate name`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(msg)
	}
}

func TestConfigDefaults(t *testing.T) {
	is, errs := validateIssuer(IssuerConfig{Name: "x", Issuer: "https://x.example", JWKSURL: "https://x.example/k"})
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	if is.Leeway != DefaultLeeway || is.RefreshInterval != DefaultRefreshInterval || is.MinRefreshInterval != DefaultMinRefreshInterval {
		t.Fatalf("defaults %+v", is)
	}
	if len(is.algs) != 3 || is.algs[0] != "RS256" || is.algs[1] != "ES256" || is.algs[2] != "EdDSA" {
		t.Fatalf("default algorithms %v", is.algs)
	}
	r, errs := validateRole(RoleConfig{Name: "r", Issuer: "x", BoundAudiences: []string{"a"}}, map[string]*issuer{"x": is})
	if len(errs) != 0 || r.UserClaim != "sub" || r.glob {
		t.Fatalf("role defaults %+v %v", r, errs)
	}
}

func TestGlobAndPointer(t *testing.T) {
	for _, c := range []struct {
		p, s string
		want bool
	}{
		{"*", "", true}, {"a*", "abc", true}, {"*c", "abc", true}, {"a*c", "ac", true}, {"a*a", "a", false},
		{"a*b*c", "axxbyyc", true}, {"a*b*c", "acb", false}, {"refs/heads/*", "refs/heads/main", true},
		{"refs/heads/*", "refs/tags/x", false}, {"exact", "exactly", false},
	} {
		if got := globMatch(c.p, c.s); got != c.want {
			t.Errorf("globMatch(%q, %q) = %v", c.p, c.s, got)
		}
	}
	claims := map[string]any{"a/b": "slash", "m": map[string]any{"x~y": "tilde", "n": map[string]any{"k": "deep"}}}
	for p, want := range map[string]any{"/a~1b": "slash", "/m/x~0y": "tilde", "/m/n/k": "deep", "a/b": "slash"} {
		if v, ok := lookupClaim(claims, p); !ok || v != want {
			t.Errorf("lookupClaim(%q) = %v %v", p, v, ok)
		}
	}
	for _, p := range []string{"/m/missing", "/a~1b/deeper", "/m/n/k/more"} {
		if _, ok := lookupClaim(claims, p); ok {
			t.Errorf("lookupClaim(%q) found something", p)
		}
	}
	for _, bad := range []string{"/", "/a//b", "/a~2"} {
		if checkClaimName(bad) == nil {
			t.Errorf("pointer %q accepted", bad)
		}
	}
}
