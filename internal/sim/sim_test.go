package sim

import (
	"errors"
	"math"
	"math/cmplx"
	"math/rand/v2"
	"testing"

	"github.com/qbroker/qbroker/internal/circuit"
)

const eps = 1e-12

func ip(i int) *int                      { return &i }
func fp(f float64) *float64              { return &f }
func g1(name string, t int) circuit.Gate { return circuit.Gate{Gate: name, Target: ip(t)} }
func cx(c, t int) circuit.Gate           { return circuit.Gate{Gate: "cnot", Control: ip(c), Target: ip(t)} }

func mustRun(t *testing.T, n int, gates ...circuit.Gate) *State {
	t.Helper()
	s, err := Run(&circuit.Input{Qubits: n, Circuit: gates})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func near(a, b complex128) bool { return cmplx.Abs(a-b) < 1e-9 }

func TestBell(t *testing.T) {
	s := mustRun(t, 2, g1("h", 0), cx(0, 1))
	p := s.Probabilities()
	want := []float64{0.5, 0, 0, 0.5}
	for i := range want {
		if math.Abs(p[i]-want[i]) > eps {
			t.Fatalf("P(%d) = %v, want %v", i, p[i], want[i])
		}
	}
}

func TestGHZ(t *testing.T) {
	const n = 5
	gates := []circuit.Gate{g1("h", 0)}
	for q := 1; q < n; q++ {
		gates = append(gates, cx(q-1, q))
	}
	p := mustRun(t, n, gates...).Probabilities()
	for i, pi := range p {
		want := 0.0
		if i == 0 || i == 1<<n-1 {
			want = 0.5
		}
		if math.Abs(pi-want) > eps {
			t.Fatalf("P(%05b) = %v, want %v", i, pi, want)
		}
	}
}

func TestQubitZeroIsLSB(t *testing.T) {
	p := mustRun(t, 3, g1("x", 0)).Probabilities()
	if p[1] != 1 {
		t.Fatalf("X on qubit 0 should give index 1, got %v", p)
	}
	p = mustRun(t, 3, g1("x", 2)).Probabilities()
	if p[4] != 1 {
		t.Fatalf("X on qubit 2 should give index 4, got %v", p)
	}
}

// TestGatesOnBasisStates checks each gate's action on |0> and |1> against
// the columns of its textbook matrix.
func TestGatesOnBasisStates(t *testing.T) {
	r := 1 / math.Sqrt2
	e := func(th float64) complex128 { return cmplx.Exp(complex(0, th)) }
	th := 0.7
	c, s := math.Cos(th/2), math.Sin(th/2)
	cases := []struct {
		gate string
		rot  *float64
		col0 [2]complex128 // U|0>
		col1 [2]complex128 // U|1>
	}{
		{"x", nil, [2]complex128{0, 1}, [2]complex128{1, 0}},
		{"not", nil, [2]complex128{0, 1}, [2]complex128{1, 0}},
		{"y", nil, [2]complex128{0, 1i}, [2]complex128{-1i, 0}},
		{"z", nil, [2]complex128{1, 0}, [2]complex128{0, -1}},
		{"h", nil, [2]complex128{complex(r, 0), complex(r, 0)}, [2]complex128{complex(r, 0), complex(-r, 0)}},
		{"s", nil, [2]complex128{1, 0}, [2]complex128{0, 1i}},
		{"si", nil, [2]complex128{1, 0}, [2]complex128{0, -1i}},
		{"t", nil, [2]complex128{1, 0}, [2]complex128{0, e(math.Pi / 4)}},
		{"ti", nil, [2]complex128{1, 0}, [2]complex128{0, e(-math.Pi / 4)}},
		{"v", nil, [2]complex128{(1 + 1i) / 2, (1 - 1i) / 2}, [2]complex128{(1 - 1i) / 2, (1 + 1i) / 2}},
		{"vi", nil, [2]complex128{(1 - 1i) / 2, (1 + 1i) / 2}, [2]complex128{(1 + 1i) / 2, (1 - 1i) / 2}},
		{"rx", fp(th), [2]complex128{complex(c, 0), complex(0, -s)}, [2]complex128{complex(0, -s), complex(c, 0)}},
		{"ry", fp(th), [2]complex128{complex(c, 0), complex(s, 0)}, [2]complex128{complex(-s, 0), complex(c, 0)}},
		{"rz", fp(th), [2]complex128{e(-th / 2), 0}, [2]complex128{0, e(th / 2)}},
	}
	for _, tc := range cases {
		for in, want := range [][2]complex128{tc.col0, tc.col1} {
			gates := []circuit.Gate{}
			if in == 1 {
				gates = append(gates, g1("x", 0))
			}
			gates = append(gates, circuit.Gate{Gate: tc.gate, Target: ip(0), Rotation: tc.rot})
			a := mustRun(t, 1, gates...).Amplitudes()
			if !near(a[0], want[0]) || !near(a[1], want[1]) {
				t.Errorf("%s|%d> = %v, want %v", tc.gate, in, a, want)
			}
		}
	}
}

func TestTwoQubitGatesOnBasisStates(t *testing.T) {
	// CNOT with control 0, target 1 maps index 1 (q0=1) to 3, leaves 2 alone.
	for _, tc := range []struct {
		prep []circuit.Gate
		gate circuit.Gate
		want int
	}{
		{[]circuit.Gate{g1("x", 0)}, cx(0, 1), 3},
		{[]circuit.Gate{g1("x", 1)}, cx(0, 1), 2},
		{[]circuit.Gate{g1("x", 0), g1("x", 1)}, cx(0, 1), 1},
		{[]circuit.Gate{g1("x", 0)}, circuit.Gate{Gate: "swap", Targets: []int{0, 1}}, 2},
		{[]circuit.Gate{g1("x", 1)}, circuit.Gate{Gate: "swap", Targets: []int{0, 1}}, 1},
		{[]circuit.Gate{g1("x", 0), g1("x", 1)}, circuit.Gate{Gate: "x", Controls: []int{0, 1}, Target: ip(2)}, 7},
		{[]circuit.Gate{g1("x", 0)}, circuit.Gate{Gate: "x", Controls: []int{0, 1}, Target: ip(2)}, 1},
		{[]circuit.Gate{g1("x", 2)}, circuit.Gate{Gate: "not", Control: ip(2), Target: ip(0)}, 5},
	} {
		p := mustRun(t, 3, append(tc.prep, tc.gate)...).Probabilities()
		if math.Abs(p[tc.want]-1) > eps {
			t.Errorf("%+v after %d prep gates: probabilities %v, want index %d", tc.gate, len(tc.prep), p, tc.want)
		}
	}
}

func TestIdentities(t *testing.T) {
	x, _ := GateMatrix("x", 0)
	z, _ := GateMatrix("z", 0)
	v, _ := GateMatrix("v", 0)
	vi, _ := GateMatrix("vi", 0)
	s, _ := GateMatrix("s", 0)
	tt, _ := GateMatrix("t", 0)
	rxpi, _ := GateMatrix("rx", math.Pi)
	id := Matrix{1, 0, 0, 1}
	if !equalUpToPhase(mul(v, v), x, false) {
		t.Errorf("v·v = %v, want x", mul(v, v))
	}
	if !equalUpToPhase(mul(v, vi), id, false) {
		t.Errorf("v·vi = %v, want identity", mul(v, vi))
	}
	if !equalUpToPhase(mul(s, s), z, false) {
		t.Errorf("s·s = %v, want z", mul(s, s))
	}
	if !equalUpToPhase(mul(tt, tt), s, false) {
		t.Errorf("t·t = %v, want s", mul(tt, tt))
	}
	if equalUpToPhase(rxpi, x, false) {
		t.Errorf("rx(π) should differ from x by the phase -i, got %v", rxpi)
	}
	if !equalUpToPhase(rxpi, x, true) {
		t.Errorf("rx(π) = %v, want x up to phase", rxpi)
	}
	for _, name := range []string{"x", "y", "z", "h", "s", "si", "t", "ti", "v", "vi", "rx", "ry", "rz"} {
		m, _ := GateMatrix(name, 1.234)
		if !equalUpToPhase(mul(m, dagger(m)), id, false) {
			t.Errorf("%s is not unitary", name)
		}
	}
}

func mul(a, b Matrix) Matrix {
	return Matrix{a[0]*b[0] + a[1]*b[2], a[0]*b[1] + a[1]*b[3], a[2]*b[0] + a[3]*b[2], a[2]*b[1] + a[3]*b[3]}
}

func dagger(m Matrix) Matrix {
	return Matrix{cmplx.Conj(m[0]), cmplx.Conj(m[2]), cmplx.Conj(m[1]), cmplx.Conj(m[3])}
}

// equalUpToPhase compares a and b exactly, or up to a global phase.
func equalUpToPhase(a, b Matrix, phase bool) bool {
	k := complex(1, 0)
	if phase {
		for i := range b {
			if cmplx.Abs(b[i]) > 1e-9 {
				k = a[i] / b[i]
				break
			}
		}
	}
	for i := range a {
		if !near(a[i], k*b[i]) {
			return false
		}
	}
	return true
}

func TestSampleBell(t *testing.T) {
	s := mustRun(t, 2, g1("h", 0), cx(0, 1))
	const shots = 10000
	counts := s.Sample(shots, rand.New(rand.NewPCG(1, 2)))
	if len(counts) != 2 || counts[0]+counts[3] != shots {
		t.Fatalf("counts %v: only |00> and |11> may occur", counts)
	}
	sigma := math.Sqrt(shots * 0.25)
	if d := math.Abs(float64(counts[0]) - shots/2); d > 5*sigma {
		t.Fatalf("counts %v deviate by %.0f > 5σ=%.0f", counts, d, 5*sigma)
	}
	// Same seed, same result.
	again := s.Sample(shots, rand.New(rand.NewPCG(1, 2)))
	if again[0] != counts[0] {
		t.Fatalf("seeded sampling not reproducible: %v vs %v", again, counts)
	}
	if n := len(s.Sample(0, nil)); n != 0 {
		t.Fatalf("0 shots gave %d outcomes", n)
	}
}

func TestSampleNeverPicksZeroProbability(t *testing.T) {
	s := mustRun(t, 3, g1("x", 1)) // deterministic |010>
	counts := s.Sample(1000, nil)
	if counts[2] != 1000 {
		t.Fatalf("counts %v, want all 1000 on index 2", counts)
	}
}

func TestLimitsAndErrors(t *testing.T) {
	if _, err := New(MaxQubits + 1); !errors.Is(err, ErrTooManyQubits) {
		t.Fatalf("New(%d): %v, want ErrTooManyQubits", MaxQubits+1, err)
	}
	if _, err := New(0); err == nil {
		t.Fatal("New(0) accepted")
	}
	if _, err := Run(&circuit.Input{Qubits: 21, Circuit: []circuit.Gate{}}); !errors.Is(err, ErrTooManyQubits) {
		t.Fatalf("Run(21 qubits): %v", err)
	}
	s, _ := New(2)
	before := s.Amplitudes()
	for _, g := range []circuit.Gate{
		g1("x", 2),
		cx(1, 1),
		{Gate: "rx", Target: ip(0)},
		{Gate: "xx", Targets: []int{0, 1}, Rotation: fp(1)},
		{Gate: "bogus", Target: ip(0)},
	} {
		if err := s.Apply(g); err == nil {
			t.Errorf("Apply(%+v) accepted", g)
		}
	}
	after := s.Amplitudes()
	for i := range before {
		if before[i] != after[i] {
			t.Fatal("a rejected gate changed the state")
		}
	}
	if err := s.ApplyMatrix(Matrix{0, 1, 1, 0}, 0, 0); err == nil {
		t.Error("control equal to target accepted")
	}
	if err := s.Swap(0, 0); err == nil {
		t.Error("swap of a qubit with itself accepted")
	}
}

func randomCircuit(n, gates int, rng *rand.Rand) *circuit.Input {
	names := []string{"h", "x", "y", "z", "s", "t", "v", "rx", "ry", "rz", "cnot", "swap"}
	in := &circuit.Input{Qubits: n}
	for range gates {
		name := names[rng.IntN(len(names))]
		a := rng.IntN(n)
		b := (a + 1 + rng.IntN(n-1)) % n
		g := circuit.Gate{Gate: name}
		switch name {
		case "cnot":
			g.Control, g.Target = ip(a), ip(b)
		case "swap":
			g.Targets = []int{a, b}
		case "rx", "ry", "rz":
			g.Target, g.Rotation = ip(a), fp(rng.Float64()*2*math.Pi)
		default:
			g.Target = ip(a)
		}
		in.Circuit = append(in.Circuit, g)
	}
	return in
}

func TestRandomCircuitStaysNormalised(t *testing.T) {
	s, err := Run(randomCircuit(10, 300, rand.New(rand.NewPCG(7, 7))))
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, p := range s.Probabilities() {
		sum += p
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Fatalf("norm drifted to %v", sum)
	}
}

func BenchmarkRandomCircuit16x200(b *testing.B) {
	in := randomCircuit(16, 200, rand.New(rand.NewPCG(1, 1)))
	for b.Loop() {
		if _, err := Run(in); err != nil {
			b.Fatal(err)
		}
	}
}
