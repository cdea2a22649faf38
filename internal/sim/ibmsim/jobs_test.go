package ibmsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

var jobIDRE = regexp.MustCompile(`^[0-9a-v]{20}$`)

func TestBellSampler(t *testing.T) {
	h := newHarness(t, nil)
	h.login()
	body := `{"program_id":"sampler","backend":"ibm_kingston","tags":["tenant:t1"],"cost":300,
	 "params":{"pubs":[[` + mustJSON(bellISA) + `,null,4000]],"options":{"default_shots":1024},"version":2}}`
	res := h.do(h.bearer(crnA), http.MethodPost, "/jobs", body)
	if res.status != http.StatusOK {
		t.Fatalf("create: %d %s", res.status, res.body)
	}
	var created map[string]any
	if err := json.Unmarshal(res.body, &created); err != nil {
		t.Fatal(err)
	}
	id, _ := created["id"].(string)
	if !jobIDRE.MatchString(id) || created["backend"] != kingston || len(created) != 2 {
		t.Fatalf("create response %s", res.body)
	}
	j := h.wait(crnA, id)
	if j.Status != StatusCompleted || j.State.Status != StatusCompleted || j.State.ReasonCode != 0 {
		t.Fatalf("job %+v", j)
	}
	if got := strings.Join(h.e.history(id), ","); got != "Queued,Running,Completed" {
		t.Fatalf("history %s", got)
	}
	if j.Backend != kingston || j.Program["id"] != "sampler" || j.Cost != 300 || fmt.Sprint(j.Tags) != "[tenant:t1]" ||
		!strings.HasPrefix(j.UserID, "iam-ServiceId-") || j.Usage == nil || j.Usage.Status != "complete" || len(j.Params) == 0 {
		t.Fatalf("job view %+v", j)
	}
	if _, err := time.Parse(timeFormat, j.Created); err != nil {
		t.Fatalf("created %q: %v", j.Created, err)
	}
	r := h.results(crnA, id)
	if len(r.Results) != 1 || len(r.Results[0].Data) != 1 {
		t.Fatalf("results %+v", r)
	}
	d := r.Results[0].Data["c"]
	if d.NumBits != 2 || len(d.Samples) != 4000 {
		t.Fatalf("register c: %d bits, %d samples", d.NumBits, len(d.Samples))
	}
	counts, err := Counts(d)
	if err != nil {
		t.Fatal(err)
	}
	if counts["01"]+counts["10"] != 0 {
		t.Fatalf("Bell pair gave uncorrelated outcomes: %v", counts)
	}
	// 4000 fair coin flips: 2000 ± 5σ (σ ≈ 31.6).
	if n := counts["00"]; n < 1840 || n > 2160 {
		t.Fatalf("Bell counts %v are not ~50/50", counts)
	}
	// The samples are hexadecimal values, not bitstrings.
	for _, s := range d.Samples {
		if s != "0x0" && s != "0x3" {
			t.Fatalf("sample %q", s)
		}
	}
}

func TestGHZ3(t *testing.T) {
	h := newHarness(t, nil)
	h.login()
	c := h.counts(ghz3ISA, 3000)["meas"]
	if len(c) != 2 || c["000"]+c["111"] != 3000 {
		t.Fatalf("GHZ counts %v", c)
	}
	if n := c["000"]; n < 1360 || n > 1640 { // 1500 ± 5σ (σ ≈ 27.4)
		t.Fatalf("GHZ counts %v are not ~50/50", c)
	}
}

