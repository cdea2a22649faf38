package azuresim

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestWorkspaceAuthRefusals(t *testing.T) {
	h := newHarness(t, nil)
	good := h.token(QuantumScope)
	arm := h.token(ManagementScope)
	// A token signed by another emulator (another Entra) for the same
	// tenant, client and resource.
	foreign := newHarness(t, func(c *Config) { c.ObjectID = h.e.ObjectID() }).token(QuantumScope)
	now := h.clock.now()
	mint := func(mut func(*accessClaims)) string {
		c := accessClaims{Aud: QuantumResource, Iss: h.e.Issuer(), Iat: now.Unix(), Nbf: now.Unix(), Exp: now.Add(time.Hour).Unix(),
			AppID: testClient, AppIDACR: "1", OID: h.e.ObjectID(), Sub: h.e.ObjectID(), TID: testTenant, Ver: "1.0"}
		mut(&c)
		s, _, err := h.e.sign(c, now)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	otherTenant := "11111111-2222-3333-4444-555555555555"
	cases := []struct {
		name   string
		header map[string]string
		status int
		code   string
	}{
		{"no credential", nil, 401, "AuthenticationFailed"},
		{"basic scheme", map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, 401, "AuthenticationFailed"},
		{"garbage bearer", map[string]string{"Authorization": "Bearer not-a-jwt"}, 401, "InvalidAuthenticationToken"},
		{"foreign signer", map[string]string{"Authorization": "Bearer " + foreign}, 401, "InvalidAuthenticationToken"},
		{"tampered payload", map[string]string{"Authorization": "Bearer " + tamper(good)}, 401, "InvalidAuthenticationToken"},
		{"ARM audience", map[string]string{"Authorization": "Bearer " + arm}, 401, "InvalidAuthenticationTokenAudience"},
		{"other tenant", map[string]string{"Authorization": "Bearer " + mint(func(c *accessClaims) {
			c.TID, c.Iss = otherTenant, "https://sts.windows.net/"+otherTenant+"/"
		})}, 401, "InvalidAuthenticationTokenTenant"},
		{"other principal", map[string]string{"Authorization": "Bearer " + mint(func(c *accessClaims) {
			c.AppID, c.OID = newUUID(), newUUID()
		})}, 403, "AuthorizationFailed"},
		{"wrong API key", map[string]string{APIKeyHeader: "guess"}, 401, "AuthenticationFailed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.send("GET", h.e.WorkspacePath()+"/jobs?"+apiV, "", tc.header)
			if r.code != tc.status {
				t.Fatalf("status %d, want %d: %s", r.code, tc.status, r.body)
			}
			if got := apiCode(t, r); got != tc.code {
				t.Errorf("code %s, want %s: %s", got, tc.code, r.body)
			}
			if tc.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), `Bearer authorization_uri="https://login.microsoftonline.com/`+testTenant) {
				t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
			}
		})
	}
	if r := h.ws("GET", "/jobs", apiV, good, ""); r.code != http.StatusOK {
		t.Errorf("the good token: %d %s", r.code, r.body)
	}
}

// tamper flips a character of a JWT's payload, keeping the signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	p := []byte(parts[1])
	if p[10] == 'A' {
		p[10] = 'B'
	} else {
		p[10] = 'A'
	}
	parts[1] = string(p)
	return strings.Join(parts, ".")
}

func TestWorkspaceExpiredToken(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token(QuantumScope)
	h.clock.advance(time.Hour + 4*time.Minute) // within the 5-minute skew
	if r := h.ws("GET", "/jobs", apiV, tok, ""); r.code != http.StatusOK {
		t.Fatalf("within skew: %d %s", r.code, r.body)
	}
	h.clock.advance(2 * time.Minute)
	r := h.ws("GET", "/jobs", apiV, tok, "")
	if r.code != http.StatusUnauthorized || apiCode(t, r) != "ExpiredAuthenticationToken" {
		t.Fatalf("expired: %d %s", r.code, r.body)
	}
	// A fresh token works again.
	if r := h.ws("GET", "/jobs", apiV, h.token(QuantumScope), ""); r.code != http.StatusOK {
		t.Errorf("fresh token: %d %s", r.code, r.body)
	}
}

