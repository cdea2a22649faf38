package circuit

import (
	"errors"
	"strings"
	"testing"
)

func TestParseInputValid(t *testing.T) {
	in, err := ParseInput([]byte(bell))
	if err != nil {
		t.Fatal(err)
	}
	if in.Qubits != 2 || in.Gateset != "qis" || len(in.Circuit) != 2 {
		t.Fatalf("unexpected input %+v", in)
	}
	if in.Circuit[1].Gate != "cnot" || *in.Circuit[1].Control != 0 || *in.Circuit[1].Target != 1 {
		t.Fatalf("unexpected cnot %+v", in.Circuit[1])
	}
	one, two := in.GateCounts()
	if one != 1 || two != 1 {
		t.Fatalf("GateCounts = %d,%d want 1,1", one, two)
	}
	ok := []string{
		`{"qubits":1,"circuit":[]}`,
		`{"qubits":64,"gateset":"qis","circuit":[{"gate":"x","target":63}]}`,
		`{"qubits":3,"circuit":[{"gate":"not","control":0,"target":1}]}`,
		`{"qubits":3,"circuit":[{"gate":"x","controls":[0,1],"target":2}]}`,
		`{"qubits":3,"circuit":[{"gate":"rz","controls":[0],"targets":[2],"rotation":-1.5}]}`,
		`{"qubits":2,"circuit":[{"gate":"cnot","controls":[1],"target":0}]}`,
		`{"qubits":2,"circuit":[{"gate":"swap","targets":[0,1]}]}`,
		`{"qubits":2,"circuit":[{"gate":"ry","target":1.0,"rotation":3}]}`,
	}
	for _, s := range ok {
		if _, err := ParseInput([]byte(s)); err != nil {
			t.Errorf("ParseInput(%s): %v", s, err)
		}
	}
}

func TestParseInputRejects(t *testing.T) {
	cases := []struct {
		name, in, field, msg string
	}{
		{"target out of range", `{"qubits":2,"circuit":[{"gate":"h","target":0},{"gate":"h","target":0},{"gate":"h","target":0},{"gate":"x","target":5}]}`, "circuit[3]", "target 5 out of range for 2 qubits"},
		{"negative target", `{"qubits":2,"circuit":[{"gate":"x","target":-1}]}`, "circuit[0]", "target -1 out of range"},
		{"control out of range", `{"qubits":2,"circuit":[{"gate":"cnot","control":2,"target":1}]}`, "circuit[0]", "control 2 out of range"},
		{"control equals target", `{"qubits":2,"circuit":[{"gate":"cnot","control":1,"target":1}]}`, "circuit[0].control", "repeats"},
		{"cnot two controls", `{"qubits":3,"circuit":[{"gate":"cnot","controls":[0,1],"target":2}]}`, "circuit[0].controls", "exactly one control"},
		{"cnot no control", `{"qubits":2,"circuit":[{"gate":"cnot","target":1}]}`, "circuit[0].controls", "exactly one control"},
		{"swap one target", `{"qubits":2,"circuit":[{"gate":"swap","targets":[0]}]}`, "circuit[0].targets", "exactly two targets"},
		{"swap same target", `{"qubits":2,"circuit":[{"gate":"swap","targets":[1,1]}]}`, "circuit[0].targets", "repeated"},
		{"swap with control", `{"qubits":3,"circuit":[{"gate":"swap","targets":[0,1],"control":2}]}`, "circuit[0].control", "no control"},
		{"h two targets", `{"qubits":2,"circuit":[{"gate":"h","targets":[0,1]}]}`, "circuit[0].targets", "exactly one target"},
		{"no target", `{"qubits":2,"circuit":[{"gate":"h"}]}`, "circuit[0].targets", "exactly one target"},
		{"target and targets", `{"qubits":2,"circuit":[{"gate":"h","target":0,"targets":[1]}]}`, "circuit[0]", "mutually exclusive"},
		{"empty controls", `{"qubits":2,"circuit":[{"gate":"x","target":0,"controls":[]}]}`, "circuit[0].controls", "must not be empty"},
		{"rx without rotation", `{"qubits":1,"circuit":[{"gate":"rx","target":0}]}`, "circuit[0].rotation", "required"},
		{"h with rotation", `{"qubits":1,"circuit":[{"gate":"h","target":0,"rotation":1}]}`, "circuit[0].rotation", "not allowed"},
		{"unknown gate", `{"qubits":1,"circuit":[{"gate":"foo","target":0}]}`, "circuit[0].gate", "unknown gate"},
		{"gate case", `{"qubits":1,"circuit":[{"gate":"H","target":0}]}`, "circuit[0].gate", "unknown gate"},
		{"missing gate", `{"qubits":1,"circuit":[{"target":0}]}`, "circuit[0].gate", "required"},
		{"native gateset", `{"qubits":1,"gateset":"native","circuit":[{"gate":"gpi","target":0}]}`, "gateset", "native gateset is not supported"},
		{"other gateset", `{"qubits":1,"gateset":"QIS","circuit":[]}`, "gateset", "unknown gateset"},
		{"zero qubits", `{"qubits":0,"circuit":[]}`, "qubits", "between 1 and 64"},
		{"65 qubits", `{"qubits":65,"circuit":[]}`, "qubits", "between 1 and 64"},
		{"missing qubits", `{"circuit":[]}`, "qubits", "required"},
		{"missing circuit", `{"qubits":1}`, "circuit", "required"},
		{"fractional qubits", `{"qubits":1.5,"circuit":[]}`, "qubits", "32-bit integer"},
		{"huge target", `{"qubits":2,"circuit":[{"gate":"x","target":1e12}]}`, "circuit[0].target", "32-bit integer"},
		{"string target", `{"qubits":2,"circuit":[{"gate":"x","target":"0"}]}`, "circuit[0].target", "integer"},
		{"unknown top field", `{"qubits":1,"circuit":[],"registers":{}}`, "registers", "unknown field"},
		{"case-mismatched key", `{"Qubits":1,"circuit":[]}`, "Qubits", "unknown field"},
		{"unknown gate field", `{"qubits":1,"circuit":[{"gate":"x","target":0,"phase":0.25}]}`, "circuit[0].phase", "unknown field"},
		{"null target", `{"qubits":1,"circuit":[{"gate":"x","target":null}]}`, "circuit[0].target", "must not be null"},
		{"null circuit", `{"qubits":1,"circuit":null}`, "circuit", "must not be null"},
		{"not an object", `[1]`, "", "must be a JSON object"},
		{"gate not object", `{"qubits":1,"circuit":[1]}`, "circuit[0]", "must be a JSON object"},
		{"duplicate key", `{"qubits":1,"qubits":2,"circuit":[]}`, "", "duplicate"},
		{"trailing data", `{"qubits":1,"circuit":[]}{}`, "", "trailing"},
		{"malformed", `{"qubits":1,`, "", "malformed JSON"},
	}
	for _, c := range cases {
		_, err := ParseInput([]byte(c.in))
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%s: got %v, want *ValidationError", c.name, err)
			continue
		}
		if ve.Field != c.field || !strings.Contains(ve.Msg, c.msg) {
			t.Errorf("%s: got field %q msg %q, want field %q msg containing %q", c.name, ve.Field, ve.Msg, c.field, c.msg)
		}
	}
}

