package jwtauth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
)

func base64URL(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// parsePointer splits a JSON pointer (RFC 6901) into unescaped reference tokens.
func parsePointer(p string) ([]string, error) {
	if !strings.HasPrefix(p, "/") {
		return nil, errors.New("JSON pointer must start with /")
	}
	parts := strings.Split(p[1:], "/")
	for i, s := range parts {
		if s == "" {
			return nil, errors.New("JSON pointer has an empty segment")
		}
		for j := 0; j < len(s); j++ {
			if s[j] == '~' && (j+1 >= len(s) || (s[j+1] != '0' && s[j+1] != '1')) {
				return nil, errors.New("JSON pointer has an invalid ~ escape")
			}
		}
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
	}
	return parts, nil
}

// lookupClaim finds a claim by top-level name or by JSON pointer (leading "/").
// Config validation has already checked the pointer syntax.
func lookupClaim(claims map[string]any, name string) (any, bool) {
	if !strings.HasPrefix(name, "/") {
		v, ok := claims[name]
		return v, ok
	}
	parts, err := parsePointer(name)
	if err != nil {
		return nil, false
	}
	var cur any = claims
	for _, p := range parts {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// scalarString renders a string, number or boolean claim; ok is false otherwise.
func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	default:
		return "", false
	}
}

// claimMatches reports whether a claim value (scalar, or an array of which any
// element may match) equals one of the allowed values (or, with glob, matches one
// of the allowed patterns).
func claimMatches(v any, allowed []string, glob bool) bool {
	vals := []any{v}
	if arr, ok := v.([]any); ok {
		vals = arr
	}
	for _, e := range vals {
		s, ok := scalarString(e)
		if !ok {
			continue
		}
		for _, a := range allowed {
			if (glob && globMatch(a, s)) || (!glob && a == s) {
				return true
			}
		}
	}
	return false
}

// globMatch matches s against pattern where '*' matches any run of characters
// (including none) and every other character matches itself.
func globMatch(pattern, s string) bool {
	if !strings.Contains(pattern, "*") {
		return pattern == s
	}
	parts := strings.Split(pattern, "*")
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return len(s) >= len(last) && strings.HasSuffix(s, last)
}

// audiences returns the "aud" claim as a list (it may be a string or an array).
func audiences(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// numericDate reads a NumericDate claim (seconds since the epoch, possibly
// fractional). present is false when absent; ok is false when malformed.
func numericDate(claims map[string]any, name string) (secs float64, present, ok bool) {
	v, present := claims[name]
	if !present {
		return 0, false, true
	}
	n, isNum := v.(json.Number)
	if !isNum {
		return 0, true, false
	}
	f, err := n.Float64()
	if err != nil {
		return 0, true, false
	}
	return f, true, true
}
