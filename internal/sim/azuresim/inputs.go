package azuresim

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"

	"github.com/qbroker/qbroker/internal/circuit"
	"github.com/qbroker/qbroker/internal/circuit/qasm"
	"github.com/qbroker/qbroker/internal/sim"
)

// program is a job input, parsed and ready to simulate.
type program struct {
	circ *circuit.Input // the unitary part, as IonQ QIS gates
	// For OpenQASM inputs: the measurements and the classical registers
	// (name and size, in declaration order) that receive them.
	measures  []qasm.Measure
	registers []register
}

type register struct {
	name string
	size int
}

// parseInput parses a job's input blob in the target's input format and
// checks that the emulator can run it on t. Every error is for the caller.
func parseInput(t Target, data []byte) (*program, error) {
	var p *program
	switch t.InputFormat {
	case FormatIonQCircuit:
		// The blob is the "input" object of an IonQ job:
		// {"qubits":n,"gateset":"qis","circuit":[…]} (azure-quantum's
		// IonQ.submit uploads the circuit dict as is). Unknown fields are
		// refused.
		in, err := circuit.ParseInput(data)
		if err != nil {
			return nil, fmt.Errorf("input is not a valid ionq.circuit.v1 circuit: %w", err)
		}
		p = &program{circ: in}
	case FormatHoneywellQASM:
		src := openQASM2To3(data)
		prog, err := qasm.Parse(src)
		if err != nil {
			return nil, fmt.Errorf("input is not an OpenQASM program the emulator supports: %w", err)
		}
		in, err := prog.ToIonQ()
		if err != nil {
			return nil, fmt.Errorf("input cannot be simulated: %w", err)
		}
		p = &program{circ: in, measures: prog.Measures, registers: classicalRegisters(src, prog.Clbits)}
	default:
		return nil, fmt.Errorf("input format %q is not supported by the emulator", t.InputFormat)
	}
	q := p.circ.Qubits
	switch {
	case q > t.Qubits:
		return nil, fmt.Errorf("the circuit needs %d qubits; target %s has %d", q, t.ID, t.Qubits)
	case q > sim.MaxQubits:
		return nil, fmt.Errorf("%w: the circuit needs %d qubits; the emulator simulates at most %d", sim.ErrTooManyQubits, q, sim.MaxQubits)
	case uint64(len(p.circ.Circuit))<<uint(q) > MaxWork:
		return nil, fmt.Errorf("%d gates on %d qubits exceed the emulator's work limit", len(p.circ.Circuit), q)
	}
	return p, nil
}

var (
	oq2Header  = regexp.MustCompile(`\bOPENQASM\s+2(?:\.0)?\s*;`)
	qelib1     = regexp.MustCompile(`\binclude\s+"qelib1\.inc"\s*;`)
	cregDecl   = regexp.MustCompile(`^creg\s+([A-Za-z_][A-Za-z0-9_]*)\s*\[\s*([0-9]+)\s*\]`)
	bitDecl    = regexp.MustCompile(`^bit\s*(?:\[\s*([0-9]+)\s*\])?\s+([A-Za-z_][A-Za-z0-9_]*)`)
	lineCmt    = regexp.MustCompile(`//[^\n]*`)
	blockCmt   = regexp.MustCompile(`(?s)/\*.*?\*/`)
	anyClassic = regexp.MustCompile(`\b(?:creg|bit)\b`)
)

// openQASM2To3 lets an OpenQASM 2.0 program (Quantinuum's
// honeywell.openqasm.v1) through the OpenQASM 3 parser: the first
// "OPENQASM 2.0;" becomes "OPENQASM 3.0;" and include "qelib1.inc" becomes
// "stdgates.inc". The parser already accepts qreg/creg and "measure q -> c";
// qelib1 gates without an exact stdgates equivalent (u2, cu3, …) are then
// refused with their line and column. OpenQASM 3 input passes unchanged.
// This is the emulator's approximation of Quantinuum's dialect, which also
// has extensions the emulator refuses.
func openQASM2To3(src []byte) []byte {
	loc := oq2Header.FindIndex(src)
	if loc == nil {
		return src
	}
	out := make([]byte, 0, len(src)+1)
	out = append(out, src[:loc[0]]...)
	out = append(out, "OPENQASM 3.0;"...)
	rest := src[loc[1]:]
	if inc := qelib1.FindIndex(rest); inc != nil {
		out = append(out, rest[:inc[0]]...)
		out = append(out, `include "stdgates.inc";`...)
		rest = rest[inc[1]:]
	}
	return append(out, rest...)
}

// classicalRegisters returns the classical registers declared in src, in
// order. The program has already been parsed, so declarations are well
// formed; comments are removed first. If the names cannot be recovered
// consistently with the parser's bit count, one register "c" holds them all.
func classicalRegisters(src []byte, clbits int) []register {
	if clbits == 0 {
		return nil
	}
	text := lineCmt.ReplaceAll(blockCmt.ReplaceAll(src, []byte(" ")), nil)
	var regs []register
	total := 0
	for _, loc := range anyClassic.FindAllIndex(text, -1) {
		rest := text[loc[0]:]
		var name string
		size := 1
		if bytes.HasPrefix(rest, []byte("creg")) {
			m := cregDecl.FindSubmatch(rest)
			if m == nil {
				continue
			}
			name, size = string(m[1]), atoi(m[2])
		} else {
			m := bitDecl.FindSubmatch(rest)
			if m == nil {
				continue
			}
			name = string(m[2])
			if len(m[1]) > 0 {
				size = atoi(m[1])
			}
		}
		regs = append(regs, register{name: name, size: size})
		total += size
	}
	if total != clbits {
		return []register{{name: "c", size: clbits}}
	}
	return regs
}

func atoi(b []byte) int {
	n, err := strconv.Atoi(string(b))
	if err != nil {
		return 0
	}
	return n
}
