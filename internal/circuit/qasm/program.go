package qasm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// Program is a parsed OpenQASM 3 or OpenQASM 2.0 program of the supported
// subset.
type Program struct {
	// Version is the version written in the header: "3", "3.0" or "2.0".
	// Callers that take only OpenQASM 3 (Braket, IBM Runtime) check it.
	Version string
	// Qubits is the number of qubits: the sum of all declared qubit
	// registers, flattened in declaration order (a register q declared after
	// 3 qubits has q[0] = 3), or, for programs using physical qubits, one
	// more than the largest $n used.
	Qubits int
	// Clbits is the sum of all declared bit registers, flattened the same way.
	Clbits int
	// Ops are the gate applications in program order, with broadcasts over
	// whole registers expanded into one Op per qubit (or per index tuple).
	Ops []Op
	// Measures are the measurements in program order.
	Measures []Measure
}

// Op is one gate application.
type Op struct {
	// Name is the canonical lower-case stdgates name: h x y z s sdg t tdg sx
	// sxdg id rx ry rz p cx cy cz ch cp crx cry crz swap ccx cswap u. Aliases
	// (Braket's cnot, phaseshift, si, ti, v, vi, i, cphaseshift, ccnot and
	// stdgates' CX, U, u1, u3, phase, cphase) are mapped to these; the
	// OpenQASM 2.0 gates too, some to several ops (see the package
	// documentation).
	Name string
	// Qubits are flattened qubit indices, controls first then targets, in the
	// order written in the source.
	Qubits []int
	// Params are the evaluated gate parameters in radians.
	Params []float64
}

// Measure is one single-qubit measurement.
type Measure struct {
	Qubit int
	// Clbit is the flattened index of the bit receiving the result, or -1
	// when the result is not assigned ("measure q[0];").
	Clbit int
}

// Default limits applied by [Parse] and to zero fields of [Limits].
const (
	DefaultMaxSourceBytes = 1 << 20
	DefaultMaxQubits      = 64
	DefaultMaxOps         = 100000
)

// MaxExprDepth is the deepest nesting of parentheses, function calls, unary
// operators and powers accepted in a parameter expression.
const MaxExprDepth = 64

// Limits bound the resources a parse may use. A field that is zero or
// negative takes its default.
type Limits struct {
	// MaxSourceBytes bounds the size of the source (default 1 MiB).
	MaxSourceBytes int
	// MaxQubits bounds Program.Qubits (default 64).
	MaxQubits int
	// MaxOps bounds len(Ops)+len(Measures) after broadcast expansion
	// (default 100000). It also bounds Program.Clbits.
	MaxOps int
}

func (l Limits) withDefaults() Limits {
	if l.MaxSourceBytes <= 0 {
		l.MaxSourceBytes = DefaultMaxSourceBytes
	}
	if l.MaxQubits <= 0 {
		l.MaxQubits = DefaultMaxQubits
	}
	if l.MaxOps <= 0 {
		l.MaxOps = DefaultMaxOps
	}
	return l
}

// ErrUnsupported is wrapped by an [*Error] for a valid OpenQASM 3 construct
// outside the supported subset (gate definitions, loops, reset, modifiers…),
// and by the errors of [Program.ToIonQ] and [FromIonQ] for gates that have no
// exact equivalent on the other side.
var ErrUnsupported = errors.New("unsupported")

// ErrLimit is wrapped by an [*Error] when a [Limits] bound is exceeded.
var ErrLimit = errors.New("limit exceeded")

// Error is a parse error at a position in the source. Line and Col are
// 1-based (Col counts bytes); both are 0 when the error concerns the source
// as a whole, such as its size. Use errors.Is with [ErrUnsupported] or
// [ErrLimit] to tell those classes apart from syntax and semantic errors.
type Error struct {
	Line, Col int
	Msg       string
	kind      error // ErrUnsupported, ErrLimit or nil
}

// Error returns "line L:C: msg".
func (e *Error) Error() string {
	return "line " + strconv.Itoa(e.Line) + ":" + strconv.Itoa(e.Col) + ": " + e.Msg
}

// Unwrap returns ErrUnsupported, ErrLimit or nil.
func (e *Error) Unwrap() error { return e.kind }

func newError(line, col int, kind error, format string, args ...any) *Error {
	return &Error{Line: line, Col: col, Msg: fmt.Sprintf(format, args...), kind: kind}
}

// Parse parses src with the default [Limits]. Every error is an [*Error].
func Parse(src []byte) (*Program, error) {
	return ParseWithLimits(src, Limits{})
}

// ParseWithLimits parses src within l. Every error is an [*Error]; the
// first problem found is reported.
func ParseWithLimits(src []byte, l Limits) (*Program, error) {
	l = l.withDefaults()
	if len(src) > l.MaxSourceBytes {
		return nil, newError(0, 0, ErrLimit, "source is %d bytes, more than the limit of %d", len(src), l.MaxSourceBytes)
	}
	if err := checkText(src); err != nil {
		return nil, err
	}
	p := newParser(src, l)
	prog, err := p.parse()
	if err != nil {
		return nil, err
	}
	return prog, nil
}

// Digest returns the lowercase hexadecimal SHA-256 of src after two
// normalisations, so that line-ending conversions by editors and transports
// do not change it: every CR LF pair is replaced by LF (one left-to-right
// pass), and then trailing ASCII whitespace (space, tab, LF, CR, VT, FF) at
// the end of the whole text is removed. Nothing else is changed: leading
// whitespace, whitespace inside lines, comments and lone CRs all count.
// Digest does not parse src; it is defined for any bytes.
func Digest(src []byte) string {
	norm := bytes.ReplaceAll(src, []byte("\r\n"), []byte("\n"))
	norm = bytes.TrimRight(norm, " \t\n\r\v\f")
	sum := sha256.Sum256(norm)
	return hex.EncodeToString(sum[:])
}

// MeasuredQubits returns the distinct qubits that are measured, in ascending
// order; it is empty (not nil) when the program measures nothing.
func (p *Program) MeasuredQubits() []int {
	if p == nil {
		return []int{}
	}
	qs := make([]int, 0, len(p.Measures))
	for _, m := range p.Measures {
		qs = append(qs, m.Qubit)
	}
	slices.Sort(qs)
	return slices.Compact(qs)
}
