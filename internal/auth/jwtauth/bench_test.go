package jwtauth

import (
	"context"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// BenchmarkLogin measures a full Login with the issuer's keys already cached:
// header checks, signature, time/audience/claim checks and claim mappings.
func BenchmarkLogin(b *testing.B) {
	for _, alg := range []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA} {
		b.Run(string(alg), func(b *testing.B) {
			clk := newClock()
			k := newKey(b, "k-"+string(alg), alg)
			idp := newIdP(b, k)
			a := newAuth(b, []IssuerConfig{{Name: "corp", Issuer: idp.srv.URL, DiscoveryURL: idp.srv.URL}},
				[]RoleConfig{{Name: "r", Issuer: "corp", BoundAudiences: []string{"qbroker"},
					BoundClaims:   map[string][]string{"/kubernetes.io/namespace": {"quantum"}},
					ClaimMappings: map[string]string{"/kubernetes.io/namespace": "namespace", "team": "team"}}}, clk)
			c := claimsAt(idp.srv.URL, clk.Now())
			c["team"] = "physics"
			c["kubernetes.io"] = map[string]any{"namespace": "quantum"}
			raw := sign(b, k, c)
			ctx := context.Background()
			if _, err := a.Login(ctx, "r", raw); err != nil { // warm the key cache
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := a.Login(ctx, "r", raw); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if n := idp.fetches.Load(); n != 1 {
				b.Fatalf("%d JWKS fetches, want 1", n)
			}
		})
	}
}
