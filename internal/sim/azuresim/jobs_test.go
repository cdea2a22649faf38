package azuresim

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestBellIonQEndToEnd(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token(QuantumScope)
	const shots = 1000
	created := h.submit(tok, "ionq.simulator", "ionq", FormatIonQCircuit, bellIonQ, fmt.Sprintf(`{"shots":%d}`, shots))
	if created["status"] != StatusWaiting || created["itemType"] != "Job" || created["outputDataFormat"] != FormatIonQResults {
		t.Errorf("created = %v", created)
	}
	id := created["id"].(string)
	j := h.wait(tok, id)
	if j["status"] != StatusSucceeded {
		t.Fatalf("job = %v", j)
	}
	if j["beginExecutionTime"] == nil || j["endExecutionTime"] == nil || j["errorData"] != nil {
		t.Errorf("times/error: %v", j)
	}
	if got := h.e.history(id); !slices.Equal(got, []string{StatusWaiting, StatusExecuting, StatusFinishing, StatusSucceeded}) {
		t.Errorf("history = %v", got)
	}
	// Results are read from outputDataUri like a client does.
	r := h.send("GET", j["outputDataUri"].(string), "", nil)
	if r.code != http.StatusOK {
		t.Fatalf("results blob: %d %s", r.code, r.body)
	}
	var res struct {
		Histogram map[string]float64 `json:"histogram"`
	}
	if err := json.Unmarshal(r.body, &res); err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for k, p := range res.Histogram {
		if k != "0" && k != "3" {
			t.Errorf("basis state %s observed in a Bell pair", k)
		}
		sum += p
	}
	// p(00) ~ Binomial(1000, 1/2)/1000: sd 0.0158; allow 5 sd.
	if math.Abs(res.Histogram["0"]-0.5) > 0.08 || math.Abs(sum-1) > 1e-9 {
		t.Errorf("histogram = %v", res.Histogram)
	}
}

func TestBellQuantinuumOpenQASM2(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token(QuantumScope)
	for _, tc := range []struct {
		target string
		params string
		zeros  bool
	}{
		{"quantinuum.sim.h2-1e", `{"count":400}`, false},
		{"quantinuum.sim.h2-1sc", `{"shots":400,"count":400}`, true},
	} {
		j := h.submit(tok, tc.target, "Quantinuum", FormatHoneywellQASM, bellQASM2, tc.params)
		j = h.wait(tok, j["id"].(string))
		if j["status"] != StatusSucceeded {
			t.Fatalf("%s: %v", tc.target, j)
		}
		r := h.send("GET", j["outputDataUri"].(string), "", nil)
		var res map[string][]string
		if err := json.Unmarshal(r.body, &res); err != nil || len(res) != 1 || len(res["m"]) != 400 {
			t.Fatalf("%s: results %v %s", tc.target, err, r.body)
		}
		n := map[string]int{}
		for _, s := range res["m"] {
			n[s]++
		}
		if tc.zeros {
			if n["00"] != 400 {
				t.Errorf("syntax checker results = %v", n)
			}
			continue
		}
		if n["00"]+n["11"] != 400 || n["00"] < 150 || n["00"] > 250 {
			t.Errorf("%s: counts = %v", tc.target, n)
		}
	}
}

func TestRegisterOrder(t *testing.T) {
	// x on q[0] only: register c reads "01" (highest bit first), and the
	// second register, measuring nothing, stays "0".
	src := `OPENQASM 3.0;
include "stdgates.inc";
qubit[2] q;
/* bit[9] decoy; */
bit[2] c;
bit flag; // creg ignored[3];
x q[0];
c = measure q;
`
	h := newHarness(t, nil)
	tok := h.token(QuantumScope)
	j := h.wait(tok, h.submit(tok, "quantinuum.sim.h2-1e", "quantinuum", FormatHoneywellQASM, src, `{"shots":5}`)["id"].(string))
	r := h.send("GET", j["outputDataUri"].(string), "", nil)
	var res map[string][]string
	if err := json.Unmarshal(r.body, &res); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res["c"], []string{"01", "01", "01", "01", "01"}) || !slices.Equal(res["flag"], []string{"0", "0", "0", "0", "0"}) {
		t.Errorf("results = %v", res)
	}
}

