package circuit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
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
	if err := checkSurrogates(raw); err != nil {
		return jvalue{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := parseValue(dec, 0)
	if err != nil {
		return jvalue{}, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return jvalue{}, canonErr("trailing data after JSON value")
	}
	return v, nil
}

func parseValue(dec *json.Decoder, depth int) (jvalue, error) {
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return jvalue{}, canonErr("unexpected end of JSON input")
		}
		return jvalue{}, fmt.Errorf("%w: %w", ErrNotCanonicalizable, err)
	}
	switch t := tok.(type) {
	case json.Delim:
		if depth >= MaxDepth {
			return jvalue{}, canonErr("nesting deeper than %d levels", MaxDepth)
		}
		switch t {
		case '{':
			obj := jobject{}
			seen := make(map[string]struct{})
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return jvalue{}, fmt.Errorf("%w: %w", ErrNotCanonicalizable, err)
				}
				key, ok := kt.(string)
				if !ok {
					return jvalue{}, canonErr("object key is not a string")
				}
				if _, dup := seen[key]; dup {
					return jvalue{}, canonErr("duplicate object key %q", key)
				}
				seen[key] = struct{}{}
				val, err := parseValue(dec, depth+1)
				if err != nil {
					return jvalue{}, err
				}
				obj = append(obj, member{key: key, val: val})
			}
			if _, err := dec.Token(); err != nil { // '}'
				return jvalue{}, fmt.Errorf("%w: %w", ErrNotCanonicalizable, err)
			}
			return jvalue{obj}, nil
		case '[':
			arr := []jvalue{}
			for dec.More() {
				val, err := parseValue(dec, depth+1)
				if err != nil {
					return jvalue{}, err
				}
				arr = append(arr, val)
			}
			if _, err := dec.Token(); err != nil { // ']'
				return jvalue{}, fmt.Errorf("%w: %w", ErrNotCanonicalizable, err)
			}
			return jvalue{arr}, nil
		default:
			return jvalue{}, canonErr("unexpected delimiter %q", rune(t))
		}
	case json.Number:
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return jvalue{}, canonErr("number %s is not a finite binary64 value", truncate(string(t)))
		}
		if f == 0 {
			f = 0 // normalise negative zero
		}
		return jvalue{f}, nil
	case string, bool, nil:
		return jvalue{t}, nil
	default:
		return jvalue{}, canonErr("unexpected token %T", tok)
	}
}

// checkSurrogates rejects \uXXXX escapes that encode an unpaired UTF-16
// surrogate; encoding/json would silently turn them into U+FFFD, which would
// let two different documents share one canonical form.
func checkSurrogates(raw []byte) error {
	inString := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if !inString {
			if c == '"' {
				inString = true
			}
			continue
		}
		switch c {
		case '"':
			inString = false
		case '\\':
			if i+1 >= len(raw) {
				return nil // the decoder reports the syntax error
			}
			if raw[i+1] != 'u' {
				i++
				continue
			}
			r, ok := hex4(raw, i+2)
			if !ok {
				return nil // syntax error, reported by the decoder
			}
			switch {
			case r >= 0xD800 && r <= 0xDBFF:
				lo, ok := rune(0), false
				if i+11 < len(raw) && raw[i+6] == '\\' && raw[i+7] == 'u' {
					lo, ok = hex4(raw, i+8)
				}
				if !ok || lo < 0xDC00 || lo > 0xDFFF {
					return canonErr("unpaired UTF-16 surrogate escape in string")
				}
				i += 11
			case r >= 0xDC00 && r <= 0xDFFF:
				return canonErr("unpaired UTF-16 surrogate escape in string")
			default:
				i += 5
			}
		}
	}
	return nil
}

func hex4(raw []byte, at int) (rune, bool) {
	if at+4 > len(raw) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(raw[at:at+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	return rune(n), true
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
		b, err := json.Marshal(t)
		if err != nil {
			return err
		}
		buf.Write(b)
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

// writeString writes s as encoding/json does with HTML escaping off.
func writeString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)           // a string always encodes
	buf.Truncate(buf.Len() - 1) // drop the newline Encode appends
}
