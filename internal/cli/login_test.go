package cli

import (
	"bytes"
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qbroker/qbroker/client"
	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/server"
	"github.com/qbroker/qbroker/internal/testidp"
)

func TestLoginPrintsTheTokenOnlyWhenAsked(t *testing.T) {
	d, err := server.StartDev(context.Background(), server.DevOptions{Addr: "127.0.0.1:0", GatewayAddr: "127.0.0.1:0", SimAddr: "127.0.0.1:0", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	vars := map[string]string{EnvAddr: d.BrokerURL, EnvRoleID: d.RoleID, EnvSecretID: d.SecretID}
	login := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Main(context.Background(), append([]string{"login"}, args...), Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return vars[k] }})
		return code, out.String(), errb.String()
	}
	code, out, errOut := login()
	if code != 0 || out != "" || !strings.Contains(errOut, "logged in as approle:demo:demo-agent") || strings.Contains(errOut, "qbt_") {
		t.Fatalf("without --print: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, _ = login("--print")
	tok := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(tok, "qbt_") {
		t.Fatalf("--print: exit %d, stdout %q", code, out)
	}
	if _, err := client.New(d.BrokerURL, nil).WithToken(tok).LookupSelf(context.Background()); err != nil {
		t.Fatalf("printed token does not work: %v", err)
	}
	if code, _, errOut := login("--method", "oidc"); code == 0 || !strings.Contains(errOut, "--role") {
		t.Fatalf("oidc without a role: exit %d %q", code, errOut)
	}
	vars[EnvSecretID] = "wrong"
	if code, _, errOut := login(); code == 0 || !strings.Contains(errOut, "invalid role_id or secret_id") {
		t.Fatalf("wrong secret: exit %d %q", code, errOut)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// qbroker login --method device: the person is shown where to approve; the
// command polls until they do and prints the broker token (with --print).
func TestDeviceLoginCommand(t *testing.T) {
	op := testidp.Start(t)
	t.Setenv("QB_CLI_DEVICE_SECRET", testidp.DeviceClientSecret)
	d, err := server.StartDev(context.Background(), server.DevOptions{
		Addr: "127.0.0.1:0", GatewayAddr: "127.0.0.1:0", SimAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		Auth: config.Auth{
			JWT: config.JWTAuth{
				Issuers: []config.JWTIssuer{{Name: "corp", Issuer: op.Issuer, DiscoveryURL: op.Issuer}},
				Roles:   []config.JWTRole{{Name: "people", Issuer: "corp", BoundAudiences: []string{testidp.DeviceClientID}, BrokerRole: server.DemoRole}},
			},
			Device: config.DeviceAuth{Issuer: op.Issuer, ClientID: testidp.DeviceClientID, ClientSecretEnv: "QB_CLI_DEVICE_SECRET"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	var out, errOut syncBuf
	done := make(chan int, 1)
	go func() {
		done <- Main(context.Background(), []string{"login", "--method", "device", "--role", "people", "--print"},
			Env{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return map[string]string{EnvAddr: d.BrokerURL}[k] }})
	}()
	re := regexp.MustCompile(`enter the code (\S+)`)
	deadline := time.Now().Add(10 * time.Second)
	var code string
	for code == "" {
		if m := re.FindStringSubmatch(errOut.String()); m != nil {
			code = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no user code shown: %q", errOut.String())
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	op.Approve(t, code, "alice", "allowed")
	select {
	case rc := <-done:
		tok := strings.TrimSpace(out.String())
		if rc != 0 || !strings.HasPrefix(tok, "qbt_") {
			t.Fatalf("exit %d, stdout %q, stderr %q", rc, out.String(), errOut.String())
		}
		info, err := client.New(d.BrokerURL, nil).WithToken(tok).LookupSelf(context.Background())
		if err != nil || info.EntityID != "device:corp:alice" {
			t.Fatalf("token from device login: %+v %v", info, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("device login did not finish: %q", errOut.String())
	}
}

// qbroker audit tail shows an agent's recent events (root only).
func TestAuditTail(t *testing.T) {
	d, err := server.StartDev(context.Background(), server.DevOptions{Addr: "127.0.0.1:0", GatewayAddr: "127.0.0.1:0", SimAddr: "127.0.0.1:0", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	if _, err := client.New(d.BrokerURL, nil).AppRoleLogin(context.Background(), d.RoleID, d.SecretID); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{EnvAddr: d.BrokerURL, EnvToken: d.RootToken}
	var out, errb bytes.Buffer
	code := Main(context.Background(), []string{"audit", "tail", "--agent", "approle:demo:demo-agent", "--type", "login"},
		Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return vars[k] }})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if code != 0 || len(lines) != 1 || !strings.Contains(lines[0], `"type":"login"`) || !strings.Contains(lines[0], `"agent":"approle:demo:demo-agent"`) {
		t.Fatalf("exit %d, output %q, stderr %q", code, out.String(), errb.String())
	}
	if strings.Contains(out.String(), d.SecretID) {
		t.Fatal("the tail shows a secret")
	}
	vars[EnvToken] = ""
	errb.Reset()
	if code := Main(context.Background(), []string{"audit", "tail"}, Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return vars[k] }}); code == 0 {
		t.Fatal("audit tail without a token succeeded")
	}
}

// QBROKER_CACERT lets the CLI reach a broker whose certificate a private CA
// signed; without it the certificate is refused.
func TestCACertForHTTPSBroker(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"data":{"keys":["demo"]}}`))
	}))
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	vars := map[string]string{EnvAddr: srv.URL, EnvToken: "qbt_x"}
	run := func() (int, string) {
		var out, errb bytes.Buffer
		code := Main(context.Background(), []string{"role", "list"}, Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return vars[k] }})
		return code, out.String() + errb.String()
	}
	if code, out := run(); code == 0 || !strings.Contains(out, "certificate") {
		t.Fatalf("without the CA: exit %d %q", code, out)
	}
	vars[EnvCACert] = caFile
	if code, out := run(); code != 0 || !strings.Contains(out, "demo") {
		t.Fatalf("with QBROKER_CACERT: exit %d %q", code, out)
	}
}
