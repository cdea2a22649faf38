package quantinuum

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/qbroker/qbroker/internal/circuit/qasm"
	"github.com/qbroker/qbroker/internal/provider"
)

func TestParseSubmitBell(t *testing.T) {
	sub, err := Adapter{}.ParseSubmit(bellJob(t, 1000))
	if err != nil {
		t.Fatal(err)
	}
	want := provider.Submission{Device: "H1-1E", Shots: 1000, ProgramSHA256: qasm.Digest([]byte(bellQASM2)), Qubits: 2}
	if sub != want {
		t.Fatalf("Submission %+v, want %+v", sub, want)
	}
	// Minimal body, CRLF program: the digest is the broker's (CRLF = LF).
	body := `{"count":1,"machine":"H2-1","language":"OPENQASM 2.0","program":` + jsonString(strings.ReplaceAll(bellQASM2, "\n", "\r\n")) + `,"options":{},"max-cost":3}`
	sub, err = Adapter{}.ParseSubmit([]byte(body))
	if err != nil || sub.ProgramSHA256 != want.ProgramSHA256 || sub.Device != "H2-1" || sub.Shots != 1 {
		t.Fatalf("minimal body: %+v %v", sub, err)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// job returns a valid body with members replaced (nil value: removed).
func job(t *testing.T, set map[string]any) string {
	t.Helper()
	m := map[string]any{"name": "bell", "count": 100, "machine": "H1-1E", "language": "OPENQASM 2.0", "program": bellQASM2}
	for k, v := range set {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseSubmitRefuses(t *testing.T) {
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	oq3 := "OPENQASM 3;\ninclude \"stdgates.inc\";\nqubit[2] q;\nbit[2] c;\nh q[0];\ncx q[0], q[1];\nc = measure q;\n"
	pre := "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\ncreg c[2];\n"
	valid := job(t, nil)
	tests := map[string]string{
		"unknown member":          job(t, map[string]any{"backend": "H2-1"}),
		"cfl":                     job(t, map[string]any{"cfl": raw(`{"wasm":"AGFzbQ=="}`)}),
		"batch-exec":              job(t, map[string]any{"batch-exec": 1000}),
		"batch-end":               job(t, map[string]any{"batch-end": true}),
		"options":                 job(t, map[string]any{"options": map[string]any{"no-opt": true}}),
		"tket options":            job(t, map[string]any{"options": map[string]any{"tket": map[string]any{"opt_level": 2}}}),
		"options not an object":   job(t, map[string]any{"options": []int{1}}),
		"options a string":        job(t, map[string]any{"options": "{}"}),
		"QIR":                     job(t, map[string]any{"language": "QIR 1.0", "program": "BC"}),
		"OpenQASM 3 label":        job(t, map[string]any{"language": "OPENQASM 3.0"}),
		"no language":             job(t, map[string]any{"language": nil}),
		"OpenQASM 3 program":      job(t, map[string]any{"program": oq3}),
		"program syntax error":    job(t, map[string]any{"program": pre + "h q[0]\n"}),
		"gate definition":         job(t, map[string]any{"program": pre + "gate g a { h a; }\ng q[0];\n"}),
		"opaque":                  job(t, map[string]any{"program": pre + "opaque o a;\n"}),
		"if":                      job(t, map[string]any{"program": pre + "measure q[0] -> c[0];\nif(c==1) x q[1];\n"}),
		"reset":                   job(t, map[string]any{"program": pre + "reset q[0];\n"}),
		"no qubits":               job(t, map[string]any{"program": "OPENQASM 2.0;\ncreg c[1];\n"}),
		"no program":              job(t, map[string]any{"program": nil}),
		"empty program":           job(t, map[string]any{"program": ""}),
		"program not a string":    job(t, map[string]any{"program": []string{bellQASM2}}),
		"no count":                job(t, map[string]any{"count": nil}),
		"count zero":              job(t, map[string]any{"count": 0}),
		"count negative":          job(t, map[string]any{"count": -5}),
		"count float":             strings.Replace(valid, `"count":100`, `"count":100.0`, 1),
		"count exponent":          strings.Replace(valid, `"count":100`, `"count":1e2`, 1),
		"count string":            job(t, map[string]any{"count": "100"}),
		"count huge":              strings.Replace(valid, `"count":100`, `"count":100000000000000000000`, 1),
		"no machine":              job(t, map[string]any{"machine": nil}),
		"machine with slash":      job(t, map[string]any{"machine": "H1-1E/../x"}),
		"priority high":           job(t, map[string]any{"priority": "high"}),
		"negative max-cost":       job(t, map[string]any{"max-cost": -1}),
		"group without a config":  job(t, map[string]any{"group": "other-team"}),
		"long name":               job(t, map[string]any{"name": strings.Repeat("n", 257)}),
		"duplicate program":       strings.Replace(valid, `"program":`, `"program":"OPENQASM 2.0;","program":`, 1),
		"escaped duplicate":       strings.Replace(valid, `"machine":"H1-1E"`, `"machine":"H1-1E","m\u0061chine":"H2-1"`, 1),
		"duplicate in options":    job(t, map[string]any{"options": raw(`{"a":1,"a":2}`)}),
		"trailing data":           valid + `{}`,
		"trailing garbage":        valid + ` x`,
		"array body":              "[" + valid + "]",
		"empty body":              "",
		"null":                    "null",
		"invalid UTF-8":           strings.Replace(valid, `"bell"`, "\"b\xffll\"", 1),
		"deep nesting":            job(t, map[string]any{"options": raw(strings.Repeat("[", 40) + strings.Repeat("]", 40))}),
		"two programs via string": job(t, map[string]any{"program": bellQASM2 + "OPENQASM 2.0;\n"}),
	}
	for name, body := range tests {
		if sub, err := (Adapter{}).ParseSubmit([]byte(body)); err == nil {
			t.Errorf("%s: accepted %+v", name, sub)
		}
	}
	// Group: only the configured one.
	a := Adapter{Group: "team-a"}
	if _, err := a.ParseSubmit([]byte(job(t, map[string]any{"group": "team-a"}))); err != nil {
		t.Errorf("configured group refused: %v", err)
	}
	if _, err := a.ParseSubmit([]byte(job(t, map[string]any{"group": "team-b"}))); err == nil {
		t.Error("another group accepted")
	}
}

func TestPrepare(t *testing.T) {
	a := Adapter{MaxCostHQC: 20}
	decode := func(b []byte) forwardedJob {
		t.Helper()
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		var f forwardedJob
		if err := dec.Decode(&f); err != nil {
			t.Fatalf("prepared body %s: %v", b, err)
		}
		return f
	}
	for _, tc := range []struct {
		name string
		set  map[string]any
		want float64
	}{
		{"no max-cost gets the ceiling", nil, 20},
		{"a larger max-cost is cut", map[string]any{"max-cost": 1e9}, 20},
		{"a smaller max-cost is kept", map[string]any{"max-cost": 7.5}, 7.5},
		{"zero is kept", map[string]any{"max-cost": 0}, 0},
	} {
		out, err := a.Prepare([]byte(job(t, tc.set)), provider.Scope{})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		f := decode(out)
		if f.MaxCost != tc.want {
			t.Errorf("%s: max-cost %v, want %v", tc.name, f.MaxCost, tc.want)
		}
		if f.Program != bellQASM2 || f.Count != 100 || f.Machine != "H1-1E" || f.Language != LanguageQASM || f.Group != "" {
			t.Errorf("%s: prepared %+v", tc.name, f)
		}
		// What is forwarded is what ParseSubmit checked.
		sub, err := a.ParseSubmit(out)
		if err != nil || sub.ProgramSHA256 != qasm.Digest([]byte(bellQASM2)) {
			t.Errorf("%s: the prepared body does not check the same: %+v %v", tc.name, sub, err)
		}
	}
	// Empty options are dropped; no other member appears.
	out, err := a.Prepare([]byte(job(t, map[string]any{"options": map[string]any{}, "priority": "normal"})), provider.Scope{})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	json.Unmarshal(out, &m)
	for k := range m {
		switch k {
		case "name", "count", "machine", "language", "program", "priority", "max-cost":
		default:
			t.Errorf("prepared body has member %q", k)
		}
	}
	// The configured group is forced.
	out, err = Adapter{MaxCostHQC: 5, Group: "team-a"}.Prepare([]byte(job(t, nil)), provider.Scope{})
	if err != nil || decode(out).Group != "team-a" {
		t.Fatalf("group not forced: %s %v", out, err)
	}
	// Without a ceiling nothing is forwarded.
	for _, ceiling := range []float64{0, -1} {
		if out, err := (Adapter{MaxCostHQC: ceiling}).Prepare([]byte(job(t, nil)), provider.Scope{}); err == nil {
			t.Errorf("ceiling %v: prepared %s", ceiling, out)
		}
	}
	// An invalid body is refused by Prepare too.
	if _, err := a.Prepare([]byte(job(t, map[string]any{"cfl": "x"})), provider.Scope{}); err == nil {
		t.Error("Prepare accepted cfl")
	}
}
