package circuit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of arrays and objects that [Canonical]
// accepts.
const MaxDepth = 64

// ErrNotCanonicalizable is wrapped by every error returned by [Canonical] and
// [Digest].
var ErrNotCanonicalizable = errors.New("circuit: JSON cannot be canonicalized")

// Canonical returns the canonical form of the JSON value in raw, as defined in
// the package documentation.
func Canonical(raw []byte) ([]byte, error) {
	v, err := parseStrict(raw)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Grow(len(raw))
	if err := v.write(&buf); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotCanonicalizable, err)
	}
	return buf.Bytes(), nil
}

// Digest returns the lowercase hexadecimal SHA-256 of [Canonical](raw).
func Digest(raw []byte) (string, error) {
	c, err := Canonical(raw)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(c)
	return hex.EncodeToString(sum[:]), nil
}

// jvalue is a parsed JSON value: nil (null), bool, float64, string, []jvalue
// or jobject.
type jvalue struct {
	v any
}

type member struct {
	key string
	val jvalue
}

type jobject []member

// get returns the member named key (exact match) and whether it exists.
func (o jobject) get(key string) (jvalue, bool) {
	for _, m := range o {
		if m.key == key {
			return m.val, true
		}
	}
	return jvalue{}, false
}

func canonErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrNotCanonicalizable, fmt.Sprintf(format, args...))
}

// parseStrict parses raw as exactly one JSON value with the strict rules of
// the canonical form: valid UTF-8, paired surrogates, no duplicate keys,
// finite numbers, bounded depth, no trailing data.
func parseStrict(raw []byte) (jvalue, error) {
	if !utf8.Valid(raw) {
		return jvalue{}, canonErr("invalid UTF-8")
	}
	p := &parser{data: raw}
	p.skipWS()
	v, err := p.value(0)
	if err != nil {
		return jvalue{}, err
	}
	p.skipWS()
	if p.pos != len(p.data) {
		return jvalue{}, canonErr("trailing data after JSON value at offset %d", p.pos)
	}
	return v, nil
}

// parser is a small RFC 8259 recursive-descent parser. encoding/json is not
// used because it keeps the last of duplicate keys, maps unpaired surrogates
// to U+FFFD silently and is slow token by token.
type parser struct {
	data []byte
	pos  int
}

func (p *parser) errf(format string, args ...any) error {
	return canonErr("offset %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *parser) skipWS() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) value(depth int) (jvalue, error) {
	if p.pos >= len(p.data) {
		return jvalue{}, p.errf("unexpected end of JSON input")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		s, err := p.str()
		return jvalue{s}, err
	case c == 't':
		return jvalue{true}, p.literal("true")
	case c == 'f':
		return jvalue{false}, p.literal("false")
	case c == 'n':
		return jvalue{nil}, p.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	default:
		return jvalue{}, p.errf("invalid character %q looking for a value", c)
	}
}

func (p *parser) literal(lit string) error {
	if !bytes.HasPrefix(p.data[p.pos:], []byte(lit)) {
		return p.errf("invalid literal")
	}
	p.pos += len(lit)
	return nil
}

func (p *parser) object(depth int) (jvalue, error) {
	if depth >= MaxDepth {
		return jvalue{}, p.errf("nesting deeper than %d levels", MaxDepth)
	}
	p.pos++ // '{'
	obj := jobject{}
	var seen map[string]struct{}
	p.skipWS()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return jvalue{obj}, nil
	}
	for {
		p.skipWS()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return jvalue{}, p.errf("expected string object key")
		}
		key, err := p.str()
		if err != nil {
			return jvalue{}, err
		}
		dup := false
		if seen != nil {
			_, dup = seen[key]
			seen[key] = struct{}{}
		} else {
			for _, m := range obj {
				dup = dup || m.key == key
			}
			if len(obj) >= 16 { // switch to a set for large objects
				seen = make(map[string]struct{}, 2*len(obj))
				for _, m := range obj {
					seen[m.key] = struct{}{}
				}
				seen[key] = struct{}{}
			}
		}
		if dup {
			return jvalue{}, canonErr("duplicate object key %q", truncate(key))
		}
		p.skipWS()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return jvalue{}, p.errf("expected ':' after object key")
		}
		p.pos++
		p.skipWS()
		val, err := p.value(depth + 1)
		if err != nil {
			return jvalue{}, err
		}
		obj = append(obj, member{key: key, val: val})
		p.skipWS()
		if p.pos >= len(p.data) {
			return jvalue{}, p.errf("unexpected end of JSON input in object")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return jvalue{obj}, nil
		default:
			return jvalue{}, p.errf("expected ',' or '}' in object")
		}
	}
}

