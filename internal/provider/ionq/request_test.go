package ionq

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/qbroker/qbroker/internal/circuit"
)

const bellInput = `{"qubits":2,"gateset":"qis","circuit":[{"gate":"h","target":0},{"gate":"cnot","control":0,"target":1}]}`

const goodBody = `{"type":"ionq.circuit.v1","name":"bell","shots":500,"backend":"qpu.forte-1",
 "metadata":{"tenant":"t1"},"settings":{"error_mitigation":{"debiasing":false}},
 "input":` + bellInput + `}`

func decodeValid(t *testing.T, body string) *JobRequest {
	t.Helper()
	r, err := DecodeJobRequest([]byte(body))
	if err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	if err := r.Validate(); err != nil {
		t.Fatalf("validate %s: %v", body, err)
	}
	return r
}

func TestDecodeValid(t *testing.T) {
	r := decodeValid(t, goodBody)
	if r.Type != TypeCircuit || r.Name != "bell" || r.Backend != "qpu.forte-1" || r.EffectiveShots() != 500 {
		t.Fatalf("unexpected request %+v", r)
	}
	if r.Metadata["tenant"] != "t1" || r.Debiasing() {
		t.Fatalf("metadata/debiasing wrong: %+v", r)
	}
	if c := r.Circuit(); c == nil || c.Qubits != 2 || len(c.Circuit) != 2 {
		t.Fatalf("circuit not parsed: %+v", c)
	}
	d, err := r.CircuitDigest()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := circuit.Digest([]byte(bellInput))
	if d != want {
		t.Fatalf("CircuitDigest = %s, want digest of input %s", d, want)
	}

	min := decodeValid(t, `{"type":"ionq.circuit.v1","backend":"simulator","input":{"qubits":1,"circuit":[]}}`)
	if min.EffectiveShots() != DefaultShots || min.Shots != nil {
		t.Fatalf("default shots: %v", min.EffectiveShots())
	}
	noisy := decodeValid(t, `{"type":"ionq.circuit.v1","backend":"simulator","session_id":null,"dry_run":true,
		"noise":{"model":"aria-1","seed":7},"input":{"qubits":1,"circuit":[]}}`)
	if n := noisy.ParsedNoise(); n == nil || n.Model != "aria-1" || *n.Seed != 7 || !*noisy.DryRun {
		t.Fatalf("noise/dry_run: %+v", noisy)
	}
	deb := decodeValid(t, `{"type":"ionq.circuit.v1","backend":"qpu.forte-1","shots":500,
		"settings":{"error_mitigation":{"debiasing":{"phi_chi_twirling":{}}}},"input":{"qubits":1,"circuit":[]}}`)
	if !deb.Debiasing() {
		t.Fatal("debiasing object not seen as on")
	}
}