// Classical bit 0 is the rightmost character of a bitstring and the least
// significant bit of a sample, as in Qiskit; results are per register, and
// only measured bits can be 1.
func TestBitOrderingAndRegisters(t *testing.T) {
	h := newHarness(t, nil)
	h.login()
	head := "OPENQASM 3.0;\ninclude \"stdgates.inc\";\n"

	c := h.counts(head+"qubit[2] q;\nbit[2] c;\nx q[0];\nc[0] = measure q[0];\nc[1] = measure q[1];\n", 50)
	if fmt.Sprint(c) != "map[c:map[01:50]]" {
		t.Errorf("x on q0 measured into c[0]: %v", c)
	}
	c = h.counts(head+"qubit[2] q;\nbit[2] c;\nx q[0];\nc[1] = measure q[0];\nc[0] = measure q[1];\n", 50)
	if fmt.Sprint(c) != "map[c:map[10:50]]" {
		t.Errorf("x on q0 measured into c[1]: %v", c)
	}
	// Two registers, one bit never measured, a legacy creg, comments.
	src := head + "qubit[3] q;\n// bit[9] decoy;\nbit[3] a; /* bit[4] nope; */\ncreg b[1];\n" +
		"x q[1];\nx q[2];\na[2] = measure q[1];\nb[0] = measure q[2];\n"
	c = h.counts(src, 20)
	if fmt.Sprint(c) != "map[a:map[100:20] b:map[1:20]]" {
		t.Errorf("two registers: %v", c)
	}
	// Physical qubits, as Qiskit's exporter writes ISA circuits.
	c = h.counts(head+"bit[1] r;\nx $4;\nr[0] = measure $4;\n", 10)
	if fmt.Sprint(c) != "map[r:map[1:10]]" {
		t.Errorf("physical qubit: %v", c)
	}
	// A circuit without classical bits has no data.
	id := h.submit(crnA, samplerJob(kingston, 5, head+"qubit[1] q;\nx q[0];\n"))
	h.wait(crnA, id)
	if r := h.results(crnA, id); len(r.Results[0].Data) != 0 {
		t.Errorf("no registers: %+v", r.Results[0].Data)
	}
}

// Registers appear in the result in declaration order, as IBM's (Python)
// result keeps them.
func TestRegisterOrderInJSON(t *testing.T) {
	h := newHarness(t, nil)
	h.login()
	id := h.submit(crnA, samplerJob(kingston, 3, "OPENQASM 3.0;\nqubit[2] q;\nbit zed;\nbit a;\nzed = measure q[0];\na = measure q[1];\n"))
	h.wait(crnA, id)
	res := h.do(h.bearer(crnA), http.MethodGet, "/jobs/"+id+"/results", "")
	if i, k := strings.Index(string(res.body), `"zed":`), strings.Index(string(res.body), `"a":`); i < 0 || k < 0 || i > k {
		t.Fatalf("register order in %s", res.body)
	}
}

func TestSeveralPubsAndShotPrecedence(t *testing.T) {
	h := newHarness(t, nil)
	h.login()
	one := "OPENQASM 3.0;\nqubit[1] q;\nbit[1] c;\nx q[0];\nc[0] = measure q[0];\n"
	body := `{"program_id":"sampler","backend":"ibm_torino","params":{"pubs":[` +
		mustJSON(one) + `,[` + mustJSON(one) + `],[` + mustJSON(one) + `,{},7],[` + mustJSON(one) + `,null,null]],` +
		`"shots":11,"options":{"default_shots":13}}}`
	id := h.submit(crnA, body)
	if j := h.wait(crnA, id); j.Status != StatusCompleted {
		t.Fatalf("job %+v", j)
	}
	r := h.results(crnA, id)
	var got []int
	for _, p := range r.Results {
		got = append(got, len(p.Data["c"].Samples))
	}
	if fmt.Sprint(got) != "[11 11 7 11]" {
		t.Fatalf("shots per PUB %v; want params.shots over options.default_shots, and the PUB's own first", got)
	}
	// Without params.shots, options.default_shots applies; without both, 4096.
	id = h.submit(crnA, `{"program_id":"sampler","backend":"ibm_torino","params":{"pubs":[`+mustJSON(one)+`],"options":{"default_shots":13}}}`)
	h.wait(crnA, id)
	if n := len(h.results(crnA, id).Results[0].Data["c"].Samples); n != 13 {
		t.Fatalf("default_shots: %d samples", n)
	}
	id = h.submit(crnA, `{"program_id":"sampler","backend":"ibm_torino","params":{"pubs":[`+mustJSON(one)+`]}}`)
	h.wait(crnA, id)
	if n := len(h.results(crnA, id).Results[0].Data["c"].Samples); n != DefaultShots {
		t.Fatalf("no shots anywhere: %d samples", n)
	}
}

