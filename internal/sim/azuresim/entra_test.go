package azuresim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

func TestTokenClientSecret(t *testing.T) {
	h := newHarness(t, nil)
	r := h.tokenRequest(testTenant, secretForm(QuantumScope))
	if r.code != http.StatusOK {
		t.Fatalf("status %d: %s", r.code, r.body)
	}
	if cc := r.header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("Cache-Control = %q", cc)
	}
	var tr tokenResponse
	if err := json.Unmarshal(r.body, &tr); err != nil {
		t.Fatal(err)
	}
	if tr.TokenType != "Bearer" || tr.ExpiresIn != 3600 || tr.ExtExpiresIn != 3600 || tr.AccessToken == "" {
		t.Fatalf("response = %+v", tr)
	}
	// The token verifies against the published JWKS and carries the claims
	// the workspace checks.
	keys := h.send("GET", "/"+testTenant+"/discovery/v2.0/keys", "", nil)
	var jwks jose.JSONWebKeySet
	if err := json.Unmarshal(keys.body, &jwks); err != nil || len(jwks.Keys) != 1 {
		t.Fatalf("jwks: %v %s", err, keys.body)
	}
	tok, err := jwt.ParseSigned(tr.AccessToken, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	var c accessClaims
	if err := tok.Claims(&jwks, &c); err != nil {
		t.Fatalf("verify with published JWKS: %v", err)
	}
	now := h.clock.now()
	want := accessClaims{Aud: QuantumResource, Iss: "https://sts.windows.net/" + testTenant + "/", TID: testTenant,
		AppID: testClient, AppIDACR: "1", OID: h.e.ObjectID(), Sub: h.e.ObjectID(), Ver: "1.0",
		Iat: now.Unix(), Nbf: now.Unix(), Exp: now.Add(time.Hour).Unix()}
	c.IdP, c.UTI = "", ""
	if c != want {
		t.Errorf("claims = %+v\nwant     %+v", c, want)
	}
}

func TestTokenRefusals(t *testing.T) {
	h := newHarness(t, nil)
	with := func(mut func(url.Values)) url.Values {
		f := secretForm(QuantumScope)
		mut(f)
		return f
	}
	cases := []struct {
		name, tenant string
		form         url.Values
		status       int
		err          string
		code         float64
	}{
		{"wrong secret", testTenant, with(func(f url.Values) { f.Set("client_secret", "guess") }), 401, "invalid_client", 7000215},
		{"unknown client", testTenant, with(func(f url.Values) { f.Set("client_id", newUUID()) }), 400, "unauthorized_client", 700016},
		{"wrong tenant", newUUID(), secretForm(QuantumScope), 400, "invalid_request", 90002},
		{"common tenant", "common", secretForm(QuantumScope), 400, "invalid_request", 90002},
		{"no grant_type", testTenant, with(func(f url.Values) { f.Del("grant_type") }), 400, "invalid_request", 900144},
		{"password grant", testTenant, with(func(f url.Values) { f.Set("grant_type", "password") }), 400, "unsupported_grant_type", 70003},
		{"no credential", testTenant, with(func(f url.Values) { f.Del("client_secret") }), 401, "invalid_client", 7000218},
		{"no scope", testTenant, with(func(f url.Values) { f.Del("scope") }), 400, "invalid_request", 900144},
		{"scope without .default", testTenant, with(func(f url.Values) { f.Set("scope", "https://quantum.microsoft.com/user_impersonation") }), 400, "invalid_scope", 1002012},
		{"two scopes", testTenant, with(func(f url.Values) { f.Set("scope", QuantumScope+" "+ManagementScope) }), 400, "invalid_scope", 70011},
		{"other resource", testTenant, with(func(f url.Values) { f.Set("scope", "https://graph.microsoft.com/.default") }), 400, "invalid_resource", 500011},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.tokenRequest(tc.tenant, tc.form)
			if r.code != tc.status {
				t.Fatalf("status %d, want %d: %s", r.code, tc.status, r.body)
			}
			m := r.json(t)
			codes, _ := m["error_codes"].([]any)
			if m["error"] != tc.err || len(codes) != 1 || codes[0] != tc.code {
				t.Errorf("error %v codes %v, want %s [%v]", m["error"], m["error_codes"], tc.err, tc.code)
			}
			desc, _ := m["error_description"].(string)
			if !strings.HasPrefix(desc, "AADSTS") || !strings.Contains(desc, "Trace ID: ") ||
				m["trace_id"] == nil || m["correlation_id"] == nil || m["timestamp"] == nil {
				t.Errorf("not Entra's error shape: %s", r.body)
			}
			if strings.Contains(string(r.body), testSecret) || strings.Contains(string(r.body), "access_token") {
				t.Errorf("refusal leaks a secret or a token: %s", r.body)
			}
		})
	}
}

