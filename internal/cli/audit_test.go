package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"github.com/qbroker/qbroker/api"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qbroker/qbroker/internal/audit"
)

func runCLI(t *testing.T, getenv map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), args, Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return getenv[k] }})
	return code, out.String(), errb.String()
}

func TestAuditVerifyCommand(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	path := filepath.Join(t.TempDir(), "audit.log")
	s, err := audit.OpenFile(path, audit.FileOptions{Signer: priv, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := s.Write(t.Context(), &audit.Event{Type: "login"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString(pub)
	code, out, errOut := runCLI(t, nil, "audit", "verify", "--strict", "--public-key-b64", b64, path)
	if code != 0 || !strings.Contains(out, "OK: 1 file(s), 6 line(s), 5 event(s), 1 checkpoint(s)") {
		t.Fatalf("verify good trail: %d %q %q", code, out, errOut)
	}
	keyFile := filepath.Join(t.TempDir(), "audit.pub")
	_ = os.WriteFile(keyFile, []byte(b64+"\n"), 0o600)

	data, _ := os.ReadFile(path)
	_ = os.WriteFile(path, bytes.Replace(data, []byte(`"seq":3,`), []byte(`"seq":4,`), 1), 0o600)
	code, out, errOut = runCLI(t, nil, "audit", "verify", "--public-key", keyFile, path)
	if code != 1 || out != "" || !strings.Contains(errOut, path+":3: seq jumps from 2 to 4") {
		t.Fatalf("verify tampered trail: %d %q %q", code, out, errOut)
	}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	_ = os.WriteFile(path, data, 0o600)
	code, _, errOut = runCLI(t, nil, "audit", "verify", "--public-key-b64", base64.StdEncoding.EncodeToString(other), path)
	if code != 1 || !strings.Contains(errOut, ":6: checkpoint signed by key") {
		t.Fatalf("verify with another key: %d %q", code, errOut)
	}
	if code, _, errOut = runCLI(t, nil, "audit", "verify", path); code != 1 || !strings.Contains(errOut, "public key is required") {
		t.Fatalf("verify without a key: %d %q", code, errOut)
	}
}

func TestAuditBrokerCommands(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	var gotValue, gotToken string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotToken = r.Header.Get("X-Vault-Token")
		switch {
		case r.Method == http.MethodPost && r.URL.Path == pathAuditHash:
			var req api.AuditHashRequest
			_ = json.NewDecoder(r.Body).Decode(&req)
			gotValue = req.Value
			_, _ = w.Write([]byte(`{"data":{"hash":"hmac-sha256:` + strings.Repeat("ab", 32) + `"}}`))
		case r.Method == http.MethodGet && r.URL.Path == pathAuditPublicKey:
			_ = json.NewEncoder(w).Encode(map[string]any{"data": api.AuditPublicKeyData{
				KeyID: audit.KeyID(pub), PublicKey: base64.StdEncoding.EncodeToString(pub), Seq: 42}})
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"errors":["no handler"]}`))
		}
	}))
	defer srv.Close()
	env := map[string]string{EnvAddr: srv.URL, EnvToken: "qbt_test"}

	code, out, errOut := runCLI(t, env, "audit", "hash", "s3cret-value")
	if code != 0 || strings.TrimSpace(out) != "hmac-sha256:"+strings.Repeat("ab", 32) || gotValue != "s3cret-value" || gotToken != "qbt_test" {
		t.Fatalf("hash: %d %q %q (value %q, token %q)", code, out, errOut, gotValue, gotToken)
	}
	code, out, errOut = runCLI(t, env, "audit", "public-key")
	if code != 0 || !strings.Contains(out, `"key_id": "`+audit.KeyID(pub)+`"`) || !strings.Contains(out, `"seq": 42`) {
		t.Fatalf("public-key: %d %q %q", code, out, errOut)
	}
	if code, _, errOut = runCLI(t, nil, "audit", "hash", "x"); code != 1 || !strings.Contains(errOut, EnvAddr) {
		t.Fatalf("hash without QBROKER_ADDR: %d %q", code, errOut)
	}
}
