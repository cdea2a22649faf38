package qasm

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/qbroker/qbroker/internal/circuit"
	"github.com/qbroker/qbroker/internal/sim"
)

func mustParse(t *testing.T, src string) *Program {
	t.Helper()
	p, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse(%q): %v", src, err)
	}
	return p
}

func simulate(t *testing.T, p *Program) []complex128 {
	t.Helper()
	in, err := p.ToIonQ()
	if err != nil {
		t.Fatalf("ToIonQ: %v", err)
	}
	st, err := sim.Run(in)
	if err != nil {
		t.Fatalf("sim.Run: %v", err)
	}
	return st.Amplitudes()
}

func TestToIonQProbabilities(t *testing.T) {
	const th = 0.7
	sin2 := func(x float64) float64 { return math.Sin(x/2) * math.Sin(x/2) }
	tests := []struct {
		name string
		src  string
		want []float64 // probability per basis state, qubit 0 least significant
	}{
		{"bell", "OPENQASM 3; qubit[2] q; bit[2] b; h q[0]; cnot q[0], q[1]; b[0] = measure q[0]; b[1] = measure q[1];",
			[]float64{0.5, 0, 0, 0.5}},
		{"ghz-3", "OPENQASM 3.0; qubit[3] q; bit[3] c; h q[0]; cx q[0], q[1]; cx q[1], q[2]; c = measure q;",
			[]float64{0.5, 0, 0, 0, 0, 0, 0, 0.5}},
		{"x on qubit 1", "OPENQASM 3; qubit[2] q; x q[1];", []float64{0, 0, 1, 0}},
		{"rx", "OPENQASM 3; qubit q; rx(0.7) q;", []float64{1 - sin2(th), sin2(th)}},
		{"ry", "OPENQASM 3; qubit q; ry(0.7) q;", []float64{1 - sin2(th), sin2(th)}},
		{"u", "OPENQASM 3; qubit q; u(0.7, 1.1, -2.3) q;", []float64{1 - sin2(th), sin2(th)}},
		{"phase interference", "OPENQASM 3; qubit q; h q; p(0.7) q; h q;", []float64{1 - sin2(th), sin2(th)}},
		{"cp interference", "OPENQASM 3; qubit[2] q; x q[0]; h q[1]; cp(0.7) q[0], q[1]; h q[1];",
			[]float64{0, 1 - sin2(th), 0, sin2(th)}},
		{"cp without control set", "OPENQASM 3; qubit[2] q; h q[1]; cp(0.7) q[0], q[1]; h q[1];", []float64{1, 0, 0, 0}},
		{"sx twice is x", "OPENQASM 3; qubit q; sx q; v q;", []float64{0, 1}},
		{"toffoli", "OPENQASM 3; qubit[3] q; x q[0]; x q[1]; ccx q[0], q[1], q[2];", []float64{0, 0, 0, 0, 0, 0, 0, 1}},
		{"cswap", "OPENQASM 3; qubit[3] q; x q[0]; x q[1]; cswap q[0], q[1], q[2];", []float64{0, 0, 0, 0, 0, 1, 0, 0}},
		{"cswap control off", "OPENQASM 3; qubit[3] q; x q[1]; cswap q[0], q[1], q[2];", []float64{0, 0, 1, 0, 0, 0, 0, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			amp := simulate(t, mustParse(t, tc.src))
			if len(amp) != len(tc.want) {
				t.Fatalf("%d amplitudes, want %d", len(amp), len(tc.want))
			}
			for i, a := range amp {
				if got := real(a)*real(a) + imag(a)*imag(a); math.Abs(got-tc.want[i]) > 1e-9 {
					t.Errorf("P(%b) = %.6f, want %.6f", i, got, tc.want[i])
				}
			}
		})
	}
}

