package qasm

import (
	"math"
	"slices"
	"strconv"
)

// gateCall parses "name[(params)] operand, ...;" and appends one Op per
// broadcast index.
func (p *parser) gateCall() *Error {
	canon, _ := canonicalGate(p.tok.text)
	spec, _ := specOf(canon)
	return p.applyGate(spec, 1, func(qs []int, params []float64) []Op {
		return []Op{{Name: canon, Qubits: qs, Params: slices.Clone(params)}}
	})
}

// applyGate parses the parameters and operands of the gate named by the
// current token, of shape spec, and appends expand's ops (size of them)
// for each broadcast index.
func (p *parser) applyGate(spec gateSpec, size int, expand func(qs []int, params []float64) []Op) *Error {
	name := p.tok
	if err := p.advance(); err != nil {
		return err
	}
	switch {
	case p.tok.is("["):
		return p.errAt(p.tok, ErrUnsupported, "gate duration designators are unsupported")
	case p.tok.is("@"):
		return p.errAt(p.tok, ErrUnsupported, "gate modifiers are unsupported")
	}
	var params []float64
	if p.tok.is("(") {
		if err := p.advance(); err != nil {
			return err
		}
		for !(p.v2 && len(params) == 0 && p.tok.is(")")) { // OpenQASM 2.0 allows "g() q;"
			if len(params) == spec.params {
				return p.errAt(name, nil, "gate %s takes %s, got more", quote(name.text), plural(spec.params, "parameter"))
			}
			v, err := p.param()
			if err != nil {
				return err
			}
			params = append(params, v)
			if !p.tok.is(",") {
				break
			}
			if err := p.advance(); err != nil {
				return err
			}
		}
		if err := p.expect(")"); err != nil {
			return err
		}
	}
	if len(params) != spec.params {
		return p.errAt(name, nil, "gate %s takes %s, got %d", quote(name.text), plural(spec.params, "parameter"), len(params))
	}
	var ops []operand
	for {
		if len(ops) == spec.qubits {
			return p.errAt(name, nil, "gate %s takes %s, got more", quote(name.text), plural(spec.qubits, "qubit operand"))
		}
		o, err := p.operand(true)
		if err != nil {
			return err
		}
		ops = append(ops, o)
		if !p.tok.is(",") {
			break
		}
		if err := p.advance(); err != nil {
			return err
		}
	}
	if len(ops) != spec.qubits {
		return p.errAt(name, nil, "gate %s takes %s, got %d", quote(name.text), plural(spec.qubits, "qubit operand"), len(ops))
	}
	if err := p.expect(";"); err != nil {
		return err
	}
	n, err := p.broadcastSize(ops)
	if err != nil {
		return err
	}
	if err := p.room(name, n*size); err != nil {
		return err
	}
	for i := range n {
		qs := make([]int, len(ops))
		for j, o := range ops {
			qs[j] = o.at(i)
			if slices.Contains(qs[:j], qs[j]) {
				return p.errAt(o.tok, nil, "gate %s applied to qubit %d twice", quote(name.text), qs[j])
			}
		}
		expanded := expand(qs, params)
		for _, o := range expanded {
			for j, v := range o.Params {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					return p.errAt(name, nil, "gate %s: a parameter does not evaluate to a finite number", quote(name.text))
				}
				if v == 0 {
					o.Params[j] = 0 // no negative zero
				}
			}
		}
		p.prog.Ops = append(p.prog.Ops, expanded...)
	}
	return nil
}

