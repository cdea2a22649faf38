package quil

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Program is a parsed Quil program of the supported subset.
type Program struct {
	// Qubits are the distinct physical qubits used (by gates or
	// measurements), ascending.
	Qubits []int
	// Memory are the declared BIT regions in declaration order.
	Memory []Region
	// Ops are the gates in program order.
	Ops []Op
	// Measures are the measurements in program order.
	Measures []Measure
}

// Region is a declared BIT memory region.
type Region struct {
	Name string
	Size int
}

// Op is one gate: Name is the lower-case gate name (i h x y z s t rx ry rz
// cnot cz), Qubits physical qubits (control first), Params in radians.
type Op struct {
	Name   string
	Qubits []int
	Params []float64
}

// Measure is one measurement of a physical qubit into Region[Index]
// (Region "" and Index -1 when the result is discarded).
type Measure struct {
	Qubit  int
	Region string
	Index  int
}

// MaxQubitIndex is the largest physical qubit index accepted.
const MaxQubitIndex = 1023

// Default limits.
const (
	DefaultMaxSourceBytes = 1 << 20
	DefaultMaxQubits      = 64
	DefaultMaxOps         = 100000
	// MaxRegionSize bounds one DECLARE.
	MaxRegionSize = 1 << 16
	maxExprDepth  = 64
)

// Limits bound a parse; zero fields take their defaults.
type Limits struct {
	MaxSourceBytes int // default 1 MiB
	MaxQubits      int // distinct qubits used; default 64
	MaxOps         int // gates plus measurements; default 100000
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

// ErrUnsupported is wrapped by an [*Error] for valid Quil outside the
// subset; ErrLimit for an exceeded [Limits] bound.
var (
	ErrUnsupported = errors.New("unsupported")
	ErrLimit       = errors.New("limit exceeded")
)

// Error is a parse error at a 1-based line and column (0, 0 for the
// source as a whole).
type Error struct {
	Line, Col int
	Msg       string
	kind      error
}

// Error returns "line L:C: msg".
func (e *Error) Error() string {
	return "line " + strconv.Itoa(e.Line) + ":" + strconv.Itoa(e.Col) + ": " + e.Msg
}

// Unwrap returns ErrUnsupported, ErrLimit or nil.
func (e *Error) Unwrap() error { return e.kind }

func errAt(line, col int, kind error, format string, args ...any) *Error {
	return &Error{Line: line, Col: col, Msg: fmt.Sprintf(format, args...), kind: kind}
}

// Digest returns the lowercase hex SHA-256 of src after replacing every
// CR LF by LF and trimming trailing ASCII whitespace, as qasm.Digest does.
// It is defined for any bytes.
func Digest(src []byte) string {
	norm := bytes.ReplaceAll(src, []byte("\r\n"), []byte("\n"))
	norm = bytes.TrimRight(norm, " \t\n\r\v\f")
	sum := sha256.Sum256(norm)
	return hex.EncodeToString(sum[:])
}

// Parse parses src with the default limits.
func Parse(src []byte) (*Program, error) { return ParseWithLimits(src, Limits{}) }

// ParseWithLimits parses src within l. Every error is an [*Error].
func ParseWithLimits(src []byte, l Limits) (*Program, error) {
	l = l.withDefaults()
	if len(src) > l.MaxSourceBytes {
		return nil, errAt(0, 0, ErrLimit, "source is %d bytes, more than the limit of %d", len(src), l.MaxSourceBytes)
	}
	line, col := 1, 1
	for _, c := range src {
		if c >= 0x7f || c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			return nil, errAt(line, col, nil, "byte 0x%02x is not allowed: the source must be printable ASCII", c)
		}
		if c == '\n' {
			line, col = line+1, 0
		}
		col++
	}
	p := &parser{l: l, prog: &Program{}, regions: map[string]int{}, measured: map[int]bool{}, used: map[int]bool{}}
	for i, text := range strings.Split(string(src), "\n") {
		if err := p.line(i+1, strings.TrimSuffix(text, "\r")); err != nil {
			return nil, err
		}
	}
	for q := range p.used {
		p.prog.Qubits = append(p.prog.Qubits, q)
	}
	slices.Sort(p.prog.Qubits)
	return p.prog, nil
}

type parser struct {
	l        Limits
	prog     *Program
	regions  map[string]int // name → size
	measured map[int]bool
	used     map[int]bool
}

