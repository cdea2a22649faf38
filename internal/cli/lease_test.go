package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// qbroker lease revoke sends Vault's lease revocations: PUT
// /v1/sys/leases/revoke with the lease id, or --prefix to revoke-prefix;
// the broker's refusal is the command's error.
func TestLeaseRevokeCommand(t *testing.T) {
	type call struct{ method, path, body, token string }
	var calls []call
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		calls = append(calls, call{r.Method, r.URL.EscapedPath(), string(b), r.Header.Get("X-Vault-Token")})
		if strings.Contains(string(b), "bad") {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"errors":["malformed lease_id \"bad\""]}`))
			return
		}
		_, _ = w.Write([]byte(`{"data":{"lease_id":"aws/creds/r/x","aws_role":"r","aws":{"role_arn":"arn:aws:iam::123456789012:role/q","issued_before":"2026-11-26T19:00:00Z"}}}`))
	}))
	t.Cleanup(srv.Close)
	env := map[string]string{EnvAddr: srv.URL, EnvToken: "qbt_test"}

	code, out, errOut := runCLI(t, env, "lease", "revoke", "aws/creds/r/abc-def")
	if code != 0 || !strings.Contains(out, `"issued_before"`) {
		t.Fatalf("lease revoke: %d %q %q", code, out, errOut)
	}
	var body map[string]string
	if len(calls) != 1 || calls[0].method != http.MethodPut || calls[0].path != "/v1/sys/leases/revoke" || calls[0].token != "qbt_test" ||
		json.Unmarshal([]byte(calls[0].body), &body) != nil || body["lease_id"] != "aws/creds/r/abc-def" {
		t.Fatalf("request: %+v", calls)
	}
	code, _, errOut = runCLI(t, env, "lease", "revoke", "--prefix", "aws/creds/r")
	if code != 0 || len(calls) != 2 || calls[1].method != http.MethodPost || calls[1].path != "/v1/sys/leases/revoke-prefix/aws/creds/r" {
		t.Fatalf("lease revoke --prefix: %d %q %+v", code, errOut, calls)
	}
	code, _, errOut = runCLI(t, env, "lease", "revoke", "bad")
	if code == 0 || !strings.Contains(errOut, "malformed lease_id") {
		t.Fatalf("refused revocation: %d %q", code, errOut)
	}
	if code, _, _ = runCLI(t, env, "lease", "revoke"); code == 0 {
		t.Fatal("no lease id accepted")
	}
}
