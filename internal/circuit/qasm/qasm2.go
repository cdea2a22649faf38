package qasm

import (
	"math"
	"slices"
)

// This file holds what differs for programs with the header
// "OPENQASM 2.0;": the statements, the include files and the gates of
// OpenQASM 2.0 (qelib1.inc, and Quantinuum's hqslib1.inc), which map to the
// canonical ops of the OpenQASM 3 subset.

// gateLibs records the OpenQASM 2.0 include files seen so far.
type gateLibs struct{ qelib1, hqslib1 bool }

// gateLib is where an OpenQASM 2.0 gate is defined.
type gateLib int

const (
	libBuiltin gateLib = iota // U and CX: always available
	libQelib1                 // qelib1.inc (hqslib1.inc provides these too)
	libHqslib1                // hqslib1.inc only (Quantinuum's native gates)
)

func (l gateLibs) has(g gateLib) bool {
	switch g {
	case libQelib1:
		return l.qelib1 || l.hqslib1
	case libHqslib1:
		return l.hqslib1
	}
	return true
}

func (g gateLib) file() string {
	if g == libHqslib1 {
		return `"hqslib1.inc"`
	}
	return `"qelib1.inc" (or "hqslib1.inc")`
}

// gate2 is an OpenQASM 2.0 gate: its library, shape, and the canonical ops
// (size of them) it stands for.
type gate2 struct {
	lib    gateLib
	spec   gateSpec
	size   int
	expand func(q []int, th []float64) []Op
}

// same maps a gate to one canonical op with the same operands and
// parameters.
func same(lib gateLib, canon string) gate2 {
	spec, _ := specOf(canon)
	return gate2{lib: lib, spec: spec, size: 1, expand: func(q []int, th []float64) []Op {
		return []Op{{Name: canon, Qubits: q, Params: slices.Clone(th)}}
	}}
}

// gateOf2 returns the OpenQASM 2.0 gate called name. The mappings are
// exact up to a global phase of the whole program (the gates are not
// controlled, so each gate's own global phase is the program's):
//
//   - U and CX (built in), u3 and u are u; u1 and p are p; cu1 and cp are
//     cp; u2(φ,λ) is u(π/2,φ,λ);
//   - cu3(θ,φ,λ) c,t is the body qelib1.inc gives it in the OpenQASM 2.0
//     specification (arXiv:1707.03429): p((λ-φ)/2) t; cx c,t;
//     u(-θ/2,0,-(φ+λ)/2) t; cx c,t; u(θ/2,φ,0) t — the controlled
//     Rz(φ)·Ry(θ)·Rz(λ), without the phase on the control that Qiskit's
//     later qelib1.inc adds (Quantinuum's hqslib1.inc agrees with the
//     specification);
//   - hqslib1.inc: Rz is rz; U1q(θ,φ) = exp(-iθ/2·(cos φ·X + sin φ·Y)) is
//     u(θ, φ-π/2, π/2-φ); RZZ(θ) = exp(-iθ/2·Z⊗Z) is cx a,b; rz(θ) b;
//     cx a,b; ZZ is RZZ(π/2).
func gateOf2(name string) (gate2, bool) {
	switch name {
	case "U":
		return same(libBuiltin, "u"), true
	case "CX":
		return same(libBuiltin, "cx"), true
	case "u3", "u":
		return same(libQelib1, "u"), true
	case "u1", "p":
		return same(libQelib1, "p"), true
	case "cu1", "cp":
		return same(libQelib1, "cp"), true
	case "cx", "id", "x", "y", "z", "h", "s", "sdg", "t", "tdg", "sx", "sxdg",
		"rx", "ry", "rz", "cz", "cy", "ch", "crx", "cry", "crz", "swap", "ccx", "cswap":
		return same(libQelib1, name), true
	case "u2":
		return gate2{lib: libQelib1, spec: gateSpec{1, 2}, size: 1, expand: func(q []int, th []float64) []Op {
			return []Op{{Name: "u", Qubits: q, Params: []float64{math.Pi / 2, th[0], th[1]}}}
		}}, true
	case "cu3":
		return gate2{lib: libQelib1, spec: gateSpec{2, 3}, size: 5, expand: func(q []int, th []float64) []Op {
			theta, phi, lambda := th[0], th[1], th[2]
			c, t := q[0], q[1]
			return []Op{
				{Name: "p", Qubits: []int{t}, Params: []float64{lambda/2 - phi/2}},
				{Name: "cx", Qubits: []int{c, t}},
				{Name: "u", Qubits: []int{t}, Params: []float64{-theta / 2, 0, -(phi/2 + lambda/2)}},
				{Name: "cx", Qubits: []int{c, t}},
				{Name: "u", Qubits: []int{t}, Params: []float64{theta / 2, phi, 0}},
			}
		}}, true
	case "Rz":
		return same(libHqslib1, "rz"), true
	case "U1q":
		return gate2{lib: libHqslib1, spec: gateSpec{1, 2}, size: 1, expand: func(q []int, th []float64) []Op {
			return []Op{{Name: "u", Qubits: q, Params: []float64{th[0], th[1] - math.Pi/2, math.Pi/2 - th[1]}}}
		}}, true
	case "RZZ":
		return gate2{lib: libHqslib1, spec: gateSpec{2, 1}, size: 3, expand: func(q []int, th []float64) []Op {
			return zz(q, th[0])
		}}, true
	case "ZZ":
		return gate2{lib: libHqslib1, spec: gateSpec{2, 0}, size: 3, expand: func(q []int, _ []float64) []Op {
			return zz(q, math.Pi/2)
		}}, true
	}
	return gate2{}, false
}

