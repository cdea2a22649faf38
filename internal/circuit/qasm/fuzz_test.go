package qasm

import (
	"errors"
	"math"
	"reflect"
	"slices"
	"testing"
)

var fuzzSeeds = []string{
	"OPENQASM 3; qubit[2] q; bit[2] b; h q[0]; cnot q[0], q[1]; b[0] = measure q[0]; b[1] = measure q[1];",
	"OPENQASM 3.0;\nqubit[2] q;\nbit[2] c;\nh q[0];\ncnot q[0], q[1];\nc = measure q;",
	"OPENQASM 3.0;\nbit[2] b;\n#pragma braket verbatim\nbox{\nrx(0.314159) $0;\ncz $0, $1;\n}\nb[0] = measure $0;\n",
	"OPENQASM 3;\ninclude \"stdgates.inc\";\nqreg q[3];\ncreg c[3];\nh q;\nbarrier q;\nmeasure q -> c;",
	"OPENQASM 3;\nqubit[3] q;\nqubit[3] r;\ncx q, r;\nccx q[0], r, q[2];\ncswap q[1], q[0], r[2];",
	"OPENQASM 3;\nqubit q;\nrx(-(1+2)*3/pi**2) q;\nu(sin(π), cos(τ), ln(ℇ)) q;\ncp(1e-3) q, q;",
	"// c\n/* d */ OPENQASM 3; qubit[2] q; bit[2] c = measure q; measure q[0] -> c[1]; measure q;",
	"OPENQASM 3;\nqubit[2] q;\ngate foo a { h a; }\nctrl @ x q[0], q[1];\nfor int i in [0:1] {}",
	"OPENQASM 3;\nqubit q;\nrx(((((((((1))))))))) q;\nh q[0:1];\nh q[{0}];\nrx(1 % 2) q;",
	"OPENQASM 3;\nqubit[64] q;\nh q;\nmeasure q;",
	"OPENQASM 3;\nh $63;\n#pragma braket unitary([[0,1],[1,0]]) $0\n",
	bell2,
	ghz2,
	"OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[3];\ncreg c[3];\nu3(1,2,3) q[0];\nu2(pi/2^2,-pi) q[1];\ncu3(1,2,3) q[0],q[2];\ncu1(0.5) q[1],q[2];\ncrz(-1) q[2],q[0];\nccx q[0],q[1],q[2];\nbarrier q;\nmeasure q -> c;",
	"OPENQASM 2.0;\ninclude \"hqslib1.inc\";\nqreg q[2];\nU1q(0.5*pi,0.25) q[0];\nRz(1) q;\nZZ() q[0],q[1];\nRZZ(0.3) q[1],q[0];\nmeasure q[0] -> c[0];",
	"OPENQASM 2.0;\nqreg q[1];\ncreg c[1];\ngate g a { U(0,0,0) a; }\nopaque o a;\nif(c==1) CX q[0],q[0];\nreset q[0];\n/* x */",
}

// FuzzParse checks that no input makes the parser panic, that every error
// is an *Error, and that every accepted program is internally consistent and
// converts to IonQ and back.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		_ = Digest(src)
		prog, err := Parse(src)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is %T, not *Error", err, err)
			}
			return
		}
		checkProgram(t, prog, Limits{}.withDefaults())
		if prog.Qubits == 0 {
			return
		}
		in, err := prog.ToIonQ()
		if err != nil {
			t.Fatalf("ToIonQ of an accepted program: %v", err)
		}
		text, err := FromIonQ(in)
		if err != nil {
			t.Fatalf("FromIonQ of ToIonQ output: %v", err)
		}
		again, err := ParseWithLimits([]byte(text), Limits{MaxSourceBytes: 1 << 30, MaxOps: 1 << 30})
		if err != nil {
			t.Fatalf("Parse of FromIonQ output: %v", err)
		}
		in2, err := again.ToIonQ()
		if err != nil {
			t.Fatalf("ToIonQ after round trip: %v", err)
		}
		if !reflect.DeepEqual(in, in2) {
			t.Fatalf("round trip changed the circuit")
		}
	})
}