// gate shapes the random program generator draws from: names as written
// (aliases included), qubit and parameter counts.
var randomGates = []struct {
	written string
	qubits  int
	params  int
}{
	{"h", 1, 0}, {"x", 1, 0}, {"y", 1, 0}, {"z", 1, 0}, {"s", 1, 0}, {"sdg", 1, 0}, {"t", 1, 0}, {"tdg", 1, 0},
	{"sx", 1, 0}, {"sxdg", 1, 0}, {"id", 1, 0}, {"rx", 1, 1}, {"ry", 1, 1}, {"rz", 1, 1}, {"p", 1, 1}, {"u", 1, 3},
	{"cx", 2, 0}, {"cy", 2, 0}, {"cz", 2, 0}, {"ch", 2, 0}, {"cp", 2, 1}, {"crx", 2, 1}, {"cry", 2, 1}, {"crz", 2, 1},
	{"swap", 2, 0}, {"ccx", 3, 0}, {"cswap", 3, 0},
	{"cnot", 2, 0}, {"phaseshift", 1, 1}, {"si", 1, 0}, {"ti", 1, 0}, {"v", 1, 0}, {"vi", 1, 0}, {"i", 1, 0},
	{"cphaseshift", 2, 1}, {"ccnot", 3, 0}, {"U", 1, 3}, {"u3", 1, 3},
}

// randomAngle favours the special angles ToIonQ maps to named gates.
func randomAngle(rng *rand.Rand) (string, float64) {
	switch rng.IntN(6) {
	case 0:
		k := []string{"pi/2", "-pi/2", "pi/4", "-pi/4", "pi", "-pi"}[rng.IntN(6)]
		v := map[string]float64{"pi/2": math.Pi / 2, "-pi/2": -math.Pi / 2, "pi/4": math.Pi / 4,
			"-pi/4": -math.Pi / 4, "pi": math.Pi, "-pi": -math.Pi}[k]
		return k, v
	default:
		v := (rng.Float64() - 0.5) * 4 * math.Pi
		return strconv.FormatFloat(v, 'g', -1, 64), v
	}
}

// randomProgram returns OpenQASM text for n qubits: a generic state
// preparation (so that phase errors are visible) followed by ops random gates.
func randomProgram(rng *rand.Rand, n, ops int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "OPENQASM 3.0;\ninclude \"stdgates.inc\";\nqubit[%d] q;\n", n)
	for layer := range 2 {
		for i := range n {
			fmt.Fprintf(&b, "ry(%g) q[%d];\nrz(%g) q[%d];\n", rng.Float64()*3, i, rng.Float64()*6, i)
		}
		for i := 0; layer == 0 && i+1 < n; i++ {
			fmt.Fprintf(&b, "cx q[%d], q[%d];\n", i, i+1)
		}
	}
	for range ops {
		g := randomGates[rng.IntN(len(randomGates))]
		if g.qubits > n {
			continue
		}
		b.WriteString(g.written)
		if g.params > 0 {
			b.WriteString("(")
			for j := range g.params {
				if j > 0 {
					b.WriteString(", ")
				}
				s, _ := randomAngle(rng)
				b.WriteString(s)
			}
			b.WriteString(")")
		}
		for j, q := range rng.Perm(n)[:g.qubits] {
			if j == 0 {
				b.WriteString(" ")
			} else {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "q[%d]", q)
		}
		b.WriteString(";\n")
	}
	b.WriteString("bit[" + strconv.Itoa(n) + "] c;\nc = measure q;\n")
	return b.String()
}

// ToIonQ followed by the IonQ simulator must give the state of the exact
// OpenQASM semantics up to a global phase, for every gate and alias.
func TestToIonQMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 400 {
		n := 1 + rng.IntN(5)
		src := randomProgram(rng, n, 1+rng.IntN(12))
		prog := mustParse(t, src)
		want, err := refRun(prog)
		if err != nil {
			t.Fatal(err)
		}
		got := simulate(t, prog)
		if f := fidelity(want, got); math.Abs(f-1) > 1e-9 {
			t.Fatalf("program %d: fidelity %.12f, want 1\n%s", i, f, src)
		}
	}
}

// The reference comparison is sensitive enough to catch a controlled phase
// mapped to a controlled rz, which differs by a relative phase only.
func TestReferenceCatchesControlledPhaseError(t *testing.T) {
	prog := mustParse(t, "OPENQASM 3; qubit[2] q; h q; cp(1.0) q[0], q[1];")
	want, err := refRun(prog)
	if err != nil {
		t.Fatal(err)
	}
	c, tg, rot := 0, 1, 1.0
	naive := &circuit.Input{Qubits: 2, Circuit: []circuit.Gate{
		{Gate: "h", Target: &c}, {Gate: "h", Target: &tg},
		{Gate: "rz", Control: &c, Target: &tg, Rotation: &rot},
	}}
	st, err := sim.Run(naive)
	if err != nil {
		t.Fatal(err)
	}
	if f := fidelity(want, st.Amplitudes()); f > 0.99 {
		t.Fatalf("naive cp→crz has fidelity %.6f; the reference would not catch the phase error", f)
	}
	if f := fidelity(want, simulate(t, prog)); math.Abs(f-1) > 1e-12 {
		t.Fatalf("ToIonQ cp fidelity %.12f, want 1", f)
	}
}

