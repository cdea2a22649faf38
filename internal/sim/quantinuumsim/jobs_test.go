package quantinuumsim

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// A Bell job end to end: login, submit, poll, results ~50/50 between 00
// and 11 and never 01 or 10.
func TestBellJobEndToEnd(t *testing.T) {
	h := newHarness(t, nil)
	id, _ := h.login()
	const shots = 2000
	jobID := h.submit(id, jobBody(t, "H1-1E", shots, bellQASM, map[string]any{"max-cost": 20, "group": "team-a"}))
	j, seen := h.wait(id, jobID)
	if j.Status != StatusCompleted || j.Error != nil {
		t.Fatalf("job %+v", j)
	}
	if !slices.Equal(seen, []string{StatusQueued, StatusRunning, StatusCompleted}) && !slices.Equal(seen, []string{StatusRunning, StatusCompleted}) && !slices.Equal(seen, []string{StatusQueued, StatusCompleted}) {
		t.Fatalf("statuses seen %v", seen)
	}
	if j.Job != jobID || j.Machine != "H1-1E" || j.Count != shots || j.Name != "bell" || j.ResultDate == nil || j.SubmitDate == "" || j.Websocket != nil {
		t.Fatalf("job view %+v", j)
	}
	// 5 + 2000·(1 + 10·1 + 5·(2 qubits + 2 measurements))/5000 = 17.4
	if j.Cost != 17.4 {
		t.Fatalf("cost %v, want 17.4", j.Cost)
	}
	rows := j.Results["c"]
	if len(j.Results) != 1 || len(rows) != shots {
		t.Fatalf("results %d registers, %d shots", len(j.Results), len(rows))
	}
	counts := map[string]int{}
	for _, r := range rows {
		counts[r]++
	}
	if counts["00"]+counts["11"] != shots {
		t.Fatalf("counts %v: Bell state gave 01 or 10", counts)
	}
	// Binomial(2000, 1/2): σ ≈ 22.4; 5σ bounds.
	if sigma := math.Sqrt(shots * 0.25); math.Abs(float64(counts["00"])-shots/2) > 5*sigma {
		t.Fatalf("counts %v outside 5σ of 50/50", counts)
	}
	// Shots are in run order, not sorted: the first 100 are not all equal.
	if first := rows[0]; !slices.ContainsFunc(rows[:100], func(r string) bool { return r != first }) {
		t.Fatal("results look grouped by outcome")
	}
}

// Bit i of a register is at index len-1-i; registers are reported by name;
// unwritten bits read 0; the last measurement into a bit wins.
func TestResultBitOrderAndRegisters(t *testing.T) {
	h := newHarness(t, nil)
	id, _ := h.login()
	cases := []struct {
		src  string
		want map[string]string
	}{
		{"OPENQASM 3;\ninclude \"stdgates.inc\";\nqreg q[3];\ncreg c[3];\nx q[0];\nmeasure q -> c;\n", map[string]string{"c": "001"}},
		{"OPENQASM 3.0;\nqubit[3] q;\nbit[3] c;\nx q[2];\nc = measure q;\n", map[string]string{"c": "100"}},
		{`OPENQASM 3;
include "stdgates.inc";
qreg q[3];
creg a[1];
creg b[2];
creg d[2];
x q[0];
x q[2];
measure q[0] -> b[1]; // b = q0 q1
measure q[1] -> b[0];
measure q[2] -> a[0];
measure q[1] -> d[1];
measure q[0] -> d[1]; /* last write wins; d[0] unwritten */
`, map[string]string{"a": "1", "b": "10", "d": "10"}},
		{"OPENQASM 3;\nqubit q;\nbit r;\nx q;\nr = measure q;\n", map[string]string{"r": "1"}},
		{"OPENQASM 3;\nqubit[2] q;\nh q[0];\n", map[string]string{}},
	}
	for i, c := range cases {
		jobID := h.submit(id, jobBody(t, "H1-1E", 5, c.src, nil))
		j, _ := h.wait(id, jobID)
		if j.Status != StatusCompleted || len(j.Results) != len(c.want) {
			t.Errorf("case %d: job %+v", i, j)
			continue
		}
		for reg, want := range c.want {
			rows := j.Results[reg]
			if len(rows) != 5 || slices.ContainsFunc(rows, func(r string) bool { return r != want }) {
				t.Errorf("case %d: register %s = %v, want 5 × %q", i, reg, rows, want)
			}
		}
	}
}

