package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Issue 10's desktop path with the real binaries: `qbroker dev`, `qbroker
// agent` (the demo agent's AppRole as its identity; no consent prompt, so
// what the rules select is denied; a device's first use is not asked),
// and `qbroker mcp` spawned as a desktop host does, with only PATH, HOME
// and XDG_RUNTIME_DIR: no token, no broker address. A Bell pair runs
// through the daemon; a hardware request is refused by its consent rules
// as a tool error; no broker token (qbt_…) is in the server's environment,
// its stderr or the transcript.
func TestMCPThroughDesktopAgent(t *testing.T) {
	t.Parallel()
	dev := startDev(t, baseEnv())
	run := t.TempDir()
	sock := filepath.Join(run, "qbroker", "agent.sock")
	agent := startProc(t, "qbroker agent", append(dev.envFromExports(), "XDG_RUNTIME_DIR="+run),
		"agent", "--method", "approle", "--consent", "none", "--consent-first-device=false")
	for deadline := time.Now().Add(startTimeout); ; {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("qbroker agent did not listen on %s\n%s", sock, agent.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}

	cmd := exec.Command(binPath, "mcp")
	cmd.Env = baseEnv("XDG_RUNTIME_DIR=" + run)
	var stderr lockedBuf
	cmd.Stderr = &stderr
	tr := &lockedBuf{}
	s := connectMCP(t, &sdk.LoggingTransport{Transport: &sdk.CommandTransport{Command: cmd}, Writer: tr}, "e2e-desktop-host")
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	counts := runBell(t, s, 1000)
	t.Logf("through qbroker agent: Bell counts over 1000 shots: %v", counts)

	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	res, err := s.CallTool(ctx, &sdk.CallToolParams{Name: "submit_circuit", Arguments: map[string]any{
		"circuit": "OPENQASM 3;\ninclude \"stdgates.inc\";\nqubit[2] q;\nh q[0];\ncx q[0], q[1];\n", "format": "qasm3", "device": "ionq/qpu.forte-1", "shots": 100}})
	if err != nil {
		t.Fatal(err)
	}
	var text string
	for _, c := range res.Content {
		if tc, ok := c.(*sdk.TextContent); ok {
			text += tc.Text
		}
	}
	if !res.IsError || !strings.Contains(text, "consent denied") {
		t.Fatalf("hardware through a daemon without a prompt: error=%v %q, want the consent denial", res.IsError, text)
	}
	s.Close()

	secrets := []secret{{"root token", dev.exports["QBROKER_TOKEN"]}, {"AppRole secret_id", dev.exports["QBROKER_SECRET_ID"]}}
	for where, data := range map[string][]byte{"the MCP transcript": tr.Bytes(), "qbroker mcp stderr": stderr.Bytes(), "qbroker mcp environment": environ} {
		assertAbsent(t, where, data, secrets...)
		if bytes.Contains(data, []byte("qbt_")) {
			t.Errorf("%s contains a broker token (qbt_)", where)
		}
	}
	if bytes.Contains(environ, []byte("QBROKER_TOKEN")) || bytes.Contains(environ, []byte("QBROKER_ADDR")) {
		t.Errorf("the MCP server's environment names a token or a broker: %q", environ)
	}
}
