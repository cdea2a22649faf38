package diagram

import (
	"math"
	"testing"

	"github.com/qbroker/qbroker/internal/circuit"
)

func ip(n int) *int         { return &n }
func fp(x float64) *float64 { return &x }
func g(name string, target int) circuit.Gate {
	return circuit.Gate{Gate: name, Target: ip(target)}
}
func cnot(control, target int) circuit.Gate {
	return circuit.Gate{Gate: "cnot", Control: ip(control), Target: ip(target)}
}

func ionq(qubits int, gates ...circuit.Gate) Circuit {
	return FromIonQ(&circuit.Input{Qubits: qubits, Circuit: gates})
}

func bell() Circuit { return ionq(2, g("h", 0), cnot(0, 1)) }

func TestAnalyzeBell(t *testing.T) {
	got := Analyze(bell())
	want := Stats{Qubits: 2, Gates: 2, OneQubit: 1, TwoQubit: 1, Measurements: 2, Depth: 3}
	if got != want {
		t.Fatalf("Analyze(bell) = %+v, want %+v", got, want)
	}
}

func TestAnalyzeGHZ(t *testing.T) {
	chain := Analyze(ionq(3, g("h", 0), cnot(0, 1), cnot(1, 2)))
	if chain.Depth != 4 || chain.Gates != 3 || chain.TwoQubit != 2 {
		t.Errorf("GHZ-3 chain: %+v, want depth 4 (3 layers + measurement), 3 gates, 2 two-qubit", chain)
	}
	// The fan-out form is as deep: both CNOTs share control q0.
	fan := Analyze(ionq(3, g("h", 0), cnot(0, 1), cnot(0, 2)))
	if fan.Depth != 4 {
		t.Errorf("GHZ-3 fan-out depth = %d, want 4", fan.Depth)
	}
}

func TestAnalyzeParallelGatesShareALayer(t *testing.T) {
	c := ionq(4, g("h", 0), g("h", 1), g("x", 2), g("h", 3), cnot(0, 1), cnot(2, 3))
	c.MeasureAll = false
	if d := Analyze(c).Depth; d != 2 {
		t.Errorf("depth = %d, want 2", d)
	}
	c.MeasureAll = true
	if d := Analyze(c).Depth; d != 3 {
		t.Errorf("depth with MeasureAll = %d, want 3", d)
	}
}

// Depth counts only the qubits an operation touches, not those its line
// crosses in a drawing.
func TestAnalyzeDepthUsesTouchedQubitsOnly(t *testing.T) {
	c := Circuit{Qubits: 3, Ops: []Op{
		{Name: "cnot", Controls: []int{0}, Targets: []int{2}},
		{Name: "h", Targets: []int{1}},
	}}
	if d := Analyze(c).Depth; d != 1 {
		t.Errorf("depth = %d, want 1", d)
	}
}

func TestAnalyzeMeasurementsAndMultiQubit(t *testing.T) {
	c := Circuit{Qubits: 3, Ops: []Op{
		{Name: "x", Targets: []int{2}, Controls: []int{0, 1}},
		{Measure: true, Targets: []int{2}, Clbit: 0},
		{Name: "h", Targets: []int{2}},
		{Measure: true, Targets: []int{0}, Clbit: -1},
	}}
	got := Analyze(c)
	want := Stats{Qubits: 3, Gates: 2, OneQubit: 1, MultiQubit: 1, Measurements: 2, Depth: 3}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestAnalyzeEmpty(t *testing.T) {
	if got := Analyze(Circuit{MeasureAll: true}); got != (Stats{}) {
		t.Errorf("empty circuit: %+v", got)
	}
	if got := Analyze(Circuit{Qubits: 2, MeasureAll: true}); got.Depth != 1 || got.Measurements != 2 {
		t.Errorf("no gates, measure all: %+v, want depth 1 and 2 measurements", got)
	}
}

func TestFromIonQ(t *testing.T) {
	targets := []int{1}
	in := &circuit.Input{Qubits: 3, Circuit: []circuit.Gate{
		{Gate: "rz", Targets: targets, Rotation: fp(math.Pi / 2)},
		{Gate: "x", Target: ip(2), Controls: []int{0, 1}},
		{Gate: "swap", Targets: []int{0, 2}},
	}}
	c := FromIonQ(in)
	if c.Qubits != 3 || !c.MeasureAll || len(c.Ops) != 3 {
		t.Fatalf("FromIonQ: %+v", c)
	}
	if op := c.Ops[0]; op.Name != "rz" || len(op.Params) != 1 || op.Params[0] != math.Pi/2 || op.Targets[0] != 1 {
		t.Errorf("rz: %+v", op)
	}
	if op := c.Ops[1]; len(op.Controls) != 2 || op.Targets[0] != 2 || op.Params != nil {
		t.Errorf("toffoli: %+v", op)
	}
	c.Ops[0].Targets[0] = 7
	if targets[0] != 1 {
		t.Error("FromIonQ shares the targets slice with its input")
	}
	if got := FromIonQ(nil); got.Qubits != 0 || len(got.Ops) != 0 || !got.MeasureAll {
		t.Errorf("FromIonQ(nil) = %+v", got)
	}
}

// Analyze takes any circuit, however malformed, without panicking.
func TestAnalyzeMalformed(t *testing.T) {
	c := Circuit{Qubits: -3, MeasureAll: true, Ops: []Op{
		{},
		{Targets: []int{-1, 1 << 40}},
		{Targets: []int{1, 1}, Controls: []int{1}},
		{Measure: true},
	}}
	s := Analyze(c)
	if s.Gates != 3 || s.OneQubit != 2 || s.TwoQubit != 1 || s.Measurements != 1 || s.Depth != 1 {
		t.Errorf("got %+v", s)
	}
}