func TestSeedReproducible(t *testing.T) {
	run := func() []string {
		h := newHarness(t, func(c *Config) { c.Seed = 42 })
		id, _ := h.login()
		j, _ := h.wait(id, h.submit(id, jobBody(t, "H1-1E", 50, bellQASM, nil)))
		return j.Results["c"]
	}
	if a, b := run(), run(); !slices.Equal(a, b) {
		t.Fatalf("same seed, different shots:\n%v\n%v", a, b)
	}
}

func TestMaxCost(t *testing.T) {
	h := newHarness(t, nil)
	id, _ := h.login()
	// Bell, 1000 shots: 5 + 1000·31/5000 = 11.2 HQC.
	code, b := h.do("POST", "/v1/job", id, jobBody(t, "H1-1E", 1000, bellQASM, map[string]any{"max-cost": 11.19}))
	if code != 400 || !strings.Contains(errOf(t, b).Text, "max-cost") {
		t.Fatalf("cost above max-cost: %d %s", code, b)
	}
	code, b = h.do("POST", "/v1/job", id, jobBody(t, "H1-1", 1000, bellQASM, map[string]any{"max-cost": 0}))
	if code != 400 {
		t.Fatalf("max-cost 0 on hardware: %d %s", code, b)
	}
	if n := h.e.jobCount(); n != 0 {
		t.Fatalf("%d jobs created by refused submissions", n)
	}
	j, _ := h.wait(id, h.submit(id, jobBody(t, "H1-1E", 1000, bellQASM, map[string]any{"max-cost": 11.2})))
	if j.Status != StatusCompleted || j.Cost != 11.2 {
		t.Fatalf("cost equal to max-cost: %+v", j)
	}
	// No max-cost: no cap.
	h.wait(id, h.submit(id, jobBody(t, "H1-1E", 1000, bellQASM, nil)))
	// A syntax checker is free: max-cost 0 passes, the job reports the
	// cost the real machine would charge, and results are all zero.
	sc, _ := h.wait(id, h.submit(id, jobBody(t, "H1-1SC", 1000, bellQASM, map[string]any{"max-cost": 0})))
	if sc.Status != StatusCompleted || sc.Cost != 11.2 || len(sc.Results["c"]) != 1000 || slices.ContainsFunc(sc.Results["c"], func(r string) bool { return r != "00" }) {
		t.Fatalf("syntax checker job %+v", sc.Status)
	}
	if got := HQC(20, 30, 10, 1000); got != 79 {
		t.Fatalf("HQC(20, 30, 10, 1000) = %v, want 79", got)
	}
}

