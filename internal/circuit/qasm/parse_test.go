package qasm

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

func op(name string, qubits ...int) Op { return Op{Name: name, Qubits: qubits} }

func opp(name string, params []float64, qubits ...int) Op {
	return Op{Name: name, Qubits: qubits, Params: params}
}

func ps(v ...float64) []float64 { return v }

// sameProgram compares two programs, with parameters compared to 1e-12.
func sameProgram(got, want *Program) string {
	if got.Version != want.Version || got.Qubits != want.Qubits || got.Clbits != want.Clbits {
		return fmt.Sprintf("header: got version %q qubits %d clbits %d, want %q %d %d",
			got.Version, got.Qubits, got.Clbits, want.Version, want.Qubits, want.Clbits)
	}
	if len(got.Ops) != len(want.Ops) {
		return fmt.Sprintf("got %d ops %v, want %d %v", len(got.Ops), got.Ops, len(want.Ops), want.Ops)
	}
	for i := range got.Ops {
		g, w := got.Ops[i], want.Ops[i]
		if g.Name != w.Name || !slices.Equal(g.Qubits, w.Qubits) || len(g.Params) != len(w.Params) {
			return fmt.Sprintf("ops[%d] = %v, want %v", i, g, w)
		}
		for j := range g.Params {
			if math.Abs(g.Params[j]-w.Params[j]) > 1e-12 {
				return fmt.Sprintf("ops[%d].Params = %v, want %v", i, g.Params, w.Params)
			}
		}
	}
	if !slices.Equal(got.Measures, want.Measures) {
		return fmt.Sprintf("measures = %v, want %v", got.Measures, want.Measures)
	}
	return ""
}

