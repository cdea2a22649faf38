package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/sim/quantinuumsim"
)

const bellQASM2 = "OPENQASM 2.0;\ninclude \"hqslib1.inc\";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0],q[1];\nmeasure q[0] -> c[0];\nmeasure q[1] -> c[1];\n"

// Quantinuum end to end: the broker logs in with the sealed account
// credential and injects the raw id-token; the gateway checks machine,
// count and the OpenQASM 2.0 program against the job token and caps
// max-cost; the owner reads the results with its broker token.
func TestQuantinuumThroughGateway(t *testing.T) {
	const email, password = "lab@example.test", "quantinuum-password-for-tests-0123"
	sim, err := quantinuumsim.New(quantinuumsim.Config{Email: email, Password: password, StepDelay: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	path := filepath.Join(t.TempDir(), "policies.cedar")
	writeAtomic(t, path, demoPolicy(t)+`
@id("h-emulator") permit (principal in Role::"h", action == Action::"SubmitJob", resource == Device::"quantinuum/h1-1e");
@id("h-own-jobs") permit (principal in Role::"h", action in [Action::"ReadJob", Action::"ReadResult", Action::"CancelJob"], resource is Job)
when { resource.owner == principal };
`)
	d := startDevWith(t, DevOptions{PolicyFiles: []string{path}, Approvals: &config.Approvals{},
		Quantinuum: config.Quantinuum{Enabled: true, BaseURL: srv.URL, MaxCostHQC: 50}})
	e := &env{t: t, d: d, hc: &http.Client{Timeout: 20 * time.Second}}
	want(t, "store the account", e.broker(http.MethodPost, "/v1/sys/providers/quantinuum/credential", d.RootToken, fmt.Sprintf(`{"api_key":%q}`, email+":"+password)), http.StatusNoContent)
	e.putRole("h", `{"provider":"quantinuum","devices":["h1-1e"],"max_shots":1000}`)
	agent := e.mustLogin(e.roleID("h"), e.newSecretID("h", "h-agent", "").SecretID)
	b, _ := json.Marshal(api.JobTokenRequest{Provider: "quantinuum", Device: "h1-1e", Shots: 500, Program: mustJSON(bellQASM2), Format: api.FormatQASM2})
	r := e.broker(http.MethodPost, "/v1/quantum/jobtoken/h", agent.ClientToken, string(b))
	want(t, "quantinuum job token", r, http.StatusOK)
	var jt api.JobTokenData
	decodeData(t, r, &jt)

	call := func(method, p, tok string, body []byte) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, d.GatewayURL+"/quantinuum"+p, bytes.NewReader(body))
		req.Header.Set("Authorization", tok) // raw, as Quantinuum's clients send the id-token
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if strings.Contains(string(out), password) {
			t.Fatal("the Quantinuum password reached the agent")
		}
		return resp.StatusCode, string(out)
	}
	job := func(src string, count int) []byte {
		b, _ := json.Marshal(map[string]any{"machine": "H1-1E", "name": "bell", "language": "OPENQASM 2.0", "program": src, "count": count, "priority": "normal"})
		return b
	}
	if st, out := call(http.MethodPost, "/v1/job", jt.Token, job(bellQASM2, 600)); st != http.StatusForbidden || !strings.Contains(out, "at most 500") {
		t.Fatalf("more shots: %d %s", st, out)
	}
	st, out := call(http.MethodPost, "/v1/job", jt.Token, job(bellQASM2, 500))
	if st/100 != 2 {
		t.Fatalf("submit: %d %s", st, out)
	}
	var created struct {
		Job string `json:"job"`
	}
	json.Unmarshal([]byte(out), &created)
	deadline := time.Now().Add(10 * time.Second)
	var res struct {
		Status  string              `json:"status"`
		Results map[string][]string `json:"results"`
	}
	for res.Status != "completed" {
		st, out := call(http.MethodGet, "/v1/job/"+created.Job, agent.ClientToken, nil)
		if st != http.StatusOK {
			t.Fatalf("status: %d %s", st, out)
		}
		json.Unmarshal([]byte(out), &res)
		if time.Now().After(deadline) {
			t.Fatalf("job: %s", out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	counts := map[string]int{}
	for _, s := range res.Results["c"] {
		counts[s]++
	}
	if len(counts) != 2 || counts["00"] < 180 || counts["11"] < 180 {
		t.Fatalf("Bell counts %v: want only 00 and 11, about 250 each", counts)
	}
	if e.count(func(ev audit.Event) bool {
		return ev.Type == "submit" && ev.Provider == "quantinuum" && ev.JobID == created.Job && ev.Decision == "allow"
	}) != 1 {
		t.Fatal("the Quantinuum submission is not audited")
	}
	e.wantNotInAudit(password)
	assertDirHasNo(t, d.DataDir, password)
}
