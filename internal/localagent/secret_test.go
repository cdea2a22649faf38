package localagent

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/client"
	"github.com/qbroker/qbroker/internal/server"
)

// The token lives in locked, non-dumped memory, never shows in logs or
// fmt, and is gone after Destroy.
func TestSecret(t *testing.T) {
	const v = "qbt_this-is-a-test-secret-value-0123456789"
	s := NewSecret(v)
	if s.Reveal() != v {
		t.Fatal("the value did not survive")
	}
	if os.Getuid() == 0 && !s.Locked() {
		t.Fatal("root could not lock the secret's pages")
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "token", s)
	if out := buf.String() + fmt.Sprint(s) + fmt.Sprintf("%v %s %+v", s, s, s); strings.Contains(out, v) || !strings.Contains(out, "[redacted]") {
		t.Fatalf("the secret shows: %s", out)
	}
	s.Destroy()
	s.Destroy()
	if s.Reveal() != "" || s.Locked() {
		t.Fatal("the secret outlived Destroy")
	}
	var nilSecret *Secret
	nilSecret.Destroy()
	if nilSecret.Reveal() != "" {
		t.Fatal("nil secret")
	}
}

// Harden turns core dumps off and the process non-dumpable (checked in a
// child process, since it cannot be undone).
func TestHarden(t *testing.T) {
	self, _ := os.Executable()
	cmd := exec.Command(self)
	cmd.Env = []string{helperEnv + "=harden"}
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "false true <nil>" {
		t.Fatalf("harden helper: %q %v (want: not hardened before, hardened after)", out, err)
	}
}

// A token that reaches its max TTL is zeroed at expiry; the next request
// that needs the broker signs in again.
func TestTokenZeroedOnExpiry(t *testing.T) {
	dev := startDev(t, server.DevOptions{})
	ctx := context.Background()
	root := client.New(dev.BrokerURL, nil).WithToken(dev.RootToken)
	if _, err := root.PutRole(ctx, "short", api.Role{Provider: "ionq", Devices: []string{"simulator"}, MaxShots: 10,
		TokenTTL: api.Duration(2 * time.Second), TokenMaxTTL: api.Duration(2 * time.Second), Owner: "dev", Team: "dev"}); err != nil {
		t.Fatal(err)
	}
	rid, err := root.RoleID(ctx, "short")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := root.NewSecretID(ctx, "short", api.SecretIDRequest{Agent: "short-agent"})
	if err != nil {
		t.Fatal(err)
	}
	h := startDaemon(t, dev, func(c *Config) {
		c.Login = func(ctx context.Context, cl *client.Client) (*api.Auth, error) { // this role's tokens live 2 s
			return cl.AppRoleLogin(ctx, rid, sid.SecretID)
		}
	})
	h.d.tokMu.Lock()
	first := h.d.tok
	h.d.tokMu.Unlock()
	if first.Reveal() == "" {
		t.Fatal("no token")
	}
	deadline := time.Now().Add(10 * time.Second)
	for first.Reveal() != "" {
		if time.Now().After(deadline) {
			t.Fatal("the token was not zeroed at expiry")
		}
		time.Sleep(50 * time.Millisecond)
	}
	in, err := h.client().Status(ctx)
	if err != nil || in.SignedIn {
		t.Fatalf("after expiry: %+v %v", in, err)
	}
	if !strings.Contains(h.logs.String(), "expired and was zeroed") {
		t.Fatalf("logs:\n%s", h.logs)
	}
	// The next request that needs the broker signs in again.
	s, err := h.client().OpenSession(ctx, SessionRequest{Role: "short", Provider: "ionq"})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, s.Env["IONQ_BASE_URL"]+"/v0.4/backends", nil)
	req.Header.Set("Authorization", "apiKey "+s.Env["IONQ_API_KEY"])
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	if in, _ := h.client().Status(ctx); !in.SignedIn {
		t.Fatalf("not signed in again after a request: %+v\n%s", in, h.logs)
	}
}