func TestParseAccepted(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want Program
	}{
		{
			name: "braket bell",
			src:  "OPENQASM 3; qubit[2] q; bit[2] b; h q[0]; cnot q[0], q[1]; b[0] = measure q[0]; b[1] = measure q[1];",
			want: Program{Version: "3", Qubits: 2, Clbits: 2,
				Ops:      []Op{op("h", 0), op("cx", 0, 1)},
				Measures: []Measure{{0, 0}, {1, 1}}},
		},
		{
			name: "braket sdk create-task example",
			src:  "OPENQASM 3.0;\nqubit[2] q;\nbit[2] c;\nh q[0];\ncnot q[0], q[1];\nc = measure q;",
			want: Program{Version: "3.0", Qubits: 2, Clbits: 2,
				Ops:      []Op{op("h", 0), op("cx", 0, 1)},
				Measures: []Measure{{0, 0}, {1, 1}}},
		},
		{
			name: "braket verbatim box with physical qubits",
			src: "OPENQASM 3.0;\nbit[2] b;\n#pragma braket verbatim\nbox{\nrx(0.314159) $0;\nrz(0.5*pi) $3;\ncz $0, $3;\n}\n" +
				"b[0] = measure $0;\nb[1] = measure $3;\n#pragma braket result probability\n",
			want: Program{Version: "3.0", Qubits: 4, Clbits: 2,
				Ops:      []Op{opp("rx", ps(0.314159), 0), opp("rz", ps(math.Pi/2), 3), op("cz", 0, 3)},
				Measures: []Measure{{0, 0}, {3, 1}}},
		},
		{
			name: "legacy qreg creg, broadcast, barrier, arrow measure",
			src:  "OPENQASM 3;\ninclude \"stdgates.inc\";\nqreg q[3];\ncreg c[3];\nh q;\nbarrier q;\nbarrier;\nmeasure q -> c;\nmeasure q[1] -> c[0];",
			want: Program{Version: "3", Qubits: 3, Clbits: 3,
				Ops:      []Op{op("h", 0), op("h", 1), op("h", 2)},
				Measures: []Measure{{0, 0}, {1, 1}, {2, 2}, {1, 0}}},
		},
		{
			name: "registers flatten in declaration order",
			src: "OPENQASM 3.0;\nqubit[2] a;\nqubit b;\nqubit[3] c;\nbit[1] m;\nbit[2] n;\nbit o;\n" +
				"cx a[1], c[2];\nh b;\nn[1] = measure c[0];\nmeasure b;\no = measure a[0];",
			want: Program{Version: "3.0", Qubits: 6, Clbits: 4,
				Ops:      []Op{op("cx", 1, 5), op("h", 2)},
				Measures: []Measure{{3, 2}, {2, -1}, {0, 3}}},
		},
		{
			name: "broadcast pairs registers and repeats single qubits",
			src:  "OPENQASM 3;\nqubit[3] q;\nqubit[3] r;\nqubit w;\ncx q, r;\ncz w, q;\nccx q[0], r, q[2];",
			want: Program{Version: "3", Qubits: 7,
				Ops: []Op{op("cx", 0, 3), op("cx", 1, 4), op("cx", 2, 5),
					op("cz", 6, 0), op("cz", 6, 1), op("cz", 6, 2),
					op("ccx", 0, 3, 2), op("ccx", 0, 4, 2), op("ccx", 0, 5, 2)}},
		},
		{
			name: "aliases map to canonical names",
			src: "OPENQASM 3;\nqubit[3] q;\nphaseshift(0.1) q[0];\nphase(0.2) q[0];\nu1(0.3) q[0];\nsi q[0];\nti q[0];\nv q[0];\nvi q[0];\ni q[0];\n" +
				"cphaseshift(0.4) q[0], q[1];\ncphase(0.5) q[1], q[0];\nccnot q[0], q[1], q[2];\nCX q[2], q[0];\nU(1, 2, 3) q[1];\nu3(4, 5, 6) q[2];",
			want: Program{Version: "3", Qubits: 3,
				Ops: []Op{opp("p", ps(0.1), 0), opp("p", ps(0.2), 0), opp("p", ps(0.3), 0),
					op("sdg", 0), op("tdg", 0), op("sx", 0), op("sxdg", 0), op("id", 0),
					opp("cp", ps(0.4), 0, 1), opp("cp", ps(0.5), 1, 0), op("ccx", 0, 1, 2), op("cx", 2, 0),
					opp("u", ps(1, 2, 3), 1), opp("u", ps(4, 5, 6), 2)}},
		},
		{
			name: "every canonical gate",
			src: "OPENQASM 3;\nqubit[3] q;\nh q[0]; x q[0]; y q[0]; z q[0]; s q[0]; sdg q[0]; t q[0]; tdg q[0]; sx q[0]; sxdg q[0]; id q[0];\n" +
				"rx(1) q[0]; ry(2) q[1]; rz(3) q[2]; p(4) q[0]; u(1,2,3) q[0];\n" +
				"cx q[0], q[1]; cy q[0], q[1]; cz q[0], q[1]; ch q[0], q[1]; swap q[0], q[1];\n" +
				"cp(1) q[0], q[1]; crx(2) q[0], q[1]; cry(3) q[0], q[1]; crz(4) q[0], q[1];\nccx q[0], q[1], q[2]; cswap q[0], q[1], q[2];",
			want: Program{Version: "3", Qubits: 3,
				Ops: []Op{op("h", 0), op("x", 0), op("y", 0), op("z", 0), op("s", 0), op("sdg", 0), op("t", 0), op("tdg", 0),
					op("sx", 0), op("sxdg", 0), op("id", 0),
					opp("rx", ps(1), 0), opp("ry", ps(2), 1), opp("rz", ps(3), 2), opp("p", ps(4), 0), opp("u", ps(1, 2, 3), 0),
					op("cx", 0, 1), op("cy", 0, 1), op("cz", 0, 1), op("ch", 0, 1), op("swap", 0, 1),
					opp("cp", ps(1), 0, 1), opp("crx", ps(2), 0, 1), opp("cry", ps(3), 0, 1), opp("crz", ps(4), 0, 1),
					op("ccx", 0, 1, 2), op("cswap", 0, 1, 2)}},
		},
		{
			name: "comments, pragmas and CRLF",
			src: "// leading comment\r\n/* block\r\n comment */ OPENQASM /* inline */ 3.0; // trailing\r\n" +
				"#pragma anything at all\r\nqubit q; /* x */ h /* y */ q;\r\n   #pragma braket result expectation z(q[0])\r\nmeasure q;\r\n",
			want: Program{Version: "3.0", Qubits: 1,
				Ops:      []Op{op("h", 0)},
				Measures: []Measure{{0, -1}}},
		},
		{
			name: "bit declaration initialised by measure",
			src:  "OPENQASM 3;\nqubit[2] q;\nbit[2] c = measure q;\nbit d = measure q[1];",
			want: Program{Version: "3", Qubits: 2, Clbits: 3,
				Measures: []Measure{{0, 0}, {1, 1}, {1, 2}}},
		},
		{
			name: "measure in box; measure of a whole register unassigned",
			src:  "OPENQASM 3;\nqubit[2] q;\nbit c;\nbox { h q[0]; c = measure q[0]; }\nmeasure q;",
			want: Program{Version: "3", Qubits: 2, Clbits: 1,
				Ops:      []Op{op("h", 0)},
				Measures: []Measure{{0, 0}, {0, -1}, {1, -1}}},
		},
		{
			name: "header only",
			src:  "OPENQASM 3;",
			want: Program{Version: "3"},
		},
		{
			name: "unicode constants",
			src:  "OPENQASM 3;\nqubit q;\nrx(π) q;\nry(τ/4) q;\nrz(ℇ) q;",
			want: Program{Version: "3", Qubits: 1,
				Ops: []Op{opp("rx", ps(math.Pi), 0), opp("ry", ps(math.Pi/2), 0), opp("rz", ps(math.E), 0)}},
		},
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

func TestParseExpressions(t *testing.T) {
	tests := []struct {
		expr string
		want float64
	}{
		{"pi/2", math.Pi / 2},
		{"-pi", -math.Pi},
		{"2*π/3", 2 * math.Pi / 3},
		{"tau", 2 * math.Pi},
		{"euler", math.E},
		{"1e-3", 1e-3},
		{"1.5E+2", 150},
		{".5", 0.5},
		{"5.", 5},
		{"42", 42},
		{"-(1+2)*3", -9},
		{"1-2-3", -4},
		{"12/2/3", 2},
		{"1+2*3", 7},
		{"--1", 1},
		{"+1", 1},
		{"2**3", 8},
		{"2**3**2", 512},
		{"-2**2", -4},
		{"2**-1", 0.5},
		{"sin(pi/2)", 1},
		{"cos(0) + sqrt(4) - ln(exp(1))", 2},
		{"tan(0)", 0},
		{"arccos(1) + arcsin(1)", math.Pi / 2},
		{"arctan(1)*4", math.Pi},
		{"((((1))))", 1},
		{"-0", 0},
		{"1e-400", 0},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			prog, err := Parse([]byte("OPENQASM 3; qubit q; rx(" + tc.expr + ") q;"))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := prog.Ops[0].Params[0]
			if math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("rx(%s) = %v, want %v", tc.expr, got, tc.want)
			}
			if got == 0 && math.Signbit(got) {
				t.Errorf("rx(%s) is negative zero", tc.expr)
			}
		})
	}
}