func TestCreateJobRefusals(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token(QuantumScope)
	const (
		ionqSim = "ionq.simulator"
		h2e     = "quantinuum.sim.h2-1e"
		qtum    = "quantinuum"
	)
	type spec struct{ target, provider, format, params string }
	ionqJob := spec{ionqSim, "ionq", FormatIonQCircuit, `{}`}
	withParams := func(s spec, params string) spec { s.params = params; return s }
	qtumJob := spec{h2e, qtum, FormatHoneywellQASM, `{}`}
	cases := []struct {
		name    string
		input   string
		job     spec
		edit    func(body, cont string) string // optional change to the body
		code    string
		message string
	}{
		{"unknown target", bellIonQ, spec{"ionq.qpu.nonexistent", "ionq", FormatIonQCircuit, `{}`}, nil, "InvalidJobDefinition", "not available"},
		{"provider mismatch", bellIonQ, spec{ionqSim, qtum, FormatIonQCircuit, `{}`}, nil, "InvalidJobDefinition", "provider"},
		{"wrong input format", bellIonQ, spec{ionqSim, "ionq", "qir.v1", `{}`}, nil, "InvalidJobDefinition", "qir.v1"},
		{"too many shots", bellIonQ, withParams(ionqJob, `{"shots":10001}`), nil, "InvalidJobDefinition", "shots"},
		{"zero shots", bellIonQ, withParams(ionqJob, `{"shots":0}`), nil, "InvalidJobDefinition", "shots"},
		{"fractional shots", bellIonQ, withParams(ionqJob, `{"shots":1.5}`), nil, "InvalidJobDefinition", "integer"},
		{"disagreeing shots", bellQASM2, withParams(qtumJob, `{"shots":10,"count":20}`), nil, "InvalidJobDefinition", "disagree"},
		{"too many qubits for the simulator", `{"qubits":21,"circuit":[{"gate":"h","target":20}]}`, ionqJob, nil, "InvalidInputData", "too many qubits"},
		{"more qubits than the target", `{"qubits":30,"circuit":[]}`, ionqJob, nil, "InvalidInputData", "target ionq.simulator has 29"},
		{"invalid circuit", `{"qubits":2,"circuit":[{"gate":"h","target":5}]}`, ionqJob, nil, "InvalidInputData", "circuit[0]"},
		{"unsupported qasm", "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[1];\nu2(0,pi) q[0];\n", qtumJob, nil, "InvalidInputData", "line 4"},
		{"missing name", bellIonQ, ionqJob, func(b, _ string) string { return strings.Replace(b, `"name":"bell",`, "", 1) }, "InvalidJobDefinition", "name"},
		{"session", bellIonQ, ionqJob, func(b, _ string) string {
			return strings.Replace(b, `{`, `{"sessionId":"`+newUUID()+`",`, 1)
		}, "InvalidJobDefinition", "session"},
		{"foreign container", bellIonQ, ionqJob, func(b, _ string) string {
			return setField(t, b, "containerUri", "https://evil.blob.core.windows.net/job-x?sig=abc")
		}, "InvalidJobDefinition", "containerUri"},
		{"input blob in another container", bellIonQ, ionqJob, func(b, _ string) string {
			return setField(t, b, "inputDataUri", h.sasURI(tok, "job-other", "inputData"))
		}, "InvalidJobDefinition", "inputDataUri"},
		{"forged container SAS", bellIonQ, ionqJob, func(b, _ string) string { return strings.Replace(b, "sp=rcw", "sp=rcwd", 1) }, "InvalidJobDefinition", "SAS"},
		{"not JSON", bellIonQ, ionqJob, func(string, string) string { return `{"name":` }, "InvalidRequestContent", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, cont := h.stage(tok, tc.input)
			body := jobBody(tc.job.target, tc.job.provider, tc.job.format, cont, tc.job.params)
			if tc.edit != nil {
				body = tc.edit(body, cont)
			}
			before := h.e.jobCount()
			r := h.ws("PUT", "/jobs/"+id, apiV, tok, body)
			if r.code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", r.code, r.body)
			}
			if got := apiCode(t, r); got != tc.code {
				t.Errorf("code %s, want %s", got, tc.code)
			}
			if msg := r.json(t)["error"].(map[string]any)["message"].(string); !strings.Contains(msg, tc.message) {
				t.Errorf("message %q lacks %q", msg, tc.message)
			}
			if h.e.jobCount() != before {
				t.Error("a refused job was stored")
			}
			if r := h.ws("GET", "/jobs/"+id, apiV, tok, ""); r.code != http.StatusNotFound {
				t.Errorf("refused job is visible: %d", r.code)
			}
		})
	}
}