func TestDecodeAndValidateRejects(t *testing.T) {
	in := `"input":{"qubits":2,"circuit":[{"gate":"h","target":0}]}`
	cases := []struct {
		name, body, field, msg string
	}{
		{"unknown field", `{"type":"ionq.circuit.v1","backend":"simulator","target":"qpu.aria-1",` + in + `}`, "target", `unknown field "target"`},
		{"case-mismatched field", `{"type":"ionq.circuit.v1","Backend":"qpu.forte-1","backend":"simulator",` + in + `}`, "Backend", "unknown field"},
		{"duplicate field", `{"type":"ionq.circuit.v1","backend":"simulator","shots":1,"shots":5000,` + in + `}`, "", "duplicate"},
		{"trailing data", `{"type":"ionq.circuit.v1","backend":"simulator",` + in + `} {}`, "", "trailing"},
		{"malformed", `{"type":"ionq.circuit.v1",`, "", "malformed JSON"},
		{"not an object", `[]`, "", "JSON object"},
		{"shots zero", `{"type":"ionq.circuit.v1","backend":"simulator","shots":0,` + in + `}`, "shots", "between 1 and 1000000"},
		{"shots negative", `{"type":"ionq.circuit.v1","backend":"simulator","shots":-5,` + in + `}`, "shots", "between"},
		{"shots too many", `{"type":"ionq.circuit.v1","backend":"simulator","shots":2000000,` + in + `}`, "shots", "between"},
		{"shots fractional", `{"type":"ionq.circuit.v1","backend":"simulator","shots":10.5,` + in + `}`, "shots", "integer"},
		{"shots string", `{"type":"ionq.circuit.v1","backend":"simulator","shots":"10",` + in + `}`, "shots", "integer"},
		{"shots null", `{"type":"ionq.circuit.v1","backend":"simulator","shots":null,` + in + `}`, "shots", "null"},
		{"missing backend", `{"type":"ionq.circuit.v1",` + in + `}`, "backend", "required"},
		{"missing type", `{"backend":"simulator",` + in + `}`, "type", "required"},
		{"missing input", `{"type":"ionq.circuit.v1","backend":"simulator"}`, "input", "required"},
		{"input not object", `{"type":"ionq.circuit.v1","backend":"simulator","input":[1]}`, "input", "JSON object"},
		{"unknown type", `{"type":"ionq.circuit.v2","backend":"simulator",` + in + `}`, "type", "unknown job type"},
		{"metadata number", `{"type":"ionq.circuit.v1","backend":"simulator","metadata":{"a":1},` + in + `}`, "metadata.a", "string"},
		{"metadata null value", `{"type":"ionq.circuit.v1","backend":"simulator","metadata":{"a":null},` + in + `}`, "metadata.a", "string"},
		{"noise on qpu", `{"type":"ionq.circuit.v1","backend":"qpu.forte-1","noise":{"model":"ideal"},` + in + `}`, "noise", "only allowed"},
		{"noise unknown model", `{"type":"ionq.circuit.v1","backend":"simulator","noise":{"model":"perfect"},` + in + `}`, "noise.model", "unknown noise model"},
		{"noise extra field", `{"type":"ionq.circuit.v1","backend":"simulator","noise":{"model":"ideal","Seed":1},` + in + `}`, "noise.Seed", "unknown field"},
		{"noise missing model", `{"type":"ionq.circuit.v1","backend":"simulator","noise":{"seed":1},` + in + `}`, "noise.model", "required"},
		{"debias few shots", `{"type":"ionq.circuit.v1","backend":"qpu.forte-1","settings":{"error_mitigation":{"debiasing":true}},` + in + `}`, "settings.error_mitigation.debiasing", "at least 500"},
		{"debias bad type", `{"type":"ionq.circuit.v1","backend":"qpu.forte-1","settings":{"error_mitigation":{"debiasing":"yes"}},` + in + `}`, "settings.error_mitigation.debiasing", "boolean"},
		{"unknown gate", `{"type":"ionq.circuit.v1","backend":"simulator","input":{"qubits":1,"circuit":[{"gate":"foo","target":0}]}}`, "input.circuit[0].gate", "unknown gate"},
		{"target out of range", `{"type":"ionq.circuit.v1","backend":"simulator","input":{"qubits":2,"circuit":[{"gate":"x","target":2}]}}`, "input.circuit[0]", "target 2 out of range for 2 qubits"},
		{"input unknown field", `{"type":"ionq.circuit.v1","backend":"simulator","input":{"qubits":1,"format":"x","circuit":[]}}`, "input.format", "unknown field"},
		{"native gateset", `{"type":"ionq.circuit.v1","backend":"simulator","input":{"qubits":1,"gateset":"native","circuit":[]}}`, "input.gateset", "native gateset is not supported"},
		{"type not string", `{"type":1,"backend":"simulator",` + in + `}`, "type", "string"},
	}
	for _, c := range cases {
		r, err := DecodeJobRequest([]byte(c.body))
		if err == nil {
			err = r.Validate()
			if err == nil && r.Circuit() != nil {
				t.Errorf("%s: accepted", c.name)
				continue
			}
		}
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%s: error %v is not a *ValidationError", c.name, err)
			continue
		}
		if ve.Field != c.field || !strings.Contains(ve.Msg, c.msg) {
			t.Errorf("%s: got field %q msg %q, want field %q msg containing %q", c.name, ve.Field, ve.Msg, c.field, c.msg)
		}
		if errors.Is(err, ErrUnsupportedType) {
			t.Errorf("%s: unexpectedly ErrUnsupportedType", c.name)
		}
	}
}

func TestUnsupportedTypes(t *testing.T) {
	for _, typ := range []string{TypeMultiCircuit, TypeQctrlQAOA, TypeQuantumFunction} {
		r, err := DecodeJobRequest([]byte(`{"type":"` + typ + `","backend":"simulator","input":{"circuits":[]}}`))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Validate(); !errors.Is(err, ErrUnsupportedType) {
			t.Errorf("%s: got %v, want ErrUnsupportedType", typ, err)
		}
	}
}

func TestValidateResetsCircuit(t *testing.T) {
	r := decodeValid(t, goodBody)
	bad := 0
	r.Shots = &bad
	if err := r.Validate(); err == nil || r.Circuit() != nil {
		t.Fatal("failed Validate must clear the parsed circuit")
	}
}

func TestJobRequestRoundTrip(t *testing.T) {
	r := decodeValid(t, goodBody)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	r2 := decodeValid(t, string(b))
	d1, _ := r.CircuitDigest()
	d2, _ := r2.CircuitDigest()
	if d1 != d2 || r2.EffectiveShots() != 500 {
		t.Fatalf("round trip changed the request: %s", b)
	}
}
