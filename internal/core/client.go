package core

import (
	"strings"
	"unicode"
)

// maxClientName bounds a self-declared client name in the audit trail.
const maxClientName = 128

// CleanClientName makes a self-declared client name (X-Qbroker-Client, an
// MCP client's name) safe to record: control and format characters become
// '?', and it is cut to 128 bytes on a rune boundary.
func CleanClientName(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == unicode.ReplacementChar {
			return '?'
		}
		return r
	}, strings.TrimSpace(s))
	if len(s) <= maxClientName {
		return s
	}
	cut := maxClientName
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
