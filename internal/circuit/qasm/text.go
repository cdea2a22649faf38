package qasm

import "unicode/utf8"

// checkText refuses, anywhere in src (comments and strings included), bytes
// that are not UTF-8, control characters other than tab, line feed, vertical
// tab, form feed and carriage return, C1 controls, and Unicode
// bidirectional formatting characters. A program is shown to a human
// approver; these characters could make what is displayed differ from what
// is parsed ("Trojan Source", CVE-2021-42574) or rewrite a terminal.
func checkText(src []byte) *Error {
	line, lineStart := 1, 0
	for i := 0; i < len(src); {
		c := src[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '\n':
				line, lineStart = line+1, i+1
			case (c < 0x20 && c != '\t' && c != '\r' && c != '\v' && c != '\f') || c == 0x7f:
				return newError(line, i-lineStart+1, nil, "control character %U is not allowed", rune(c))
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(src[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return newError(line, i-lineStart+1, nil, "invalid UTF-8")
		case r >= 0x80 && r <= 0x9f:
			return newError(line, i-lineStart+1, nil, "control character %U is not allowed", r)
		case isBidiControl(r):
			return newError(line, i-lineStart+1, nil, "bidirectional formatting character %U is not allowed", r)
		}
		i += size
	}
	return nil
}

func isBidiControl(r rune) bool {
	switch {
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	case r == 0x200e, r == 0x200f, r == 0x061c:
		return true
	}
	return false
}
