package qasm

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

type tokKind int

const (
	tEOF    tokKind = iota
	tIdent          // identifier or keyword; also the constants π, τ and ℇ
	tInt            // decimal integer literal
	tFloat          // decimal literal with a fraction or exponent
	tString         // string literal; text is the unquoted content
	tPhys           // physical qubit such as $3; text is the digits
	tPragma         // #pragma line; text is the rest of the line
	tPunct          // operator or punctuation
)

// token is one lexical token. line and col are 1-based; col counts bytes.
type token struct {
	kind      tokKind
	text      string
	line, col int
}

func (t token) is(punct string) bool { return t.kind == tPunct && t.text == punct }

func (t token) isIdent(name string) bool { return t.kind == tIdent && t.text == name }

// describe names the token for error messages.
func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of input"
	case tString:
		return "string " + quote(t.text)
	case tPhys:
		return "$" + clip(t.text)
	case tPragma:
		return "#pragma"
	default:
		return quote(t.text)
	}
}

// lexer produces tokens one at a time so that memory stays proportional to
// the largest single token, not to the source.
type lexer struct {
	src       []byte
	pos       int
	line      int
	lineStart int
	// v2 refuses block comments (OpenQASM 2.0 has none); block is where
	// the first one was seen, for a header that turns out to be 2.0.
	v2    bool
	block struct{ line, col int }
}

func newLexer(src []byte) *lexer { return &lexer{src: src, line: 1} }

// matchOp returns the multi-character operator at the start of b, longest
// first, or "".
func matchOp(b []byte) string {
	if len(b) >= 3 {
		switch s := string(b[:3]); s {
		case "<<=", ">>=", "**=":
			return s
		}
	}
	if len(b) >= 2 {
		switch s := string(b[:2]); s {
		case "->", "**", "==", "!=", "<=", ">=", "&&", "||", "<<", ">>", "++",
			"+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "~=":
			return s
		}
	}
	return ""
}

const singleOps = ";,()[]{}=+-*/@:<>!&|^~%.?"

func (lx *lexer) errAt(line, col int, format string, args ...any) *Error {
	return newError(line, col, nil, format, args...)
}

func (lx *lexer) col() int { return lx.pos - lx.lineStart + 1 }

func (lx *lexer) newline() {
	lx.line++
	lx.lineStart = lx.pos
}