func TestCreateJobInputAndIdentity(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token(QuantumScope)
	// No input uploaded.
	id := newUUID()
	cont := h.sasURI(tok, "job-"+id, "")
	r := h.ws("PUT", "/jobs/"+id, apiV, tok, jobBody("ionq.simulator", "ionq", FormatIonQCircuit, cont, `{}`))
	if r.code != http.StatusBadRequest || !strings.Contains(string(r.body), "inputData") {
		t.Errorf("no input: %d %s", r.code, r.body)
	}
	// The id in the body must match the path.
	id, cont = h.stage(tok, bellIonQ)
	body := strings.Replace(jobBody("ionq.simulator", "ionq", FormatIonQCircuit, cont, `{}`), `{`, `{"id":"`+newUUID()+`",`, 1)
	if r := h.ws("PUT", "/jobs/"+id, apiV, tok, body); r.code != http.StatusBadRequest {
		t.Errorf("id mismatch: %d %s", r.code, r.body)
	}
	// Content-Type must be JSON.
	r = h.send("PUT", h.e.WorkspacePath()+"/jobs/"+id+"?"+apiV, jobBody("ionq.simulator", "ionq", FormatIonQCircuit, cont, `{}`),
		map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "text/plain"})
	if r.code != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain: %d %s", r.code, r.body)
	}
	// An input blob named by inputDataUri; default shots; the same id twice.
	blobURL := h.sasURI(tok, "job-"+id, "circuit.json")
	if r := h.putBlob(blobURL, bellIonQ); r.code != http.StatusCreated {
		t.Fatalf("upload: %d %s", r.code, r.body)
	}
	b := setField(t, jobBody("ionq.simulator", "IonQ", FormatIonQCircuit, cont, `{}`), "inputDataUri", blobURL)
	r = h.ws("PUT", "/jobs/"+id, apiV, tok, b)
	if r.code != http.StatusCreated {
		t.Fatalf("create with inputDataUri: %d %s", r.code, r.body)
	}
	if v := r.json(t); v["inputDataUri"] != blobURL || v["createdBy"] != testClient || v["createdByType"] != "Application" {
		t.Errorf("view = %v", v)
	}
	j := h.wait(tok, id)
	if j["inputParams"].(map[string]any)["shots"] != nil {
		t.Errorf("inputParams rewritten: %v", j["inputParams"])
	}
	h.e.mu.Lock()
	shots := h.e.jobs[id].shots
	h.e.mu.Unlock()
	if shots != DefaultShots {
		t.Errorf("default shots = %d", shots)
	}
	if r := h.ws("PUT", "/jobs/"+id, apiV, tok, b); r.code != http.StatusConflict {
		t.Errorf("duplicate id: %d %s", r.code, r.body)
	}
}

