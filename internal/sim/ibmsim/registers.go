package ibmsim

import (
	"fmt"
	"strconv"

	"github.com/qbroker/qbroker/internal/circuit/qasm"
)

// creg is a classical register: its name and its bits' flattened indices
// [offset, offset+size).
type creg struct {
	name         string
	offset, size int
}

// classicalRegisters returns the bit registers of src in declaration order.
// Package qasm flattens registers and keeps no names, but the Sampler keys
// its results by register name, so the declarations are read again here
// with a small tokenizer that skips what qasm's lexer skips (whitespace,
// comments, #pragma lines, strings). src must already have parsed as prog;
// the registers found must add up to prog.Clbits, or the source is refused.
func classicalRegisters(src []byte, prog *qasm.Program) ([]creg, error) {
	toks := qasmTokens(src)
	var regs []creg
	offset := 0
	seen := map[string]bool{}
	add := func(name string, size int) error {
		if seen[name] || size < 1 {
			return fmt.Errorf("could not read the classical register %q", name)
		}
		seen[name] = true
		regs = append(regs, creg{name: name, offset: offset, size: size})
		offset += size
		return nil
	}
	for i := 0; i < len(toks); i++ {
		switch toks[i] {
		case "bit": // bit c; bit[n] c;
			size := 1
			j := i + 1
			if j+2 < len(toks) && toks[j] == "[" && toks[j+2] == "]" {
				n, err := strconv.Atoi(toks[j+1])
				if err != nil {
					return nil, fmt.Errorf("could not read a bit register size %q", toks[j+1])
				}
				size, j = n, j+3
			}
			if j >= len(toks) || !isIdentToken(toks[j]) {
				return nil, fmt.Errorf("could not read a bit register declaration")
			}
			if err := add(toks[j], size); err != nil {
				return nil, err
			}
			i = j
		case "creg": // creg c[n];
			if i+4 >= len(toks) || !isIdentToken(toks[i+1]) || toks[i+2] != "[" || toks[i+4] != "]" {
				return nil, fmt.Errorf("could not read a creg declaration")
			}
			n, err := strconv.Atoi(toks[i+3])
			if err != nil {
				return nil, fmt.Errorf("could not read a creg size %q", toks[i+3])
			}
			if err := add(toks[i+1], n); err != nil {
				return nil, err
			}
			i += 4
		}
	}
	if offset != prog.Clbits {
		return nil, fmt.Errorf("found %d classical bits in the declarations, the parser %d", offset, prog.Clbits)
	}
	return regs, nil
}

// qasmTokens splits src into identifiers, digit runs and single punctuation
// characters, dropping whitespace, comments, #pragma lines and string
// literals.
func qasmTokens(src []byte) []string {
	var toks []string
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '/' && i+1 < len(src) && src[i+1] == '/', c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			i += 2
			for i+1 < len(src) && (src[i] != '*' || src[i+1] != '/') {
				i++
			}
			i += 2
		case c == '"' || c == '\'':
			i++
			for i < len(src) && src[i] != c && src[i] != '\n' {
				i++
			}
			i++
		case isIdentStart(c):
			j := i
			for j < len(src) && (isIdentStart(src[j]) || isDigit(src[j])) {
				j++
			}
			toks = append(toks, string(src[i:j]))
			i = j
		case isDigit(c):
			j := i
			for j < len(src) && isDigit(src[j]) {
				j++
			}
			toks = append(toks, string(src[i:j]))
			i = j
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f':
			i++
		default:
			toks = append(toks, string(c))
			i++
		}
	}
	return toks
}

func isIdentStart(c byte) bool { return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }
func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentToken(t string) bool {
	return t != "" && isIdentStart(t[0])
}
