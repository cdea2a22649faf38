package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/qbroker/qbroker/client"
	"github.com/qbroker/qbroker/internal/server"
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
