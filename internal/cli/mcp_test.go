package cli

import (
	"bytes"
	"context"
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
