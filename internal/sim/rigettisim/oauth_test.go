package rigettisim

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

func TestNewRejectsBadConfig(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]Config{
		"relative issuer path": {IssuerPath: "oauth2/x", SigningKey: testKey()},
		"issuer path in /v1":   {IssuerPath: "/v1/oauth", SigningKey: testKey()},
		"issuer mismatch":      {Issuer: "https://auth.example/other", SigningKey: testKey()},
		"client id with colon": {ClientID: "a:b", SigningKey: testKey()},
		"bad processor":        {QuantumProcessors: []string{"Ankaa 3"}, SigningKey: testKey()},
		"duplicate processor":  {QuantumProcessors: []string{"A", "A"}, SigningKey: testKey()},
		"small key":            {SigningKey: small},
	}
	for name, cfg := range cases {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	e, err := New(Config{SigningKey: testKey()})
	if err != nil {
		t.Fatal(err)
	}
	if e.ClientID() != DefaultClientID || e.IssuerPath() != DefaultIssuerPath || len(e.QuantumProcessors()) != 2 {
		t.Fatalf("defaults: %s %s %v", e.ClientID(), e.IssuerPath(), e.QuantumProcessors())
	}
}

func TestDiscoveryAndKeys(t *testing.T) {
	h := newHarness(t, nil)
	code, d, _ := h.api(DefaultIssuerPath+"/.well-known/openid-configuration", "")
	if code != 200 || d["issuer"] != h.issuer() || d["token_endpoint"] != h.issuer()+"/v1/token" || d["jwks_uri"] != h.issuer()+"/v1/keys" || d["authorization_endpoint"] == nil {
		t.Fatalf("discovery: %d %v", code, d)
	}
	if scopes, _ := d["scopes_supported"].([]any); len(scopes) == 0 || scopes[0] != "openid" {
		t.Fatalf("scopes_supported %v must include openid", d["scopes_supported"])
	}
	// An access token verifies with the published key.
	access, _ := h.mustRefresh(testRefresh)
	resp, err := h.srv.Client().Get(h.issuer() + "/v1/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := jsonDecode(resp.Body, &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("jwks: %v %v", err, set)
	}
	parsed, err := jwt.ParseSigned(access, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Headers[0].KeyID != set.Keys[0].KeyID {
		t.Fatalf("kid %q not in JWKS", parsed.Headers[0].KeyID)
	}
	var c jwt.Claims
	if err := parsed.Claims(set.Keys[0].Key, &c); err != nil {
		t.Fatal(err)
	}
	if c.Issuer != h.issuer() || c.Expiry.Time().Sub(c.IssuedAt.Time()) != time.Hour || !c.Expiry.Time().Equal(h.clock.Now().Add(time.Hour)) {
		t.Fatalf("claims %+v", c)
	}
}

// Every refresh returns a new refresh token, and the presented one stops
// working at once; a lost rotation locks the client out until a new login.
func TestRefreshRotates(t *testing.T) {
	h := newHarness(t, nil)
	a1, r1 := h.mustRefresh(testRefresh)
	if r1 == testRefresh {
		t.Fatal("refresh token not rotated")
	}
	code, m := h.refresh(testRefresh)
	if code != 400 || oauthErr(t, m) != "invalid_grant" {
		t.Fatalf("reuse of a rotated refresh token: %d %v", code, m)
	}
	a2, r2 := h.mustRefresh(r1)
	if r2 == r1 || a2 == a1 {
		t.Fatal("second refresh did not rotate")
	}
	// Both older tokens stay dead; reusing them does not revoke the newest
	// (no reuse detection in the reference).
	for _, old := range []string{testRefresh, r1} {
		if code, m := h.refresh(old); code != 400 || oauthErr(t, m) != "invalid_grant" {
			t.Fatalf("old refresh token: %d %v", code, m)
		}
	}
	_, r3 := h.mustRefresh(r2)

	// The client "loses" r4: r3 is spent and r4 unknown to it, so it is
	// locked out until it logs in again.
	if _, lost := h.mustRefresh(r3); lost == "" {
		t.Fatal("no token")
	}
	if code, m := h.refresh(r3); code != 400 || oauthErr(t, m) != "invalid_grant" {
		t.Fatalf("after a lost rotation: %d %v", code, m)
	}
	h.mustRefresh(h.e.IssueRefreshToken())
}

// Concurrent refreshes with one refresh token: exactly one succeeds.
func TestConcurrentRefreshExactlyOne(t *testing.T) {
	h := newHarness(t, nil)
	const n = 16
	var wg sync.WaitGroup
	start := make(chan struct{})
	codes := make([]int, n)
	errs := make([]string, n)
	for i := range n {
		wg.Go(func() {
			<-start
			code, m := h.refresh(testRefresh)
			codes[i] = code
			if code != 200 {
				errs[i], _ = m["error"].(string)
			}
		})
	}
	close(start)
	wg.Wait()
	ok := 0
	for i, c := range codes {
		switch {
		case c == 200:
			ok++
		case c != 400 || errs[i] != "invalid_grant":
			t.Errorf("request %d: %d %s", i, c, errs[i])
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d concurrent refreshes succeeded, want exactly 1", ok, n)
	}
}

func TestRefreshTokenExpiry(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.RefreshTokenTTL = 48 * time.Hour })
	h.clock.Advance(47 * time.Hour)
	_, r1 := h.mustRefresh(testRefresh)
	// Each rotation starts a new period.
	h.clock.Advance(47 * time.Hour)
	_, r2 := h.mustRefresh(r1)
	h.clock.Advance(48 * time.Hour)
	if code, m := h.refresh(r2); code != 400 || oauthErr(t, m) != "invalid_grant" {
		t.Fatalf("expired refresh token: %d %v", code, m)
	}
}

