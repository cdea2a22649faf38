package quil

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

const bell = "DECLARE ro BIT[2]\nH 0\nCNOT 0 1\nMEASURE 0 ro[0]\nMEASURE 1 ro[1]\n"

func TestParseBell(t *testing.T) {
	p, err := Parse([]byte(bell))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Qubits, []int{0, 1}) || len(p.Ops) != 2 || len(p.Measures) != 2 {
		t.Fatalf("got %+v", p)
	}
	if p.Ops[1].Name != "cnot" || !slices.Equal(p.Ops[1].Qubits, []int{0, 1}) {
		t.Fatalf("cnot: %+v", p.Ops[1])
	}
	if p.Measures[1] != (Measure{Qubit: 1, Region: "ro", Index: 1}) || p.Memory[0] != (Region{"ro", 2}) {
		t.Fatalf("measures %+v memory %+v", p.Measures, p.Memory)
	}
}

func TestParseParamsAndComments(t *testing.T) {
	src := "# a comment\r\nDECLARE ro BIT\nRX(pi/2) 10  # half turn\nRZ(-(1.5e0 + 0.5) * pi / 4) 10\nRY( 0.25 ) 3\nCZ 10 3\nI 7\nMEASURE 10 ro\nMEASURE 3\n"
	p, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Qubits, []int{3, 7, 10}) {
		t.Fatalf("qubits %v", p.Qubits)
	}
	if got := p.Ops[0].Params[0]; math.Abs(got-math.Pi/2) > 1e-12 {
		t.Fatalf("RX param %v", got)
	}
	if got := p.Ops[1].Params[0]; math.Abs(got+math.Pi/2) > 1e-12 {
		t.Fatalf("RZ param %v", got)
	}
	if p.Measures[0] != (Measure{Qubit: 10, Region: "ro", Index: 0}) || p.Measures[1] != (Measure{Qubit: 3, Index: -1}) {
		t.Fatalf("measures %+v", p.Measures)
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct {
		src         string
		unsupported bool
		limit       bool
	}{
		{"PRAGMA INITIAL_REWIRING \"NAIVE\"", true, false},
		{"RESET", true, false},
		{"DAGGER H 0", true, false},
		{"DEFGATE FOO:\n    1, 0\n    0, 1", true, false},
		{"DECLARE theta REAL[1]", true, false},
		{"DECLARE ro BIT[2] SHARING other", true, false},
		{"H q", true, false},
		{"SWAP 0 1", true, false},
		{"h 0", true, false},
		{"H 0 1", false, false},
		{"CNOT 0 0", false, false},
		{"RX 0", false, false},
		{"RX(1, 2) 0", false, false},
		{"RX(1/0) 0", false, false},
		{"RX(1e999) 0", false, false},
		{"RX(pi 0", false, false},
		{"H 01", false, false},
		{"H 1024", false, true},
		{"DECLARE ro BIT[2]\nDECLARE ro BIT[1]", false, false},
		{"DECLARE ro BIT[0]", false, true},
		{"DECLARE H BIT[1]", false, false},
		{"MEASURE 0 ro[0]", false, false},
		{"DECLARE ro BIT[1]\nMEASURE 0 ro[1]", false, false},
		{"DECLARE ro BIT[2]\nMEASURE 0 ro[0]\nMEASURE 1 ro[0]", true, false},
		{"DECLARE ro BIT[2]\nMEASURE 0 ro[0]\nMEASURE 0 ro[1]", true, false},
		{"DECLARE ro BIT[1]\nMEASURE 0 ro[0]\nX 0", true, false},
		{"H 0\x00", false, false},
		{"H 0 # é", false, false},
	} {
		_, err := Parse([]byte(tc.src))
		var pe *Error
		if !errors.As(err, &pe) {
			t.Errorf("%q: got %v, want an *Error", tc.src, err)
			continue
		}
		if errors.Is(err, ErrUnsupported) != tc.unsupported || errors.Is(err, ErrLimit) != tc.limit {
			t.Errorf("%q: %v: unsupported=%v limit=%v", tc.src, err, errors.Is(err, ErrUnsupported), errors.Is(err, ErrLimit))
		}
	}
}

func TestLimits(t *testing.T) {
	if _, err := ParseWithLimits([]byte(bell), Limits{MaxSourceBytes: 10}); !errors.Is(err, ErrLimit) {
		t.Fatalf("source limit: %v", err)
	}
	if _, err := ParseWithLimits([]byte(bell), Limits{MaxQubits: 1}); !errors.Is(err, ErrLimit) {
		t.Fatalf("qubit limit: %v", err)
	}
	if _, err := ParseWithLimits([]byte(bell), Limits{MaxOps: 3}); !errors.Is(err, ErrLimit) {
		t.Fatalf("op limit: %v", err)
	}
	deep := "RX(" + strings.Repeat("(", 200) + "1" + strings.Repeat(")", 200) + ") 0"
	if _, err := Parse([]byte(deep)); err == nil {
		t.Fatal("deep expression accepted")
	}
}

func TestDigest(t *testing.T) {
	a := Digest([]byte(bell))
	if a != Digest([]byte(strings.ReplaceAll(bell, "\n", "\r\n")+"  \n")) {
		t.Fatal("line endings or trailing whitespace change the digest")
	}
	if a == Digest([]byte(strings.Replace(bell, "H 0", "X 0", 1))) {
		t.Fatal("a different program has the same digest")
	}
}

// FuzzParse: no input panics, every error is an *Error, and an accepted
// program is consistent (qubits in range, measured indices declared).
func FuzzParse(f *testing.F) {
	for _, s := range []string{bell, "DECLARE ro BIT\nRX(pi/2) 10\nRZ(-(1+2)*3/pi) 3\nCZ 10 3\nMEASURE 10 ro\nMEASURE 3",
		"PRAGMA X", "H 0 # c\r\nY 1\nZ 2\nS 3\nT 4\nI 5", "RX(((1))) 0", "DECLARE ro BIT[3]\nMEASURE 2 ro[2]"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		_ = Digest(src)
		p, err := Parse(src)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is %T", err, err)
			}
			return
		}
		size := map[string]int{}
		for _, r := range p.Memory {
			size[r.Name] = r.Size
		}
		for _, o := range p.Ops {
			for _, q := range o.Qubits {
				if _, ok := slices.BinarySearch(p.Qubits, q); !ok {
					t.Fatalf("op qubit %d not in %v", q, p.Qubits)
				}
			}
			for _, v := range o.Params {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatal("non-finite parameter")
				}
			}
		}
		for _, m := range p.Measures {
			if m.Index >= 0 && m.Index >= size[m.Region] {
				t.Fatalf("measure %+v outside memory", m)
			}
		}
	})
}