// Another instance of the same account cannot see, read, cancel or delete
// a job: it gets the answer for an unknown id.
func TestInstanceIsolation(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.StepDelay = time.Hour })
	h.login()
	id := h.submit(crnA, samplerJob(kingston, 10, bellISA))
	unknown := "d0000000000000000000"
	for _, probe := range []struct{ method, path string }{
		{http.MethodGet, "/jobs/%s"},
		{http.MethodGet, "/jobs/%s/results"},
		{http.MethodPost, "/jobs/%s/cancel"},
		{http.MethodDelete, "/jobs/%s"},
	} {
		other := h.do(h.bearer(crnB), probe.method, fmt.Sprintf(probe.path, id), "")
		expectError(t, "other instance "+probe.method+" "+probe.path, other, http.StatusNotFound, codeJobNotFound)
		none := h.do(h.bearer(crnB), probe.method, fmt.Sprintf(probe.path, unknown), "")
		expectError(t, "unknown id "+probe.method+" "+probe.path, none, http.StatusNotFound, codeJobNotFound)
		if !strings.Contains(string(other.body), "Job ID: "+id+".") {
			t.Errorf("message %s", other.body)
		}
	}
	res := h.do(h.bearer(crnB), http.MethodGet, "/jobs", "")
	var list struct {
		Jobs  []jobJSON `json:"jobs"`
		Count int       `json:"count"`
	}
	if err := json.Unmarshal(res.body, &list); err != nil || list.Count != 0 || len(list.Jobs) != 0 {
		t.Fatalf("other instance's list: %s", res.body)
	}
	// The owner still sees it, still queued (the cancel above did nothing).
	if j := h.job(crnA, id); j.Status != StatusQueued {
		t.Fatalf("owner sees %s", j.Status)
	}
	res = h.do(h.bearer(crnA), http.MethodGet, "/jobs", "")
	if err := json.Unmarshal(res.body, &list); err != nil || list.Count != 1 || list.Jobs[0].ID != id || len(list.Jobs[0].Params) != 0 {
		t.Fatalf("owner's list: %s", res.body)
	}
}

func TestUnknownBackendAndProgram(t *testing.T) {
	h := newHarness(t, nil)
	h.login()
	expectError(t, "unknown backend", h.do(h.bearer(crnA), http.MethodPost, "/jobs", samplerJob("ibm_nowhere", 10, bellISA)),
		http.StatusNotFound, codeBackendNotFound)
	expectError(t, "backend name case", h.do(h.bearer(crnA), http.MethodPost, "/jobs", samplerJob("IBM_KINGSTON", 10, bellISA)),
		http.StatusNotFound, codeBackendNotFound)
	expectError(t, "unknown backend configuration", h.do(h.bearer(crnA), http.MethodGet, "/backends/ibm_nowhere/configuration", ""),
		http.StatusNotFound, codeBackendNotFound)
	est := strings.Replace(samplerJob(kingston, 10, bellISA), `"sampler"`, `"estimator"`, 1)
	expectError(t, "estimator", h.do(h.bearer(crnA), http.MethodPost, "/jobs", est), http.StatusBadRequest, codeValidation)
	if h.e.jobCount() != 0 {
		t.Fatal("a refused job was stored")
	}
}