func TestMeasuredQubits(t *testing.T) {
	prog, err := Parse([]byte("OPENQASM 3; qubit[5] q; bit[2] c; measure q[3]; c[0] = measure q[1]; measure q[3] -> c[1]; measure q[0];"))
	if err != nil {
		t.Fatal(err)
	}
	if got := prog.MeasuredQubits(); !slices.Equal(got, []int{0, 1, 3}) {
		t.Errorf("MeasuredQubits = %v, want [0 1 3]", got)
	}
	none, err := Parse([]byte("OPENQASM 3; qubit[2] q; h q;"))
	if err != nil {
		t.Fatal(err)
	}
	if got := none.MeasuredQubits(); got == nil || len(got) != 0 {
		t.Errorf("MeasuredQubits without measurements = %#v, want empty non-nil", got)
	}
}

func TestDigest(t *testing.T) {
	base := "OPENQASM 3;\nqubit q;\nh q;"
	d := Digest([]byte(base))
	if len(d) != 64 || strings.ToLower(d) != d {
		t.Fatalf("Digest = %q, want 64 lowercase hex digits", d)
	}
	// Pinned (printf 'OPENQASM 3;\nqubit q;\nh q;' | sha256sum), so that
	// agents in other languages can check their implementation against it.
	if want := "bc9d9c55ff373ea26bf0f554ae5fdfdeb1f03d2aac0c15b287fa0c187c255f73"; d != want {
		t.Fatalf("Digest = %s, want %s", d, want)
	}
	same := []string{
		base + "\n",
		base + " \t\r\n\n\v\f",
		strings.ReplaceAll(base, "\n", "\r\n"),
		strings.ReplaceAll(base, "\n", "\r\n") + "\r\n",
	}
	for _, s := range same {
		if got := Digest([]byte(s)); got != d {
			t.Errorf("Digest(%q) = %s, want %s (same after normalisation)", s, got, d)
		}
	}
	different := []string{
		" " + base,                              // leading whitespace counts
		strings.Replace(base, "h q", "h  q", 1), // inner whitespace counts
		strings.Replace(base, "h q", "x q", 1),
		strings.ReplaceAll(base, "\n", "\r"), // lone CR is not a line ending
		base + "\n// comment",
	}
	for _, s := range different {
		if got := Digest([]byte(s)); got == d {
			t.Errorf("Digest(%q) equals the digest of a different program", s)
		}
	}
}