func TestTokenEndpointRefusals(t *testing.T) {
	h := newHarness(t, nil)
	rt := url.Values{"grant_type": {"refresh_token"}, "client_id": {DefaultClientID}, "refresh_token": {testRefresh}}
	with := func(k, v string) url.Values {
		f := url.Values{}
		for key, vals := range rt {
			f[key] = append([]string(nil), vals...)
		}
		if v == "" {
			f.Del(k)
		} else {
			f.Set(k, v)
		}
		return f
	}
	cases := []struct {
		name  string
		form  url.Values
		basic string
		code  int
		err   string
	}{
		{"wrong client_id", with("client_id", "0oaOTHER"), "", 401, "invalid_client"},
		{"no client_id", with("client_id", ""), "", 401, "invalid_client"},
		{"wrong Basic secret", rt, DefaultClientID + ":nope", 401, "invalid_client"},
		{"Basic and other form client", with("client_id", "0oaOTHER"), DefaultClientID + ":" + testSecret, 401, "invalid_client"},
		{"no refresh_token", with("refresh_token", ""), "", 400, "invalid_request"},
		{"unknown refresh_token", with("refresh_token", "forged"), "", 400, "invalid_grant"},
		{"no grant_type", with("grant_type", ""), "", 400, "invalid_request"},
		{"password grant", with("grant_type", "password"), "", 400, "unsupported_grant_type"},
		{"extra scope", with("scope", "openid admin"), "", 400, "invalid_scope"},
		{"repeated parameter", url.Values{"grant_type": {"refresh_token"}, "client_id": {DefaultClientID}, "refresh_token": {testRefresh, "x"}}, "", 400, "invalid_request"},
		{"client_credentials without Basic", url.Values{"grant_type": {"client_credentials"}, "client_id": {DefaultClientID}}, "", 401, "invalid_client"},
		{"client_credentials wrong secret", url.Values{"grant_type": {"client_credentials"}}, DefaultClientID + ":nope", 401, "invalid_client"},
		{"client_credentials wrong client", url.Values{"grant_type": {"client_credentials"}}, "0oaOTHER:" + testSecret, 401, "invalid_client"},
	}
	for _, c := range cases {
		code, m, hdr := h.post(c.form, c.basic)
		if code != c.code || oauthErr(t, m) != c.err {
			t.Errorf("%s: %d %v, want %d %s", c.name, code, m, c.code, c.err)
		}
		if hdr.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q", c.name, hdr.Get("Cache-Control"))
		}
	}
	// JSON and query-string requests are refused.
	req, _ := http.NewRequest("POST", h.issuer()+"/v1/token", strings.NewReader(`{"grant_type":"refresh_token"}`))
	req.Header.Set("Content-Type", "application/json")
	if code, m, _ := h.send(req); code != 400 || oauthErr(t, m) != "invalid_request" {
		t.Fatalf("JSON body: %d %v", code, m)
	}
	req, _ = http.NewRequest("GET", h.issuer()+"/v1/token?"+rt.Encode(), nil)
	if code, _, _ := h.send(req); code != 405 {
		t.Fatalf("GET token: %d", code)
	}
	// None of the refused requests consumed the refresh token.
	h.mustRefresh(testRefresh)
}

