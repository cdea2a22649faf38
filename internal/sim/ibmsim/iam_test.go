package ibmsim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestIAMExchange(t *testing.T) {
	h := newHarness(t, nil)
	before := h.now().Unix()
	tr := h.login()
	if tr.TokenType != "Bearer" || tr.ExpiresIn != 3600 || tr.RefreshToken != "not_supported" || tr.Scope != "ibm openid" {
		t.Fatalf("token response %+v", tr)
	}
	if tr.Expiration < before+3600 || tr.Expiration > h.now().Unix()+3600 {
		t.Fatalf("expiration %d is not now+3600 (now %d)", tr.Expiration, before)
	}
	// IBM's SDKs read exp and iat from the unverified JWT payload.
	parts := strings.Split(tr.AccessToken, ".")
	if len(parts) != 3 {
		t.Fatalf("access token is not a JWT: %d parts", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Exp   int64  `json:"exp"`
		Iat   int64  `json:"iat"`
		IAMID string `json:"iam_id"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	if claims.Exp != tr.Expiration || claims.Exp-claims.Iat != 3600 || !strings.HasPrefix(claims.IAMID, "iam-ServiceId-") {
		t.Fatalf("claims %+v", claims)
	}
	if strings.Contains(tr.AccessToken, testKey) {
		t.Fatal("the access token contains the API key")
	}
	// The token opens Qiskit Runtime, and two exchanges give two tokens.
	if res := h.do(h.bearer(crnA), http.MethodGet, "/backends", ""); res.status != http.StatusOK {
		t.Fatalf("backends with the token: %d %s", res.status, res.body)
	}
	first := h.token
	if h.login(); h.token == first {
		t.Fatal("two exchanges returned the same token")
	}
}

func TestIAMRefusals(t *testing.T) {
	h := newHarness(t, nil)
	cases := []struct {
		name    string
		form    url.Values
		code    string
		details string
	}{
		{"wrong key", url.Values{"grant_type": {GrantTypeAPIKey}, "apikey": {"not-the-key"}}, "BXNIM0415E", ""},
		{"key with a suffix", url.Values{"grant_type": {GrantTypeAPIKey}, "apikey": {testKey + "x"}}, "BXNIM0415E", ""},
		{"wrong grant type", url.Values{"grant_type": {"client_credentials"}, "apikey": {testKey}}, "BXNIM0103E", ""},
		{"refresh grant", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, "BXNIM0103E", ""},
		{"no grant type", url.Values{"apikey": {testKey}}, "BXNIM0109E", "Property 'grant_type' either missing or empty."},
		{"no key", url.Values{"grant_type": {GrantTypeAPIKey}}, "BXNIM0109E", "Property 'apikey' either missing or empty."},
		{"empty key", url.Values{"grant_type": {GrantTypeAPIKey}, "apikey": {""}}, "BXNIM0109E", "Property 'apikey' either missing or empty."},
	}
	for _, c := range cases {
		res := h.exchange(c.form)
		var e iamError
		_ = json.Unmarshal(res.body, &e)
		if res.status != http.StatusBadRequest || e.ErrorCode != c.code || e.ErrorMessage == "" || e.Context.RequestID == "" {
			t.Errorf("%s: %d %s", c.name, res.status, res.body)
		}
		if c.details != "" && e.ErrorDetails != c.details {
			t.Errorf("%s: errorDetails %q, want %q", c.name, e.ErrorDetails, c.details)
		}
		if bytes.Contains(res.body, []byte("not-the-key")) || bytes.Contains(res.body, []byte(testKey)) {
			t.Errorf("%s: the answer echoes a key: %s", c.name, res.body)
		}
	}
	// A JSON body is not a form: IAM finds no grant_type.
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/identity/token",
		strings.NewReader(`{"grant_type":"`+GrantTypeAPIKey+`","apikey":"`+testKey+`"}`))
	req.Header.Set("Content-Type", "application/json")
	if res := h.send(req); res.status != http.StatusBadRequest || res.iamCode() != "BXNIM0109E" {
		t.Errorf("JSON body: %d %s", res.status, res.body)
	}
	// Query parameters are not the body.
	req, _ = http.NewRequest(http.MethodPost, h.srv.URL+"/identity/token?grant_type="+url.QueryEscape(GrantTypeAPIKey)+"&apikey="+testKey, nil)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if res := h.send(req); res.status != http.StatusBadRequest || res.iamCode() != "BXNIM0109E" {
		t.Errorf("query parameters: %d %s", res.status, res.body)
	}
	huge := url.Values{"grant_type": {GrantTypeAPIKey}, "apikey": {strings.Repeat("k", iamMaxBody)}}
	if res := h.exchange(huge); res.status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized form: %d %s", res.status, res.body)
	}
	req, _ = http.NewRequest(http.MethodGet, h.srv.URL+"/identity/token", nil)
	if res := h.send(req); res.status != http.StatusMethodNotAllowed || res.iamCode() != "BXNIM0060E" {
		t.Errorf("GET: %d %s", res.status, res.body)
	}
	if n := h.e.tokenCount(); n != 0 {
		t.Fatalf("refused exchanges left %d tokens", n)
	}

	// An emulator configured without a key refuses every key, the empty one
	// included.
	none := newHarness(t, func(c *Config) { c.APIKey = "" })
	if res := none.exchange(url.Values{"grant_type": {GrantTypeAPIKey}, "apikey": {testKey}}); res.iamCode() != "BXNIM0415E" {
		t.Errorf("no key configured: %d %s", res.status, res.body)
	}
	if res := none.do(hdr{auth: "apikey " + testKey, crn: crnA}, http.MethodGet, "/backends", ""); res.status != http.StatusUnauthorized {
		t.Errorf("no key configured, apikey scheme: %d", res.status)
	}
}

// A token is refused once it expires, as IAM tokens are, and a new exchange
// restores access.
func TestExpiredTokenRefused(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.TokenTTL = 10 * time.Minute })
	tr := h.login()
	if tr.ExpiresIn != 600 {
		t.Fatalf("expires_in %d", tr.ExpiresIn)
	}
	old := h.bearer(crnA)
	h.advance(10*time.Minute - time.Second)
	if res := h.do(old, http.MethodGet, "/backends", ""); res.status != http.StatusOK {
		t.Fatalf("a second before expiry: %d %s", res.status, res.body)
	}
	h.advance(time.Second)
	expectError(t, "at expiry", h.do(old, http.MethodGet, "/backends", ""), http.StatusUnauthorized, codeInvalidCredentials)
	expectError(t, "create with an expired token", h.do(old, http.MethodPost, "/jobs", samplerJob(kingston, 10, bellISA)),
		http.StatusUnauthorized, codeInvalidCredentials)
	if h.e.jobCount() != 0 {
		t.Fatal("an expired token created a job")
	}
	h.login()
	if res := h.do(h.bearer(crnA), http.MethodGet, "/backends", ""); res.status != http.StatusOK {
		t.Fatalf("fresh token: %d %s", res.status, res.body)
	}
	// An hour on, the fresh token has expired too.
	h.advance(oneMinute * 60)
	expectError(t, "fresh token an hour later", h.do(h.bearer(crnA), http.MethodGet, "/backends", ""), http.StatusUnauthorized, codeInvalidCredentials)
}

func TestRuntimeAuthRefusals(t *testing.T) {
	h := newHarness(t, nil)
	h.login()
	body := samplerJob(kingston, 10, bellISA)
	jwtLike := "eyJraWQiOiJpYm1zaW0iLCJhbGciOiJSUzI1NiJ9.e30.c2ln"
	cases := []struct {
		name   string
		hd     hdr
		status int
		code   int
	}{
		{"no Authorization", hdr{crn: crnA}, 401, codeInvalidCredentials},
		{"unknown bearer", hdr{auth: "Bearer " + jwtLike, crn: crnA}, 401, codeInvalidCredentials},
		{"API key as a bearer token", hdr{auth: "Bearer " + testKey, crn: crnA}, 401, codeInvalidCredentials},
		{"wrong API key", hdr{auth: "apikey not-the-key", crn: crnA}, 401, codeInvalidCredentials},
		{"token under the apikey scheme", hdr{auth: "apikey " + h.token, crn: crnA}, 401, codeInvalidCredentials},
		{"Basic scheme", hdr{auth: "Basic " + base64.StdEncoding.EncodeToString([]byte("apikey:"+testKey)), crn: crnA}, 401, codeInvalidCredentials},
		{"bare token", hdr{auth: h.token, crn: crnA}, 401, codeInvalidCredentials},
		{"token with trailing garbage", hdr{auth: "Bearer " + h.token + " x", crn: crnA}, 401, codeInvalidCredentials},
		{"no Service-CRN", hdr{auth: "Bearer " + h.token}, 403, codeNotAuthorized},
		{"unknown Service-CRN", hdr{auth: "Bearer " + h.token, crn: strings.Replace(crnA, "1111", "9999", 1)}, 403, codeNotAuthorized},
		{"CRN of another region", hdr{auth: "Bearer " + h.token, crn: strings.Replace(crnA, "us-east", "eu-de", 1)}, 403, codeNotAuthorized},
		{"malformed API version", hdr{auth: "Bearer " + h.token, crn: crnA, version: "latest"}, 400, codeValidation},
		{"impossible API version date", hdr{auth: "Bearer " + h.token, crn: crnA, version: "2026-02-30"}, 400, codeValidation},
	}
	for _, c := range cases {
		res := h.do(c.hd, http.MethodPost, "/jobs", body)
		expectError(t, c.name, res, c.status, c.code)
		if bytes.Contains(res.body, []byte(h.token)) || bytes.Contains(res.body, []byte(testKey)) {
			t.Errorf("%s: the answer echoes a credential", c.name)
		}
	}
	// Two Authorization headers, or two Service-CRN headers, are refused.
	req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/api/v1/backends", nil)
	req.Header.Add("Authorization", "Bearer "+h.token)
	req.Header.Add("Authorization", "Bearer "+h.token)
	req.Header.Set("Service-CRN", crnA)
	if res := h.send(req); res.status != http.StatusUnauthorized {
		t.Errorf("two Authorization headers: %d", res.status)
	}
	req, _ = http.NewRequest(http.MethodGet, h.srv.URL+"/api/v1/backends", nil)
	req.Header.Set("Authorization", "Bearer "+h.token)
	req.Header.Add("Service-CRN", crnB)
	req.Header.Add("Service-CRN", crnA)
	if res := h.send(req); res.status != http.StatusForbidden {
		t.Errorf("two Service-CRN headers: %d", res.status)
	}
	if h.e.jobCount() != 0 {
		t.Fatal("a refused request created a job")
	}

	// The SDK's fallback, the API key itself, is accepted as IBM does; the
	// bearer scheme is case-insensitive; no API version header is fine.
	for _, hd := range []hdr{{auth: "apikey " + testKey, crn: crnA}, {auth: "bearer " + h.token, crn: crnA}} {
		if res := h.do(hd, http.MethodGet, "/backends", ""); res.status != http.StatusOK {
			t.Errorf("%q: %d %s", strings.SplitN(hd.auth, " ", 2)[0], res.status, res.body)
		}
	}
}
