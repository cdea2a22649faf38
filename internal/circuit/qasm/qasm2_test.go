package qasm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/qbroker/qbroker/internal/sim"
)

const bell2 = `OPENQASM 2.0;
include "qelib1.inc";
qreg q[2];
creg c[2];
h q[0];
cx q[0],q[1];
measure q[0] -> c[0];
measure q[1] -> c[1];
`

const ghz2 = `OPENQASM 2.0;
include "hqslib1.inc";
// GHZ on three qubits, broadcast measurement
qreg q[3];
creg c[3];
h q[0];
CX q[0], q[1];
cx q[1],q[2];
measure q -> c;
`

func TestParse2Accepted(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want Program
	}{
		{"bell", bell2, Program{Version: "2.0", Qubits: 2, Clbits: 2,
			Ops: []Op{op("h", 0), op("cx", 0, 1)}, Measures: []Measure{{0, 0}, {1, 1}}}},
		{"ghz with hqslib1 and broadcast measure", ghz2, Program{Version: "2.0", Qubits: 3, Clbits: 3,
			Ops: []Op{op("h", 0), op("cx", 0, 1), op("cx", 1, 2)}, Measures: []Measure{{0, 0}, {1, 1}, {2, 2}}}},
		{"built-ins need no include", "OPENQASM 2.0;\nqreg q[2];\nU(1,2,3) q[0];\nCX q[0],q[1];\nU(0.5,0,pi) q;", Program{Version: "2.0", Qubits: 2,
			Ops: []Op{opp("u", ps(1, 2, 3), 0), op("cx", 0, 1), opp("u", ps(0.5, 0, math.Pi), 0), opp("u", ps(0.5, 0, math.Pi), 1)}}},
		{
			name: "qelib1 gates map to canonical ops",
			src: "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg a[2];\nqreg b[1];\n" +
				"u3(1,2,3) a[0]; u2(1,2) a[0]; u1(0.5) a[1]; id a[0]; x a[0]; y a[0]; z a[0]; s a[0]; sdg a[0]; t a[0]; tdg a[0];\n" +
				"rx(1) b[0]; ry(2) b[0]; rz(3) b[0]; cz a[0],b[0]; cy a[0],b[0]; ch a[0],b[0]; crz(0.25) a[1],a[0];\n" +
				"cu1(0.75) a[0],a[1]; ccx a[0],a[1],b[0]; swap a[0],b[0];\n" +
				"u(1,2,3) a[0]; p(1) a[0]; sx a[0]; sxdg a[0]; cp(1) a[0],a[1]; crx(1) a[0],a[1]; cry(1) a[0],a[1]; cswap b[0],a[0],a[1];",
			want: Program{Version: "2.0", Qubits: 3, Ops: []Op{
				opp("u", ps(1, 2, 3), 0), opp("u", ps(math.Pi/2, 1, 2), 0), opp("p", ps(0.5), 1), op("id", 0), op("x", 0), op("y", 0), op("z", 0),
				op("s", 0), op("sdg", 0), op("t", 0), op("tdg", 0),
				opp("rx", ps(1), 2), opp("ry", ps(2), 2), opp("rz", ps(3), 2), op("cz", 0, 2), op("cy", 0, 2), op("ch", 0, 2), opp("crz", ps(0.25), 1, 0),
				opp("cp", ps(0.75), 0, 1), op("ccx", 0, 1, 2), op("swap", 0, 2),
				opp("u", ps(1, 2, 3), 0), opp("p", ps(1), 0), op("sx", 0), op("sxdg", 0), opp("cp", ps(1), 0, 1), opp("crx", ps(1), 0, 1), opp("cry", ps(1), 0, 1),
				op("cswap", 2, 0, 1)}},
		},
		{
			name: "cu3 expands to the specification's qelib1 body",
			src:  "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\ncu3(0.4,0.6,1.0) q[1],q[0];",
			want: Program{Version: "2.0", Qubits: 2, Ops: []Op{
				opp("p", ps(0.2), 0), op("cx", 1, 0), opp("u", ps(-0.2, 0, -0.8), 0), op("cx", 1, 0), opp("u", ps(0.2, 0.6, 0), 0)}},
		},
		{
			name: "hqslib1 natives",
			src:  "OPENQASM 2.0;\ninclude \"hqslib1.inc\";\nqreg q[2];\nRz(0.5) q[0];\nU1q(0.5*pi, 0.25) q[1];\nRZZ(0.3) q[0],q[1];\nZZ() q[1],q[0];\nZZ q[0],q[1];",
			want: Program{Version: "2.0", Qubits: 2, Ops: []Op{
				opp("rz", ps(0.5), 0), opp("u", ps(math.Pi/2, 0.25-math.Pi/2, math.Pi/2-0.25), 1),
				op("cx", 0, 1), opp("rz", ps(0.3), 1), op("cx", 0, 1),
				op("cx", 1, 0), opp("rz", ps(math.Pi/2), 0), op("cx", 1, 0),
				op("cx", 0, 1), opp("rz", ps(math.Pi/2), 1), op("cx", 0, 1)}},
		},
		{
			name: "expressions, empty parentheses, comments and CRLF",
			src:  "// pytket\r\nOPENQASM 2.0; // v2\r\ninclude \"qelib1.inc\";\r\nqreg q[1];\r\nrx(2^3) q[0];\r\nry(-2^2) q[0];\r\nrz(sqrt(4)*pi/2) q[0];\r\nh() q[0];\r\nbarrier q;\r\n",
			want: Program{Version: "2.0", Qubits: 1, Ops: []Op{
				opp("rx", ps(8), 0), opp("ry", ps(-4), 0), opp("rz", ps(math.Pi), 0), op("h", 0)}},
		},
		{"header only", "OPENQASM 2.0;", Program{Version: "2.0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.src))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if d := sameProgram(got, &tc.want); d != "" {
				t.Error(d)
			}
			checkProgram(t, got, Limits{}.withDefaults())
		})
	}
}