func TestSubmitRefusals(t *testing.T) {
	h := newHarness(t, nil)
	id, _ := h.login()
	wide := func(n int) string {
		return fmt.Sprintf("OPENQASM 3;\ninclude \"stdgates.inc\";\nqreg q[%d];\ncreg c[%d];\nh q;\nmeasure q -> c;\n", n, n)
	}
	cases := []struct {
		name string
		body string
		code int
		text string
	}{
		{"unknown machine", jobBody(t, "H9-9", 10, bellQASM, nil), 404, "unknown machine"},
		{"no machine", jobBody(t, "H1-1E", 10, bellQASM, map[string]any{"machine": nil}), 400, "machine"},
		{"no count", jobBody(t, "H1-1E", 10, bellQASM, map[string]any{"count": nil}), 400, "count"},
		{"no language", jobBody(t, "H1-1E", 10, bellQASM, map[string]any{"language": nil}), 400, "language"},
		{"no program", jobBody(t, "H1-1E", 10, bellQASM, map[string]any{"program": nil}), 400, "program"},
		{"QIR", jobBody(t, "H1-1E", 10, "AAAA", map[string]any{"language": "QIR 1.0"}), 400, "QIR"},
		{"OpenQASM 3 label", jobBody(t, "H1-1E", 10, bellQASM, map[string]any{"language": "OPENQASM 3.0"}), 400, "unknown language"},
		{"syntax error", jobBody(t, "H1-1E", 10, "OPENQASM 3;\nqreg q[2];\nfoo q[0];\n", nil), 400, "line 3"},
		{"mid-circuit measurement", jobBody(t, "H1-1E", 10, "OPENQASM 3;\ninclude \"stdgates.inc\";\nqreg q[2];\ncreg c[2];\nmeasure q[0] -> c[0];\nh q[0];\n", nil), 400, "mid-circuit"},
		{"count 0", jobBody(t, "H1-1E", 0, bellQASM, nil), 400, "count"},
		{"count over n_shots", jobBody(t, "H1-1E", DefaultMaxShots+1, bellQASM, nil), 400, "n_shots"},
		{"count not integer", strings.Replace(jobBody(t, "H1-1E", 10, bellQASM, nil), `"count":10`, `"count":1.5`, 1), 400, "count"},
		{"more qubits than machine", jobBody(t, "H1-1E", 10, wide(21), nil), 400, "machine H1-1E has 20"},
		{"beyond the simulator", jobBody(t, "H2-1E", 10, wide(21), nil), 400, "at most 20"},
		{"negative max-cost", jobBody(t, "H1-1E", 10, bellQASM, map[string]any{"max-cost": -1}), 400, "max-cost"},
		{"bad priority", jobBody(t, "H1-1E", 10, bellQASM, map[string]any{"priority": "urgent"}), 400, "priority"},
		{"options not object", jobBody(t, "H1-1E", 10, bellQASM, map[string]any{"options": []int{1}}), 400, "options"},
		{"unknown field", jobBody(t, "H1-1E", 10, bellQASM, map[string]any{"shots": 10}), 400, "unknown field"},
		{"WASM", jobBody(t, "H1-1E", 10, bellQASM, map[string]any{"cfl": "AGFzbQ=="}), 400, "WASM"},
		{"batching", jobBody(t, "H1-1E", 10, bellQASM, map[string]any{"batch-exec": 100}), 400, "batch"},
		{"not JSON", "count=10", 400, "malformed"},
		{"too large", jobBody(t, "H1-1E", 10, strings.Repeat("/", MaxBodyBytes), nil), 413, "larger"},
	}
	for _, c := range cases {
		code, b := h.do("POST", "/v1/job", id, c.body)
		if code != c.code {
			t.Errorf("%s: %d %.200s, want %d", c.name, code, b, c.code)
			continue
		}
		if e := errOf(t, b); !strings.Contains(e.Text, c.text) {
			t.Errorf("%s: text %q does not mention %q", c.name, e.Text, c.text)
		}
	}
	if n := h.e.jobCount(); n != 0 {
		t.Fatalf("%d jobs created by refused submissions", n)
	}
	// 20 qubits fit both the machine and the simulator.
	j, _ := h.wait(id, h.submit(id, jobBody(t, "H1-1E", 3, wide(20), nil)))
	if j.Status != StatusCompleted || len(j.Results["c"]) != 3 || len(j.Results["c"][0]) != 20 {
		t.Fatalf("20-qubit job %+v", j.Status)
	}
}

