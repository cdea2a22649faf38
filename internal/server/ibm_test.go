package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/sim/ibmsim"
)

// bellIBM is a Bell pair in ibmsim's (Heron) basis: H as rz·sx·rz, CX as
// H·CZ·H.
const bellIBM = "OPENQASM 3.0;\ninclude \"stdgates.inc\";\nqubit[2] q;\nbit[2] c;\n" +
	"rz(pi/2) q[0];\nsx q[0];\nrz(pi/2) q[0];\n" +
	"rz(pi/2) q[1];\nsx q[1];\nrz(pi/2) q[1];\n" +
	"cz q[0], q[1];\n" +
	"rz(pi/2) q[1];\nsx q[1];\nrz(pi/2) q[1];\n" +
	"c = measure q;\n"

// IBM Quantum end to end: the broker holds the IBM Cloud API key and
// exchanges it for IAM bearer tokens; the agent sends the Runtime's own
// Sampler request to the gateway with its job token as the bearer; the
// gateway checks backend, shots and circuit against the token, injects the
// IAM token and the instance CRN; the owner reads status and results with
// its broker token. The API key never reaches the agent.
func TestIBMThroughGateway(t *testing.T) {
	const apiKey = "ibm-cloud-api-key-for-tests-0123456789"
	e, _, _ := ibmStack(t, ibmsim.Config{APIKey: apiKey, StepDelay: 5 * time.Millisecond, JobsPerMinute: -1}, `
@id("q-kingston") permit (principal in Role::"q", action == Action::"SubmitJob", resource == Device::"ibm/kingston");
@id("q-own-jobs") permit (principal in Role::"q", action in [Action::"ReadJob", Action::"ReadResult", Action::"CancelJob"], resource is Job)
when { resource.owner == principal };
`, DevOptions{})
	d := e.d
	e.putRole("q", `{"provider":"ibm","devices":["kingston"],"max_shots":2000}`)
	agent := e.mustLogin(e.roleID("q"), e.newSecretID("q", "qiskit-agent", "").SecretID)

	b, _ := json.Marshal(api.JobTokenRequest{Provider: "ibm", Device: "kingston", Shots: 1000, Program: mustJSON(bellIBM), Format: api.FormatQASM3})
	r := e.broker(http.MethodPost, "/v1/quantum/jobtoken/q", agent.ClientToken, string(b))
	want(t, "ibm job token", r, http.StatusOK)
	var jt api.JobTokenData
	decodeData(t, r, &jt)

	call := func(method, p, tok string, body []byte) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, d.GatewayURL+"/ibm"+p, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if strings.Contains(string(out), apiKey) {
			t.Fatal("the IBM API key reached the agent")
		}
		return resp.StatusCode, string(out)
	}
	job := func(src string, shots int) []byte {
		b, _ := json.Marshal(map[string]any{"program_id": "sampler", "backend": "ibm_kingston",
			"params": map[string]any{"pubs": []any{[]any{src, nil, shots}}, "version": 2}})
		return b
	}
	if st, out := call(http.MethodPost, "/api/v1/jobs", jt.Token, job(bellIBM, 1500)); st != http.StatusForbidden || !strings.Contains(out, "at most 1000") {
		t.Fatalf("more shots: %d %s", st, out)
	}
	if st, out := call(http.MethodPost, "/api/v1/jobs", jt.Token, job(strings.Replace(bellIBM, "cz q[0], q[1];", "", 1), 1000)); st != http.StatusForbidden || !strings.Contains(out, "digest") {
		t.Fatalf("another circuit: %d %s", st, out)
	}
	st, out := call(http.MethodPost, "/api/v1/jobs", jt.Token, job(bellIBM, 1000))
	if st/100 != 2 {
		t.Fatalf("submit: %d %s", st, out)
	}
	var created struct {
		ID string `json:"id"`
	}
	json.Unmarshal([]byte(out), &created)
	if st, _ := call(http.MethodPost, "/api/v1/jobs", jt.Token, job(bellIBM, 1000)); st != http.StatusUnauthorized {
		t.Fatalf("replayed job token: %d", st)
	}

	deadline := time.Now().Add(10 * time.Second)
	for {
		st, out := call(http.MethodGet, "/api/v1/jobs/"+created.ID, agent.ClientToken, nil)
		if st != http.StatusOK {
			t.Fatalf("status: %d %s", st, out)
		}
		if strings.Contains(out, `"Completed"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job not completed: %s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	st, out = call(http.MethodGet, "/api/v1/jobs/"+created.ID+"/results", agent.ClientToken, nil)
	if st != http.StatusOK {
		t.Fatalf("results: %d %s", st, out)
	}
	var res ibmsim.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Results) != 1 {
		t.Fatalf("results: %v %s", err, out)
	}
	counts, err := ibmsim.Counts(res.Results[0].Data["c"])
	if err != nil || len(counts) != 2 || counts["00"] < 400 || counts["11"] < 400 {
		t.Fatalf("Bell counts %v (%v): want only 00 and 11, about 500 each", counts, err)
	}
	other := e.mustLogin(e.roleID("q"), e.newSecretID("q", "someone-else", "").SecretID)
	if st, _ := call(http.MethodGet, "/api/v1/jobs/"+created.ID+"/results", other.ClientToken, nil); st != http.StatusNotFound {
		t.Fatalf("another agent reads the results: %d", st)
	}
	if e.count(func(ev audit.Event) bool {
		return ev.Type == "submit" && ev.Provider == "ibm" && ev.JobID == created.ID && ev.Decision == "allow"
	}) != 1 {
		t.Fatal("the IBM submission is not audited")
	}
}

// Issue 6, criterion 4: a cached upstream token is replaced before it
// expires, so requests under load across many refreshes never fail. IAM
// tokens live 2 s here; 8 clients read a job through the gateway for 5 s.
func TestUpstreamTokenRefreshUnderLoad(t *testing.T) {
	const apiKey = "ibm-cloud-api-key-for-tests-0123456789"
	e, _, _ := ibmStack(t, ibmsim.Config{APIKey: apiKey, StepDelay: time.Millisecond, JobsPerMinute: -1, TokenTTL: 2 * time.Second}, `
@id("q-kingston") permit (principal in Role::"q", action == Action::"SubmitJob", resource == Device::"ibm/kingston");
@id("q-own-jobs") permit (principal in Role::"q", action in [Action::"ReadJob", Action::"ReadResult"], resource is Job)
when { resource.owner == principal };
`, DevOptions{})
	d := e.d
	e.putRole("q", `{"provider":"ibm","devices":["kingston"],"max_shots":2000}`)
	agent := e.mustLogin(e.roleID("q"), e.newSecretID("q", "qiskit-agent", "").SecretID)
	b, _ := json.Marshal(api.JobTokenRequest{Provider: "ibm", Device: "kingston", Shots: 100, Program: mustJSON(bellIBM), Format: api.FormatQASM3})
	r := e.broker(http.MethodPost, "/v1/quantum/jobtoken/q", agent.ClientToken, string(b))
	want(t, "ibm job token", r, http.StatusOK)
	var jt api.JobTokenData
	decodeData(t, r, &jt)
	body, _ := json.Marshal(map[string]any{"program_id": "sampler", "backend": "ibm_kingston",
		"params": map[string]any{"pubs": []any{[]any{bellIBM, nil, 100}}, "version": 2}})
	req, _ := http.NewRequest(http.MethodPost, d.GatewayURL+"/ibm/api/v1/jobs", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+jt.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		ID string `json:"id"`
	}
	json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if created.ID == "" {
		t.Fatalf("submit: %d", resp.StatusCode)
	}

	var mu sync.Mutex
	var ok, failed int
	var firstFail string
	stop := time.Now().Add(5 * time.Second)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				req, _ := http.NewRequest(http.MethodGet, d.GatewayURL+"/ibm/api/v1/jobs/"+created.ID, nil)
				req.Header.Set("Authorization", "Bearer "+agent.ClientToken)
				resp, err := e.hc.Do(req)
				status := 0
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
				mu.Lock()
				if status == http.StatusOK {
					ok++
				} else {
					failed++
					if firstFail == "" {
						firstFail = fmt.Sprintf("status %d, err %v", status, err)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("%d reads over 5 s with 2 s IAM tokens (without a refresh they would fail after 2 s), %d failed", ok, failed)
	if failed != 0 || ok < 100 {
		t.Fatalf("%d of %d reads failed across token refreshes (first: %s)", failed, ok+failed, firstFail)
	}
}

// Issue 7: QPU seconds where the provider reports them. IBM reports each
// job's QPU time; the gateway passes it on at settlement, and a role's
// qpu_seconds_per_day budget (no estimate in the catalogue: post-paid)
// admits jobs until the reported seconds reach it, then refuses with 403
// naming the limit.
func TestIBMQPUSecondsBudget(t *testing.T) {
	const apiKey = "ibm-cloud-api-key-for-qpu-budget-0123"
	budgets := config.Budgets{Limits: []config.BudgetLimit{{Name: "q-qpu", Scope: "role", Match: "q", Class: "hardware", QPUSecondsPerDay: 7}}}
	e, _, _ := ibmStack(t, ibmsim.Config{APIKey: apiKey, StepDelay: 5 * time.Millisecond, JobsPerMinute: -1}, `
@id("q-kingston") permit (principal in Role::"q", action == Action::"SubmitJob", resource == Device::"ibm/kingston");
@id("q-own-jobs") permit (principal in Role::"q", action in [Action::"ReadJob", Action::"ReadResult"], resource is Job)
when { resource.owner == principal };
`, DevOptions{Budgets: &budgets})
	d := e.d
	e.putRole("q", `{"provider":"ibm","devices":["kingston"],"max_shots":2000}`)
	agent := e.mustLogin(e.roleID("q"), e.newSecretID("q", "qpu-agent", "").SecretID)
	tokenReq, _ := json.Marshal(api.JobTokenRequest{Provider: "ibm", Device: "kingston", Shots: 1000, Program: mustJSON(bellIBM), Format: api.FormatQASM3})
	body, _ := json.Marshal(map[string]any{"program_id": "sampler", "backend": "ibm_kingston",
		"params": map[string]any{"pubs": []any{[]any{bellIBM, nil, 1000}}, "version": 2}})
	call := func(method, p, tok string, b []byte) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, d.GatewayURL+"/ibm"+p, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	used := func() float64 {
		for _, u := range e.budgets(agent.ClientToken, "") {
			if u.Limit == "q-qpu.qpu_seconds_per_day" {
				return u.Used
			}
		}
		t.Fatal("the qpu_seconds budget is not listed")
		return 0
	}
	// Each 1,000-shot job is reported as 3 QPU seconds by the emulator.
	for i := range 3 {
		r := e.broker(http.MethodPost, "/v1/quantum/jobtoken/q", agent.ClientToken, string(tokenReq))
		want(t, fmt.Sprintf("job token %d (%.0f of 7 QPU seconds used)", i+1, float64(3*i)), r, http.StatusOK)
		var jt api.JobTokenData
		decodeData(t, r, &jt)
		st, out := call(http.MethodPost, "/api/v1/jobs", jt.Token, body)
		if st/100 != 2 {
			t.Fatalf("submit %d: %d %s", i+1, st, out)
		}
		var created struct {
			ID string `json:"id"`
		}
		json.Unmarshal([]byte(out), &created)
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, out := call(http.MethodGet, "/api/v1/jobs/"+created.ID, agent.ClientToken, nil); strings.Contains(out, `"Completed"`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("job %d did not complete", i+1)
			}
			time.Sleep(20 * time.Millisecond)
		}
		for used() != float64(3*(i+1)) { // settlement is off the read's path
			if time.Now().After(deadline) {
				t.Fatalf("after job %d: %v QPU seconds used, want %d", i+1, used(), 3*(i+1))
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Priced from the catalogue (internal/pricing: IBM at $1.60 a QPU
		// second): 3 s cost $4.80.
		if e.count(func(ev audit.Event) bool {
			return ev.Type == "settle" && ev.JTI == jt.JTI && ev.QPUSeconds != nil && *ev.QPUSeconds == 3 &&
				ev.ActualCostUSD != nil && math.Abs(*ev.ActualCostUSD-4.8) < 1e-9
		}) != 1 {
			t.Fatalf("job %d's settlement does not record its 3 QPU seconds at $4.80", i+1)
		}
	}
	// 9 of 7 used (the third job ran past the budget: no estimate, so the
	// budget is checked before a job, not during it): refused.
	r := e.broker(http.MethodPost, "/v1/quantum/jobtoken/q", agent.ClientToken, string(tokenReq))
	want(t, "a job token with the QPU budget spent", r, http.StatusForbidden, "q-qpu.qpu_seconds_per_day", "7 QPU seconds a day", "9 used")
}

// Device discovery through the gateway: Qiskit lists backends and reads
// their configuration with the agent's broker token where it would send
// its IAM token; the gateway sends the request on with the role's IAM
// token. No token, a job token, or a revoked broker token get 401; the
// API key never reaches the agent.
func TestIBMDeviceListThroughGateway(t *testing.T) {
	const apiKey = "ibm-cloud-api-key-for-discovery-0123"
	e, _, _ := ibmStack(t, ibmsim.Config{APIKey: apiKey, JobsPerMinute: -1}, `
@id("q-kingston") permit (principal in Role::"q", action == Action::"SubmitJob", resource == Device::"ibm/kingston");
`, DevOptions{})
	d := e.d
	e.putRole("q", `{"provider":"ibm","devices":["kingston"],"max_shots":2000}`)
	agent := e.mustLogin(e.roleID("q"), e.newSecretID("q", "qiskit-discovery", "").SecretID)
	get := func(p, tok string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, d.GatewayURL+"/ibm"+p, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := e.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if strings.Contains(string(out), apiKey) {
			t.Fatal("the API key reached the agent")
		}
		return resp.StatusCode, string(out)
	}
	if st, out := get("/api/v1/backends", agent.ClientToken); st != http.StatusOK || !strings.Contains(out, "ibm_kingston") {
		t.Fatalf("backends: %d %s", st, out)
	}
	if st, out := get("/api/v1/backends/ibm_kingston/configuration", agent.ClientToken); st != http.StatusOK || !strings.Contains(out, "n_qubits") {
		t.Fatalf("configuration: %d %s", st, out)
	}
	if st, _ := get("/api/v1/backends", ""); st != http.StatusUnauthorized {
		t.Fatalf("no token: %d", st)
	}
	b, _ := json.Marshal(api.JobTokenRequest{Provider: "ibm", Device: "kingston", Shots: 100, Program: mustJSON(bellIBM), Format: api.FormatQASM3})
	r := e.broker(http.MethodPost, "/v1/quantum/jobtoken/q", agent.ClientToken, string(b))
	want(t, "job token", r, http.StatusOK)
	var jt api.JobTokenData
	decodeData(t, r, &jt)
	if st, _ := get("/api/v1/backends", jt.Token); st != http.StatusUnauthorized {
		t.Fatalf("a job token for device discovery: %d", st)
	}
	want(t, "revoke", e.broker(http.MethodPost, "/v1/auth/token/revoke-self", agent.ClientToken, ""), http.StatusNoContent)
	if st, _ := get("/api/v1/backends", agent.ClientToken); st != http.StatusUnauthorized {
		t.Fatalf("a revoked token: %d", st)
	}
}

// ibmStack runs ibmsim with cfg and a dev stack whose gateway fronts it
// (approval rules off unless opts sets them, policy added to the demo
// policies), with cfg's API key stored as the IBM root credential.
func ibmStack(t *testing.T, cfg ibmsim.Config, policy string, opts DevOptions) (*env, *ibmsim.Emulator, string) {
	t.Helper()
	sim, err := ibmsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	path := filepath.Join(t.TempDir(), "policies.cedar")
	writeAtomic(t, path, demoPolicy(t)+policy)
	opts.PolicyFiles = []string{path}
	if opts.Approvals == nil {
		opts.Approvals = &config.Approvals{}
	}
	opts.IBM = config.IBM{InstanceCRN: sim.InstanceCRN(), BaseURL: srv.URL, IAMURL: srv.URL}
	d := startDevWith(t, opts)
	e := &env{t: t, d: d, hc: &http.Client{Timeout: 20 * time.Second}}
	want(t, "store the API key", e.broker(http.MethodPost, "/v1/sys/providers/ibm/credential", d.RootToken, fmt.Sprintf(`{"api_key":%q}`, cfg.APIKey)), http.StatusNoContent)
	return e, sim, srv.URL
}