func TestMalformedJobsRefused(t *testing.T) {
	h := newHarness(t, nil)
	h.login()
	c := mustJSON(bellISA)
	job := func(params string) string {
		return `{"program_id":"sampler","backend":"ibm_kingston","params":` + params + `}`
	}
	cases := map[string]string{
		"not JSON":                 `{"program_id":`,
		"array body":               `[]`,
		"trailing data":            job(`{"pubs":[`+c+`]}`) + `{}`,
		"duplicate key":            `{"program_id":"sampler","backend":"ibm_kingston","backend":"ibm_torino","params":{"pubs":[` + c + `]}}`,
		"duplicate shots":          job(`{"pubs":[` + c + `],"shots":10,"shots":100000000}`),
		"no program":               `{"backend":"ibm_kingston","params":{"pubs":[` + c + `]}}`,
		"no backend":               `{"program_id":"sampler","params":{"pubs":[` + c + `]}}`,
		"no params":                `{"program_id":"sampler","backend":"ibm_kingston"}`,
		"unknown job field":        `{"program_id":"sampler","backend":"ibm_kingston","shots":10,"params":{"pubs":[` + c + `]}}`,
		"unknown params field":     job(`{"pubs":[` + c + `],"circuits":[` + c + `]}`),
		"unknown option":           job(`{"pubs":[` + c + `],"options":{"optimization_level":1}}`),
		"option not an object":     job(`{"pubs":[` + c + `],"options":{"twirling":true}}`),
		"no pubs":                  job(`{"version":2}`),
		"empty pubs":               job(`{"pubs":[]}`),
		"pubs not an array":        job(`{"pubs":` + c + `}`),
		"empty PUB array":          job(`{"pubs":[[]]}`),
		"PUB of four":              job(`{"pubs":[[` + c + `,null,10,1]]}`),
		"circuit is a number":      job(`{"pubs":[[42]]}`),
		"empty circuit":            job(`{"pubs":[""]}`),
		"QPY circuit":              job(`{"pubs":[{"__type__":"QuantumCircuit","__value__":"eJw="}]}`),
		"parameter values":         job(`{"pubs":[[` + c + `,{"theta":[0.5]},10]]}`),
		"shots a string":           job(`{"pubs":[[` + c + `,null,"10"]]}`),
		"shots a float":            job(`{"pubs":[[` + c + `,null,10.5]]}`),
		"shots 1e3":                job(`{"pubs":[[` + c + `,null,1e3]]}`),
		"shots 1024.0":             job(`{"pubs":[[` + c + `,null,1024.0]]}`),
		"shots zero":               job(`{"pubs":[[` + c + `,null,0]]}`),
		"shots negative":           job(`{"pubs":[[` + c + `,null,-5]]}`),
		"params.shots negative":    job(`{"pubs":[` + c + `],"shots":-1}`),
		"default_shots zero":       job(`{"pubs":[` + c + `],"options":{"default_shots":0}}`),
		"version 1":                job(`{"pubs":[` + c + `],"version":1}`),
		"support_qiskit":           job(`{"pubs":[` + c + `],"support_qiskit":true}`),
		"not OpenQASM":             job(`{"pubs":["h q[0];"]}`),
		"OpenQASM 2":               job(`{"pubs":[` + mustJSON("OPENQASM 2.0;\nqreg q[1];\ncreg c[1];\nmeasure q[0] -> c[0];\n") + `]}`),
		"unsupported construct":    job(`{"pubs":[` + mustJSON("OPENQASM 3.0;\nqubit[1] q;\nreset q[0];\n") + `]}`),
		"no qubits":                job(`{"pubs":[` + mustJSON("OPENQASM 3.0;\nbit[1] c;\n") + `]}`),
		"too many tags":            `{"program_id":"sampler","backend":"ibm_kingston","tags":["1","2","3","4","5","6","7","8","9"],"params":{"pubs":[` + c + `]}}`,
		"tag too long":             `{"program_id":"sampler","backend":"ibm_kingston","tags":["` + strings.Repeat("t", 87) + `"],"params":{"pubs":[` + c + `]}}`,
		"negative cost":            `{"program_id":"sampler","backend":"ibm_kingston","cost":-1,"params":{"pubs":[` + c + `]}}`,
		"log level":                `{"program_id":"sampler","backend":"ibm_kingston","log_level":"trace","params":{"pubs":[` + c + `]}}`,
		"session":                  `{"program_id":"sampler","backend":"ibm_kingston","session_id":"s1","params":{"pubs":[` + c + `]}}`,
		"start session":            `{"program_id":"sampler","backend":"ibm_kingston","start_session":true,"params":{"pubs":[` + c + `]}}`,
		"calibration":              `{"program_id":"sampler","backend":"ibm_kingston","calibration_id":"x","params":{"pubs":[` + c + `]}}`,
		"remote storage":           `{"program_id":"sampler","backend":"ibm_kingston","remote_storage":{},"params":{"pubs":[` + c + `]}}`,
		"private not a boolean":    `{"program_id":"sampler","backend":"ibm_kingston","private":"yes","params":{"pubs":[` + c + `]}}`,
		"unknown program":          `{"program_id":"circuit-runner","backend":"ibm_kingston","params":{"pubs":[` + c + `]}}`,
		"backend not a string":     `{"program_id":"sampler","backend":7,"params":{"pubs":[` + c + `]}}`,
		"duplicate option":         job(`{"pubs":[` + c + `],"options":{"default_shots":1,"default_shots":2}}`),
		"params not an object":     job(`[]`),
		"tags not strings":         `{"program_id":"sampler","backend":"ibm_kingston","tags":[1],"params":{"pubs":[` + c + `]}}`,
		"pub parameters not empty": job(`{"pubs":[[` + c + `,[0.1]]]}`),
	}
	for name, body := range cases {
		expectError(t, name, h.do(h.bearer(crnA), http.MethodPost, "/jobs", body), http.StatusBadRequest, codeValidation)
	}
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/api/v1/jobs", strings.NewReader(samplerJob(kingston, 10, bellISA)))
	req.Header.Set("Authorization", "Bearer "+h.token)
	req.Header.Set("Service-CRN", crnA)
	req.Header.Set("Content-Type", "text/plain")
	if res := h.send(req); res.status != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain: %d", res.status)
	}
	big := `{"program_id":"sampler","backend":"ibm_kingston","params":{"pubs":["` + strings.Repeat("x", MaxBodyBytes) + `"]}}`
	expectError(t, "oversized body", h.do(h.bearer(crnA), http.MethodPost, "/jobs", big), http.StatusRequestEntityTooLarge, codeValidation)
	if n := h.e.jobCount(); n != 0 {
		t.Fatalf("refused requests created %d jobs", n)
	}
	// A cost above the maximum is capped, as documented.
	id := h.submit(crnA, `{"program_id":"sampler","backend":"ibm_kingston","cost":99999,"params":{"pubs":[`+c+`]}}`)
	if j := h.job(crnA, id); j.Cost != 10800 {
		t.Fatalf("cost %d", j.Cost)
	}
}