func TestCancelAndQueue(t *testing.T) {
	h := newHarness(t, nil)
	id, _ := h.login()
	if err := h.e.SetMachineState("H1-1", StateOffline); err != nil {
		t.Fatal(err)
	}
	first := h.submit(id, jobBody(t, "H1-1", 10, bellQASM, nil))
	second := h.submit(id, jobBody(t, "H1-1", 10, bellQASM, nil))
	time.Sleep(20 * time.Millisecond)
	j1, j2 := h.job(id, first), h.job(id, second)
	if j1.Status != StatusQueued || j2.Status != StatusQueued || j1.QueuePosition == nil || *j1.QueuePosition != 1 || j2.QueuePosition == nil || *j2.QueuePosition != 2 {
		t.Fatalf("offline machine: %+v %+v", j1, j2)
	}
	code, b := h.do("POST", "/v1/job/"+first+"/cancel", id, "")
	if code != 200 || !strings.Contains(string(b), `"status":"canceling"`) {
		t.Fatalf("cancel: %d %s", code, b)
	}
	if code, b := h.do("POST", "/v1/job/"+first+"/cancel", id, ""); code != 200 && code != 400 {
		t.Fatalf("second cancel: %d %s", code, b)
	}
	j, _ := h.wait(id, first)
	if j.Status != StatusCanceled || j.Results != nil || j.ResultDate == nil {
		t.Fatalf("canceled job %+v", j)
	}
	if code, b := h.do("POST", "/v1/job/"+first+"/cancel", id, ""); code != 400 {
		t.Fatalf("cancel of a canceled job: %d %s", code, b)
	}
	if j2 := h.job(id, second); j2.QueuePosition == nil || *j2.QueuePosition != 1 {
		t.Fatalf("queue position after cancel: %+v", j2)
	}
	if err := h.e.SetMachineState("H1-1", StateOnline); err != nil {
		t.Fatal(err)
	}
	if j, _ := h.wait(id, second); j.Status != StatusCompleted {
		t.Fatalf("job after machine online: %+v", j)
	}
	if code, b := h.do("POST", "/v1/job/"+second+"/cancel", id, ""); code != 400 {
		t.Fatalf("cancel of a completed job: %d %s", code, b)
	}
	for _, p := range []string{"/v1/job/nope", "/v1/job/nope/cancel"} {
		method := "GET"
		if strings.HasSuffix(p, "cancel") {
			method = "POST"
		}
		if code, _ := h.do(method, p, id, ""); code != 404 {
			t.Errorf("%s %s: %d, want 404", method, p, code)
		}
	}
}

func TestMaxJobs(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxJobs = 1 })
	id, _ := h.login()
	if err := h.e.SetMachineState("H1-1E", StateOffline); err != nil {
		t.Fatal(err)
	}
	first := h.submit(id, jobBody(t, "H1-1E", 10, bellQASM, nil))
	if code, b := h.do("POST", "/v1/job", id, jobBody(t, "H1-1E", 10, bellQASM, nil)); code != http.StatusTooManyRequests {
		t.Fatalf("second unfinished job: %d %s", code, b)
	}
	if err := h.e.SetMachineState("H1-1E", StateOnline); err != nil {
		t.Fatal(err)
	}
	h.wait(id, first)
	second := h.submit(id, jobBody(t, "H1-1E", 10, bellQASM, nil))
	if code, _ := h.do("GET", "/v1/job/"+first, id, ""); code != 404 {
		t.Fatal("finished job not evicted")
	}
	h.wait(id, second)
}

func TestMachines(t *testing.T) {
	h := newHarness(t, nil)
	id, _ := h.login()
	for _, p := range []string{"/v1/machine/?config=true", "/v1/machine"} {
		code, b := h.do("GET", p, id, "")
		var list []map[string]any
		mustDecode(t, b, &list)
		if code != 200 || len(list) != 6 {
			t.Fatalf("%s: %d %s", p, code, b)
		}
		for _, m := range list {
			if m["name"] == "H1-1" && (m["n_qubits"] != 20.0 || m["n_shots"] != float64(DefaultMaxShots) || m["system_type"] != "hardware" || m["syntax_checker"] != "H1-1SC") {
				t.Fatalf("H1-1 entry %v", m)
			}
		}
	}
	code, b := h.do("GET", "/v1/machine/H2-1SC", id, "")
	var m map[string]any
	mustDecode(t, b, &m)
	if code != 200 || m["state"] != "online" || m["system_type"] != "syntax checker" || m["n_qubits"] != 32.0 {
		t.Fatalf("H2-1SC: %d %s", code, b)
	}
	if err := h.e.SetMachineState("H2-1SC", StateMaintenance); err != nil {
		t.Fatal(err)
	}
	if _, b := h.do("GET", "/v1/machine/H2-1SC", id, ""); !strings.Contains(string(b), `"state":"in maintenance"`) {
		t.Fatalf("state after SetMachineState: %s", b)
	}
	if code, _ := h.do("GET", "/v1/machine/H9-9", id, ""); code != 404 {
		t.Fatalf("unknown machine: %d", code)
	}
}
