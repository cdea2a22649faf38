package rigettisim

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }

func TestGetUserAndProcessors(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Email = "ada@example.com" })
	access, _ := h.mustRefresh(testRefresh)
	code, u, _ := h.api("/v1/auth:getUser", "Bearer "+access)
	profile, _ := u["profile"].(map[string]any)
	if code != 200 || profile["email"] != "ada@example.com" || u["idpId"] == nil || u["id"] == nil || u["createdTime"] == nil {
		t.Fatalf("getUser: %d %v", code, u)
	}
	// The scheme is case-insensitive (RFC 7235).
	if code, _, _ := h.api("/v1/auth:getUser", "bearer "+access); code != 200 {
		t.Fatalf("lower-case bearer: %d", code)
	}
	code, l, _ := h.api("/v1/quantumProcessors", "Bearer "+access)
	if qp, _ := l["quantumProcessors"].([]any); code != 200 || len(qp) != 2 || l["nextPageToken"] != nil {
		t.Fatalf("list: %d %v", code, l)
	}
	code, l, _ = h.api("/v1/quantumProcessors?pageSize=1", "Bearer "+access)
	next, _ := l["nextPageToken"].(string)
	if qp, _ := l["quantumProcessors"].([]any); code != 200 || len(qp) != 1 || next == "" {
		t.Fatalf("page 1: %d %v", code, l)
	}
	code, l, _ = h.api("/v1/quantumProcessors?pageSize=1&pageToken="+next, "Bearer "+access)
	if qp, _ := l["quantumProcessors"].([]any); code != 200 || len(qp) != 1 || qp[0].(map[string]any)["id"] != "Cepheus-1-108Q" || l["nextPageToken"] != nil {
		t.Fatalf("page 2: %d %v", code, l)
	}
	for _, q := range []string{"pageSize=0", "pageSize=101", "pageToken=zz", "pageToken=p99"} {
		if code, _, _ := h.api("/v1/quantumProcessors?"+q, "Bearer "+access); code != 400 {
			t.Errorf("%s: %d, want 400", q, code)
		}
	}
	if code, p, _ := h.api("/v1/quantumProcessors/Ankaa-3", "Bearer "+access); code != 200 || p["id"] != "Ankaa-3" {
		t.Fatalf("get processor: %d %v", code, p)
	}
	if code, p, _ := h.api("/v1/quantumProcessors/Aspen-M-3", "Bearer "+access); code != 404 || p["requestId"] == nil {
		t.Fatalf("unknown processor: %d %v", code, p)
	}
	if code, _, _ := h.api("/v1/engagements", "Bearer "+access); code != 404 {
		t.Fatalf("unknown route: %d", code)
	}
}

// An access token is refused once exp has passed on Config.Now, with no
// leeway; a refresh brings access back.
func TestExpiredAccessTokenRefused(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AccessTokenTTL = 10 * time.Minute })
	access, next := h.mustRefresh(testRefresh)
	h.clock.Advance(10*time.Minute - time.Second)
	if code, _, _ := h.api("/v1/auth:getUser", "Bearer "+access); code != 200 {
		t.Fatalf("before expiry: %d", code)
	}
	h.clock.Advance(time.Second)
	for _, p := range []string{"/v1/auth:getUser", "/v1/quantumProcessors", "/v1/quantumProcessors/Ankaa-3"} {
		code, m, hdr := h.api(p, "Bearer "+access)
		if code != 401 || !strings.Contains(m["message"].(string), "expired") || !strings.Contains(hdr.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("%s with an expired token: %d %v %q", p, code, m, hdr.Get("WWW-Authenticate"))
		}
	}
	fresh, _ := h.mustRefresh(next)
	if code, _, _ := h.api("/v1/auth:getUser", "Bearer "+fresh); code != 200 {
		t.Fatalf("fresh token: %d", code)
	}
}

func TestBearerRefusals(t *testing.T) {
	h := newHarness(t, nil)
	access, refresh := h.mustRefresh(testRefresh)
	parts := strings.Split(access, ".")

	// A token with the same claims signed by another key.
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: other}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	forged, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	// The same token with a longer exp and the original signature.
	claims["exp"] = claims["exp"].(float64) + 86400
	longer, _ := json.Marshal(claims)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(longer) + "." + parts[2]
	// alg "none".
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."

	for name, auth := range map[string]string{
		"missing":              "",
		"no scheme":            access,
		"Basic scheme":         "Basic " + access,
		"refresh token":        "Bearer " + refresh,
		"forged signature":     "Bearer " + forged,
		"tampered exp":         "Bearer " + tampered,
		"alg none":             "Bearer " + none,
		"garbage":              "Bearer not.a.jwt",
		"token with extra arg": "Bearer " + access + " x",
	} {
		code, m, hdr := h.api("/v1/auth:getUser", auth)
		if code != 401 || m["code"] != "unauthorized" || hdr.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: %d %v", name, code, m)
		}
	}
	req, _ := http.NewRequest("GET", h.srv.URL+"/v1/auth:getUser", nil)
	req.Header.Add("Authorization", "Bearer "+access)
	req.Header.Add("Authorization", "Bearer "+access)
	if code, _, _ := h.send(req); code != 401 {
		t.Fatalf("two Authorization headers: %d", code)
	}
	// A token from another emulator (another key) is refused here.
	o := newHarness(t, func(c *Config) { c.SigningKey = other })
	foreign, _ := o.mustRefresh(testRefresh)
	if code, _, _ := h.api("/v1/auth:getUser", "Bearer "+foreign); code != 401 {
		t.Fatalf("token of another issuer: %d", code)
	}
}
