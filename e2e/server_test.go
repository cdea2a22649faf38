package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// startSim runs `qbroker sim` accepting key and returns its URL.
func startSim(t *testing.T, key string) string {
	t.Helper()
	p := startProc(t, "qbroker sim", baseEnv("IONQ_API_KEY="+key), "sim", "--addr", "127.0.0.1:0")
	return p.waitLine(reSimURL)[1]
}

// adminEnv is what an operator's shell holds for the admin commands.
func adminEnv(broker, root string) []string {
	return baseEnv("QBROKER_ADDR="+broker, "QBROKER_TOKEN="+root)
}

// agentCreds is an AppRole pair made with the admin commands.
type agentCreds struct{ roleID, secretID string }

// provision creates role, a secret_id for agent and the IonQ credential,
// all through the CLI as an operator would.
func provision(t *testing.T, env []string, role, agent, ionqKey string) agentCreds {
	t.Helper()
	runCmd(t, env, "", "role", "write", role, "--provider", "ionq", "--devices", "simulator", "--max-shots", "1000")
	out, _ := runCmd(t, env, "", "approle", "role-id", role)
	roleID := strings.TrimSpace(out)
	if roleID == "" {
		t.Fatal("approle role-id printed nothing")
	}
	out, _ = runCmd(t, env, "", "approle", "secret-id", role, "--agent", agent)
	var sid struct {
		SecretID string `json:"secret_id"`
		Agent    string `json:"agent"`
	}
	if err := json.Unmarshal([]byte(out), &sid); err != nil || sid.SecretID == "" {
		t.Fatalf("approle secret-id output: %v", err)
	}
	if sid.Agent != agent {
		t.Errorf("secret_id agent = %q, want %q", sid.Agent, agent)
	}
	runCmd(t, env, ionqKey+"\n", "provider", "set-credential", "ionq")
	return agentCreds{roleID: roleID, secretID: sid.SecretID}
}

// readRole reads a role with `qbroker role read`.
func readRole(t *testing.T, env []string, name string) map[string]any {
	t.Helper()
	out, _ := runCmd(t, env, "", "role", "read", name)
	var r map[string]any
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("role read output %q: %v", out, err)
	}
	return r
}

// jwks fetches the broker's key set and returns it with its sorted kids.
func (a *agentHTTP) jwks(broker string) (json.RawMessage, []string) {
	a.t.Helper()
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	_, raw := a.do(http.MethodGet, broker+"/.well-known/jwks.json", nil)
	if err := json.Unmarshal(raw, &set); err != nil || len(set.Keys) == 0 {
		a.t.Fatalf("JWKS %s: no keys (%v)", raw, err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KID)
	}
	sort.Strings(kids)
	return raw, kids
}

// e2ePolicy lets role "e2e" run small simulator jobs and read its jobs; it
// replaces the built-in demo policies (config `policies:`).
const e2ePolicy = `
@id("e2e-submit-simulator")
permit (
  principal in Role::"e2e",
  action == Action::"SubmitJob",
  resource == Device::"ionq/simulator"
)
when { context.shots <= 1000 };

@id("e2e-read-jobs")
permit (
  principal in Role::"e2e",
  action in [Action::"ReadJob", Action::"ReadResult"],
  resource is Job
)
when { resource.owner == principal };
`