// Bell and GHZ written in OpenQASM 2.0 simulate as they should through
// ToIonQ and package sim.
func TestParse2Simulates(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want []float64
	}{
		{"bell", bell2, []float64{0.5, 0, 0, 0.5}},
		{"ghz", ghz2, []float64{0.5, 0, 0, 0, 0, 0, 0, 0.5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			amps := simulate(t, mustParse(t, tc.src))
			for i, a := range amps {
				if p := real(a)*real(a) + imag(a)*imag(a); math.Abs(p-tc.want[i]) > 1e-12 {
					t.Fatalf("P(%d) = %v, want %v", i, p, tc.want[i])
				}
			}
			in, err := mustParse(t, tc.src).ToIonQ()
			if err != nil {
				t.Fatal(err)
			}
			st, err := sim.Run(in)
			if err != nil {
				t.Fatal(err)
			}
			counts := st.Sample(4000, rand.New(rand.NewPCG(3, 4)))
			last := len(tc.want) - 1
			if counts[0]+counts[last] != 4000 || counts[0] < 1800 || counts[last] < 1800 {
				t.Fatalf("counts %v, want about 2000 each of 0 and %d", counts, last)
			}
		})
	}
}

// gate2Ref is the exact OpenQASM 2.0 meaning of a gate as written,
// independent of the parser's mapping: the matrix of its target part, or a
// diagonal two-qubit phase (RZZ, ZZ).
type gate2Ref struct {
	name           string
	qubits, params int
	lib            string // "" (built in), "qelib1.inc" or "hqslib1.inc"
}

