package qasm

import (
	"math"
	"strconv"
)

// Parameter expressions are evaluated while parsing, with this grammar:
//
//	expr    = term { ("+" | "-") term }
//	term    = unary { ("*" | "/") unary }
//	unary   = ("-" | "+") unary | power
//	power   = primary [ "**" unary ]
//	primary = number | constant | function "(" expr ")" | "(" expr ")"
//
// Recursion (parentheses, calls, unary signs, powers) is limited to
// MaxExprDepth levels, so hostile input cannot exhaust the stack.

func isConstant(name string) bool {
	switch name {
	case "pi", "π", "tau", "τ", "euler", "ℇ":
		return true
	}
	return false
}

func constantValue(name string) float64 {
	switch name {
	case "pi", "π":
		return math.Pi
	case "tau", "τ":
		return 2 * math.Pi
	default: // euler, ℇ
		return math.E
	}
}

func isFunction(name string) bool {
	switch name {
	case "sin", "cos", "tan", "exp", "ln", "sqrt", "arcsin", "arccos", "arctan":
		return true
	}
	return false
}

func applyFunction(name string, x float64) float64 {
	switch name {
	case "sin":
		return math.Sin(x)
	case "cos":
		return math.Cos(x)
	case "tan":
		return math.Tan(x)
	case "exp":
		return math.Exp(x)
	case "ln":
		return math.Log(x)
	case "sqrt":
		return math.Sqrt(x)
	case "arcsin":
		return math.Asin(x)
	case "arccos":
		return math.Acos(x)
	default: // arctan
		return math.Atan(x)
	}
}

// param parses one gate parameter and checks that it is finite.
func (p *parser) param() (float64, *Error) {
	start := p.tok
	v, err := p.expr(0)
	if err != nil {
		return 0, err
	}
	if p.tok.kind == tPunct && isClassicalOp(p.tok.text) {
		return 0, p.errAt(p.tok, ErrUnsupported, "operator %s is unsupported in expressions", quote(p.tok.text))
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, p.errAt(start, nil, "parameter does not evaluate to a finite number")
	}
	if v == 0 {
		v = 0 // no negative zero
	}
	return v, nil
}

func (p *parser) enter(depth int) *Error {
	if depth >= MaxExprDepth {
		return p.errAt(p.tok, ErrLimit, "expression nested deeper than %d levels", MaxExprDepth)
	}
	return nil
}

func (p *parser) expr(depth int) (float64, *Error) {
	v, err := p.term(depth)
	if err != nil {
		return 0, err
	}
	for p.tok.is("+") || p.tok.is("-") {
		op := p.tok.text
		if err := p.advance(); err != nil {
			return 0, err
		}
		w, err := p.term(depth)
		if err != nil {
			return 0, err
		}
		if op == "+" {
			v += w
		} else {
			v -= w
		}
	}
	return v, nil
}

func (p *parser) term(depth int) (float64, *Error) {
	v, err := p.unary(depth)
	if err != nil {
		return 0, err
	}
	for p.tok.is("*") || p.tok.is("/") {
		op := p.tok.text
		if err := p.advance(); err != nil {
			return 0, err
		}
		w, err := p.unary(depth)
		if err != nil {
			return 0, err
		}
		if op == "*" {
			v *= w
		} else {
			v /= w
		}
	}
	return v, nil
}

func (p *parser) unary(depth int) (float64, *Error) {
	if err := p.enter(depth); err != nil {
		return 0, err
	}
	if p.tok.is("-") || p.tok.is("+") {
		neg := p.tok.text == "-"
		if err := p.advance(); err != nil {
			return 0, err
		}
		v, err := p.unary(depth + 1)
		if neg {
			v = -v
		}
		return v, err
	}
	v, err := p.primary(depth)
	if err != nil {
		return 0, err
	}
	pow := "**"
	if p.v2 {
		if p.tok.is("**") {
			return 0, p.errAt(p.tok, nil, "\"**\" is OpenQASM 3; OpenQASM 2.0 writes powers with \"^\"")
		}
		pow = "^"
	}
	if p.tok.is(pow) {
		if err := p.advance(); err != nil {
			return 0, err
		}
		w, err := p.unary(depth + 1)
		if err != nil {
			return 0, err
		}
		v = math.Pow(v, w)
	}
	return v, nil
}

func (p *parser) primary(depth int) (float64, *Error) {
	t := p.tok
	switch {
	case t.kind == tInt || t.kind == tFloat:
		v, perr := strconv.ParseFloat(t.text, 64)
		if perr != nil && !isRangeErr(perr) {
			return 0, p.errAt(t, nil, "malformed number %s", quote(t.text))
		}
		return v, p.advance() // an overflow to ±Inf is refused by param
	case t.is("("):
		if err := p.advance(); err != nil {
			return 0, err
		}
		v, err := p.expr(depth + 1)
		if err != nil {
			return 0, err
		}
		return v, p.expect(")")
	case t.kind == tIdent && isConstant(t.text):
		if p.v2 && t.text != "pi" {
			return 0, p.errAt(t, nil, "%s is not OpenQASM 2.0, whose only constant is pi", quote(t.text))
		}
		return constantValue(t.text), p.advance()
	case t.kind == tIdent && isFunction(t.text):
		if p.v2 && !isFunction2(t.text) {
			return 0, p.errAt(t, nil, "%s is not an OpenQASM 2.0 function (sin, cos, tan, exp, ln, sqrt)", quote(t.text))
		}
		if err := p.advance(); err != nil {
			return 0, err
		}
		if err := p.expect("("); err != nil {
			return 0, err
		}
		x, err := p.expr(depth + 1)
		if err != nil {
			return 0, err
		}
		return applyFunction(t.text, x), p.expect(")")
	case t.kind == tIdent:
		return 0, p.errAt(t, ErrUnsupported, "identifier %s in expression is unsupported (only the constants pi, tau and euler; variables and inputs are not accepted)", quote(t.text))
	case t.kind == tPunct && isClassicalOp(t.text):
		return 0, p.errAt(t, ErrUnsupported, "operator %s is unsupported in expressions", quote(t.text))
	}
	return 0, p.errAt(t, nil, "expected an expression, found %s", t.describe())
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// isClassicalOp reports operators of OpenQASM 3's classical expressions that
// the subset does not evaluate.
func isClassicalOp(op string) bool {
	switch op {
	case "%", "<<", ">>", "&", "|", "^", "~", "!", "&&", "||", "==", "!=", "<", ">", "<=", ">=":
		return true
	}
	return false
}
