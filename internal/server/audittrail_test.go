package server

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
)

// The trail a real broker writes verifies offline with only the published
// key, and an edit to it is caught and located.
func TestRealTrailVerifiesWithPublishedKey(t *testing.T) {
	e := newEnv(t)
	agent := e.mustLogin(e.d.RoleID, e.d.SecretID)
	e.mustSubmit(e.mustJobToken(agent.ClientToken, "simulator", 100, "").Token, bell())

	var pk api.AuditPublicKeyData
	decodeData(t, e.do(http.MethodGet, e.d.BrokerURL+"/v1/sys/audit/public-key", ""), &pk)
	raw, err := base64.StdEncoding.DecodeString(pk.PublicKey)
	if err != nil || len(raw) != ed25519.PublicKeySize || audit.KeyID(raw) != pk.KeyID || pk.Seq == 0 {
		t.Fatalf("published key %+v (%v)", pk, err)
	}
	// Closing writes the final checkpoint.
	if err := e.d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(e.d.DataDir, "audit.log")
	rep, err := audit.VerifyFiles(context.Background(), []string{path}, raw, audit.VerifyOptions{Strict: true})
	if err != nil {
		t.Fatalf("the broker's own trail does not verify: %v", err)
	}
	if rep.Events < 5 || rep.Checkpoints < 1 {
		t.Fatalf("report %+v", rep)
	}

	// Change who an event is about: the verifier names that line.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	n := -1
	for i, l := range lines {
		if strings.Contains(l, `"type":"login"`) {
			n = i
			break
		}
	}
	if n < 0 {
		t.Fatal("no login event in the trail")
	}
	lines[n] = strings.Replace(lines[n], "approle:demo:demo-agent", "approle:demo:someone-else", 1)
	forged := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(forged, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = audit.VerifyFiles(context.Background(), []string{forged}, raw, audit.VerifyOptions{Strict: true})
	var ve *audit.VerifyError
	if !errors.As(err, &ve) || ve.Line != n+1 {
		t.Fatalf("edited line %d: got %v", n+1, err)
	}
}

// audit hash is a lookup oracle for secrets: root only, and the answer is
// the same HMAC the trail carries.
func TestAuditHashAPI(t *testing.T) {
	e := newEnv(t)
	agent := e.mustLogin(e.d.RoleID, e.d.SecretID)
	body := `{"value":"` + e.d.SecretID + `"}`
	want(t, "audit hash with an agent token", e.broker(http.MethodPost, "/v1/sys/audit/hash", agent.ClientToken, body), http.StatusForbidden, "root")
	want(t, "audit hash of nothing", e.broker(http.MethodPost, "/v1/sys/audit/hash", e.d.RootToken, `{"value":""}`), http.StatusBadRequest, "value")
	var out api.AuditHashData
	decodeData(t, e.broker(http.MethodPost, "/v1/sys/audit/hash", e.d.RootToken, body), &out)
	found := false
	for _, ev := range e.events() {
		if ev.Type == "login" && ev.Hashed["secret_id"] == out.Hash {
			found = true
		}
	}
	if !found || !strings.HasPrefix(out.Hash, audit.HashPrefix) {
		t.Fatalf("hash %q does not find the login that used the secret", out.Hash)
	}
	e.wantNotInAudit(e.d.SecretID)
}
