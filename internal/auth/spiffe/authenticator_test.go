package spiffe

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

const aud = "https://broker.test"

type fixture struct {
	broker, other, rogue *testCA
	set                  *spiffebundle.Set
	auth                 *Authenticator
}

func testConfig() Config {
	return Config{
		TrustDomains: []string{"broker.test"},
		Roles: []RoleConfig{
			{Name: "agents", IDPatterns: []string{"spiffe://broker.test/workload/+"}, Audiences: []string{aud}, BrokerRole: "agent"},
			{Name: "ci", IDPatterns: []string{"spiffe://broker.test/ci/*"}, Audiences: []string{aud, "qbroker"}, BrokerRole: "ci"},
			{Name: "ops", IDPatterns: []string{"spiffe://broker.test/admin/ops"}, BrokerRole: "ops"},
		},
	}
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{
		broker: newCA(t, "broker.test", "k1"),
		other:  newCA(t, "other.test", "k2"),
		// Same trust domain name and same kid, different keys: an impostor.
		rogue: newCA(t, "broker.test", "k1"),
	}
	// The source knows other.test too (as a federating SPIRE agent would):
	// refusal of other.test must come from the config, not a missing bundle.
	f.set = spiffebundle.NewSet(f.broker.bundle(), f.other.bundle())
	a, err := New(testConfig(), f.set, f.set)
	if err != nil {
		t.Fatal(err)
	}
	f.auth = a
	return f
}

// wantRefused asserts err is a *LoginError with the given code and a reason
// containing reason.
func wantRefused(t *testing.T, err error, code, reason string) {
	t.Helper()
	var le *LoginError
	if !errors.As(err, &le) {
		t.Fatalf("want LoginError %s, got %v", code, err)
	}
	if le.Code != code || !strings.Contains(le.Reason, reason) {
		t.Fatalf("want %s %q, got %s %q", code, reason, le.Code, le.Reason)
	}
}

func TestPatternMatch(t *testing.T) {
	cases := []struct {
		pattern, id string
		want        bool
	}{
		{"spiffe://broker.test/workload/agent-1", "spiffe://broker.test/workload/agent-1", true},
		{"spiffe://broker.test/workload/agent-1", "spiffe://broker.test/workload/agent-10", false},
		{"spiffe://broker.test/workload/agent-1", "spiffe://broker.test/workload/agent-1/x", false},
		{"spiffe://broker.test/workload/agent-1", "spiffe://other.test/workload/agent-1", false},
		{"spiffe://broker.test/workload/+", "spiffe://broker.test/workload/a", true},
		{"spiffe://broker.test/workload/+", "spiffe://broker.test/workload/a/b", false},
		{"spiffe://broker.test/workload/+", "spiffe://broker.test/workload", false},
		{"spiffe://broker.test/workload/+", "spiffe://broker.test/workloads/a", false},
		{"spiffe://broker.test/workload/*", "spiffe://broker.test/workload/a", true},
		{"spiffe://broker.test/workload/*", "spiffe://broker.test/workload/a/b/c", true},
		{"spiffe://broker.test/workload/*", "spiffe://broker.test/workload", false},
		{"spiffe://broker.test/workload/*", "spiffe://broker.test/workloadx/a", false},
		{"spiffe://broker.test/workload/*", "spiffe://other.test/workload/a", false},
		{"spiffe://broker.test/*", "spiffe://broker.test/a/b", true},
		{"spiffe://broker.test/*", "spiffe://broker.test", false},
		{"spiffe://broker.test/+", "spiffe://broker.test/a", true},
		{"spiffe://broker.test/+", "spiffe://broker.test/a/b", false},
	}
	for _, c := range cases {
		p, err := parsePattern(c.pattern)
		if err != nil {
			t.Fatalf("%s: %v", c.pattern, err)
		}
		if got := p.match(spiffeid.RequireFromString(c.id)); got != c.want {
			t.Errorf("%s ~ %s = %v, want %v", c.pattern, c.id, got, c.want)
		}
	}
	for _, bad := range []string{
		"spiffe://broker.test", "spiffe://broker.test/a/*/b", "spiffe://broker.test/a*", "spiffe://broker.test/**",
		"broker.test/a", "https://broker.test/a", "spiffe://broker.test/a/", "spiffe://Broker.test/a", "spiffe://broker.test/a/+/*",
	} {
		if _, err := parsePattern(bad); err == nil {
			t.Errorf("pattern %q accepted", bad)
		}
	}
}

