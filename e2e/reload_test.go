package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SIGHUP reloads the policies of a running `qbroker server` (file watching
// off, so the signal is what does it), and a broken file sent the same way
// leaves the rules in force.
func TestServerReloadsPoliciesOnSIGHUP(t *testing.T) {
	t.Parallel()
	key := randomSecret(t, "ionq-e2e-hup-")
	simURL := startSim(t, key)
	dir := t.TempDir()
	polFile := filepath.Join(dir, "e2e.cedar")
	cfgFile := filepath.Join(dir, "qbroker.yaml")
	if err := os.WriteFile(polFile, []byte(e2ePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\ndata_dir: %s\nwatch_policies: false\nproviders:\n  ionq:\n    base_url: %s\npolicies:\n  - %s\n",
		filepath.Join(dir, "data"), simURL, polFile)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startProc(t, "qbroker server", baseEnv(), "server", "--config", cfgFile)
	root := srv.waitLine(reRootToken)[1]
	broker := srv.waitLine(reServerURL)[1]
	creds := provision(t, adminEnv(broker, root), "e2e", "e2e-agent", key)
	a := newAgentHTTP(t)
	tok := a.login(broker, creds.roleID, creds.secretID)
	a.jobToken(broker, tok, "e2e")

	issue := func() (int, string) {
		body, _ := json.Marshal(map[string]any{"provider": "ionq", "device": "simulator", "shots": 10})
		st, out := a.do(http.MethodPost, broker+"/v1/quantum/jobtoken/e2e", body, "X-Vault-Token: "+tok)
		return st, string(out)
	}
	write := func(data string) {
		tmp := polFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, polFile); err != nil {
			t.Fatal(err)
		}
	}
	write(e2ePolicy + "\n@id(\"e2e-frozen\")\nforbid (principal, action == Action::\"SubmitJob\", resource);\n")
	time.Sleep(500 * time.Millisecond) // were the file watched, it would have reloaded by now
	if st, out := issue(); st != http.StatusOK {
		t.Fatalf("the policy changed without a SIGHUP (watching is off): %d %s", st, out)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, out := issue()
		if st == http.StatusForbidden && strings.Contains(out, "e2e-frozen") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not apply the new policy: %d %s", st, out)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A broken file is refused; the frozen set stays in force.
	write("permit (principal, action, resource) when { nonsense };\n")
	if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(srv.stderr.String(), "policy reload refused") {
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatalf("no refusal logged:\n%s", srv.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st, out := issue(); st != http.StatusForbidden || !strings.Contains(out, "e2e-frozen") {
		t.Fatalf("after a refused reload: %d %s (want the previous rules in force)", st, out)
	}
	if took := srv.terminate(); took > stopTimeout {
		t.Errorf("server took %s to stop", took)
	}
}