// broadcastSize returns how many times a gate applies: 1 when every operand
// is a single qubit, otherwise the common size of the register operands
// (single-qubit operands are repeated).
func (p *parser) broadcastSize(ops []operand) (int, *Error) {
	n := 1
	var first *operand
	for i := range ops {
		o := &ops[i]
		if o.single {
			continue
		}
		if first == nil {
			first, n = o, o.size
			continue
		}
		if o.size != n {
			return 0, p.errAt(o.tok, nil, "cannot broadcast over registers of different sizes (%s has %d, %s has %d)",
				quote(first.tok.text), n, quote(o.tok.text), o.size)
		}
	}
	return n, nil
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// measureStmt parses "measure q;" and "measure q -> c;".
func (p *parser) measureStmt() *Error {
	kw := p.tok
	if err := p.advance(); err != nil {
		return err
	}
	q, err := p.operand(true)
	if err != nil {
		return err
	}
	if p.v2 && !p.tok.is("->") {
		return p.errAt(p.tok, nil, "expected \"->\" and a bit operand: OpenQASM 2.0 measures with \"measure q -> c;\"")
	}
	var c *operand
	if p.tok.is("->") {
		if err := p.advance(); err != nil {
			return err
		}
		b, err := p.operand(false)
		if err != nil {
			return err
		}
		c = &b
	}
	if err := p.expect(";"); err != nil {
		return err
	}
	return p.addMeasures(kw, q, c)
}

// assignment parses "c = measure q;" where c is a bit operand.
func (p *parser) assignment() *Error {
	c, err := p.operand(false)
	if err != nil {
		return err
	}
	eq := p.tok
	if isCompoundAssign(eq) {
		return p.errAt(eq, ErrUnsupported, "classical arithmetic (%s) is unsupported", quote(eq.text))
	}
	if err := p.expect("="); err != nil {
		return err
	}
	if !p.tok.isIdent("measure") {
		return p.errAt(p.tok, ErrUnsupported, "classical assignment is unsupported (only \"c = measure q;\")")
	}
	if err := p.advance(); err != nil {
		return err
	}
	q, err := p.operand(true)
	if err != nil {
		return err
	}
	if err := p.expect(";"); err != nil {
		return err
	}
	return p.addMeasures(eq, q, &c)
}

// addMeasures records the measurement of q into c (nil: unassigned). A
// register is measured element by element into a bit register of the same
// size.
func (p *parser) addMeasures(at token, q operand, c *operand) *Error {
	n := q.count()
	if c != nil && c.count() != n {
		return p.errAt(at, nil, "cannot assign the measurement of %d qubit(s) to %d bit(s)", n, c.count())
	}
	if err := p.room(at, n); err != nil {
		return err
	}
	for i := range n {
		m := Measure{Qubit: q.at(i), Clbit: -1}
		if c != nil {
			m.Clbit = c.at(i)
		}
		p.prog.Measures = append(p.prog.Measures, m)
	}
	return nil
}

// barrier parses "barrier;" or "barrier q, r[0];" and ignores it after
// checking its operands.
func (p *parser) barrier() *Error {
	if err := p.advance(); err != nil {
		return err
	}
	if p.v2 && p.tok.is(";") {
		return p.errAt(p.tok, nil, "an OpenQASM 2.0 barrier needs operands")
	}
	for !p.tok.is(";") {
		if _, err := p.operand(true); err != nil {
			return err
		}
		if !p.tok.is(",") {
			break
		}
		if err := p.advance(); err != nil {
			return err
		}
	}
	return p.expect(";")
}

// box parses "box { ... }" (Braket's verbatim blocks) as a plain grouping of
// quantum instructions.
func (p *parser) box() *Error {
	kw := p.tok
	if err := p.advance(); err != nil {
		return err
	}
	if p.tok.is("[") {
		return p.errAt(p.tok, ErrUnsupported, "box durations are unsupported")
	}
	if p.tok.kind == tIdent {
		return p.errAt(p.tok, ErrUnsupported, "box labels are unsupported")
	}
	if err := p.expect("{"); err != nil {
		return err
	}
	for !p.tok.is("}") {
		if p.tok.kind == tEOF {
			return p.errAt(kw, nil, "box is not closed with '}'")
		}
		if err := p.statement(true); err != nil {
			return err
		}
	}
	return p.advance()
}
