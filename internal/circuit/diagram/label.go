package diagram

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits on label text, which keep boxes (and so the image) bounded.
const (
	maxNameRunes  = 8 // longer unknown names are cut to 7 runes and "…"
	maxShownParam = 3 // further parameters are shown as "…"
)

// gateName returns the label for a known gate name (matched without regard
// to case) and whether the name is known. IonQ's names come first; common
// OpenQASM names are accepted too.
func gateName(name string) (string, bool) {
	switch strings.ToLower(name) {
	case "h":
		return "H", true
	case "x", "not", "cnot", "cx", "ccx", "toffoli", "mcx":
		return "X", true
	case "y":
		return "Y", true
	case "z":
		return "Z", true
	case "s":
		return "S", true
	case "si", "sdg":
		return "S†", true
	case "t":
		return "T", true
	case "ti", "tdg":
		return "T†", true
	case "v":
		return "V", true
	case "vi":
		return "V†", true
	case "sx":
		return "√X", true
	case "sxdg":
		return "√X†", true
	case "rx":
		return "RX", true
	case "ry":
		return "RY", true
	case "rz":
		return "RZ", true
	case "p", "phase":
		return "P", true
	case "u", "u3":
		return "U", true
	case "id", "i":
		return "I", true
	case "swap", "cswap", "fredkin":
		return "SWAP", true
	case "xx", "yy", "zz":
		return strings.ToUpper(name), true
	}
	return "", false
}

// displayName returns the label drawn for op's name and whether the name is
// known. A controlled gate may spell its controls as leading "c"s (cz, ccz,
// crx), which are dropped because the controls are drawn as dots. An
// unknown name is reduced by sanitizeName.
func displayName(op *Op) (string, bool) {
	if s, ok := gateName(op.Name); ok {
		return s, true
	}
	base := op.Name
	for range op.Controls {
		if len(base) < 2 || (base[0] != 'c' && base[0] != 'C') {
			break
		}
		base = base[1:]
		if s, ok := gateName(base); ok {
			return s, true
		}
	}
	return sanitizeName(op.Name), false
}

// sanitizeName upper-cases an untrusted name, keeps only printable ASCII
// other than space (anything else becomes "?"), and cuts it to
// maxNameRunes. It never returns "".
func sanitizeName(name string) string {
	var b strings.Builder
	n := 0
	for i, r := range name {
		if n == maxNameRunes-1 && utf8.RuneCountInString(name[i:]) > 1 {
			b.WriteString("…")
			break
		}
		switch {
		case r > ' ' && r < utf8.RuneSelf && r != 0x7f:
			if 'a' <= r && r <= 'z' {
				r -= 'a' - 'A'
			}
			b.WriteRune(r)
		default:
			b.WriteByte('?')
		}
		n++
	}
	if b.Len() == 0 {
		return "?"
	}
	return b.String()
}

// opLabel is the text in op's box: its name and, if any, its parameters,
// such as "RZ(π/2)".
func opLabel(op *Op) (string, bool) {
	name, known := displayName(op)
	if len(op.Params) == 0 {
		return name, known
	}
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('(')
	for i, p := range op.Params {
		if i > 0 {
			b.WriteByte(',')
		}
		if i == maxShownParam {
			b.WriteString("…")
			break
		}
		b.WriteString(formatAngle(p))
	}
	b.WriteByte(')')
	return b.String(), known
}

// formatAngle renders an angle in radians compactly: a multiple of π by a
// small fraction when the value is one (up to floating-point rounding), such
// as "π/2", "-3π/4" or "2π"; otherwise three significant digits.
func formatAngle(p float64) string {
	if p == 0 {
		return "0"
	}
	if math.IsNaN(p) || math.IsInf(p, 0) {
		return strconv.FormatFloat(p, 'g', 3, 64)
	}
	for _, d := range [...]float64{1, 2, 3, 4, 6, 8, 12, 16} {
		k := math.Round(p * d / math.Pi)
		if k == 0 || math.Abs(k) > 64 {
			continue
		}
		if math.Abs(k*math.Pi/d-p) <= 1e-12*math.Abs(p) {
			return piFraction(int(k), int(d))
		}
	}
	return strconv.FormatFloat(p, 'g', 3, 64)
}

// piFraction formats kπ/d for a fraction already in lowest terms.
func piFraction(k, d int) string {
	var b strings.Builder
	if k < 0 {
		b.WriteByte('-')
		k = -k
	}
	if k != 1 {
		b.WriteString(strconv.Itoa(k))
	}
	b.WriteString("π")
	if d != 1 {
		b.WriteByte('/')
		b.WriteString(strconv.Itoa(d))
	}
	return b.String()
}