func ip(v int) *int { return &v }

func fp(v float64) *float64 { return &v }

func TestToIonQMapping(t *testing.T) {
	tests := []struct {
		op   Op
		want []circuit.Gate
	}{
		{op("h", 1), []circuit.Gate{{Gate: "h", Target: ip(1)}}},
		{op("sdg", 0), []circuit.Gate{{Gate: "si", Target: ip(0)}}},
		{op("tdg", 0), []circuit.Gate{{Gate: "ti", Target: ip(0)}}},
		{op("sx", 0), []circuit.Gate{{Gate: "v", Target: ip(0)}}},
		{op("sxdg", 0), []circuit.Gate{{Gate: "vi", Target: ip(0)}}},
		{op("id", 0), []circuit.Gate{}},
		{opp("rx", ps(0.5), 2), []circuit.Gate{{Gate: "rx", Target: ip(2), Rotation: fp(0.5)}}},
		{opp("p", ps(math.Pi/2), 0), []circuit.Gate{{Gate: "s", Target: ip(0)}}},
		{opp("p", ps(-math.Pi/4), 0), []circuit.Gate{{Gate: "ti", Target: ip(0)}}},
		{opp("p", ps(-math.Pi), 0), []circuit.Gate{{Gate: "z", Target: ip(0)}}},
		{opp("p", ps(0.3), 0), []circuit.Gate{{Gate: "rz", Target: ip(0), Rotation: fp(0.3)}}},
		{opp("u", ps(1, 2, 3), 0), []circuit.Gate{
			{Gate: "rz", Target: ip(0), Rotation: fp(3)}, {Gate: "ry", Target: ip(0), Rotation: fp(1)},
			{Gate: "rz", Target: ip(0), Rotation: fp(2)}}},
		{op("cx", 2, 0), []circuit.Gate{{Gate: "cnot", Control: ip(2), Target: ip(0)}}},
		{op("cy", 0, 1), []circuit.Gate{{Gate: "y", Control: ip(0), Target: ip(1)}}},
		{op("cz", 0, 1), []circuit.Gate{{Gate: "z", Control: ip(0), Target: ip(1)}}},
		{op("ch", 0, 1), []circuit.Gate{{Gate: "h", Control: ip(0), Target: ip(1)}}},
		{opp("crz", ps(0.2), 1, 0), []circuit.Gate{{Gate: "rz", Control: ip(1), Target: ip(0), Rotation: fp(0.2)}}},
		{opp("cp", ps(math.Pi/4), 1, 0), []circuit.Gate{{Gate: "t", Control: ip(1), Target: ip(0)}}},
		{opp("cp", ps(0.2), 1, 0), []circuit.Gate{
			{Gate: "rz", Control: ip(1), Target: ip(0), Rotation: fp(0.2)}, {Gate: "rz", Target: ip(1), Rotation: fp(0.1)}}},
		{op("swap", 0, 2), []circuit.Gate{{Gate: "swap", Targets: []int{0, 2}}}},
		{op("ccx", 2, 0, 1), []circuit.Gate{{Gate: "x", Controls: []int{2, 0}, Target: ip(1)}}},
		{op("cswap", 0, 1, 2), []circuit.Gate{
			{Gate: "cnot", Control: ip(2), Target: ip(1)}, {Gate: "x", Controls: []int{0, 1}, Target: ip(2)},
			{Gate: "cnot", Control: ip(2), Target: ip(1)}}},
	}
	for _, tc := range tests {
		t.Run(tc.op.Name, func(t *testing.T) {
			in, err := (&Program{Qubits: 3, Ops: []Op{tc.op}}).ToIonQ()
			if err != nil {
				t.Fatal(err)
			}
			if in.Gateset != circuit.GatesetQIS || in.Qubits != 3 {
				t.Errorf("gateset %q qubits %d, want qis 3", in.Gateset, in.Qubits)
			}
			if !reflect.DeepEqual(in.Circuit, tc.want) {
				got, _ := json.Marshal(in.Circuit)
				want, _ := json.Marshal(tc.want)
				t.Errorf("circuit = %s, want %s", got, want)
			}
		})
	}
}