// zz is exp(-iθ/2·Z⊗Z) on q[0], q[1].
func zz(q []int, theta float64) []Op {
	return []Op{
		{Name: "cx", Qubits: []int{q[0], q[1]}},
		{Name: "rz", Qubits: []int{q[1]}, Params: []float64{theta}},
		{Name: "cx", Qubits: []int{q[0], q[1]}},
	}
}

// knownUnsupportedGate2 reports gates of Qiskit's qelib1.inc and of
// hqslib1.inc outside the subset, so that they are refused as unsupported
// rather than unknown.
func knownUnsupportedGate2(name string) bool {
	switch name {
	case "u0", "cu", "csx", "rxx", "rzz", "rccx", "rc3x", "c3x", "c3sqrtx", "c4x",
		"Rxxyyzz", "Rxxyyzz_zphase":
		return true
	}
	return false
}

// reservedName2 reports the names OpenQASM 2.0 programs cannot give a
// register besides those of reservedName.
func reservedName2(name string) bool {
	_, ok := gateOf2(name)
	return ok || knownUnsupportedGate2(name)
}

// isFunction2 reports the functions of OpenQASM 2.0 expressions.
func isFunction2(name string) bool {
	switch name {
	case "sin", "cos", "tan", "exp", "ln", "sqrt":
		return true
	}
	return false
}

// startV2 switches the parser to OpenQASM 2.0, after its header's version.
// OpenQASM 2.0 has only // comments: a block comment before the version
// is refused here, later ones by the lexer.
func (p *parser) startV2() *Error {
	p.v2 = true
	p.lx.v2 = true
	if b := p.lx.block; b.line != 0 {
		return newError(b.line, b.col, nil, "%s", blockCommentV2)
	}
	return nil
}

const blockCommentV2 = "block comments (/* */) are not OpenQASM 2.0, which has only // comments"

// statement2 parses one OpenQASM 2.0 statement that starts with the
// identifier t.
func (p *parser) statement2(t token) *Error {
	switch t.text {
	case "OPENQASM":
		return p.errAt(t, nil, "the OPENQASM header must appear once, as the first statement")
	case "include":
		return p.include2()
	case "qreg", "creg":
		return p.declaration()
	case "qubit", "bit":
		return p.errAt(t, nil, "%s declarations are OpenQASM 3; OpenQASM 2.0 declares qreg and creg", quote(t.text))
	case "measure":
		return p.measureStmt()
	case "barrier":
		return p.barrier()
	case "gate":
		return p.errAt(t, ErrUnsupported, "gate definitions are unsupported (only the gates of qelib1.inc and hqslib1.inc)")
	case "opaque":
		return p.errAt(t, ErrUnsupported, "opaque gate declarations are unsupported")
	case "if":
		return p.errAt(t, ErrUnsupported, "conditionals (if) are unsupported")
	case "reset":
		return p.errAt(t, ErrUnsupported, "reset is unsupported")
	}
	if p.regs[t.text] != nil {
		return p.errAt(t, nil, "OpenQASM 2.0 has no assignments; a statement cannot start with register %s (measure with \"measure q -> c;\")", quote(t.text))
	}
	g, ok := gateOf2(t.text)
	switch {
	case !ok && knownUnsupportedGate2(t.text):
		return p.errAt(t, ErrUnsupported, "gate %s is unsupported", quote(t.text))
	case !ok:
		return p.errAt(t, nil, "unknown gate %s (OpenQASM 2.0 programs use U, CX and the gates of qelib1.inc or hqslib1.inc)", quote(t.text))
	case !p.libs.has(g.lib):
		return p.errAt(t, nil, "gate %s needs include %s before it", quote(t.text), g.lib.file())
	}
	return p.applyGate(g.spec, g.size, g.expand)
}

// include2 parses an OpenQASM 2.0 include of qelib1.inc or hqslib1.inc.
func (p *parser) include2() *Error {
	if err := p.advance(); err != nil {
		return err
	}
	t := p.tok
	switch {
	case t.kind != tString:
		return p.errAt(t, nil, "expected a file name string after include, found %s", t.describe())
	case t.text == "qelib1.inc":
		p.libs.qelib1 = true
	case t.text == "hqslib1.inc":
		p.libs.hqslib1 = true
	case t.text == "stdgates.inc":
		return p.errAt(t, nil, "include \"stdgates.inc\" is OpenQASM 3; OpenQASM 2.0 programs include \"qelib1.inc\" or \"hqslib1.inc\"")
	default:
		return p.errAt(t, ErrUnsupported, "include %s is unsupported (only \"qelib1.inc\" and \"hqslib1.inc\")", quote(t.text))
	}
	if err := p.advance(); err != nil {
		return err
	}
	return p.expect(";")
}
