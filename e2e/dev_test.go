package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Acceptance 1: `qbroker dev` + `qbroker demo --json` as a separate process
// with only the exported variables gives Bell statistics.
func TestDevDemoBell(t *testing.T) {
	t.Parallel()
	dev := startDev(t, baseEnv())
	stdout, stderr := runCmd(t, dev.envFromExports(), "", "demo", "--json")
	r := parseDemo(t, stdout)
	assertBell(t, r.Counts)
	if strings.Contains(stderr, "error") {
		t.Errorf("demo stderr: %s", stderr)
	}
}

// Acceptance 2: the IonQ key never reaches the agent, the logs, the audit
// trail or the disk in clear; nor do the agent's tokens and secret_id.
func TestIonQKeyNeverReachesAgent(t *testing.T) {
	t.Parallel()
	key := randomSecret(t, "ionq-e2e-key-")
	dev := startDev(t, baseEnv("QB_TEST_IONQ_KEY="+key), "--ionq-key-env", "QB_TEST_IONQ_KEY")
	keySecret := secret{"IonQ API key", key}
	broker, gw := dev.exports["QBROKER_ADDR"], dev.exports["QBROKER_GATEWAY_ADDR"]

	// The demo agent's environment: only the exports (plus PATH/HOME).
	demoEnv := dev.envFromExports()
	for _, kv := range demoEnv {
		assertAbsent(t, "demo environment entry "+strings.SplitN(kv, "=", 2)[0], []byte(kv), keySecret)
		if strings.HasPrefix(kv, "QB_TEST_IONQ_KEY=") {
			t.Errorf("demo environment has QB_TEST_IONQ_KEY")
		}
	}
	stdout, stderr := runCmd(t, demoEnv, "", "demo", "--json")
	assertBell(t, parseDemo(t, stdout).Counts)
	assertAbsent(t, "demo stdout", []byte(stdout), keySecret)
	assertAbsent(t, "demo stderr", []byte(stderr), keySecret)

	// The same flow by hand, keeping every answer the agent receives.
	a := newAgentHTTP(t)
	brokerTok := a.login(broker, dev.exports["QBROKER_ROLE_ID"], dev.exports["QBROKER_SECRET_ID"])
	a.expect(http.StatusOK, nil, http.MethodGet, broker+"/v1/auth/token/lookup-self", nil, "X-Vault-Token: "+brokerTok)
	a.expect(http.StatusOK, nil, http.MethodGet, broker+"/v1/quantum/devices", nil, "X-Vault-Token: "+brokerTok)
	a.expect(http.StatusOK, nil, http.MethodGet, broker+"/.well-known/jwks.json", nil)
	jobTok := a.jobToken(broker, brokerTok, "demo")
	status, id := a.submit(gw, jobTok)
	if status != http.StatusCreated {
		t.Fatalf("submit through the gateway: status %d, want 201", status)
	}
	assertBell(t, a.counts(gw, brokerTok, id))
	a.do(http.MethodGet, gw+"/ionq/v0.4/backends", nil, "Authorization: apiKey "+brokerTok)

	// Attacks: the agent asks the broker for the provider credential with
	// every token it holds: its broker token, its job token, and the
	// QBROKER_TOKEN that the dev exports put in its environment. Only
	// gateway tokens may read it (api.ProviderCredential); the agent
	// replays the job token.
	for _, tok := range []secret{{"broker token", brokerTok}, {"job token", jobTok}, {"QBROKER_TOKEN from the agent's environment", dev.exports["QBROKER_TOKEN"]}} {
		st, _ := a.do(http.MethodGet, broker+"/v1/sys/gateway/credentials/ionq", nil, "X-Vault-Token: "+tok.value)
		if st != http.StatusForbidden && st != http.StatusUnauthorized {
			t.Errorf("agent reading the provider credential with its %s: status %d, want 401/403", tok.name, st)
		}
	}
	if st, _ := a.submit(gw, jobTok); st != http.StatusUnauthorized {
		t.Errorf("replayed job token: status %d, want 401", st)
	}
	// The broker token is not a job token: the gateway must not accept it
	// for a submission (and so must not inject the key for it).
	if st, _ := a.submit(gw, brokerTok); st != http.StatusUnauthorized {
		t.Errorf("broker token as submit credential: status %d, want 401", st)
	}
	if a.count() < 10 {
		t.Fatalf("only %d HTTP answers recorded", a.count())
	}
	a.assertNoLeak(keySecret)

	// Audit log, server output and every data file, while running.
	clear := []secret{
		keySecret,
		{"agent broker token", brokerTok},
		{"secret_id", dev.exports["QBROKER_SECRET_ID"]},
		{"root token", dev.exports["QBROKER_TOKEN"]},
	}
	auditLog, err := os.ReadFile(filepath.Join(dev.dataDir, "audit.log"))
	if err != nil {
		t.Fatalf("audit log: %v", err)
	}
	if !strings.Contains(string(auditLog), `"type":"submit"`) || !strings.Contains(string(auditLog), `"type":"login"`) {
		t.Fatalf("audit log lacks the login and submit events; is it the right file?\n%s", auditLog)
	}
	assertAbsent(t, "audit log", auditLog, clear...)
	assertDirClean(t, dev.dataDir, clear...)
	// Detector sanity: dev prints the root token and secret_id by design.
	if found := findSecrets([]byte(dev.stdout.String()), clear[2:]); len(found) < 2 {
		t.Fatalf("leak detector did not find the printed root token and secret_id in dev's stdout: %v", found)
	}
	assertAbsent(t, "dev stdout", []byte(dev.stdout.String()), keySecret, clear[1])
	assertAbsent(t, "dev stderr (logs)", []byte(dev.stderr.String()), clear...)

	// And after shutdown, when SQLite has checkpointed its WAL.
	dev.terminate()
	assertDirClean(t, dev.dataDir, clear...)
	assertAbsent(t, "dev stderr (logs)", []byte(dev.stderr.String()), clear...)
}

// Acceptance 5: SIGTERM to `qbroker dev` exits 0 promptly, even with an
// idle keep-alive connection open.
func TestDevGracefulShutdown(t *testing.T) {
	t.Parallel()
	dev := startDev(t, baseEnv())
	a := newAgentHTTP(t)
	a.expect(http.StatusOK, nil, http.MethodGet, dev.exports["QBROKER_ADDR"]+"/v1/sys/health", nil)
	a.do(http.MethodGet, dev.exports["QBROKER_GATEWAY_ADDR"]+"/ionq/v0.4/backends", nil)
	took := dev.terminate()
	if took >= 10*time.Second {
		t.Errorf("qbroker dev took %s to exit after SIGTERM", took)
	}
	t.Logf("qbroker dev exited 0 %s after SIGTERM", took.Round(time.Millisecond))
}
