package server

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/qbroker/qbroker/internal/bench"
	"github.com/qbroker/qbroker/internal/config"
)

// keyIDP serves discovery and a JWKS for one signing key of any algorithm.
func keyIDP(t *testing.T, alg jose.SignatureAlgorithm, key crypto.Signer) (issuer string, sign func(map[string]any) string) {
	t.Helper()
	var srv *httptest.Server
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": srv.URL, "jwks_uri": srv.URL + "/jwks"})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: string(alg), Use: "sig"}}})
	})
	srv = httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1").WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	return srv.URL, func(claims map[string]any) string {
		now := time.Now()
		base := map[string]any{"iss": srv.URL, "aud": "https://broker.test", "sub": "bench-agent", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		for k, v := range claims {
			base[k] = v
		}
		raw, err := jwt.Signed(signer).Claims(base).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
}

// JWT login under `qbroker bench`'s jwt-login step, RS256 and ES256. With
// QBROKER_BENCH=1 it runs long enough to record (docs/benchmarks.md);
// otherwise it is a short correctness run.
func TestJWTLoginUnderLoad(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsIss, rsSign := keyIDP(t, jose.RS256, rsaKey)
	esIss, esSign := keyIDP(t, jose.ES256, ecKey)
	d, err := StartDev(context.Background(), DevOptions{
		Addr: "127.0.0.1:0", GatewayAddr: "127.0.0.1:0", SimAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		Auth: config.Auth{JWT: config.JWTAuth{
			Issuers: []config.JWTIssuer{{Name: "rs", Issuer: rsIss, DiscoveryURL: rsIss}, {Name: "es", Issuer: esIss, DiscoveryURL: esIss}},
			Roles: []config.JWTRole{
				{Name: "rs-role", Issuer: "rs", BoundAudiences: []string{"https://broker.test"}, BrokerRole: DemoRole, ClaimMappings: map[string]string{"team": "team"}},
				{Name: "es-role", Issuer: "es", BoundAudiences: []string{"https://broker.test"}, BrokerRole: DemoRole, ClaimMappings: map[string]string{"team": "team"}},
			},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	dur, conc := 300*time.Millisecond, []int{4}
	if os.Getenv("QBROKER_BENCH") != "" {
		dur, conc = 5*time.Second, []int{1, 8, 32}
	}
	for _, c := range []struct{ role, jwt string }{{"rs-role", rsSign(map[string]any{"team": "research"})}, {"es-role", esSign(map[string]any{"team": "research"})}} {
		for _, n := range conc {
			r, err := bench.Run(context.Background(), bench.Options{
				BrokerAddr: d.BrokerURL, Step: bench.StepJWTLogin, JWT: c.jwt, JWTRole: c.role, Concurrency: n, Duration: dur, Warmup: 200 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %s", c.role, r)
			if r.Errors != 0 || r.Ops == 0 {
				t.Fatalf("%s: %d ops, %d errors (%s)", c.role, r.Ops, r.Errors, r.FirstError)
			}
		}
	}
}