func TestBackendAndEmulatorLimits(t *testing.T) {
	small := Backend{Name: "ibm_small", Qubits: 2, MaxShots: 100, MaxExperiments: 2}
	big := Backend{Name: "ibm_big", Qubits: 156}
	h := newHarness(t, func(c *Config) { c.Backends = []Backend{small, big} })
	h.login()
	three := "OPENQASM 3.0;\nqubit[3] q;\nbit[3] c;\nc = measure q;\n"
	wide := "OPENQASM 3.0;\nqubit[21] q;\nbit[21] c;\nc = measure q;\n"
	cases := []struct {
		name, body, want string
	}{
		{"shots over max_shots", samplerJob("ibm_small", 101, bellISA), "1 to 100"},
		{"PUBs over max_experiments", samplerJob("ibm_small", 10, bellISA, bellISA, bellISA), "at most 2"},
		{"qubits over the backend", samplerJob("ibm_small", 10, three), "backend ibm_small has 2"},
		{"qubits over the simulator", samplerJob("ibm_big", 10, wide), "emulator simulates at most 20"},
		{"total shots", samplerJob("ibm_big", 100_000, strings.Split(strings.Repeat(bellISA+"|", 11), "|")[:11]...), "at most 1000000"},
	}
	for _, c := range cases {
		res := h.do(h.bearer(crnA), http.MethodPost, "/jobs", c.body)
		expectError(t, c.name, res, http.StatusBadRequest, codeValidation)
		if !strings.Contains(string(res.body), c.want) {
			t.Errorf("%s: message %s lacks %q", c.name, res.body, c.want)
		}
	}
	// At the limits, jobs are accepted.
	h.submit(crnA, samplerJob("ibm_small", 100, bellISA, bellISA))
}