func TestClientCredentials(t *testing.T) {
	h := newHarness(t, nil)
	code, m, hdr := h.post(url.Values{"grant_type": {"client_credentials"}}, DefaultClientID+":"+testSecret)
	if code != 200 || m["refresh_token"] != nil || m["access_token"] == nil || hdr.Get("Cache-Control") != "no-store" {
		t.Fatalf("client_credentials: %d %v", code, m)
	}
	access := m["access_token"].(string)
	if code, _, _ := h.api("/v1/quantumProcessors", "Bearer "+access); code != 200 {
		t.Fatalf("client token on list: %d", code)
	}
	if code, _, _ := h.api("/v1/auth:getUser", "Bearer "+access); code != 404 {
		t.Fatalf("client token has no user: %d", code)
	}
	// Basic auth may also authenticate a refresh.
	if code, m, _ := h.post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {testRefresh}}, DefaultClientID+":"+testSecret); code != 200 {
		t.Fatalf("refresh with Basic: %d %v", code, m)
	}
	// Without a configured secret the grant is refused even with an empty one.
	n := newHarness(t, func(c *Config) { c.ClientSecret = "" })
	if code, m, _ := n.post(url.Values{"grant_type": {"client_credentials"}}, DefaultClientID+":"); code != 401 || oauthErr(t, m) != "invalid_client" {
		t.Fatalf("client_credentials without a secret: %d %v", code, m)
	}
}

// Refresh tokens, client secrets and access tokens never reach the log.
func TestNoSecretsInLogs(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := newHarness(t, func(c *Config) { c.Logger = log })
	access, next := h.mustRefresh(testRefresh)
	h.refresh(testRefresh)
	h.post(url.Values{"grant_type": {"client_credentials"}}, DefaultClientID+":wrong-secret-xyz")
	h.api("/v1/auth:getUser", "Bearer "+access)
	if buf.Len() == 0 {
		t.Fatal("nothing logged at debug level")
	}
	for _, s := range []string{testRefresh, next, access, testSecret, "wrong-secret-xyz"} {
		if strings.Contains(buf.String(), s) {
			t.Errorf("log contains a secret %.20q…", s)
		}
	}
}

// The refresh-token store stays bounded: expired tokens go first, then
// the oldest.
func TestRefreshStoreBounded(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxRefreshTokens = 2; c.RefreshTokenTTL = time.Hour })
	a := h.e.IssueRefreshToken() // with testRefresh: 2 live
	b := h.e.IssueRefreshToken() // evicts testRefresh, the oldest
	if code, _ := h.refresh(testRefresh); code != 400 {
		t.Fatal("oldest refresh token kept past MaxRefreshTokens")
	}
	h.clock.Advance(30 * time.Minute)
	c := h.e.IssueRefreshToken() // evicts a
	h.clock.Advance(45 * time.Minute)
	d := h.e.IssueRefreshToken() // b expired: evicted first, c kept
	if code, _ := h.refresh(a); code != 400 {
		t.Fatal("evicted token accepted")
	}
	if code, _ := h.refresh(b); code != 400 {
		t.Fatal("expired token accepted")
	}
	for _, tok := range []string{c, d} {
		if code, m := h.refresh(tok); code != 200 {
			t.Fatalf("live token evicted: %v", m)
		}
	}
	h.e.mu.Lock()
	n := len(h.e.refresh)
	h.e.mu.Unlock()
	if n > 2 {
		t.Fatalf("%d refresh tokens kept, limit 2", n)
	}
}

func TestConfiguredIssuer(t *testing.T) {
	const iss = "https://auth.qcs.example" + DefaultIssuerPath
	h := newHarness(t, func(c *Config) { c.Issuer = iss })
	code, d, _ := h.api(DefaultIssuerPath+"/.well-known/openid-configuration", "")
	if code != 200 || d["issuer"] != iss || d["token_endpoint"] != iss+"/v1/token" {
		t.Fatalf("discovery: %v", d)
	}
	access, _ := h.mustRefresh(testRefresh)
	parsed, err := jwt.ParseSigned(access, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	var c jwt.Claims
	if err := parsed.Claims(&testKey().PublicKey, &c); err != nil || c.Issuer != iss {
		t.Fatalf("iss %q, %v", c.Issuer, err)
	}
}

func TestRouteErrors(t *testing.T) {
	h := newHarness(t, nil)
	req, _ := http.NewRequest("POST", h.srv.URL+"/v1/quantumProcessors", nil)
	if code, m, hdr := h.send(req); code != 405 || m["code"] != "method_not_allowed" || hdr.Get("Allow") == "" {
		t.Fatalf("POST list: %d %v", code, m)
	}
	if code, m, _ := h.api(DefaultIssuerPath+"/v1/authorize", ""); code != 404 || m["error"] != "invalid_request" {
		t.Fatalf("authorize (not emulated): %d %v", code, m)
	}
}

// Rotation after rotation keeps the bookkeeping bounded.
func TestRotationBookkeepingBounded(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxRefreshTokens = 4 })
	tok := testRefresh
	for range 50 {
		_, tok = h.mustRefresh(tok)
	}
	h.e.mu.Lock()
	n, o := len(h.e.refresh), len(h.e.order)
	h.e.mu.Unlock()
	if n != 1 || o > 8 {
		t.Fatalf("after 50 rotations: %d live tokens, %d order entries", n, o)
	}
}