var gates2 = []gate2Ref{
	{"U", 1, 3, ""}, {"CX", 2, 0, ""},
	{"u3", 1, 3, "qelib1.inc"}, {"u2", 1, 2, "qelib1.inc"}, {"u1", 1, 1, "qelib1.inc"}, {"cx", 2, 0, "qelib1.inc"},
	{"id", 1, 0, "qelib1.inc"}, {"x", 1, 0, "qelib1.inc"}, {"y", 1, 0, "qelib1.inc"}, {"z", 1, 0, "qelib1.inc"},
	{"h", 1, 0, "qelib1.inc"}, {"s", 1, 0, "qelib1.inc"}, {"sdg", 1, 0, "qelib1.inc"}, {"t", 1, 0, "qelib1.inc"},
	{"tdg", 1, 0, "qelib1.inc"}, {"rx", 1, 1, "qelib1.inc"}, {"ry", 1, 1, "qelib1.inc"}, {"rz", 1, 1, "qelib1.inc"},
	{"cz", 2, 0, "qelib1.inc"}, {"cy", 2, 0, "qelib1.inc"}, {"ch", 2, 0, "qelib1.inc"}, {"ccx", 3, 0, "qelib1.inc"},
	{"crz", 2, 1, "qelib1.inc"}, {"cu1", 2, 1, "qelib1.inc"}, {"cu3", 2, 3, "qelib1.inc"}, {"swap", 2, 0, "qelib1.inc"},
	{"u", 1, 3, "qelib1.inc"}, {"p", 1, 1, "qelib1.inc"}, {"sx", 1, 0, "qelib1.inc"}, {"sxdg", 1, 0, "qelib1.inc"},
	{"cp", 2, 1, "qelib1.inc"}, {"crx", 2, 1, "qelib1.inc"}, {"cry", 2, 1, "qelib1.inc"}, {"cswap", 3, 0, "qelib1.inc"},
	{"Rz", 1, 1, "hqslib1.inc"}, {"U1q", 1, 2, "hqslib1.inc"}, {"RZZ", 2, 1, "hqslib1.inc"}, {"ZZ", 2, 0, "hqslib1.inc"},
}

// u3Matrix is OpenQASM 2.0's U(θ,φ,λ) = Rz(φ)·Ry(θ)·Rz(λ) (determinant 1).
func u3Matrix(th, ph, la float64) mat2 {
	c, s := complex(math.Cos(th/2), 0), complex(math.Sin(th/2), 0)
	return mat2{expi(-(ph+la)/2) * c, -expi(-(ph-la)/2) * s, expi((ph-la)/2) * s, expi((ph+la)/2) * c}
}

// apply2 applies one OpenQASM 2.0 gate to s with its exact meaning.
func (g gate2Ref) apply2(s refState, q []int, th []float64) error {
	last := len(q) - 1
	switch g.name {
	case "U", "u3", "u":
		s.apply(u3Matrix(th[0], th[1], th[2]), q[0], nil)
	case "u2":
		s.apply(u3Matrix(math.Pi/2, th[0], th[1]), q[0], nil)
	case "u1", "p":
		s.apply(mat2{1, 0, 0, expi(th[0])}, q[0], nil)
	case "cu1", "cp":
		s.apply(mat2{1, 0, 0, expi(th[0])}, q[1], q[:1])
	case "cu3":
		s.apply(u3Matrix(th[0], th[1], th[2]), q[1], q[:1])
	case "CX":
		s.apply(mat2{0, 1, 1, 0}, q[1], q[:1])
	case "swap":
		s.swap(q[0], q[1], nil)
	case "cswap":
		s.swap(q[1], q[2], q[:1])
	case "Rz":
		s.apply(mat2{expi(-th[0] / 2), 0, 0, expi(th[0] / 2)}, q[0], nil)
	case "U1q":
		c, sn := complex(math.Cos(th[0]/2), 0), complex(math.Sin(th[0]/2), 0)
		s.apply(mat2{c, -1i * expi(-th[1]) * sn, -1i * expi(th[1]) * sn, c}, q[0], nil)
	case "RZZ", "ZZ":
		theta := math.Pi / 2
		if g.name == "RZZ" {
			theta = th[0]
		}
		for i := range s {
			if (i>>q[0])&1 == (i>>q[1])&1 {
				s[i] *= expi(-theta / 2)
			} else {
				s[i] *= expi(theta / 2)
			}
		}
	default:
		m, err := refMatrix(g.name, th) // same meaning as in stdgates.inc
		if err != nil {
			return err
		}
		s.apply(m, q[last], q[:last])
	}
	return nil
}