func TestToIonQErrors(t *testing.T) {
	tests := []struct {
		name string
		prog Program
		msg  string
		kind error
	}{
		{"no qubits", Program{Version: "3"}, "no qubits", nil},
		{"unknown gate", Program{Qubits: 2, Ops: []Op{op("iswap", 0, 1)}}, `gate "iswap" has no IonQ QIS equivalent`, ErrUnsupported},
		{"wrong arity", Program{Qubits: 2, Ops: []Op{op("cx", 0)}}, `gate "cx" needs 2 qubits`, nil},
		{"missing parameter", Program{Qubits: 1, Ops: []Op{op("rx", 0)}}, `gate "rx" needs 1 qubits and 1 parameters, got 1 and 0`, nil},
		{"out of range", Program{Qubits: 1, Ops: []Op{op("h", 3)}}, "not a valid IonQ circuit", nil},
		{"too many qubits", Program{Qubits: 65}, "not a valid IonQ circuit", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.prog.ToIonQ()
			if err == nil {
				t.Fatal("ToIonQ succeeded")
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not contain %q", err, tc.msg)
			}
			if tc.kind != nil && !errors.Is(err, tc.kind) {
				t.Errorf("error %v does not wrap %v", err, tc.kind)
			}
		})
	}
}

func TestNilProgram(t *testing.T) {
	var p *Program
	if _, err := p.ToIonQ(); err == nil {
		t.Error("ToIonQ of a nil program succeeded")
	}
	if got := p.MeasuredQubits(); len(got) != 0 {
		t.Errorf("MeasuredQubits of nil = %v", got)
	}
}

func TestFromIonQText(t *testing.T) {
	in := &circuit.Input{Qubits: 3, Gateset: "qis", Circuit: []circuit.Gate{
		{Gate: "h", Target: ip(0)},
		{Gate: "cnot", Control: ip(0), Target: ip(1)},
		{Gate: "rx", Target: ip(2), Rotation: fp(-0.25)},
		{Gate: "not", Controls: []int{0, 1}, Target: ip(2)},
		{Gate: "si", Control: ip(2), Target: ip(0)},
		{Gate: "swap", Targets: []int{2, 0}},
		{Gate: "vi", Target: ip(1)},
		{Gate: "rz", Control: ip(1), Target: ip(0), Rotation: fp(1e-7)},
	}}
	got, err := FromIonQ(in)
	if err != nil {
		t.Fatal(err)
	}
	want := `OPENQASM 3.0;
include "stdgates.inc";
qubit[3] q;
bit[3] b;
h q[0];
cx q[0], q[1];
rx(-0.25) q[2];
ccx q[0], q[1], q[2];
cp(-pi/2) q[2], q[0];
swap q[2], q[0];
sxdg q[1];
crz(1e-07) q[1], q[0];
b = measure q;
`
	if got != want {
		t.Errorf("FromIonQ =\n%s\nwant\n%s", got, want)
	}
	prog := mustParse(t, got)
	if mq := prog.MeasuredQubits(); len(mq) != 3 || prog.Clbits != 3 {
		t.Errorf("measured %v with %d clbits, want all 3", mq, prog.Clbits)
	}
}