// skipSpace skips whitespace and comments.
func (lx *lexer) skipSpace() *Error {
	for lx.pos < len(lx.src) {
		c := lx.src[lx.pos]
		switch {
		case c == '\n':
			lx.pos++
			lx.newline()
		case c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f':
			lx.pos++
		case c == '/' && lx.pos+1 < len(lx.src) && lx.src[lx.pos+1] == '/':
			for lx.pos < len(lx.src) && lx.src[lx.pos] != '\n' {
				lx.pos++
			}
		case c == '/' && lx.pos+1 < len(lx.src) && lx.src[lx.pos+1] == '*':
			line, col := lx.line, lx.col()
			if lx.v2 {
				return lx.errAt(line, col, "%s", blockCommentV2)
			}
			if lx.block.line == 0 {
				lx.block.line, lx.block.col = line, col
			}
			lx.pos += 2
			for {
				if lx.pos+1 >= len(lx.src) {
					return lx.errAt(line, col, "unterminated /* comment")
				}
				if lx.src[lx.pos] == '*' && lx.src[lx.pos+1] == '/' {
					lx.pos += 2
					break
				}
				lx.pos++
				if lx.src[lx.pos-1] == '\n' {
					lx.newline()
				}
			}
		default:
			return nil
		}
	}
	return nil
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isIdentChar(c byte) bool { return isIdentStart(c) || isDigit(c) }

// next returns the next token.
func (lx *lexer) next() (token, *Error) {
	if err := lx.skipSpace(); err != nil {
		return token{}, err
	}
	tok := token{line: lx.line, col: lx.col()}
	if lx.pos >= len(lx.src) {
		tok.kind = tEOF
		return tok, nil
	}
	src := lx.src
	c := src[lx.pos]
	start := lx.pos
	switch {
	case isIdentStart(c):
		for lx.pos < len(src) && isIdentChar(src[lx.pos]) {
			lx.pos++
		}
		tok.kind, tok.text = tIdent, string(src[start:lx.pos])
		return tok, nil
	case isDigit(c) || (c == '.' && lx.pos+1 < len(src) && isDigit(src[lx.pos+1])):
		return lx.number(tok)
	case c == '"' || c == '\'':
		lx.pos++
		for lx.pos < len(src) && src[lx.pos] != c && src[lx.pos] != '\n' {
			lx.pos++
		}
		if lx.pos >= len(src) || src[lx.pos] != c {
			return tok, lx.errAt(tok.line, tok.col, "unterminated string literal")
		}
		tok.kind, tok.text = tString, string(src[start+1:lx.pos])
		lx.pos++
		return tok, nil
	case c == '$':
		lx.pos++
		for lx.pos < len(src) && isDigit(src[lx.pos]) {
			lx.pos++
		}
		if lx.pos == start+1 || (lx.pos < len(src) && isIdentChar(src[lx.pos])) {
			return tok, lx.errAt(tok.line, tok.col, "malformed physical qubit; expected $ followed by decimal digits")
		}
		tok.kind, tok.text = tPhys, string(src[start+1:lx.pos])
		return tok, nil
	case c == '#':
		for lx.pos < len(src) && src[lx.pos] != '\n' {
			lx.pos++
		}
		line := string(src[start:lx.pos])
		rest, ok := strings.CutPrefix(line, "#pragma")
		if !ok || (rest != "" && !isSpace(rest[0])) {
			return tok, newError(tok.line, tok.col, ErrUnsupported, "directive %s is unsupported (only #pragma)", quote(firstWord(line)))
		}
		tok.kind, tok.text = tPragma, strings.TrimSpace(rest)
		return tok, nil
	case c >= utf8.RuneSelf:
		r, size := utf8.DecodeRune(src[lx.pos:])
		switch r {
		case 'π', 'τ', 'ℇ':
			lx.pos += size
			if lx.pos < len(src) && isIdentChar(src[lx.pos]) {
				return tok, lx.errAt(tok.line, tok.col, "unexpected identifier after %q", string(r))
			}
			tok.kind, tok.text = tIdent, string(r)
			return tok, nil
		case utf8.RuneError:
			return tok, lx.errAt(tok.line, tok.col, "invalid UTF-8")
		}
		return tok, lx.errAt(tok.line, tok.col, "unexpected character %U %q", r, string(r))
	}
	if op := matchOp(src[lx.pos:]); op != "" {
		lx.pos += len(op)
		tok.kind, tok.text = tPunct, op
		return tok, nil
	}
	if strings.IndexByte(singleOps, c) >= 0 {
		lx.pos++
		tok.kind, tok.text = tPunct, string(c)
		return tok, nil
	}
	return tok, lx.errAt(tok.line, tok.col, "unexpected character %q", rune(c))
}

// number lexes a decimal integer or floating-point literal. Literals with a
// suffix (durations such as 100ns, imaginary numbers such as 2im, hex, octal,
// binary or digit separators) are refused.
func (lx *lexer) number(tok token) (token, *Error) {
	src := lx.src
	start := lx.pos
	digits := func() int {
		n := 0
		for lx.pos < len(src) && isDigit(src[lx.pos]) {
			lx.pos++
			n++
		}
		return n
	}
	intDigits := digits()
	isFloat := false
	if lx.pos < len(src) && src[lx.pos] == '.' {
		lx.pos++
		isFloat = true
		if digits() == 0 && intDigits == 0 {
			return tok, lx.errAt(tok.line, tok.col, "malformed number")
		}
	}
	if lx.pos < len(src) && (src[lx.pos] == 'e' || src[lx.pos] == 'E') {
		save := lx.pos
		lx.pos++
		if lx.pos < len(src) && (src[lx.pos] == '+' || src[lx.pos] == '-') {
			lx.pos++
		}
		if digits() == 0 {
			lx.pos = save // reported below as a suffix
		} else {
			isFloat = true
		}
	}
	if lx.pos < len(src) && (isIdentChar(src[lx.pos]) || src[lx.pos] == '.') {
		end := lx.pos
		for end < len(src) && (isIdentChar(src[end]) || src[end] == '.') {
			end++
		}
		return tok, newError(tok.line, tok.col, ErrUnsupported,
			"literal %s is unsupported (durations, imaginary, hex, octal and binary literals and digit separators are not accepted)",
			quote(string(src[start:end])))
	}
	tok.text = string(src[start:lx.pos])
	tok.kind = tInt
	if isFloat {
		tok.kind = tFloat
	}
	return tok, nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' }

func firstWord(s string) string {
	if i := strings.IndexAny(s, " \t\r\v\f"); i >= 0 {
		return s[:i]
	}
	return s
}

// clip shortens s for an error message.
func clip(s string) string {
	const maxLen = 32
	if len(s) <= maxLen {
		return s
	}
	cut := maxLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// quote returns s, shortened, as a Go string literal, so that control
// characters in hostile input are escaped in messages.
func quote(s string) string { return strconv.Quote(clip(s)) }