// Qiskit Runtime does not transpile: circuits outside the backend's basis or
// topology are accepted and then fail.
func TestNonISAJobsFail(t *testing.T) {
	h := newHarness(t, nil)
	h.login()
	uncoupled := "OPENQASM 3.0;\nqubit[3] q;\nbit[3] c;\ncz q[0], q[2];\nc = measure q;\n"
	for name, src := range map[string]string{"h and cx": bellNonISA, "uncoupled cz": uncoupled} {
		id := h.submit(crnA, samplerJob(kingston, 10, bellISA, src))
		j := h.wait(crnA, id)
		if j.Status != StatusFailed || j.State.ReasonCode != reasonJobNotValid || !strings.HasPrefix(j.State.Reason, "Job not valid. pubs[1]:") {
			t.Errorf("%s: %+v", name, j)
		}
		if res := h.do(h.bearer(crnA), http.MethodGet, "/jobs/"+id+"/results", ""); res.status != http.StatusNoContent || len(res.body) != 0 {
			t.Errorf("%s: results of a failed job: %d %s", name, res.status, res.body)
		}
	}
	if j := h.wait(crnA, h.submit(crnA, samplerJob(kingston, 10, bellNonISA))); !strings.Contains(j.State.Reason, "instruction h on qubits (0,)") {
		t.Errorf("reason %q", j.State.Reason)
	}
	// A backend whose basis includes h and cx runs the same circuit.
	wide := newHarness(t, func(c *Config) {
		c.Backends = []Backend{{Name: "ibm_wide", Qubits: 5, BasisGates: []string{"h", "cx", "x"}}}
	})
	wide.login()
	id := wide.submit(crnA, samplerJob("ibm_wide", 100, bellNonISA))
	if j := wide.wait(crnA, id); j.Status != StatusCompleted {
		t.Fatalf("custom basis: %+v", j)
	}
}

func TestCancel(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.StepDelay = time.Hour })
	h.login()
	id := h.submit(crnA, samplerJob(kingston, 10, bellISA))
	res := h.do(h.bearer(crnA), http.MethodPost, "/jobs/"+id+"/cancel", "")
	if res.status != http.StatusNoContent || len(res.body) != 0 {
		t.Fatalf("cancel: %d %s", res.status, res.body)
	}
	j := h.job(crnA, id)
	if j.Status != StatusCancelled || j.State.Status != StatusCancelled || j.Usage != nil {
		t.Fatalf("after cancel: %+v", j)
	}
	if res := h.do(h.bearer(crnA), http.MethodGet, "/jobs/"+id+"/results", ""); res.status != http.StatusNoContent {
		t.Fatalf("results of a cancelled job: %d", res.status)
	}
	expectError(t, "cancel twice", h.do(h.bearer(crnA), http.MethodPost, "/jobs/"+id+"/cancel", ""), http.StatusConflict, codeNotCancellable)
	if got := strings.Join(h.e.history(id), ","); got != "Queued,Cancelled" {
		t.Fatalf("history %s", got)
	}

	// A completed job cannot be cancelled.
	f := newHarness(t, nil)
	f.login()
	done := f.submit(crnA, samplerJob(kingston, 10, bellISA))
	f.wait(crnA, done)
	expectError(t, "cancel completed", f.do(f.bearer(crnA), http.MethodPost, "/jobs/"+done+"/cancel", ""), http.StatusConflict, codeNotCancellable)
}

// A job cancelled while it runs stays cancelled and gets no results.
func TestCancelWhileRunning(t *testing.T) {
	const step = 150 * time.Millisecond
	h := newHarness(t, func(c *Config) { c.StepDelay = step })
	h.login()
	id := h.submit(crnA, samplerJob(kingston, 10, bellISA))
	deadline := time.Now().Add(5 * time.Second)
	for h.job(crnA, id).Status != StatusRunning {
		if time.Now().After(deadline) {
			t.Fatal("job never ran")
		}
		time.Sleep(time.Millisecond)
	}
	if res := h.do(h.bearer(crnA), http.MethodPost, "/jobs/"+id+"/cancel", ""); res.status != http.StatusNoContent {
		t.Fatalf("cancel: %d %s", res.status, res.body)
	}
	time.Sleep(2 * step) // past the step where the job would have completed
	if j := h.job(crnA, id); j.Status != StatusCancelled {
		t.Fatalf("status %s", j.Status)
	}
	if got := strings.Join(h.e.history(id), ","); got != "Queued,Running,Cancelled" {
		t.Fatalf("history %s", got)
	}
}

func TestRateLimit(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.JobsPerMinute = 2 })
	h.login()
	body := samplerJob(kingston, 10, bellISA)
	h.submit(crnA, body)
	h.submit(crnB, body) // the limit is per user, across instances
	expectError(t, "third job in a minute", h.do(h.bearer(crnA), http.MethodPost, "/jobs", body), http.StatusTooManyRequests, codeRateLimited)
	// Refused requests do not count against the limit; time does.
	h.advance(oneMinute)
	h.submit(crnA, body)
	if n := h.e.jobCount(); n != 3 {
		t.Fatalf("%d jobs", n)
	}
	if d, err := New(Config{}); err != nil || d.cfg.JobsPerMinute != DefaultJobsPerMinute {
		t.Fatalf("default limit: %v", err)
	} else {
		d.Close()
	}
}

