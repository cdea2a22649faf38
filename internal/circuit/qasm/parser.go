package qasm

import (
	"strconv"
	"strings"
)

// register is a declared qubit or bit register, flattened at offset.
type register struct {
	quantum      bool
	offset, size int
	single       bool // declared without a size: "qubit q;" or "bit c;"
	line, col    int
}

// operand is a resolved qubit or bit operand: one element (single) or a
// whole register of size elements starting at base.
type operand struct {
	tok        token
	base, size int
	single     bool
}

func (o operand) at(i int) int {
	if o.single {
		return o.base
	}
	return o.base + i
}

// count is the number of elements the operand denotes.
func (o operand) count() int {
	if o.single {
		return 1
	}
	return o.size
}

type parser struct {
	lx      *lexer
	tok     token
	peeked  *token
	lim     Limits
	prog    Program
	regs    map[string]*register
	physTok *token // first physical qubit seen
	maxPhys int
	// v2 is set by an "OPENQASM 2.0;" header: the rest is parsed as
	// OpenQASM 2.0 (see qasm2.go).
	v2 bool
	// libs are the OpenQASM 2.0 gate libraries included so far.
	libs gateLibs
}

func newParser(src []byte, l Limits) *parser {
	return &parser{lx: newLexer(src), lim: l, regs: make(map[string]*register)}
}

func (p *parser) errAt(t token, kind error, format string, args ...any) *Error {
	return newError(t.line, t.col, kind, format, args...)
}