func TestErrorFormatAndPrefix(t *testing.T) {
	_, err := ParseInput([]byte(`{"qubits":2,"circuit":[{"gate":"h","target":0},{"gate":"h","target":0},{"gate":"h","target":0},{"gate":"x","target":5}]}`))
	if err == nil || err.Error() != "circuit[3]: target 5 out of range for 2 qubits" {
		t.Fatalf("error = %v", err)
	}
	var ve *ValidationError
	errors.As(err, &ve)
	if got := ve.WithPrefix("input").Error(); got != "input.circuit[3]: target 5 out of range for 2 qubits" {
		t.Fatalf("prefixed = %q", got)
	}
	if got := (&ValidationError{Msg: "m"}).WithPrefix("input").Field; got != "input" {
		t.Fatalf("prefix of empty field = %q", got)
	}
}

func TestUnsupportedGates(t *testing.T) {
	for _, g := range []string{"xx", "yy", "zz", "pauliexp"} {
		_, err := ParseInput([]byte(`{"qubits":2,"circuit":[{"gate":"` + g + `","targets":[0,1],"rotation":1}]}`))
		if !errors.Is(err, ErrUnsupportedGate) {
			t.Errorf("gate %s: got %v, want ErrUnsupportedGate", g, err)
		}
	}
}

func TestValidateProgrammatic(t *testing.T) {
	zero, one := 0, 1
	nan := 0.0
	nan = nan / nan
	in := &Input{Qubits: 2, Circuit: []Gate{{Gate: "rx", Target: &zero, Rotation: &nan}}}
	if err := in.Validate(); err == nil || !strings.Contains(err.Error(), "finite") {
		t.Errorf("NaN rotation: %v", err)
	}
	in = &Input{Qubits: 2, Circuit: []Gate{{Gate: "cnot", Control: &zero, Target: &one}}}
	if err := in.Validate(); err != nil {
		t.Errorf("valid programmatic input: %v", err)
	}
}
