package e2e

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Issue 9 with the real binary, as a person would: `qbroker dev` in one
// shell; `qbroker agent` (the demo agent's AppRole as its machine
// identity) in another; then `qbroker exec --provider ionq` runs a plain
// shell script with curl, which knows only IONQ_BASE_URL and IONQ_API_KEY,
// and gets a Bell pair. `agent doctor` reports core dumps off and a
// blocked provider host; SIGTERM stops the daemon cleanly and removes its
// socket.
func TestDesktopAgentWithCurl(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	dev := startDev(t, baseEnv())
	run := t.TempDir()
	sock := filepath.Join(run, "qbroker", "agent.sock")
	env := append(dev.envFromExports(), "XDG_RUNTIME_DIR="+run)
	agent := startProc(t, "qbroker agent", env, "agent", "--method", "approle", "--consent", "none", "--consent-first-device=false")
	deadline := time.Now().Add(startTimeout)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("qbroker agent did not listen on %s\n%s", sock, agent.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}

	script := `set -e
auth="Authorization: apiKey $IONQ_API_KEY"
job='{"type":"ionq.circuit.v1","backend":"simulator","shots":1000,"input":{"qubits":2,"gateset":"qis","circuit":[{"gate":"h","target":0},{"gate":"cnot","control":0,"target":1}]}}'
id=$(curl -sf -H "$auth" -H 'Content-Type: application/json' -d "$job" "$IONQ_BASE_URL/v0.4/jobs" | sed 's/.*"id":"\([^"]*\)".*/\1/')
i=0
until curl -sf -H "$auth" "$IONQ_BASE_URL/v0.4/jobs/$id" | grep -q '"completed"'; do
  i=$((i+1)); [ $i -lt 300 ] || exit 9; sleep 0.1
done
curl -sf -H "$auth" "$IONQ_BASE_URL/v0.4/jobs/$id/results/probabilities"
`
	stdout, stderr := runCmd(t, append(env, "IONQ_API_KEY=a-key-from-the-parent"), "", "exec", "--provider", "ionq", "--role", "demo", "--", "sh", "-c", script)
	var probs map[string]float64
	if err := json.Unmarshal([]byte(stdout), &probs); err != nil || probs["0"] < 0.4 || probs["3"] < 0.4 {
		t.Fatalf("Bell through qbroker exec + curl: %v %q\nstderr:\n%s\nagent:\n%s", err, stdout, stderr, agent.stderr)
	}

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	blocked := closed.Addr().String()
	closed.Close()
	out, _ := runCmd(t, env, "", "agent", "doctor", "--hosts", blocked, "--timeout", "1s")
	for _, want := range []string{"running at " + sock, "signed in as approle:demo:demo-agent", "core dumps    off", "blocked", "all checks passed"} {
		if !strings.Contains(out, want) {
			t.Fatalf("agent doctor does not say %q:\n%s", want, out)
		}
	}
	agent.terminate()
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("the socket outlived the daemon: %v", err)
	}
}