func (p *parser) array(depth int) (jvalue, error) {
	if depth >= MaxDepth {
		return jvalue{}, p.errf("nesting deeper than %d levels", MaxDepth)
	}
	p.pos++ // '['
	arr := []jvalue{}
	p.skipWS()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return jvalue{arr}, nil
	}
	for {
		p.skipWS()
		val, err := p.value(depth + 1)
		if err != nil {
			return jvalue{}, err
		}
		arr = append(arr, val)
		p.skipWS()
		if p.pos >= len(p.data) {
			return jvalue{}, p.errf("unexpected end of JSON input in array")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return jvalue{arr}, nil
		default:
			return jvalue{}, p.errf("expected ',' or ']' in array")
		}
	}
}

func (p *parser) number() (jvalue, error) {
	start := p.pos
	d := p.data
	if p.pos < len(d) && d[p.pos] == '-' {
		p.pos++
	}
	digits := func() int {
		n := 0
		for p.pos < len(d) && d[p.pos] >= '0' && d[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	switch {
	case p.pos < len(d) && d[p.pos] == '0':
		p.pos++
	case digits() == 0:
		return jvalue{}, p.errf("invalid number")
	}
	if p.pos < len(d) && d[p.pos] == '.' {
		p.pos++
		if digits() == 0 {
			return jvalue{}, p.errf("invalid number: no digits after '.'")
		}
	}
	if p.pos < len(d) && (d[p.pos] == 'e' || d[p.pos] == 'E') {
		p.pos++
		if p.pos < len(d) && (d[p.pos] == '+' || d[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return jvalue{}, p.errf("invalid number: no digits in exponent")
		}
	}
	lit := string(d[start:p.pos])
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return jvalue{}, canonErr("number %s is not a finite binary64 value", truncate(lit))
	}
	if f == 0 {
		f = 0 // normalise negative zero
	}
	return jvalue{f}, nil
}

// str parses a string literal starting at the opening quote.
func (p *parser) str() (string, error) {
	p.pos++ // opening quote
	d := p.data
	start := p.pos
	// Fast path: no escapes.
	for p.pos < len(d) {
		c := d[p.pos]
		if c == '"' {
			s := string(d[start:p.pos])
			p.pos++
			return s, nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", p.errf("control character in string")
		}
		p.pos++
	}
	buf := append([]byte(nil), d[start:p.pos]...)
	for p.pos < len(d) {
		c := d[p.pos]
		switch {
		case c == '"':
			p.pos++
			return string(buf), nil
		case c < 0x20:
			return "", p.errf("control character in string")
		case c != '\\':
			buf = append(buf, c)
			p.pos++
			continue
		}
		if p.pos+1 >= len(d) {
			break
		}
		esc := d[p.pos+1]
		p.pos += 2
		switch esc {
		case '"', '\\', '/':
			buf = append(buf, esc)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := hex4(d, p.pos)
			if !ok {
				return "", p.errf("invalid \\u escape")
			}
			p.pos += 4
			switch {
			case r >= 0xD800 && r <= 0xDBFF:
				var lo rune
				ok := p.pos+1 < len(d) && d[p.pos] == '\\' && d[p.pos+1] == 'u'
				if ok {
					lo, ok = hex4(d, p.pos+2)
				}
				if !ok || lo < 0xDC00 || lo > 0xDFFF {
					return "", p.errf("unpaired UTF-16 surrogate escape in string")
				}
				p.pos += 6
				r = utf16.DecodeRune(r, lo)
			case r >= 0xDC00 && r <= 0xDFFF:
				return "", p.errf("unpaired UTF-16 surrogate escape in string")
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", p.errf("invalid escape character %q", esc)
		}
	}
	return "", p.errf("unexpected end of JSON input in string")
}

func hex4(raw []byte, at int) (rune, bool) {
	if at+4 > len(raw) {
		return 0, false
	}
	var r rune
	for _, c := range raw[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

func (v jvalue) write(buf *bytes.Buffer) error {
	switch t := v.v.(type) {
	case nil:
		buf.WriteString("null")
	case bool:
		buf.WriteString(strconv.FormatBool(t))
	case float64:
		buf.Write(appendFloat(buf.AvailableBuffer(), t))
	case string:
		writeString(buf, t)
	case []jvalue:
		buf.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := e.write(buf); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case jobject:
		sorted := slices.Clone(t)
		slices.SortFunc(sorted, func(a, b member) int { return strings.Compare(a.key, b.key) })
		buf.WriteByte('{')
		for i, m := range sorted {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeString(buf, m.key)
			buf.WriteByte(':')
			if err := m.val.write(buf); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	default:
		return fmt.Errorf("unexpected value type %T", t)
	}
	return nil
}

// appendFloat formats a finite f exactly as encoding/json formats a float64
// (the ECMAScript Number-to-String algorithm for the common range).
func appendFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// writeString writes s as encoding/json does with HTML escaping off.
func writeString(buf *bytes.Buffer, s string) {
	simple := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			simple = false
			break
		}
	}
	if simple {
		buf.WriteByte('"')
		buf.WriteString(s)
		buf.WriteByte('"')
		return
	}
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)           // a string always encodes
	buf.Truncate(buf.Len() - 1) // drop the newline Encode appends
}