func TestPrivateJob(t *testing.T) {
	h := newHarness(t, nil)
	h.login()
	res := h.do(h.bearer(crnA), http.MethodPost, "/jobs",
		`{"program_id":"sampler","backend":"ibm_kingston","private":true,"params":{"pubs":[`+mustJSON(bellISA)+`]}}`)
	var created struct {
		ID      string `json:"id"`
		Private bool   `json:"private"`
	}
	if err := json.Unmarshal(res.body, &created); err != nil || !created.Private {
		t.Fatalf("create: %d %s", res.status, res.body)
	}
	j := h.wait(crnA, created.ID)
	if !j.Private || len(j.Params) != 0 {
		t.Fatalf("a private job shows its params: %+v", j)
	}
	h.results(crnA, created.ID)
	if res := h.do(h.bearer(crnA), http.MethodGet, "/jobs/"+created.ID+"/results", ""); res.status != http.StatusNoContent {
		t.Fatalf("second read of private results: %d", res.status)
	}
}

func TestDeleteAndList(t *testing.T) {
	h := newHarness(t, nil)
	h.login()
	first := h.submit(crnA, samplerJob(kingston, 10, bellISA))
	second := h.submit(crnA, samplerJob("ibm_torino", 10, bellISA))
	h.wait(crnA, first)
	h.wait(crnA, second)
	var list struct {
		Jobs   []jobJSON `json:"jobs"`
		Count  int       `json:"count"`
		Limit  int       `json:"limit"`
		Offset int       `json:"offset"`
	}
	res := h.do(h.bearer(crnA), http.MethodGet, "/jobs?limit=1&offset=0", "")
	if err := json.Unmarshal(res.body, &list); err != nil || list.Count != 2 || len(list.Jobs) != 1 || list.Jobs[0].ID != second || list.Limit != 1 {
		t.Fatalf("newest first: %s", res.body)
	}
	res = h.do(h.bearer(crnA), http.MethodGet, "/jobs?sort=ASC&limit=500&backend=ibm_kingston", "")
	if err := json.Unmarshal(res.body, &list); err != nil || list.Count != 1 || list.Jobs[0].ID != first || list.Limit != 200 {
		t.Fatalf("filtered: %s", res.body)
	}
	if res := h.do(h.bearer(crnA), http.MethodDelete, "/jobs/"+first, ""); res.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", res.status, res.body)
	}
	expectError(t, "deleted job", h.do(h.bearer(crnA), http.MethodGet, "/jobs/"+first, ""), http.StatusNotFound, codeJobNotFound)

	q := newHarness(t, func(c *Config) { c.StepDelay = time.Hour })
	q.login()
	id := q.submit(crnA, samplerJob(kingston, 10, bellISA))
	expectError(t, "delete a queued job", q.do(q.bearer(crnA), http.MethodDelete, "/jobs/"+id, ""), http.StatusBadRequest, codeNotTerminal)
}

func TestSeededResultsReproducible(t *testing.T) {
	run := func() []string {
		h := newHarness(t, nil)
		h.login()
		id := h.submit(crnA, samplerJob(kingston, 64, bellISA))
		h.wait(crnA, id)
		return h.results(crnA, id).Results[0].Data["c"].Samples
	}
	a, b := run(), run()
	if strings.Join(a, ",") != strings.Join(b, ",") {
		t.Fatal("the same seed gave different samples")
	}
}

func TestCloseStopsLifecycle(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.StepDelay = time.Hour })
	h.login()
	id := h.submit(crnA, samplerJob(kingston, 10, bellISA))
	done := make(chan struct{})
	go func() { h.e.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	expectError(t, "create after Close", h.do(h.bearer(crnA), http.MethodPost, "/jobs", samplerJob(kingston, 10, bellISA)),
		http.StatusServiceUnavailable, codeUnavailable)
	if j := h.job(crnA, id); j.Status != StatusQueued {
		t.Fatalf("status after Close %s", j.Status)
	}
}

func mustJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