func TestFromIonQRefuses(t *testing.T) {
	tests := []struct {
		name string
		in   *circuit.Input
		msg  string
		kind error
	}{
		{"nil", nil, "nil circuit", nil},
		{"invalid circuit", &circuit.Input{Qubits: 1, Circuit: []circuit.Gate{{Gate: "h", Target: ip(4)}}}, "out of range", nil},
		{"controlled v", &circuit.Input{Qubits: 2, Circuit: []circuit.Gate{{Gate: "v", Control: ip(0), Target: ip(1)}}}, `gate "v" with 1 control(s)`, ErrUnsupported},
		{"doubly controlled rx", &circuit.Input{Qubits: 3, Circuit: []circuit.Gate{{Gate: "rx", Controls: []int{0, 1}, Target: ip(2), Rotation: fp(1)}}}, `gate "rx" with 2 control(s)`, ErrUnsupported},
		{"triply controlled x", &circuit.Input{Qubits: 4, Circuit: []circuit.Gate{{Gate: "x", Controls: []int{0, 1, 2}, Target: ip(3)}}}, `gate "x" with 3 control(s)`, ErrUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromIonQ(tc.in)
			if err == nil {
				t.Fatal("FromIonQ succeeded")
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not contain %q", err, tc.msg)
			}
			if tc.kind != nil && !errors.Is(err, tc.kind) {
				t.Errorf("error %v does not wrap %v", err, tc.kind)
			}
		})
	}
}

// randomIonQ returns a random valid circuit in the form ToIonQ produces, and
// the same circuit written with IonQ's equivalent spellings (not, x with one
// control, targets/controls lists of one element).
func randomIonQ(rng *rand.Rand) (canonical, variant *circuit.Input) {
	n := 1 + rng.IntN(6)
	canonical = &circuit.Input{Qubits: n, Gateset: circuit.GatesetQIS, Circuit: []circuit.Gate{}}
	variant = &circuit.Input{Qubits: n, Circuit: []circuit.Gate{}}
	angle := func() *float64 {
		switch rng.IntN(8) {
		case 0:
			return fp(math.Pi)
		case 1:
			return fp(5e-324)
		case 2:
			return fp(-1e300)
		}
		return fp((rng.Float64() - 0.5) * 100)
	}
	for range rng.IntN(25) {
		perm := rng.Perm(n)
		var c, v circuit.Gate
		switch k := rng.IntN(6); {
		case k == 0 && n >= 2: // one control
			name := []string{"x", "y", "z", "h", "s", "si", "t", "ti", "rx", "ry", "rz"}[rng.IntN(11)]
			c = gate(name, perm[1], perm[0])
			if name == "x" {
				c.Gate = "cnot"
			}
			if name[0] == 'r' {
				c.Rotation = angle()
			}
			v = c
			v.Control, v.Controls, v.Target, v.Targets = nil, []int{perm[0]}, nil, []int{perm[1]}
			if name == "x" {
				v.Gate = []string{"x", "not", "cnot"}[rng.IntN(3)]
			}
		case k == 1 && n >= 3:
			c = gate("x", perm[2], perm[0], perm[1])
			v = c
			v.Gate = "not"
		case k == 2 && n >= 2:
			c = circuit.Gate{Gate: "swap", Targets: []int{perm[0], perm[1]}}
			v = c
		default:
			name := []string{"x", "y", "z", "h", "s", "si", "t", "ti", "v", "vi", "rx", "ry", "rz"}[rng.IntN(13)]
			c = gate(name, perm[0])
			if name[0] == 'r' {
				c.Rotation = angle()
			}
			v = c
			v.Target, v.Targets = nil, []int{perm[0]}
			if name == "x" {
				v.Gate = "not"
			}
		}
		canonical.Circuit = append(canonical.Circuit, c)
		variant.Circuit = append(variant.Circuit, v)
	}
	return canonical, variant
}

func roundTrip(t *testing.T, in *circuit.Input) *circuit.Input {
	t.Helper()
	src, err := FromIonQ(in)
	if err != nil {
		t.Fatalf("FromIonQ: %v", err)
	}
	prog, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse of FromIonQ output: %v\n%s", err, src)
	}
	out, err := prog.ToIonQ()
	if err != nil {
		t.Fatalf("ToIonQ: %v\n%s", err, src)
	}
	return out
}

func TestRoundTripRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 500 {
		canonical, variant := randomIonQ(rng)
		for _, in := range []*circuit.Input{canonical, variant} {
			if err := in.Validate(); err != nil {
				t.Fatalf("generator produced an invalid circuit: %v", err)
			}
			out := roundTrip(t, in)
			if !reflect.DeepEqual(out, canonical) {
				got, _ := json.Marshal(out)
				want, _ := json.Marshal(canonical)
				t.Fatalf("circuit %d: round trip of %+v\n got %s\nwant %s", i, in, got, want)
			}
		}
	}
}
