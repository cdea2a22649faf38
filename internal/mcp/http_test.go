package mcp_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/mcp"
)

// httpStack serves the streamable HTTP transport for st. The server is
// given the agent's token as Options.Token too, to show the HTTP side
// never falls back to it.
func (st *stack) serveHTTP(t *testing.T) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	h, err := st.srv.HTTPHandler(mcp.HTTPOptions{PublicURL: "http://" + ts.Listener.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = h
	ts.Start()
	t.Cleanup(ts.Close)
	return ts
}

const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}`

func post(t *testing.T, url, body string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// Unauthenticated, wrong, revoked and non-bearer credentials get 401 with
// the RFC 9728 resource_metadata pointer; the metadata names the broker as
// the authorization server.
func TestHTTPRequiresABrokerToken(t *testing.T) {
	st := newStack(t, nil)
	ts := st.serveHTTP(t)
	metaURL := ts.URL + "/.well-known/oauth-protected-resource"
	wantChallenge := `Bearer resource_metadata="` + metaURL + `"`

	other, err := st.broker.AppRoleLogin(context.Background(), st.d.RoleID, mustSecretID(t, st))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.broker.WithToken(other.ClientToken).RevokeSelf(context.Background()); err != nil {
		t.Fatal(err)
	}
	for name, hdr := range map[string][]string{
		"no credential":        nil,
		"wrong token":          {"Authorization", "Bearer qbt_not_a_real_token_0000000000000000000000000000"},
		"revoked token":        {"Authorization", "Bearer " + other.ClientToken},
		"not bearer":           {"Authorization", "Basic " + st.token},
		"vault header instead": {"X-Vault-Token", st.token},
		"empty bearer":         {"Authorization", "Bearer "},
	} {
		resp, body := post(t, ts.URL+"/mcp", initialize, hdr...)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: %d %s, want 401", name, resp.StatusCode, body)
			continue
		}
		if got := resp.Header.Get("WWW-Authenticate"); got != wantChallenge {
			t.Errorf("%s: WWW-Authenticate %q, want %q", name, got, wantChallenge)
		}
		for _, secret := range []string{st.token, other.ClientToken, "qbt_not_a_real"} {
			if strings.Contains(body, secret) {
				t.Errorf("%s: the 401 body echoes a token: %q", name, body)
			}
		}
	}

	for _, path := range []string{"/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"} {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var meta struct {
			Resource             string   `json:"resource"`
			AuthorizationServers []string `json:"authorization_servers"`
			BearerMethods        []string `json:"bearer_methods_supported"`
		}
		err = json.NewDecoder(resp.Body).Decode(&meta)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %v", path, resp.StatusCode, err)
		}
		if meta.Resource != ts.URL+"/mcp" || len(meta.AuthorizationServers) != 1 || meta.AuthorizationServers[0] != st.d.BrokerURL ||
			len(meta.BearerMethods) != 1 || meta.BearerMethods[0] != "header" {
			t.Errorf("%s: metadata %+v: want resource %s/mcp, authorization server %s, bearer in header", path, meta, ts.URL, st.d.BrokerURL)
		}
	}
}

// mustSecretID mints another secret_id for the demo role (root).
func mustSecretID(t *testing.T, st *stack) string {
	t.Helper()
	s, err := st.root.NewSecretID(context.Background(), "demo", api.SecretIDRequest{Agent: "second-agent"})
	if err != nil {
		t.Fatal(err)
	}
	return s.SecretID
}

// bearerTransport adds the agent's token to every request, as an MCP host
// configured with a bearer token does.
type bearerTransport struct{ token string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// The Bell pair over streamable HTTP with the Go SDK's client and a bearer
// token; the session belongs to the agent that opened it.
func TestBellPairOverHTTP(t *testing.T) {
	st := newStack(t, nil)
	ts := st.serveHTTP(t)
	ctx := context.Background()
	tr := &buffer{}
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "qbroker-go-http-test", Version: "0.2"}, nil).Connect(ctx,
		&sdk.LoggingTransport{Writer: tr, Transport: &sdk.StreamableClientTransport{Endpoint: ts.URL + "/mcp", HTTPClient: &http.Client{Transport: bearerTransport{st.token}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	s := &session{t: t, cs: cs, transcript: tr}

	var sub submission
	s.ok("submit_circuit", map[string]any{"circuit": bellQASM, "format": "qasm3", "device": "ionq/simulator", "shots": 500}, &sub)
	s.waitJob(sub.JobID)
	var r result
	s.ok("get_result", map[string]any{"job_id": sub.JobID}, &r)
	checkBell(t, r, 500)

	var named bool
	for _, ev := range st.events(t, "tool_call") {
		if ev["client"] == "qbroker-go-http-test 0.2" && ev["action"] == "submit_circuit" {
			named = true
		}
	}
	if !named {
		t.Error("no submit_circuit tool_call event with the HTTP client's name")
	}

	// Another agent's valid token cannot drive this session.
	other, err := st.broker.AppRoleLogin(ctx, st.d.RoleID, mustSecretID(t, st))
	if err != nil {
		t.Fatal(err)
	}
	call := `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"job_status","arguments":{"job_id":"` + sub.JobID + `"}}}`
	resp, body := post(t, ts.URL+"/mcp", call, "Authorization", "Bearer "+other.ClientToken, "Mcp-Session-Id", cs.ID(), "Mcp-Protocol-Version", "2025-06-18")
	t.Logf("another agent on the session: %d %s", resp.StatusCode, strings.TrimSpace(body))
	if resp.StatusCode < 400 || strings.Contains(body, `"completed"`) {
		t.Errorf("another agent used the session: %d %s", resp.StatusCode, body)
	}

	// Revoking the agent's token stops its MCP session at the next request.
	if err := st.broker.WithToken(st.token).RevokeSelf(ctx); err != nil {
		t.Fatal(err)
	}
	if res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "list_devices"}); err == nil {
		t.Errorf("a revoked token still drives the session: %+v", res)
	} else if !strings.Contains(err.Error(), "401") && !strings.Contains(strings.ToLower(err.Error()), "unauthorized") {
		t.Errorf("after revocation: %v, want a 401", err)
	}

	st.noSecrets(t, "MCP HTTP transcript", tr.String())
	st.noSecrets(t, "MCP server log", st.logs.String())
}