// token is a word with its 1-based column.
type token struct {
	s   string
	col int
}

// fields splits a line into whitespace-separated words, keeping a
// parenthesised parameter list attached to the word it follows.
func fields(text string) []token {
	var out []token
	depth, start := 0, -1
	for i := 0; i <= len(text); i++ {
		end := i == len(text)
		var c byte
		if !end {
			c = text[i]
		}
		switch {
		case !end && c == '(':
			depth++
		case !end && c == ')':
			depth--
		}
		sep := end || (depth <= 0 && (c == ' ' || c == '\t'))
		if sep {
			if start >= 0 {
				out = append(out, token{text[start:i], start + 1})
				start = -1
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	return out
}

func (p *parser) line(n int, text string) error {
	if i := strings.IndexByte(text, '#'); i >= 0 {
		text = text[:i]
	}
	toks := fields(text)
	if len(toks) == 0 {
		return nil
	}
	head := toks[0]
	name, params, hasParams := strings.Cut(head.s, "(")
	switch name {
	case "DECLARE":
		return p.declare(n, toks)
	case "MEASURE":
		return p.measure(n, toks)
	}
	arity, nparams, ok := gateShape(name)
	if !ok {
		if isKnownUnsupported(name) {
			return errAt(n, head.col, ErrUnsupported, "%s is not supported", name)
		}
		return errAt(n, head.col, ErrUnsupported, "unknown or unsupported instruction %q", truncate(name))
	}
	var vals []float64
	if hasParams {
		if !strings.HasSuffix(params, ")") {
			return errAt(n, head.col, nil, "%s: unbalanced parentheses", name)
		}
		for _, e := range splitParams(strings.TrimSuffix(params, ")")) {
			v, err := evalExpr(e)
			if err != nil {
				return errAt(n, head.col, nil, "%s: parameter: %s", name, err)
			}
			vals = append(vals, v)
		}
	}
	if len(vals) != nparams {
		return errAt(n, head.col, nil, "%s takes %d parameter(s), got %d", name, nparams, len(vals))
	}
	if len(toks)-1 != arity {
		return errAt(n, head.col, nil, "%s takes %d qubit(s), got %d", name, arity, len(toks)-1)
	}
	qs := make([]int, 0, arity)
	for _, t := range toks[1:] {
		q, err := p.qubit(n, t)
		if err != nil {
			return err
		}
		if slices.Contains(qs, q) {
			return errAt(n, t.col, nil, "%s: qubit %d repeated", name, q)
		}
		if p.measured[q] {
			return errAt(n, t.col, ErrUnsupported, "%s on qubit %d after it was measured", name, q)
		}
		qs = append(qs, q)
	}
	if err := p.count(n, head.col); err != nil {
		return err
	}
	for _, q := range qs {
		p.used[q] = true
	}
	if len(p.used) > p.l.MaxQubits {
		return errAt(n, head.col, ErrLimit, "program uses more than %d qubits", p.l.MaxQubits)
	}
	p.prog.Ops = append(p.prog.Ops, Op{Name: strings.ToLower(name), Qubits: qs, Params: vals})
	return nil
}

func (p *parser) count(n, col int) error {
	if len(p.prog.Ops)+len(p.prog.Measures) >= p.l.MaxOps {
		return errAt(n, col, ErrLimit, "more than %d operations", p.l.MaxOps)
	}
	return nil
}

func gateShape(name string) (arity, params int, ok bool) {
	switch name {
	case "I", "H", "X", "Y", "Z", "S", "T":
		return 1, 0, true
	case "RX", "RY", "RZ":
		return 1, 1, true
	case "CNOT", "CZ":
		return 2, 0, true
	}
	return 0, 0, false
}

var keywords = []string{"PRAGMA", "RESET", "DEFGATE", "DEFCIRCUIT", "DEFFRAME", "DEFCAL", "DEFWAVEFORM", "LABEL", "JUMP", "JUMP-WHEN",
	"JUMP-UNLESS", "HALT", "WAIT", "NOP", "MOVE", "EXCHANGE", "LOAD", "STORE", "CONVERT", "ADD", "SUB", "MUL", "DIV", "AND", "IOR", "XOR",
	"NOT", "NEG", "EQ", "GT", "GE", "LT", "LE", "DAGGER", "CONTROLLED", "FORKED", "PULSE", "CAPTURE", "RAW-CAPTURE", "DELAY", "FENCE",
	"INCLUDE", "SHARING", "OFFSET", "SET-FREQUENCY", "SET-PHASE", "SHIFT-PHASE", "SET-SCALE", "SHIFT-FREQUENCY", "SWAP-PHASES",
	"DECLARE", "MEASURE", "BIT", "OCTET", "INTEGER", "REAL", "pi"}

func isKnownUnsupported(name string) bool { return slices.Contains(keywords, name) }

func (p *parser) qubit(n int, t token) (int, error) {
	s := t.s
	if s == "" || len(s) > 5 || strings.Trim(s, "0123456789") != "" {
		return 0, errAt(n, t.col, ErrUnsupported, "qubit %q: want a physical qubit index (qubit variables are not supported)", truncate(s))
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, errAt(n, t.col, nil, "qubit %q: no leading zeros", s)
	}
	q, _ := strconv.Atoi(s)
	if q > MaxQubitIndex {
		return 0, errAt(n, t.col, ErrLimit, "qubit %d is above %d", q, MaxQubitIndex)
	}
	return q, nil
}

func validName(s string) bool {
	if s == "" || len(s) > 64 || isKnownUnsupported(s) {
		return false
	}
	if _, _, ok := gateShape(s); ok {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		if !letter && (i == 0 || !(c >= '0' && c <= '9' || c == '-')) {
			return false
		}
	}
	return s[len(s)-1] != '-'
}

func (p *parser) declare(n int, toks []token) error {
	if len(toks) != 3 {
		if len(toks) > 3 && toks[3].s == "SHARING" {
			return errAt(n, toks[3].col, ErrUnsupported, "DECLARE ... SHARING is not supported")
		}
		return errAt(n, toks[0].col, nil, "DECLARE takes a name and a type: DECLARE ro BIT[2]")
	}
	name, typ := toks[1], toks[2]
	if !validName(name.s) {
		return errAt(n, name.col, nil, "DECLARE: %q is not a valid memory name", truncate(name.s))
	}
	if _, dup := p.regions[name.s]; dup {
		return errAt(n, name.col, nil, "DECLARE: %s is declared twice", name.s)
	}
	base, size, err := indexed(typ.s)
	if err != nil {
		return errAt(n, typ.col, nil, "DECLARE %s: %s", name.s, err)
	}
	if base != "BIT" {
		return errAt(n, typ.col, ErrUnsupported, "DECLARE %s: memory type %q is not supported (only BIT)", name.s, truncate(base))
	}
	if size == -1 {
		size = 1
	}
	if size < 1 || size > MaxRegionSize {
		return errAt(n, typ.col, ErrLimit, "DECLARE %s: size must be 1 to %d", name.s, MaxRegionSize)
	}
	p.regions[name.s] = size
	p.prog.Memory = append(p.prog.Memory, Region{Name: name.s, Size: size})
	return nil
}

// indexed splits "name[i]" (i = -1 when there is no index).
func indexed(s string) (string, int, error) {
	base, rest, ok := strings.Cut(s, "[")
	if !ok {
		return s, -1, nil
	}
	num, ok := strings.CutSuffix(rest, "]")
	if !ok || num == "" || len(num) > 6 || strings.Trim(num, "0123456789") != "" || len(num) > 1 && num[0] == '0' {
		return "", 0, fmt.Errorf("%q: want name[non-negative integer]", truncate(s))
	}
	i, _ := strconv.Atoi(num)
	return base, i, nil
}

func (p *parser) measure(n int, toks []token) error {
	if len(toks) != 2 && len(toks) != 3 {
		return errAt(n, toks[0].col, nil, "MEASURE takes a qubit and optionally a memory reference: MEASURE 0 ro[0]")
	}
	q, err := p.qubit(n, toks[1])
	if err != nil {
		return err
	}
	if p.measured[q] {
		return errAt(n, toks[1].col, ErrUnsupported, "qubit %d is measured twice", q)
	}
	m := Measure{Qubit: q, Index: -1}
	if len(toks) == 3 {
		base, i, err := indexed(toks[2].s)
		if err != nil {
			return errAt(n, toks[2].col, nil, "MEASURE: %s", err)
		}
		size, ok := p.regions[base]
		if !ok {
			return errAt(n, toks[2].col, nil, "MEASURE: memory %q is not declared", truncate(base))
		}
		if i == -1 {
			i = 0
		}
		if i >= size {
			return errAt(n, toks[2].col, nil, "MEASURE: %s[%d] is outside %s (BIT[%d])", base, i, base, size)
		}
		for _, o := range p.prog.Measures {
			if o.Region == base && o.Index == i {
				return errAt(n, toks[2].col, ErrUnsupported, "MEASURE: %s[%d] is written twice", base, i)
			}
		}
		m.Region, m.Index = base, i
	}
	if err := p.count(n, toks[0].col); err != nil {
		return err
	}
	p.used[q] = true
	if len(p.used) > p.l.MaxQubits {
		return errAt(n, toks[0].col, ErrLimit, "program uses more than %d qubits", p.l.MaxQubits)
	}
	p.measured[q] = true
	p.prog.Measures = append(p.prog.Measures, m)
	return nil
}

func splitParams(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// evalExpr evaluates a parameter expression.
func evalExpr(s string) (float64, error) {
	e := &expr{s: s}
	v, err := e.sum(0)
	if err != nil {
		return 0, err
	}
	e.space()
	if e.i != len(e.s) {
		return 0, fmt.Errorf("unexpected %q", truncate(e.s[e.i:]))
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, errors.New("value is not finite")
	}
	return v, nil
}

type expr struct {
	s string
	i int
}

func (e *expr) space() {
	for e.i < len(e.s) && (e.s[e.i] == ' ' || e.s[e.i] == '\t') {
		e.i++
	}
}

func (e *expr) sum(depth int) (float64, error) {
	v, err := e.product(depth)
	if err != nil {
		return 0, err
	}
	for {
		e.space()
		if e.i >= len(e.s) || e.s[e.i] != '+' && e.s[e.i] != '-' {
			return v, nil
		}
		op := e.s[e.i]
		e.i++
		w, err := e.product(depth)
		if err != nil {
			return 0, err
		}
		if op == '+' {
			v += w
		} else {
			v -= w
		}
	}
}

func (e *expr) product(depth int) (float64, error) {
	v, err := e.unary(depth)
	if err != nil {
		return 0, err
	}
	for {
		e.space()
		if e.i >= len(e.s) || e.s[e.i] != '*' && e.s[e.i] != '/' {
			return v, nil
		}
		op := e.s[e.i]
		e.i++
		w, err := e.unary(depth)
		if err != nil {
			return 0, err
		}
		if op == '*' {
			v *= w
		} else {
			if w == 0 {
				return 0, errors.New("division by zero")
			}
			v /= w
		}
	}
}

func (e *expr) unary(depth int) (float64, error) {
	if depth > maxExprDepth {
		return 0, errors.New("expression nested too deeply")
	}
	e.space()
	if e.i >= len(e.s) {
		return 0, errors.New("expression ends early")
	}
	switch c := e.s[e.i]; {
	case c == '-':
		e.i++
		v, err := e.unary(depth + 1)
		return -v, err
	case c == '(':
		e.i++
		v, err := e.sum(depth + 1)
		if err != nil {
			return 0, err
		}
		e.space()
		if e.i >= len(e.s) || e.s[e.i] != ')' {
			return 0, errors.New("missing )")
		}
		e.i++
		return v, nil
	case strings.HasPrefix(e.s[e.i:], "pi"):
		e.i += 2
		return math.Pi, nil
	case c >= '0' && c <= '9' || c == '.':
		start := e.i
		for e.i < len(e.s) && (e.s[e.i] >= '0' && e.s[e.i] <= '9' || e.s[e.i] == '.') {
			e.i++
		}
		if e.i < len(e.s) && (e.s[e.i] == 'e' || e.s[e.i] == 'E') {
			e.i++
			if e.i < len(e.s) && (e.s[e.i] == '+' || e.s[e.i] == '-') {
				e.i++
			}
			for e.i < len(e.s) && e.s[e.i] >= '0' && e.s[e.i] <= '9' {
				e.i++
			}
		}
		v, err := strconv.ParseFloat(e.s[start:e.i], 64)
		if err != nil {
			return 0, fmt.Errorf("number %q", truncate(e.s[start:e.i]))
		}
		return v, nil
	}
	return 0, fmt.Errorf("unexpected %q", truncate(e.s[e.i:]))
}