func TestWorkspaceAPIVersion(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token(QuantumScope)
	cases := []struct {
		query string
		code  string
	}{
		{"", "MissingApiVersionParameter"},
		{"api-version=", "MissingApiVersionParameter"},
		{"api-version=2099-01-01", "UnsupportedApiVersion"},
		{"api-version=" + DefaultAPIVersion + "&api-version=2022-09-12-preview", "InvalidApiVersionParameter"},
	}
	for _, tc := range cases {
		for _, path := range []string{"/jobs", "/providerStatus", "/jobs/" + newUUID()} {
			r := h.ws("GET", path, tc.query, tok, "")
			if r.code != http.StatusBadRequest || apiCode(t, r) != tc.code {
				t.Errorf("GET %s?%s: %d %s", path, tc.query, r.code, r.body)
			}
		}
	}
	// The api-version is checked before the credential.
	r := h.ws("GET", "/jobs", "", "", "")
	if r.code != http.StatusBadRequest {
		t.Errorf("no api-version, no token: %d %s", r.code, r.body)
	}
	for _, v := range DefaultAPIVersions() {
		if r := h.ws("GET", "/jobs", "api-version="+v, tok, ""); r.code != http.StatusOK {
			t.Errorf("api-version %s: %d %s", v, r.code, r.body)
		}
	}
}

func TestWorkspacePathAndRoutes(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token(QuantumScope)
	auth := map[string]string{"Authorization": "Bearer " + tok}
	other := strings.Replace(h.e.WorkspacePath(), testWorkspace, "other-ws", 1)
	if r := h.send("GET", other+"/jobs?"+apiV, "", auth); r.code != http.StatusNotFound || apiCode(t, r) != "WorkspaceNotFound" {
		t.Errorf("other workspace: %d %s", r.code, r.body)
	}
	otherSub := strings.Replace(h.e.WorkspacePath(), testSub, "99999999-0000-0000-0000-000000000001", 1)
	if r := h.send("GET", otherSub+"/jobs?"+apiV, "", auth); r.code != http.StatusNotFound {
		t.Errorf("other subscription: %d %s", r.code, r.body)
	}
	// ARM resource ids are case-insensitive in names.
	upper := strings.Replace(h.e.WorkspacePath(), testWorkspace, strings.ToUpper(testWorkspace), 1)
	if r := h.send("GET", upper+"/jobs?"+apiV, "", auth); r.code != http.StatusOK {
		t.Errorf("upper-case workspace: %d %s", r.code, r.body)
	}
	if r := h.ws("GET", "/quotasx", apiV, tok, ""); r.code != http.StatusNotFound || apiCode(t, r) != "NotFound" {
		t.Errorf("unknown route: %d %s", r.code, r.body)
	}
	if r := h.ws("PATCH", "/jobs", apiV, tok, ""); r.code != http.StatusMethodNotAllowed || apiCode(t, r) != "MethodNotAllowed" {
		t.Errorf("wrong method: %d %s", r.code, r.body)
	}
	if r := h.ws("GET", "/jobs/not-a-guid", apiV, tok, ""); r.code != http.StatusBadRequest {
		t.Errorf("malformed job id: %d %s", r.code, r.body)
	}
	if r := h.ws("GET", "/jobs/"+newUUID(), apiV, tok, ""); r.code != http.StatusNotFound || apiCode(t, r) != "JobNotFound" {
		t.Errorf("unknown job: %d %s", r.code, r.body)
	}
}

func TestProviderStatus(t *testing.T) {
	h := newHarness(t, nil)
	r := h.ws("GET", "/providerStatus", apiV, h.token(QuantumScope), "")
	if r.code != http.StatusOK {
		t.Fatalf("%d %s", r.code, r.body)
	}
	m := r.json(t)
	if _, ok := m["nextLink"]; !ok {
		t.Error("nextLink missing")
	}
	got := map[string][]string{}
	for _, p := range m["value"].([]any) {
		ps := p.(map[string]any)
		if ps["currentAvailability"] != "Available" {
			t.Errorf("provider %v availability %v", ps["id"], ps["currentAvailability"])
		}
		for _, tg := range ps["targets"].([]any) {
			ts := tg.(map[string]any)
			if _, ok := ts["averageQueueTime"]; !ok {
				t.Errorf("target %v lacks averageQueueTime", ts["id"])
			}
			got[ps["id"].(string)] = append(got[ps["id"].(string)], ts["id"].(string))
		}
	}
	if strings.Join(got["ionq"], ",") != "ionq.simulator,ionq.qpu.forte-1" ||
		strings.Join(got["quantinuum"], ",") != "quantinuum.sim.h2-1sc,quantinuum.sim.h2-1e,quantinuum.qpu.h2-1" {
		t.Errorf("targets = %v", got)
	}
}

func TestAPIKey(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.APIKey = "workspace-key-0123456789" })
	r := h.send("GET", h.e.WorkspacePath()+"/jobs?"+apiV, "", map[string]string{APIKeyHeader: "workspace-key-0123456789"})
	if r.code != http.StatusOK {
		t.Errorf("right key: %d %s", r.code, r.body)
	}
	// Without a configured key no key is accepted.
	h2 := newHarness(t, nil)
	r = h2.send("GET", h2.e.WorkspacePath()+"/jobs?"+apiV, "", map[string]string{APIKeyHeader: ""})
	if r.code != http.StatusUnauthorized {
		t.Errorf("empty key with none configured: %d %s", r.code, r.body)
	}
}