func TestTokenTransportRules(t *testing.T) {
	h := newHarness(t, nil)
	// The secret in the query string, not the body, is not a credential.
	q := secretForm(QuantumScope).Encode()
	r := h.send("POST", "/"+testTenant+"/oauth2/v2.0/token?"+q, "", nil)
	if r.code != http.StatusBadRequest || r.json(t)["error"] != "invalid_request" {
		t.Errorf("query-string credentials: %d %s", r.code, r.body)
	}
	// A JSON body is not a form.
	r = h.send("POST", "/"+testTenant+"/oauth2/v2.0/token", `{"grant_type":"client_credentials"}`, map[string]string{"Content-Type": "application/json"})
	if r.code != http.StatusBadRequest {
		t.Errorf("JSON body: %d %s", r.code, r.body)
	}
	r = h.send("GET", "/"+testTenant+"/oauth2/v2.0/token", "", nil)
	if codes := r.json(t)["error_codes"].([]any); r.code != http.StatusBadRequest || codes[0] != float64(900561) {
		t.Errorf("GET: %d %s", r.code, r.body)
	}
	// A repeated parameter is refused rather than resolved either way.
	f := secretForm(QuantumScope)
	f.Add("client_secret", "other")
	if r := h.tokenRequest(testTenant, f); r.code != http.StatusBadRequest {
		t.Errorf("repeated client_secret: %d %s", r.code, r.body)
	}
	// Both credentials at once.
	f = secretForm(QuantumScope)
	f.Set("client_assertion_type", ClientAssertionType)
	f.Set("client_assertion", assertion(t, h.fed, h.goodAssertionClaims()))
	if r := h.tokenRequest(testTenant, f); r.code != http.StatusBadRequest {
		t.Errorf("secret and assertion: %d %s", r.code, r.body)
	}
	// An emulator configured without a secret accepts none, not "".
	h2 := newHarness(t, func(c *Config) { c.ClientSecret = "" })
	f = secretForm(QuantumScope)
	f.Set("client_secret", "anything")
	if r := h2.tokenRequest(testTenant, f); r.code != http.StatusUnauthorized {
		t.Errorf("no configured secret: %d %s", r.code, r.body)
	}
}