func checkProgram(t *testing.T, p *Program, l Limits) {
	t.Helper()
	if p.Version != "3" && p.Version != "3.0" && p.Version != "2.0" {
		t.Fatalf("version %q", p.Version)
	}
	if p.Qubits < 0 || p.Qubits > l.MaxQubits || p.Clbits < 0 || p.Clbits > l.MaxOps {
		t.Fatalf("qubits %d clbits %d out of bounds", p.Qubits, p.Clbits)
	}
	if len(p.Ops)+len(p.Measures) > l.MaxOps {
		t.Fatalf("%d ops and %d measures exceed MaxOps", len(p.Ops), len(p.Measures))
	}
	for i, op := range p.Ops {
		spec, ok := specOf(op.Name)
		if !ok || len(op.Qubits) != spec.qubits || len(op.Params) != spec.params {
			t.Fatalf("ops[%d] = %+v has the wrong shape", i, op)
		}
		for j, q := range op.Qubits {
			if q < 0 || q >= p.Qubits || slices.Contains(op.Qubits[:j], q) {
				t.Fatalf("ops[%d] = %+v: bad qubit %d", i, op, q)
			}
		}
		for _, v := range op.Params {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("ops[%d] = %+v: non-finite parameter", i, op)
			}
		}
	}
	for i, m := range p.Measures {
		if m.Qubit < 0 || m.Qubit >= p.Qubits || m.Clbit < -1 || m.Clbit >= p.Clbits {
			t.Fatalf("measures[%d] = %+v out of range", i, m)
		}
	}
}

// fuzzVocab is the token vocabulary of FuzzStatements.
var fuzzVocab = []string{
	"h ", "x ", "cx ", "ccx ", "cswap ", "swap ", "rx", "u", "cp", "p", "measure ", "barrier ", "box ", "bit ", "qubit ",
	"qreg ", "creg ", "q", "r", "c", "$0", "$1", "$63", "[", "]", "0", "1", "2", "3", "64", "(", ")", ",", ";", "=", "->",
	"{", "}", "-", "+", "*", "/", "**", "pi", "π", "sin", "1e3", ".5", "#pragma braket verbatim\n", "//c\n", "/*", "*/",
	"reset ", "gate ", "ctrl ", "@", "\n", " ", "include \"stdgates.inc\";", "OPENQASM 3;", ":", "{0}",
}

// FuzzStatements builds programs from grammar tokens, so that the fuzzer
// reaches deep into statement parsing instead of stopping at the header.
func FuzzStatements(f *testing.F) {
	f.Add(true, []byte{0, 17, 23, 25, 24, 33, 1, 17, 23, 26, 24, 31, 17, 23, 25, 24, 33})
	f.Add(false, []byte{12, 23, 26, 24, 19, 33, 5, 30, 43, 39, 44, 31, 21, 33})
	f.Fuzz(func(t *testing.T, declare bool, code []byte) {
		src := []byte("OPENQASM 3;\n")
		if declare {
			src = append(src, "qubit[3] q;\nqubit r;\nbit[3] c;\n"...)
		}
		for _, b := range code {
			src = append(src, fuzzVocab[int(b)%len(fuzzVocab)]...)
		}
		prog, err := Parse(src)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is %T, not *Error", err, err)
			}
			return
		}
		checkProgram(t, prog, Limits{}.withDefaults())
		if prog.Qubits > 0 {
			if _, err := prog.ToIonQ(); err != nil {
				t.Fatalf("ToIonQ of an accepted program: %v", err)
			}
		}
	})
}

// fuzzVocab2 is the token vocabulary of FuzzStatements2 (OpenQASM 2.0).
var fuzzVocab2 = []string{
	"h ", "CX ", "cx ", "U", "u3", "u2", "cu3", "cu1", "crz", "ccx ", "swap ", "U1q", "ZZ ", "RZZ", "Rz", "measure ", "barrier ",
	"qreg ", "creg ", "q", "r", "c", "[", "]", "0", "1", "2", "(", ")", ",", ";", "->", "-", "+", "*", "/", "^", "pi", "sin",
	".5", "1e3", "//c\n", "\n", " ", "include \"qelib1.inc\";", "include \"hqslib1.inc\";", "reset ", "if", "==", "$0", "**", "/*",
}

// FuzzStatements2 is FuzzStatements for OpenQASM 2.0 programs.
func FuzzStatements2(f *testing.F) {
	f.Add(true, []byte{0, 19, 20, 25, 21, 30, 2, 19, 20, 24, 21, 29, 19, 20, 25, 21, 30})
	f.Add(false, []byte{8, 27, 24, 29, 24, 29, 25, 28, 19, 20, 24, 21, 29, 19, 20, 25, 21, 30})
	f.Fuzz(func(t *testing.T, declare bool, code []byte) {
		src := []byte("OPENQASM 2.0;\ninclude \"hqslib1.inc\";\n")
		if declare {
			src = append(src, "qreg q[3];\nqreg r[1];\ncreg c[3];\n"...)
		}
		for _, b := range code {
			src = append(src, fuzzVocab2[int(b)%len(fuzzVocab2)]...)
		}
		prog, err := Parse(src)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is %T, not *Error", err, err)
			}
			return
		}
		checkProgram(t, prog, Limits{}.withDefaults())
		if prog.Qubits > 0 {
			if _, err := prog.ToIonQ(); err != nil {
				t.Fatalf("ToIonQ of an accepted program: %v", err)
			}
		}
	})
}