// advance moves to the next token.
func (p *parser) advance() *Error {
	if p.peeked != nil {
		p.tok, p.peeked = *p.peeked, nil
		return nil
	}
	t, err := p.lx.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

// peek returns the token after the current one without consuming it.
func (p *parser) peek() (token, *Error) {
	if p.peeked == nil {
		t, err := p.lx.next()
		if err != nil {
			return token{}, err
		}
		p.peeked = &t
	}
	return *p.peeked, nil
}

// expect consumes the punctuation punct or fails.
func (p *parser) expect(punct string) *Error {
	if !p.tok.is(punct) {
		return p.errAt(p.tok, nil, "expected %s, found %s", quote(punct), p.tok.describe())
	}
	return p.advance()
}

func (p *parser) parse() (*Program, *Error) {
	if err := p.advance(); err != nil {
		return nil, err
	}
	if err := p.header(); err != nil {
		return nil, err
	}
	for p.tok.kind != tEOF {
		if err := p.statement(false); err != nil {
			return nil, err
		}
	}
	if p.physTok != nil {
		p.prog.Qubits = p.maxPhys + 1
	}
	prog := p.prog
	return &prog, nil
}

func (p *parser) header() *Error {
	if !p.tok.isIdent("OPENQASM") {
		return p.errAt(p.tok, nil, "a program must start with the header \"OPENQASM 3;\" (or \"OPENQASM 2.0;\") (found %s)", p.tok.describe())
	}
	if err := p.advance(); err != nil {
		return err
	}
	v := p.tok
	switch {
	case (v.kind == tInt && v.text == "3") || (v.kind == tFloat && v.text == "3.0"):
	case v.kind == tFloat && v.text == "2.0":
		if err := p.startV2(); err != nil {
			return err
		}
	case v.kind == tInt || v.kind == tFloat:
		return p.errAt(v, ErrUnsupported, "OpenQASM version %s is unsupported (only 3, 3.0 and 2.0)", quote(v.text))
	default:
		return p.errAt(v, nil, "expected a version number after OPENQASM, found %s", v.describe())
	}
	p.prog.Version = v.text
	if err := p.advance(); err != nil {
		return err
	}
	return p.expect(";")
}

// statement parses one statement. Inside a box only quantum instructions
// (gates, barrier, measurements, pragmas) are allowed.
func (p *parser) statement(inBox bool) *Error {
	t := p.tok
	switch t.kind {
	case tPragma:
		if p.v2 {
			return p.errAt(t, nil, "#pragma is not OpenQASM 2.0")
		}
		return p.pragma()
	case tIdent:
		if p.v2 {
			return p.statement2(t)
		}
	case tPunct:
		switch t.text {
		case "@":
			return p.errAt(t, ErrUnsupported, "annotations (@...) are unsupported")
		case "{":
			return p.errAt(t, ErrUnsupported, "scope blocks are unsupported")
		}
		return p.errAt(t, nil, "unexpected %s at the start of a statement", t.describe())
	default:
		return p.errAt(t, nil, "unexpected %s at the start of a statement", t.describe())
	}
	switch t.text {
	case "OPENQASM":
		return p.errAt(t, nil, "the OPENQASM header must appear once, as the first statement")
	case "include", "qubit", "qreg", "bit", "creg", "box":
		if inBox {
			return p.errAt(t, ErrUnsupported, "%s inside box is unsupported (only gates, barrier and measurements)", quote(t.text))
		}
	}
	switch t.text {
	case "include":
		return p.include()
	case "qubit", "qreg", "bit", "creg":
		return p.declaration()
	case "measure":
		return p.measureStmt()
	case "barrier":
		return p.barrier()
	case "box":
		return p.box()
	}
	if msg := unsupportedKeyword(t.text); msg != "" {
		return p.errAt(t, ErrUnsupported, "%s", msg)
	}
	if r := p.regs[t.text]; r != nil {
		if !r.quantum {
			return p.assignment()
		}
		return p.errAt(t, nil, "unexpected qubit register %s at the start of a statement", quote(t.text))
	}
	if _, ok := canonicalGate(t.text); ok {
		return p.gateCall()
	}
	if knownUnsupportedGate(t.text) {
		return p.errAt(t, ErrUnsupported, "gate %s is unsupported", quote(t.text))
	}
	next, err := p.peek()
	if err != nil {
		return err
	}
	if next.is("=") || next.is("[") || isCompoundAssign(next) {
		return p.errAt(t, nil, "undeclared name %s", quote(t.text))
	}
	return p.errAt(t, nil, "unknown gate %s", quote(t.text))
}

func isCompoundAssign(t token) bool {
	if t.kind != tPunct {
		return false
	}
	switch t.text {
	case "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "~=", "<<=", ">>=", "**=", "++":
		return true
	}
	return false
}

// pragma skips a #pragma line, refusing the Braket pragmas that change what
// the circuit does.
func (p *parser) pragma() *Error {
	f := strings.Fields(p.tok.text)
	if len(f) >= 2 && f[0] == "braket" {
		for _, kw := range []string{"unitary", "noise"} {
			if strings.HasPrefix(f[1], kw) {
				return p.errAt(p.tok, ErrUnsupported, "#pragma braket %s is unsupported (it changes the circuit)", kw)
			}
		}
	}
	return p.advance()
}

func (p *parser) include() *Error {
	if err := p.advance(); err != nil {
		return err
	}
	t := p.tok
	if t.kind != tString {
		return p.errAt(t, nil, "expected a file name string after include, found %s", t.describe())
	}
	if t.text != "stdgates.inc" {
		return p.errAt(t, ErrUnsupported, "include %s is unsupported (only \"stdgates.inc\")", quote(t.text))
	}
	if err := p.advance(); err != nil {
		return err
	}
	return p.expect(";")
}

// sizeLit parses a register size: a positive integer literal no larger than
// max (what remains of total).
func (p *parser) sizeLit(max, total int, what string) (int, *Error) {
	t := p.tok
	if t.kind == tIdent || (t.kind == tPunct && t.text != "]") {
		return 0, p.errAt(t, ErrUnsupported, "register sizes other than integer literals are unsupported")
	}
	if t.kind != tInt {
		return 0, p.errAt(t, nil, "expected a register size, found %s", t.describe())
	}
	n, err := strconv.Atoi(t.text)
	if err != nil || n > max {
		return 0, p.errAt(t, ErrLimit, "register of %s %s exceeds the limit of %d %s in total", clip(t.text), what, total, what)
	}
	if n < 1 {
		return 0, p.errAt(t, nil, "register size must be at least 1")
	}
	return n, p.advance()
}

// declaration parses qubit, qreg, bit and creg declarations, including
// "bit[n] c = measure q;".
func (p *parser) declaration() *Error {
	kw := p.tok
	legacy := kw.text == "qreg" || kw.text == "creg"
	quantum := kw.text == "qubit" || kw.text == "qreg"
	what, total, room := "bits", p.lim.MaxOps, p.lim.MaxOps-p.prog.Clbits
	if quantum {
		what, total, room = "qubits", p.lim.MaxQubits, p.lim.MaxQubits-p.prog.Qubits
		if p.physTok != nil {
			return p.errAt(kw, nil, "declared qubits cannot be mixed with physical qubits ($%s used at line %d:%d)",
				clip(p.physTok.text), p.physTok.line, p.physTok.col)
		}
	}
	if err := p.advance(); err != nil {
		return err
	}
	size, single := 1, true
	if !legacy && p.tok.is("[") {
		if err := p.advance(); err != nil {
			return err
		}
		n, err := p.sizeLit(room, total, what)
		if err != nil {
			return err
		}
		if err := p.expect("]"); err != nil {
			return err
		}
		size, single = n, false
	}
	name := p.tok
	if name.kind != tIdent {
		return p.errAt(name, nil, "expected a register name, found %s", name.describe())
	}
	if reservedName(name.text) || (p.v2 && reservedName2(name.text)) {
		return p.errAt(name, nil, "%s is a reserved name and cannot name a register", quote(name.text))
	}
	if p.v2 && (name.text[0] < 'a' || name.text[0] > 'z') {
		return p.errAt(name, nil, "OpenQASM 2.0 names start with a lower-case letter (%s)", quote(name.text))
	}
	if prev := p.regs[name.text]; prev != nil {
		return p.errAt(name, nil, "duplicate declaration of %s (first declared at line %d:%d)", quote(name.text), prev.line, prev.col)
	}
	if err := p.advance(); err != nil {
		return err
	}
	if legacy {
		if err := p.expect("["); err != nil {
			return err
		}
		n, err := p.sizeLit(room, total, what)
		if err != nil {
			return err
		}
		if err := p.expect("]"); err != nil {
			return err
		}
		size, single = n, false
	}
	if size > room {
		return p.errAt(name, ErrLimit, "declaring %s exceeds the limit of %d %s in total", quote(name.text), total, what)
	}
	r := &register{quantum: quantum, size: size, single: single, line: name.line, col: name.col}
	if quantum {
		r.offset = p.prog.Qubits
		p.prog.Qubits += size
	} else {
		r.offset = p.prog.Clbits
		p.prog.Clbits += size
	}
	p.regs[name.text] = r
	if p.tok.is("=") {
		eq := p.tok
		if quantum || legacy {
			return p.errAt(eq, nil, "%s declarations cannot have an initialiser", kw.text)
		}
		if err := p.advance(); err != nil {
			return err
		}
		if !p.tok.isIdent("measure") {
			return p.errAt(p.tok, ErrUnsupported, "classical initialisers are unsupported (only \"bit c = measure q;\")")
		}
		if err := p.advance(); err != nil {
			return err
		}
		q, err := p.operand(true)
		if err != nil {
			return err
		}
		c := operand{tok: name, base: r.offset, size: size, single: single}
		if err := p.addMeasures(eq, q, &c); err != nil {
			return err
		}
	}
	return p.expect(";")
}

// operand parses a qubit (quantum) or bit operand: name, name[i] or $n.
func (p *parser) operand(quantum bool) (operand, *Error) {
	t := p.tok
	switch t.kind {
	case tPhys:
		if p.v2 {
			return operand{}, p.errAt(t, nil, "physical qubits ($%s) are not OpenQASM 2.0; declare a qreg", clip(t.text))
		}
		return p.physical()
	case tIdent:
	default:
		what := "a bit"
		if quantum {
			what = "a qubit"
		}
		return operand{}, p.errAt(t, nil, "expected %s operand, found %s", what, t.describe())
	}
	if isConstant(t.text) || isFunction(t.text) {
		return operand{}, p.errAt(t, nil, "expected an operand, found %s", quote(t.text))
	}
	r := p.regs[t.text]
	if r == nil {
		return operand{}, p.errAt(t, nil, "undeclared name %s", quote(t.text))
	}
	if r.quantum != quantum {
		if quantum {
			return operand{}, p.errAt(t, nil, "%s is a bit register where a qubit was expected", quote(t.text))
		}
		return operand{}, p.errAt(t, nil, "%s is a qubit register where a bit was expected", quote(t.text))
	}
	if err := p.advance(); err != nil {
		return operand{}, err
	}
	if !p.tok.is("[") {
		return operand{tok: t, base: r.offset, size: r.size, single: r.single}, nil
	}
	if r.single {
		return operand{}, p.errAt(p.tok, nil, "%s was declared without a size and cannot be indexed", quote(t.text))
	}
	if err := p.advance(); err != nil {
		return operand{}, err
	}
	it := p.tok
	switch {
	case it.kind == tInt:
	case it.is("-"):
		return operand{}, p.errAt(it, ErrUnsupported, "negative indices are unsupported")
	case it.is("{"):
		return operand{}, p.errAt(it, ErrUnsupported, "index sets are unsupported")
	case it.is(":"):
		return operand{}, p.errAt(it, ErrUnsupported, "index ranges are unsupported")
	case it.kind == tIdent || it.is("("):
		return operand{}, p.errAt(it, ErrUnsupported, "indices other than integer literals are unsupported")
	default:
		return operand{}, p.errAt(it, nil, "expected an index, found %s", it.describe())
	}
	idx, perr := strconv.Atoi(it.text)
	if perr != nil || idx >= r.size {
		return operand{}, p.errAt(it, nil, "index %s out of range for %s of size %d", clip(it.text), quote(t.text), r.size)
	}
	if err := p.advance(); err != nil {
		return operand{}, err
	}
	switch {
	case p.tok.is(":"):
		return operand{}, p.errAt(p.tok, ErrUnsupported, "index ranges are unsupported")
	case p.tok.is(","):
		return operand{}, p.errAt(p.tok, ErrUnsupported, "multi-dimensional indices are unsupported")
	case p.tok.kind == tPunct && p.tok.text != "]":
		return operand{}, p.errAt(p.tok, ErrUnsupported, "index expressions are unsupported")
	}
	if err := p.expect("]"); err != nil {
		return operand{}, err
	}
	if p.tok.is("[") {
		return operand{}, p.errAt(p.tok, ErrUnsupported, "multi-dimensional indexing is unsupported")
	}
	return operand{tok: t, base: r.offset + idx, size: 1, single: true}, nil
}

// physical parses a physical qubit $n.
func (p *parser) physical() (operand, *Error) {
	t := p.tok
	if p.prog.Qubits > 0 && p.physTok == nil {
		return operand{}, p.errAt(t, nil, "physical qubit $%s cannot be mixed with declared qubits", clip(t.text))
	}
	n, err := strconv.Atoi(t.text)
	if err != nil || n >= p.lim.MaxQubits {
		return operand{}, p.errAt(t, ErrLimit, "physical qubit $%s exceeds the limit of %d qubits", clip(t.text), p.lim.MaxQubits)
	}
	if p.physTok == nil {
		p.physTok = &t
	}
	p.maxPhys = max(p.maxPhys, n)
	if err := p.advance(); err != nil {
		return operand{}, err
	}
	if p.tok.is("[") {
		return operand{}, p.errAt(p.tok, nil, "physical qubits cannot be indexed")
	}
	return operand{tok: t, base: n, size: 1, single: true}, nil
}

// room reports an error if n more operations would exceed MaxOps.
func (p *parser) room(at token, n int) *Error {
	if n > p.lim.MaxOps-len(p.prog.Ops)-len(p.prog.Measures) {
		return p.errAt(at, ErrLimit, "program has more than %d operations", p.lim.MaxOps)
	}
	return nil
}