func TestTokenFederatedAssertion(t *testing.T) {
	h := newHarness(t, nil)
	r := h.tokenRequest(testTenant, assertionForm(assertion(t, h.fed, h.goodAssertionClaims())))
	if r.code != http.StatusOK {
		t.Fatalf("status %d: %s", r.code, r.body)
	}
	access := r.json(t)["access_token"].(string)
	tok, err := jwt.ParseSigned(access, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	var c accessClaims
	if err := tok.Claims(h.e.JWKS(), &c); err != nil {
		t.Fatal(err)
	}
	if c.AppIDACR != "2" || c.AppID != testClient || c.Aud != QuantumResource {
		t.Errorf("claims = %+v", c)
	}
	// The token works on the workspace.
	if r := h.ws("GET", "/providerStatus", apiV, access, ""); r.code != http.StatusOK {
		t.Errorf("providerStatus with federated token: %d %s", r.code, r.body)
	}
}

func TestTokenFederatedRefusals(t *testing.T) {
	h := newHarness(t, nil)
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	claims := func(mut func(*jwt.Claims)) jwt.Claims {
		c := h.goodAssertionClaims()
		mut(&c)
		return c
	}
	now := h.clock.now()
	cases := []struct {
		name      string
		assertion string
		status    int
		code      float64
	}{
		// Signed by a key the issuer does not publish, under the right kid.
		{"bad signature", assertion(t, other, h.goodAssertionClaims()), 401, 700027},
		{"wrong audience", assertion(t, h.fed, claims(func(c *jwt.Claims) {
			c.Audience = jwt.Audience{"https://login.microsoftonline.com/" + testTenant + "/oauth2/v2.0/token"}
		})), 401, 700212},
		{"expired", assertion(t, h.fed, claims(func(c *jwt.Claims) {
			c.IssuedAt, c.NotBefore = jwt.NewNumericDate(now.Add(-time.Hour)), jwt.NewNumericDate(now.Add(-time.Hour))
			c.Expiry = jwt.NewNumericDate(now.Add(-10 * time.Minute))
		})), 401, 700024},
		{"no expiry", assertion(t, h.fed, claims(func(c *jwt.Claims) { c.Expiry = nil })), 401, 700024},
		{"not yet valid", assertion(t, h.fed, claims(func(c *jwt.Claims) {
			c.NotBefore, c.Expiry = jwt.NewNumericDate(now.Add(time.Hour)), jwt.NewNumericDate(now.Add(2*time.Hour))
		})), 401, 700024},
		{"wrong subject", assertion(t, h.fed, claims(func(c *jwt.Claims) { c.Subject = "repo:evil/fork:ref:refs/heads/main" })), 401, 700213},
		{"wrong issuer", assertion(t, h.fed, claims(func(c *jwt.Claims) { c.Issuer = "https://evil.example" })), 401, 700211},
		{"malformed", "not.a.jwt", 400, 50027},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.tokenRequest(testTenant, assertionForm(tc.assertion))
			if r.code != tc.status {
				t.Fatalf("status %d, want %d: %s", r.code, tc.status, r.body)
			}
			if codes := r.json(t)["error_codes"].([]any); codes[0] != tc.code {
				t.Errorf("error_codes %v, want %v: %s", codes, tc.code, r.body)
			}
		})
	}
	// alg "none" and HMAC with the public key are not signature algorithms
	// the emulator accepts.
	hs, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(strings.Repeat("k", 32))},
		(&jose.SignerOptions{}).WithHeader("kid", testKID))
	hsTok, _ := jwt.Signed(hs).Claims(h.goodAssertionClaims()).Serialize()
	if r := h.tokenRequest(testTenant, assertionForm(hsTok)); r.code != http.StatusBadRequest {
		t.Errorf("HS256 assertion: %d %s", r.code, r.body)
	}
	// The assertion type is checked.
	f := assertionForm(assertion(t, h.fed, h.goodAssertionClaims()))
	f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
	if r := h.tokenRequest(testTenant, f); r.code != http.StatusBadRequest {
		t.Errorf("wrong assertion type: %d %s", r.code, r.body)
	}
	// Clock skew: a token that expired 4 minutes ago still passes, one that
	// expired 6 minutes ago does not.
	a := assertion(t, h.fed, h.goodAssertionClaims())
	h.clock.advance(14 * time.Minute)
	if r := h.tokenRequest(testTenant, assertionForm(a)); r.code != http.StatusOK {
		t.Errorf("within skew: %d %s", r.code, r.body)
	}
	h.clock.advance(2 * time.Minute)
	if r := h.tokenRequest(testTenant, assertionForm(a)); r.code != http.StatusUnauthorized {
		t.Errorf("beyond skew: %d %s", r.code, r.body)
	}
}

func TestTokenNoFederatedCredential(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.FederatedIssuer, c.FederatedSubject, c.FederatedKeys = "", "", nil })
	r := h.tokenRequest(testTenant, assertionForm(assertion(t, h.fed, h.goodAssertionClaims())))
	if r.code != http.StatusUnauthorized || r.json(t)["error_codes"].([]any)[0] != float64(700211) {
		t.Errorf("assertion without a federated credential: %d %s", r.code, r.body)
	}
}
