package server

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/sim/azuresim"
	"github.com/qbroker/qbroker/internal/sim/ibmsim"
)

// directCall sends a request straight to a provider's emulator, as an
// agent's own SDK would with a token from /v1/<provider>/token/<role>.
func directCall(t *testing.T, method, url string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// GET /v1/ibm/token/<role>: a fresh IAM bearer token for an agent whose
// SDK talks to IBM directly. Only for the caller's own role, only for an
// IBM role, only with a Cedar permit; the token works at IBM, is fresh per
// request, and reaches the trail only as its HMAC; the API key never
// leaves the broker.
func TestIBMTokenForRole(t *testing.T) {
	const apiKey = "ibm-cloud-api-key-for-token-tests-0123"
	e, sim, srvURL := ibmStack(t, ibmsim.Config{APIKey: apiKey, JobsPerMinute: -1}, `
@id("q-ibm-token") permit (principal in Role::"q", action == Action::"IssueCredentials", resource == Provider::"ibm");
`, DevOptions{})
	d := e.d
	e.putRole("q", `{"provider":"ibm","devices":["kingston"],"max_shots":2000}`)
	e.putRole("q2", `{"provider":"ibm","devices":["kingston"],"max_shots":2000}`)
	agent := e.mustLogin(e.roleID("q"), e.newSecretID("q", "qiskit-direct", "").SecretID).ClientToken
	other := e.mustLogin(e.roleID("q2"), e.newSecretID("q2", "no-permit", "").SecretID).ClientToken
	demo := e.mustLogin(d.RoleID, d.SecretID).ClientToken

	want(t, "another role's token", e.broker(http.MethodGet, "/v1/ibm/token/q2", agent, ""), http.StatusForbidden, "not for role")
	want(t, "a role without a permit", e.broker(http.MethodGet, "/v1/ibm/token/q2", other, ""), http.StatusForbidden, "no policy permits IssueCredentials")
	want(t, "an IonQ role", e.broker(http.MethodGet, "/v1/ibm/token/demo", demo, ""), http.StatusForbidden, `is for provider "ionq"`)
	want(t, "no token", e.broker(http.MethodGet, "/v1/ibm/token/q", "", ""), http.StatusForbidden)
	want(t, "azure is not configured", e.broker(http.MethodGet, "/v1/azure/token/q", agent, ""), http.StatusNotFound, "not configured")

	var toks []string
	for range 2 {
		r := e.broker(http.MethodGet, "/v1/ibm/token/q", agent, "")
		want(t, "ibm token", r, http.StatusOK)
		var d api.ProviderTokenData
		decodeData(t, r, &d)
		if d.AccessToken == "" || d.TokenType != "Bearer" || d.Provider != "ibm" || d.ExpiresIn < 60 || strings.Contains(string(r.body), apiKey) {
			t.Fatalf("token answer: %+v", d)
		}
		toks = append(toks, d.AccessToken)
	}
	if toks[0] == toks[1] {
		t.Fatal("two requests got the same token: it must be minted per request")
	}
	hdr := map[string]string{"Authorization": "Bearer " + toks[0], "Service-CRN": sim.InstanceCRN()}
	if st, body := directCall(t, http.MethodGet, srvURL+"/api/v1/backends", hdr); st != http.StatusOK || !strings.Contains(body, "ibm_kingston") {
		t.Fatalf("the token at IBM: %d %s", st, body)
	}
	hdr["Authorization"] = "Bearer not-" + toks[0]
	if st, _ := directCall(t, http.MethodGet, srvURL+"/api/v1/backends", hdr); st != http.StatusUnauthorized {
		t.Fatalf("the emulator accepted a forged token: %d", st)
	}
	trail, err := os.ReadFile(filepath.Join(d.DataDir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(trail, []byte(toks[0])) || bytes.Contains(trail, []byte(apiKey)) {
		t.Fatal("a token or the API key is in the audit trail in clear")
	}
	if n := e.count(func(ev audit.Event) bool {
		return ev.Type == "issue" && ev.Action == "IssueCredentials" && ev.Provider == "ibm" && ev.Decision == "allow" &&
			strings.HasPrefix(ev.Hashed["access_token"], "hmac-sha256:")
	}); n != 2 {
		t.Fatalf("%d issuances audited with the token's HMAC, want 2", n)
	}
}

// GET /v1/azure/token/<role>: an Entra token for the Azure Quantum
// workspace, usable by the agent's own SDK; the client secret stays.
func TestAzureTokenForRole(t *testing.T) {
	const (
		tenant, client, secret = "72f988bf-86f1-41af-91ab-2d7cd011db47", "b3a1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "s3cr3t~token-0123456789abcdef"
		sub, rg, ws            = "00000000-1111-2222-3333-444444444444", "rg-quantum", "qws"
	)
	sim, err := azuresim.New(azuresim.Config{TenantID: tenant, ClientID: client, ClientSecret: secret, SubscriptionID: sub, ResourceGroup: rg, Workspace: ws})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	path := filepath.Join(t.TempDir(), "policies.cedar")
	writeAtomic(t, path, demoPolicy(t)+`
@id("az-token") permit (principal in Role::"az", action == Action::"IssueCredentials", resource == Provider::"azure");
`)
	d := startDevWith(t, DevOptions{PolicyFiles: []string{path}, Approvals: &config.Approvals{},
		Azure: config.Azure{Endpoint: srv.URL, SubscriptionID: sub, ResourceGroup: rg, Workspace: ws, Authority: srv.URL}})
	e := &env{t: t, d: d, hc: &http.Client{Timeout: 20 * time.Second}}
	want(t, "store the service principal", e.broker(http.MethodPost, "/v1/sys/providers/azure/credential", d.RootToken,
		fmt.Sprintf(`{"api_key":%q}`, tenant+":"+client+":"+secret)), http.StatusNoContent)
	e.putRole("az", `{"provider":"azure","devices":["ionq.simulator"],"max_shots":1000}`)
	agent := e.mustLogin(e.roleID("az"), e.newSecretID("az", "azure-direct", "").SecretID).ClientToken
	r := e.broker(http.MethodGet, "/v1/azure/token/az", agent, "")
	want(t, "azure token", r, http.StatusOK)
	if strings.Contains(string(r.body), secret) {
		t.Fatal("the client secret reached the agent")
	}
	var tok api.ProviderTokenData
	decodeData(t, r, &tok)
	jobs := fmt.Sprintf("%s/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Quantum/workspaces/%s/jobs?api-version=%s", srv.URL, sub, rg, ws, azuresim.DefaultAPIVersion)
	if st, body := directCall(t, http.MethodGet, jobs, map[string]string{"Authorization": "Bearer " + tok.AccessToken}); st != http.StatusOK {
		t.Fatalf("the token at the workspace: %d %s", st, body)
	}
	if st, _ := directCall(t, http.MethodGet, jobs, map[string]string{"Authorization": "Bearer x" + tok.AccessToken}); st != http.StatusUnauthorized {
		t.Fatalf("the workspace accepted a forged token: %d", st)
	}
}
