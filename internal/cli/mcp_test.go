package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMCPCommandChecksItsSetup(t *testing.T) {
	for _, c := range []struct {
		vars map[string]string
		args []string
		want string
	}{
		{map[string]string{}, []string{"--http", "127.0.0.1:0"}, "QBROKER_ADDR is not set"},
		{map[string]string{EnvAddr: "http://127.0.0.1:1"}, nil, "QBROKER_TOKEN is not set, and no local agent runs at /nonexistent/agent.sock"},
		{map[string]string{EnvAddr: "http://127.0.0.1:1", EnvToken: "qbt_x"}, []string{"--local-agent"}, "--local-agent and QBROKER_TOKEN are exclusive"},
		{map[string]string{}, []string{"--local-agent", "--http", "127.0.0.1:0"}, "--local-agent is for the stdio transport"},
		{map[string]string{EnvAddr: "http://127.0.0.1:1"}, []string{"--http", "127.0.0.1:0", "--tls-cert", "x.pem"}, "--tls-cert and --tls-key go together"},
		{map[string]string{EnvAddr: "http://127.0.0.1:1"}, []string{"--http", "127.0.0.1:0", "--public-url", "ftp://x"}, "must start with http:// or https://"},
	} {
		var out, errb bytes.Buffer
		code := Main(context.Background(), append([]string{"mcp"}, c.args...), Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string {
			if k == EnvAgentSocket {
				return "/nonexistent/agent.sock"
			}
			return c.vars[k]
		}})
		if code == 0 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v %v: exit %d, stderr %q, want an error naming %q", c.vars, c.args, code, errb.String(), c.want)
		}
	}
}

// The stdio server acts through the local agent only on a socket of the
// same user, in a directory nobody else can write.
func TestMCPLocalAgentSocketChecks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	env := Env{Getenv: func(k string) string {
		if k == EnvAgentSocket {
			return sock
		}
		return ""
	}}
	if got, ok, err := mcpLocalAgent(env, false, ""); err != nil || !ok || got != sock {
		t.Fatalf("own socket: %q %v %v", got, ok, err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, _, err := mcpLocalAgent(env, false, ""); err == nil || !strings.Contains(err.Error(), "writable only by you") {
		t.Fatalf("a world-writable directory: %v", err)
	}
	os.Chmod(dir, 0o700)
	if os.Getuid() == 0 {
		if err := os.Chown(sock, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if _, _, err := mcpLocalAgent(env, false, ""); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
			t.Fatalf("another user's socket: %v", err)
		}
	}
	// --local-agent with no daemon yet: served anyway (each tool call
	// then says to start it).
	if got, ok, err := mcpLocalAgent(env, true, filepath.Join(dir, "none.sock")); err != nil || !ok || !strings.HasSuffix(got, "none.sock") {
		t.Fatalf("--local-agent without a daemon: %q %v %v", got, ok, err)
	}
	// Not a socket.
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	if _, _, err := mcpLocalAgent(env, false, file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("a file: %v", err)
	}
}