func TestCancelAndDelete(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.StepDelay = 200 * time.Millisecond }) // time to cancel
	tok := h.token(QuantumScope)
	id := h.submit(tok, "ionq.simulator", "ionq", FormatIonQCircuit, bellIonQ, `{}`)["id"].(string)
	r := h.ws("POST", "/jobs/"+id+":cancel", apiV, tok, "")
	if r.code != http.StatusOK || r.json(t)["status"] != StatusCancellationRequested {
		t.Fatalf("cancel: %d %s", r.code, r.body)
	}
	j := h.wait(tok, id)
	if j["status"] != StatusCancelled || j["cancellationTime"] == nil {
		t.Errorf("after cancel: %v", j)
	}
	if got := h.e.history(id); !slices.Equal(got, []string{StatusWaiting, StatusCancellationRequested, StatusCancelled}) {
		t.Errorf("history = %v", got)
	}
	if r := h.ws("POST", "/jobs/"+id+":cancel", apiV, tok, ""); r.code != http.StatusOK {
		t.Errorf("cancel again: %d %s", r.code, r.body)
	}
	if r := h.ws("POST", "/jobs/"+id+":frobnicate", apiV, tok, ""); r.code != http.StatusNotFound {
		t.Errorf("unknown action: %d %s", r.code, r.body)
	}
	// Old api-version: DELETE cancels.
	id2 := h.submit(tok, "ionq.simulator", "ionq", FormatIonQCircuit, bellIonQ, `{}`)["id"].(string)
	if r := h.ws("DELETE", "/jobs/"+id2, "api-version=2022-09-12-preview", tok, ""); r.code != http.StatusNoContent {
		t.Fatalf("old DELETE: %d %s", r.code, r.body)
	}
	if j := h.wait(tok, id2); j["status"] != StatusCancelled {
		t.Errorf("old DELETE did not cancel: %v", j)
	}
	// New api-version: DELETE refuses a running job, deletes a finished one.
	id3 := h.submit(tok, "ionq.simulator", "ionq", FormatIonQCircuit, bellIonQ, `{}`)["id"].(string)
	if r := h.ws("DELETE", "/jobs/"+id3, apiV, tok, ""); r.code != http.StatusConflict {
		t.Errorf("DELETE running job: %d %s", r.code, r.body)
	}
	h.wait(tok, id3)
	if r := h.ws("POST", "/jobs/"+id3+":cancel", apiV, tok, ""); r.code != http.StatusConflict {
		t.Errorf("cancel succeeded job: %d %s", r.code, r.body)
	}
	if r := h.ws("DELETE", "/jobs/"+id3, apiV, tok, ""); r.code != http.StatusNoContent {
		t.Errorf("DELETE finished job: %d %s", r.code, r.body)
	}
	if r := h.ws("GET", "/jobs/"+id3, apiV, tok, ""); r.code != http.StatusNotFound {
		t.Errorf("deleted job still there: %d", r.code)
	}
}

func TestListJobs(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token(QuantumScope)
	var ids []string
	for range 3 {
		ids = append(ids, h.submit(tok, "ionq.simulator", "ionq", FormatIonQCircuit, bellIonQ, `{"shots":10}`)["id"].(string))
	}
	list := func(q string) []string {
		r := h.ws("GET", "/jobs", apiV+q, tok, "")
		if r.code != http.StatusOK {
			t.Fatalf("list%s: %d %s", q, r.code, r.body)
		}
		var got []string
		for _, v := range r.json(t)["value"].([]any) {
			got = append(got, v.(map[string]any)["id"].(string))
		}
		return got
	}
	if got := list(""); !slices.Equal(got, ids) {
		t.Errorf("list = %v, want %v", got, ids)
	}
	if got := list("&skip=1&top=1"); !slices.Equal(got, ids[1:2]) {
		t.Errorf("skip/top = %v", got)
	}
	if r := h.ws("GET", "/jobs", apiV+"&filter=Target%20eq%20'x'", tok, ""); r.code != http.StatusBadRequest {
		t.Errorf("filter: %d", r.code)
	}
}

func TestMaxJobsEviction(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxJobs = 2 })
	tok := h.token(QuantumScope)
	first := h.submit(tok, "ionq.simulator", "ionq", FormatIonQCircuit, bellIonQ, `{"shots":1}`)["id"].(string)
	h.wait(tok, first)
	second := h.submit(tok, "ionq.simulator", "ionq", FormatIonQCircuit, bellIonQ, `{"shots":1}`)["id"].(string)
	h.wait(tok, second)
	third := h.submit(tok, "ionq.simulator", "ionq", FormatIonQCircuit, bellIonQ, `{"shots":1}`)["id"].(string)
	if r := h.ws("GET", "/jobs/"+first, apiV, tok, ""); r.code != http.StatusNotFound {
		t.Errorf("oldest job not evicted: %d", r.code)
	}
	h.e.mu.Lock()
	_, kept := h.e.containers["job-"+first]
	h.e.mu.Unlock()
	if kept {
		t.Error("evicted job's container kept")
	}
	h.wait(tok, third)
}

// setField sets one top-level field of a JSON object.
func setField(t *testing.T, body, key string, val any) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	m[key] = val
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