func TestNewValidatesAllAtOnce(t *testing.T) {
	f := newFixture(t)
	cfg := Config{
		TrustDomains: []string{"broker.test", "bad domain"},
		Roles: []RoleConfig{
			{Name: "a", IDPatterns: []string{"spiffe://other.test/x"}, BrokerRole: "r"},
			{Name: "a", IDPatterns: []string{"spiffe://broker.test/x/*/y"}},
			{Name: "", Audiences: []string{" "}, BrokerRole: "r"},
		},
		BundleFile: "/nonexistent",
	}
	_, err := New(cfg, f.set, f.set)
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{
		`"bad domain"`, "outside the accepted trust domains", "name given twice", "no broker_role",
		"spiffe://broker.test/x/*/y", "role 2: no name", "empty audience", "no SPIFFE ID patterns",
		"both bundle_file and bundle sources",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := New(testConfig(), nil, nil); !errors.Is(err, ErrNoBundleSource) {
		t.Errorf("no bundle: %v", err)
	}
	if _, err := New(Config{Roles: testConfig().Roles}, f.set, f.set); err == nil || !strings.Contains(err.Error(), "no trust domains") {
		t.Errorf("no trust domains: %v", err)
	}
	// The spiffe:// form of a trust domain is accepted.
	cfg = testConfig()
	cfg.TrustDomains = []string{"spiffe://broker.test"}
	if _, err := New(cfg, f.set, f.set); err != nil {
		t.Errorf("spiffe:// trust domain: %v", err)
	}
}

func TestLoginX509(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	_, chain := f.broker.svid(t, "spiffe://broker.test/workload/agent-1")
	id, err := f.auth.LoginX509(ctx, "", chain)
	if err != nil {
		t.Fatal(err)
	}
	if id.ID != "spiffe://broker.test/workload/agent-1" || id.TrustDomain != "broker.test" || id.Path != "/workload/agent-1" ||
		id.Role != "agents" || id.BrokerRole != "agent" || !id.Expires.Equal(chain[0].NotAfter) {
		t.Fatalf("identity %+v", id)
	}
	if id, err := f.auth.LoginX509(ctx, "agents", chain); err != nil || id.Role != "agents" {
		t.Fatalf("named role: %+v %v", id, err)
	}
	_, err = f.auth.LoginX509(ctx, "ci", chain)
	wantRefused(t, err, CodeNotBound, "SPIFFE ID not bound to role")
	_, err = f.auth.LoginX509(ctx, "nope", chain)
	wantRefused(t, err, CodeUnknownRole, "unknown role")

	// First matching role in config order.
	_, ci := f.broker.svid(t, "spiffe://broker.test/ci/build/42")
	if id, err := f.auth.LoginX509(ctx, "", ci); err != nil || id.Role != "ci" || id.BrokerRole != "ci" {
		t.Fatalf("ci: %+v %v", id, err)
	}
	// "+" is one segment only; nothing else matches.
	_, deep := f.broker.svid(t, "spiffe://broker.test/workload/agent-1/sub")
	_, err = f.auth.LoginX509(ctx, "", deep)
	wantRefused(t, err, CodeNotBound, "SPIFFE ID not bound to role")

	_, err = f.auth.LoginX509(ctx, "", nil)
	wantRefused(t, err, CodeNoClientCert, "no client certificate")
	_, err = f.auth.LoginTLS(ctx, "", nil)
	wantRefused(t, err, CodeNoClientCert, "no client certificate")

	// Another trust domain, whose bundle the source does hold.
	_, other := f.other.svid(t, "spiffe://other.test/workload/agent-1")
	_, err = f.auth.LoginX509(ctx, "", other)
	wantRefused(t, err, CodeTrustDomain, "trust domain not accepted")

	// The right trust domain name, another CA.
	_, rogue := f.rogue.svid(t, "spiffe://broker.test/workload/agent-1")
	_, err = f.auth.LoginX509(ctx, "", rogue)
	wantRefused(t, err, CodeUntrusted, "certificate not issued by a trusted SPIFFE trust domain")

	// The CA certificate itself presented as a leaf.
	_, err = f.auth.LoginX509(ctx, "", []*x509.Certificate{f.broker.cert})
	wantRefused(t, err, CodeUntrusted, "not issued by a trusted")

	// Expired and not-yet-valid SVIDs from the right CA.
	_, expired := f.broker.svidValid(t, "spiffe://broker.test/workload/agent-1", time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
	_, err = f.auth.LoginX509(ctx, "", expired)
	wantRefused(t, err, CodeCertValidity, "expired")
	_, future := f.broker.svidValid(t, "spiffe://broker.test/workload/agent-1", time.Now().Add(time.Hour), time.Now().Add(2*time.Hour))
	_, err = f.auth.LoginX509(ctx, "", future)
	wantRefused(t, err, CodeCertValidity, "not yet valid")

	// A plain certificate without a SPIFFE ID.
	_, plain := f.broker.svid(t, "https://broker.test/workload/agent-1")
	_, err = f.auth.LoginX509(ctx, "", plain)
	wantRefused(t, err, CodeInvalidSVID, "not an X.509-SVID")

	// A leaf from the right CA, followed by a rogue "intermediate", still verifies
	// only through the right CA; a rogue leaf with the real CA appended does not.
	_, err = f.auth.LoginX509(ctx, "", append(rogue, f.broker.cert))
	wantRefused(t, err, CodeUntrusted, "not issued by a trusted")
}

func TestLoginX509ReadsCurrentBundle(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, chain := f.broker.svid(t, "spiffe://broker.test/workload/agent-1")
	if _, err := f.auth.LoginX509(ctx, "", chain); err != nil {
		t.Fatal(err)
	}
	// Rotate: the bundle now trusts only the new CA.
	f.set.Add(f.rogue.bundle())
	_, err := f.auth.LoginX509(ctx, "", chain)
	wantRefused(t, err, CodeUntrusted, "not issued by a trusted")
	_, rogue := f.rogue.svid(t, "spiffe://broker.test/workload/agent-1")
	if _, err := f.auth.LoginX509(ctx, "", rogue); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	// An accepted trust domain with no bundle at all.
	f.set.Remove(f.broker.td)
	_, err = f.auth.LoginX509(ctx, "", rogue)
	wantRefused(t, err, CodeUntrusted, "not issued by a trusted")
}

func TestLoginJWT(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	exp := time.Now().Add(5 * time.Minute)
	agent := "spiffe://broker.test/workload/agent-1"

	tok := f.broker.jwt(t, agent, []string{aud, "something-else"}, exp)
	id, err := f.auth.LoginJWT(ctx, "agents", tok)
	if err != nil {
		t.Fatal(err)
	}
	if id.ID != agent || id.Role != "agents" || id.BrokerRole != "agent" || id.TrustDomain != "broker.test" ||
		id.Expires.Unix() != exp.Unix() {
		t.Fatalf("identity %+v", id)
	}
	ciTok := f.broker.jwt(t, "spiffe://broker.test/ci/x/y", []string{"qbroker"}, exp)
	if id, err := f.auth.LoginJWT(ctx, "ci", ciTok); err != nil || id.BrokerRole != "ci" {
		t.Fatalf("ci: %+v %v", id, err)
	}

	noneTok := unsignedJWT(t, map[string]any{"alg": "none", "typ": "JWT", "kid": "k1"},
		map[string]any{"sub": agent, "aud": []string{aud}, "exp": exp.Unix()})
	hsTok := hmacJWT(t, agent, exp)
	cases := []struct {
		name, role, token, code, reason string
	}{
		{"wrong audience", "agents", f.broker.jwt(t, agent, []string{"https://evil.test"}, exp), CodeAudience, "audience not allowed"},
		{"audience of another role", "agents", f.broker.jwt(t, agent, []string{"qbroker"}, exp), CodeAudience, "audience not allowed"},
		{"other trust domain", "agents", f.other.jwt(t, "spiffe://other.test/workload/agent-1", []string{aud}, exp), CodeTrustDomain, "trust domain not accepted"},
		{"expired", "agents", f.broker.jwt(t, agent, []string{aud}, time.Now().Add(-5*time.Minute)), CodeInvalidJWT, "invalid JWT-SVID: token has expired"},
		{"alg none", "agents", noneTok, CodeInvalidJWT, "invalid JWT-SVID"},
		{"HS256", "agents", hsTok, CodeInvalidJWT, "invalid JWT-SVID"},
		{"unknown kid", "agents", signJWT(t, f.broker.jwtKey, "k9", agent, []string{aud}, exp), CodeInvalidJWT, `invalid JWT-SVID: no JWT authority "k9"`},
		{"known kid, wrong key", "agents", f.rogue.jwt(t, agent, []string{aud}, exp), CodeInvalidJWT, "invalid JWT-SVID: unable to get claims"},
		{"other domain's kid", "agents", signJWT(t, f.other.jwtKey, "k2", agent, []string{aud}, exp), CodeInvalidJWT, `no JWT authority "k2"`},
		{"not bound", "agents", f.broker.jwt(t, "spiffe://broker.test/db/x", []string{aud}, exp), CodeNotBound, "SPIFFE ID not bound to role"},
		{"subject not SPIFFE", "agents", f.broker.jwt(t, "agent-1", []string{aud}, exp), CodeInvalidJWT, "invalid subject"},
		{"garbage", "agents", "not.a.jwt", CodeInvalidJWT, "invalid JWT-SVID"},
		{"unknown role", "nope", tok, CodeUnknownRole, "unknown role"},
		{"no role", "", tok, CodeUnknownRole, "unknown role"},
		{"x509-only role", "ops", f.broker.jwt(t, "spiffe://broker.test/admin/ops", []string{aud}, exp), CodeJWTNotEnabled, "does not accept JWT-SVIDs"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := f.auth.LoginJWT(ctx, c.role, c.token)
			wantRefused(t, err, c.code, c.reason)
			if len(c.token) > 20 && strings.Contains(err.Error(), c.token[len(c.token)-20:]) {
				t.Fatal("error echoes the token")
			}
		})
	}
	// Tampering with a valid token's payload breaks the signature.
	parts := strings.Split(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forged := strings.Replace(string(payload), "agent-1", "agent-2", 1)
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(forged))
	_, err = f.auth.LoginJWT(ctx, "agents", strings.Join(parts, "."))
	wantRefused(t, err, CodeInvalidJWT, "invalid JWT-SVID")

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := f.auth.LoginJWT(cctx, "agents", tok); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: %v", err)
	}
}

func unsignedJWT(t *testing.T, hdr, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(hdr)
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "."
}

func hmacJWT(t *testing.T, sub string, exp time.Time) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(sig).Claims(jwt.Claims{Subject: sub, Audience: jwt.Audience{aud}, Expiry: jwt.NewNumericDate(exp)}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func BenchmarkLoginX509(b *testing.B) {
	f := newFixture(b)
	_, chain := f.broker.svid(b, "spiffe://broker.test/workload/agent-1")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.auth.LoginX509(ctx, "", chain); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoginJWT(b *testing.B) {
	f := newFixture(b)
	tok := f.broker.jwt(b, "spiffe://broker.test/workload/agent-1", []string{aud}, time.Now().Add(time.Hour))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.auth.LoginJWT(ctx, "agents", tok); err != nil {
			b.Fatal(err)
		}
	}
}