// ToIonQ followed by the simulator gives the exact OpenQASM 2.0 meaning of
// every gate (up to a global phase), on random programs.
func TestParse2MatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 400 {
		n := 1 + rng.IntN(4)
		var b strings.Builder
		fmt.Fprintf(&b, "OPENQASM 2.0;\ninclude \"hqslib1.inc\";\nqreg q[%d];\n", n)
		want := newRef(n)
		for j := range n { // a generic start, so that phase errors show
			a, c := rng.Float64()*3, rng.Float64()*6
			fmt.Fprintf(&b, "U(%s,%s,0) q[%d];\n", strconv.FormatFloat(a, 'g', -1, 64), strconv.FormatFloat(c, 'g', -1, 64), j)
			want.apply(u3Matrix(a, c, 0), j, nil)
		}
		for range 1 + rng.IntN(10) {
			g := gates2[rng.IntN(len(gates2))]
			if g.qubits > n {
				continue
			}
			th := make([]float64, g.params)
			var args []string
			for k := range th {
				var s string
				s, th[k] = randomAngle(rng)
				args = append(args, s)
			}
			qs := rng.Perm(n)[:g.qubits]
			var ops []string
			for _, q := range qs {
				ops = append(ops, "q["+strconv.Itoa(q)+"]")
			}
			b.WriteString(g.name)
			if len(args) > 0 {
				b.WriteString("(" + strings.Join(args, ",") + ")")
			}
			b.WriteString(" " + strings.Join(ops, ",") + ";\n")
			if err := g.apply2(want, qs, th); err != nil {
				t.Fatal(err)
			}
		}
		src := b.String()
		got := simulate(t, mustParse(t, src))
		if f := fidelity(want, got); math.Abs(f-1) > 1e-9 {
			t.Fatalf("program %d: fidelity %.12f, want 1\n%s", i, f, src)
		}
	}
}

// cu3 is the specification's controlled-U3, not Qiskit's later variant
// with a phase on the control, and the reference tells them apart.
func TestCu3IsTheSpecificationGate(t *testing.T) {
	src := "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\nh q[0];\nh q[1];\ncu3(0.7,0.9,1.3) q[0],q[1];\n"
	got := simulate(t, mustParse(t, src))
	spec, qiskit := newRef(2), newRef(2)
	h := mat2{complex(1/math.Sqrt2, 0), complex(1/math.Sqrt2, 0), complex(1/math.Sqrt2, 0), complex(-1/math.Sqrt2, 0)}
	for _, s := range []refState{spec, qiskit} {
		s.apply(h, 0, nil)
		s.apply(h, 1, nil)
		s.apply(u3Matrix(0.7, 0.9, 1.3), 1, []int{0})
	}
	qiskit.apply(mat2{1, 0, 0, expi((0.9 + 1.3) / 2)}, 0, nil) // Qiskit's u1((λ+φ)/2) on the control
	if f := fidelity(spec, got); math.Abs(f-1) > 1e-12 {
		t.Fatalf("cu3 fidelity with the specification's gate %.12f, want 1", f)
	}
	if f := fidelity(qiskit, got); f > 0.99 {
		t.Fatalf("cu3 fidelity with Qiskit's variant %.6f; the test would not tell them apart", f)
	}
}