// Acceptance: a restart on the same data dir keeps the root token, roles,
// AppRole credentials, broker tokens, signing keys, provider credential and
// outstanding job tokens, and nothing secret is on disk in clear.
func TestServerRestartKeepsState(t *testing.T) {
	t.Parallel()
	key := randomSecret(t, "ionq-e2e-restart-")
	simURL := startSim(t, key)

	cfgDir, dataDir := t.TempDir(), filepath.Join(t.TempDir(), "data")
	polFile := filepath.Join(cfgDir, "e2e.cedar")
	cfgFile := filepath.Join(cfgDir, "qbroker.yaml")
	if err := os.WriteFile(polFile, []byte(e2ePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\ndata_dir: %s\ngateway:\n  listen: 127.0.0.1:0\nproviders:\n  ionq:\n    base_url: %s\npolicies:\n  - %s\n", dataDir, simURL, polFile)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	// First start: the root token is printed once.
	srv := startProc(t, "qbroker server (1st)", baseEnv(), "server", "--config", cfgFile)
	root := srv.waitLine(reRootToken)[1]
	broker := srv.waitLine(reServerURL)[1]
	gw := srv.waitLine(reGatewayURL)[1]
	admin := adminEnv(broker, root)
	creds := provision(t, admin, "e2e", "e2e-agent", key)
	roleBefore := readRole(t, admin, "e2e")
	if roleBefore["role_id"] != creds.roleID {
		t.Fatalf("role read role_id %v != approle role-id %q", roleBefore["role_id"], creds.roleID)
	}

	a := newAgentHTTP(t)
	brokerTok := a.login(broker, creds.roleID, creds.secretID)
	jwksBefore, kidsBefore := a.jwks(broker)
	tok1 := a.jobToken(broker, brokerTok, "e2e")
	st, job1 := a.submit(gw, tok1)
	if st != http.StatusCreated {
		t.Fatalf("submit before restart: status %d, want 201", st)
	}
	assertBell(t, a.counts(gw, brokerTok, job1))
	heldTok := a.jobToken(broker, brokerTok, "e2e") // used only after the restart

	secrets := []secret{
		{"root token", root}, {"agent broker token", brokerTok},
		{"secret_id", creds.secretID}, {"IonQ API key", key},
	}
	assertDirClean(t, dataDir, secrets...)
	if took := srv.terminate(); took > stopTimeout {
		t.Errorf("server took %s to stop", took)
	}

	// Second start on the same data dir and the same broker address (the
	// address is the job tokens' issuer, as a real deployment's would be).
	u, err := url.Parse(broker)
	if err != nil {
		t.Fatal(err)
	}
	srv2 := startProc(t, "qbroker server (2nd)", baseEnv(), "server", "--config", cfgFile, "--addr", u.Host)
	if got := srv2.waitLine(reServerURL)[1]; got != broker {
		t.Fatalf("restarted broker URL %s, want %s", got, broker)
	}
	gw2 := srv2.waitLine(reGatewayURL)[1]

	// The root token still works and the role is unchanged.
	if roleAfter := readRole(t, admin, "e2e"); !reflect.DeepEqual(roleAfter, roleBefore) {
		t.Errorf("role after restart %v, before %v", roleAfter, roleBefore)
	}
	if out, _ := runCmd(t, admin, "", "approle", "role-id", "e2e"); strings.TrimSpace(out) != creds.roleID {
		t.Errorf("role_id changed across the restart")
	}
	// The pre-restart broker token is still valid; the secret_id logs in.
	var self struct {
		Data struct {
			EntityID string `json:"entity_id"`
		} `json:"data"`
	}
	a.expect(http.StatusOK, &self, http.MethodGet, broker+"/v1/auth/token/lookup-self", nil, "X-Vault-Token: "+brokerTok)
	if !strings.Contains(self.Data.EntityID, "e2e-agent") {
		t.Errorf("lookup-self entity %q, want the e2e-agent", self.Data.EntityID)
	}
	brokerTok2 := a.login(broker, creds.roleID, creds.secretID)
	// Same signing keys.
	jwksAfter, kidsAfter := a.jwks(broker)
	if !reflect.DeepEqual(kidsAfter, kidsBefore) {
		t.Errorf("JWKS kids after restart %v, before %v", kidsAfter, kidsBefore)
	}
	if string(jwksAfter) != string(jwksBefore) {
		t.Errorf("JWKS changed across the restart:\nbefore %s\nafter  %s", jwksBefore, jwksAfter)
	}
	// A job token issued before the restart is accepted once, and the
	// unsealed IonQ key still opens the emulator.
	st, job2 := a.submit(gw2, heldTok)
	if st != http.StatusCreated {
		t.Fatalf("pre-restart job token after restart: status %d, want 201", st)
	}
	assertBell(t, a.counts(gw2, brokerTok, job2))
	if st, _ := a.submit(gw2, heldTok); st != http.StatusUnauthorized {
		t.Errorf("replayed pre-restart job token: status %d, want 401", st)
	}
	if st, _ := a.submit(gw2, tok1); st != http.StatusUnauthorized {
		t.Errorf("job token redeemed before the restart, replayed after it: status %d, want 401", st)
	}
	// The job submitted before the restart is still the agent's.
	a.expect(http.StatusOK, nil, http.MethodGet, gw2+"/ionq/v0.4/jobs/"+job1, nil, "Authorization: apiKey "+brokerTok2)

	secrets = append(secrets, secret{"second broker token", brokerTok2})
	assertDirClean(t, dataDir, secrets...)
	a.assertNoLeak(secret{"IonQ API key", key})
	srv2.terminate()
	if m := reRootToken.FindString(srv2.stdout.String()); m != "" {
		t.Errorf("restarted server printed a new root token line")
	}
	assertDirClean(t, dataDir, secrets...)
	for _, p := range []*proc{srv, srv2} {
		assertAbsent(t, p.name+" stderr (logs)", []byte(p.stderr.String()), secrets...)
	}
}

// assertAnswers fails unless the broker URL a process printed is served
// (by a qbroker broker: /v1/sys/health answers 200).
func assertAnswers(t *testing.T, broker, what string) {
	t.Helper()
	u, err := url.Parse(broker)
	if err != nil {
		t.Fatalf("%s printed broker URL %q: %v", what, broker, err)
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get(broker + "/v1/sys/health")
	if err != nil {
		t.Fatalf("%s printed broker URL %s (port %s) but nothing answers there: %v", what, broker, u.Port(), err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s printed broker URL %s: health answered %d", what, broker, resp.StatusCode)
	}
}

// Regression: `qbroker server --addr HOST:PORT` must advertise (print, and
// use as the job tokens' issuer) the address it listens on, not the
// default 127.0.0.1:8200 derived before the flag was applied.
func TestServerAddrFlagIsAdvertised(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // free it for the server; nothing else binds it meanwhile in practice
	srv := startProc(t, "qbroker server", baseEnv(), "server", "--data", filepath.Join(t.TempDir(), "data"), "--addr", addr)
	if got, want := srv.waitLine(reServerURL)[1], "http://"+addr; got != want {
		t.Errorf("qbroker server --addr %s printed %q, want %q", addr, got, want)
	}
	assertAnswers(t, "http://"+addr, "qbroker server --addr "+addr)
}

// Regression: with a config file that leaves data_dir unset, `--data DIR`
// must put everything, the seal key included, under DIR, and nothing in a
// ./qbroker-data relative to the working directory.
func TestServerDataFlagWithConfig(t *testing.T) {
	t.Parallel()
	cfgFile := filepath.Join(t.TempDir(), "qbroker.yaml")
	if err := os.WriteFile(cfgFile, []byte("listen: 127.0.0.1:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	srv := startProc(t, "qbroker server", baseEnv(), "server", "--config", cfgFile, "--data", dataDir)
	srv.waitLine(reRootToken)
	srv.terminate()
	stray := filepath.Join(srv.cmd.Dir, "qbroker-data")
	if _, err := os.Stat(stray); err == nil {
		t.Errorf("qbroker server --config F --data %s created %s (the seal key went to the default data dir)", dataDir, stray)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "seal.key")); err != nil {
		t.Errorf("seal key is not in --data %s: %v", dataDir, err)
	}
}

// The standalone topology: sim, broker and gateway as three processes; the
// demo agent goes through the standalone gateway, which refuses a replay.
func TestStandaloneGateway(t *testing.T) {
	t.Parallel()
	key := randomSecret(t, "ionq-e2e-standalone-")
	simURL := startSim(t, key)
	dataDir := filepath.Join(t.TempDir(), "data")
	srv := startProc(t, "qbroker server", baseEnv(), "server", "--data", dataDir, "--addr", "127.0.0.1:0")
	root := srv.waitLine(reRootToken)[1]
	broker := srv.waitLine(reServerURL)[1]
	assertAnswers(t, broker, "qbroker server --addr 127.0.0.1:0")
	if reGatewayURL.MatchString(srv.stdout.String()) {
		t.Fatalf("server without gateway.listen started an in-process gateway")
	}
	admin := adminEnv(broker, root)
	creds := provision(t, admin, "demo", "standalone-agent", key)
	out, _ := runCmd(t, admin, "", "token", "create-gateway")
	gwToken := strings.TrimSpace(out)
	if !strings.HasPrefix(gwToken, "qbt_") {
		t.Fatalf("token create-gateway printed %q, want a qbt_ token", redact(gwToken))
	}

	gp := startProc(t, "qbroker gateway", baseEnv("QBROKER_GATEWAY_TOKEN="+gwToken),
		"gateway", "--broker", broker, "--addr", "127.0.0.1:0", "--ionq-upstream", simURL)
	gw := gp.waitLine(reGatewayURL)[1]

	demoEnv := baseEnv("QBROKER_ADDR="+broker, "QBROKER_GATEWAY_ADDR="+gw,
		"QBROKER_ROLE_ID="+creds.roleID, "QBROKER_SECRET_ID="+creds.secretID)
	stdout, stderr := runCmd(t, demoEnv, "", "demo", "--json")
	assertBell(t, parseDemo(t, stdout).Counts)
	keySecret := secret{"IonQ API key", key}
	assertAbsent(t, "demo output", []byte(stdout+stderr), keySecret)

	a := newAgentHTTP(t)
	brokerTok := a.login(broker, creds.roleID, creds.secretID)
	jt := a.jobToken(broker, brokerTok, "demo")
	st, id := a.submit(gw, jt)
	if st != http.StatusCreated {
		t.Fatalf("submit through the standalone gateway: status %d, want 201", st)
	}
	if st, _ := a.submit(gw, jt); st != http.StatusUnauthorized {
		t.Errorf("replayed job token at the standalone gateway: status %d, want 401", st)
	}
	assertBell(t, a.counts(gw, brokerTok, id))
	// The agent cannot use the gateway's privileges: its broker token does
	// not read the provider credential.
	if st, _ := a.do(http.MethodGet, broker+"/v1/sys/gateway/credentials/ionq", nil, "X-Vault-Token: "+brokerTok); st != http.StatusForbidden && st != http.StatusUnauthorized {
		t.Errorf("agent reading the provider credential: status %d, want 401/403", st)
	}
	a.assertNoLeak(keySecret)

	secrets := []secret{keySecret, {"root token", root}, {"gateway token", gwToken},
		{"agent broker token", brokerTok}, {"secret_id", creds.secretID}}
	assertAbsent(t, "gateway stdout+stderr", []byte(gp.stdout.String()+gp.stderr.String()), secrets...)
	assertAbsent(t, "server stderr (logs)", []byte(srv.stderr.String()), secrets...)
	gp.terminate()
	srv.terminate()
	assertDirClean(t, dataDir, secrets...)
}