func TestReject2(t *testing.T) {
	u := ErrUnsupported
	const pre2 = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\ncreg c[2];\n" // constructs start on line 5
	tests := []rejectCase{
		{"gate definition", pre2 + "gate foo a { h a; }", 5, 1, "gate definitions are unsupported", u},
		{"opaque", pre2 + "opaque foo a;", 5, 1, "opaque gate declarations are unsupported", u},
		{"if", pre2 + "measure q[0] -> c[0];\nif (c==1) x q[1];", 6, 1, "conditionals (if) are unsupported", u},
		{"reset", pre2 + "reset q[0];", 5, 1, "reset is unsupported", u},
		{"u0", pre2 + "u0(1) q[0];", 5, 1, "gate \"u0\" is unsupported", u},
		{"qiskit rzz", pre2 + "rzz(1) q[0],q[1];", 5, 1, "gate \"rzz\" is unsupported", u},
		{"Rxxyyzz", "OPENQASM 2.0;\ninclude \"hqslib1.inc\";\nqreg q[2];\nRxxyyzz(1,2,3) q[0],q[1];", 4, 1, "gate \"Rxxyyzz\" is unsupported", u},
		{"other include", "OPENQASM 2.0;\ninclude \"mylib.inc\";", 2, 9, "include \"mylib.inc\" is unsupported", u},
		{"stdgates include", "OPENQASM 2.0;\ninclude \"stdgates.inc\";", 2, 9, "is OpenQASM 3", nil},
		{"qubit declaration", "OPENQASM 2.0;\nqubit[2] q;", 2, 1, "\"qubit\" declarations are OpenQASM 3", nil},
		{"bit declaration", pre2 + "bit b;", 5, 1, "\"bit\" declarations are OpenQASM 3", nil},
		{"assignment measure", pre2 + "c = measure q;", 5, 1, "no assignments", nil},
		{"measure without target", pre2 + "measure q[0];", 5, 13, "measure q -> c;", nil},
		{"physical qubit", pre2 + "h $0;", 5, 3, "physical qubits", nil},
		{"box", pre2 + "box { h q[0]; }", 5, 1, "box", nil},
		{"pragma", pre2 + "#pragma braket verbatim\nh q[0];", 5, 1, "#pragma is not OpenQASM 2.0", nil},
		{"block comment before header", "/* c */\nOPENQASM 2.0;\nqreg q[1];", 1, 1, "block comments", nil},
		{"block comment after header", pre2 + "h q[0]; /* c */", 5, 9, "block comments", nil},
		{"power **", pre2 + "rx(2**2) q[0];", 5, 5, "writes powers with \"^\"", nil},
		{"tau", pre2 + "rx(tau) q[0];", 5, 4, "only constant is pi", nil},
		{"unicode pi", pre2 + "rx(π) q[0];", 5, 4, "only constant is pi", nil},
		{"arcsin", pre2 + "rx(arcsin(1)) q[0];", 5, 4, "not an OpenQASM 2.0 function", nil},
		{"gate before include", "OPENQASM 2.0;\nqreg q[1];\nh q[0];\ninclude \"qelib1.inc\";", 3, 1, "needs include", nil},
		{"native without hqslib1", pre2 + "U1q(1,2) q[0];", 5, 1, "needs include \"hqslib1.inc\"", nil},
		{"stdgates alias", pre2 + "cnot q[0],q[1];", 5, 1, "unknown gate \"cnot\"", nil},
		{"barrier without operands", pre2 + "barrier;", 5, 8, "needs operands", nil},
		{"upper-case register", "OPENQASM 2.0;\nqreg Q[1];", 2, 6, "lower-case", nil},
		{"gate-named register", "OPENQASM 2.0;\nqreg cu3[1];", 2, 6, "reserved name", nil},
		{"second header", pre2 + "OPENQASM 2.0;", 5, 1, "must appear once", nil},
		{"cu3 arity", pre2 + "cu3(1,2) q[0],q[1];", 5, 1, "takes 3 parameters, got 2", nil},
		{"OpenQASM 3 statement after 2.0 header", pre2 + "c[0] = measure q[0];", 5, 1, "no assignments", nil},
		// The 2.0 gates stay out of OpenQASM 3 programs.
		{"U1q in OpenQASM 3", "OPENQASM 3;\nqubit q;\nU1q(1,2) q;", 3, 1, "unknown gate \"U1q\"", nil},
		{"u2 in OpenQASM 3", "OPENQASM 3;\ninclude \"stdgates.inc\";\nqubit q;\nu2(1,2) q;", 4, 1, "gate \"u2\" is unsupported", u},
		{"^ in OpenQASM 3", "OPENQASM 3;\nqubit q;\nrx(2^2) q;", 3, 5, "operator \"^\"", u},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { checkReject(t, tc, Limits{}) })
	}
}

// Expanded gates count against MaxOps as the ops they become.
func TestParse2ExpansionCountsAgainstMaxOps(t *testing.T) {
	src := "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\ncu3(1,2,3) q[0],q[1];\n"
	if _, err := ParseWithLimits([]byte(src), Limits{MaxOps: 5}); err != nil {
		t.Fatalf("5 ops within MaxOps 5: %v", err)
	}
	checkReject(t, rejectCase{"cu3 over the limit", src, 4, 1, "more than 4 operations", ErrLimit}, Limits{MaxOps: 4})
}

// Digest is the raw-source rule whatever the version.
func TestDigest2IsRawSource(t *testing.T) {
	if Digest([]byte(bell2)) != Digest([]byte(strings.ReplaceAll(bell2, "\n", "\r\n"))) {
		t.Fatal("CRLF changed the digest")
	}
	if Digest([]byte(bell2)) == Digest([]byte(strings.Replace(bell2, "cx q[0],q[1]", "cx q[0], q[1]", 1))) {
		t.Fatal("a changed space did not change the digest")
	}
}
