package quantinuumsim

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/qbroker/qbroker/internal/circuit"
	"github.com/qbroker/qbroker/internal/circuit/qasm"
	"github.com/qbroker/qbroker/internal/sim"
)

// program is what the emulator learns from a job's program text.
type program struct {
	prog *qasm.Program
	circ *circuit.Input
	regs []creg // classical registers in declaration order
	// Operation counts of the HQC formula.
	n1q, n2q, nm int
}

// creg is one classical register; offset is its first flattened bit.
type creg struct {
	name         string
	size, offset int
}

// errProgram marks a program the emulator refuses; the message is safe to
// show (it quotes only positions and names from the program).
var errProgram = errors.New("program")

func programErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errProgram, fmt.Sprintf(format, args...))
}

// analyse parses src with package qasm and checks what the emulator can
// run faithfully.
func analyse(src string) (*program, error) {
	prog, err := qasm.Parse([]byte(src))
	if err != nil {
		if strings.HasPrefix(firstStatement(src), "OPENQASM 2") {
			// GAP: the service takes OpenQASM 2.0 text (pytket sends
			// "OPENQASM 2.0; include \"hqslib1.inc\";"), but package qasm
			// parses only its OpenQASM 3 subset.
			return nil, programErr("OpenQASM 2.0 text is not supported by the emulator (it parses the OpenQASM 3 subset of package qasm: start with \"OPENQASM 3;\" and include \"stdgates.inc\"): %v", err)
		}
		return nil, programErr("%v", err)
	}
	stmts := statements(src)
	if err := checkTerminalMeasurements(stmts); err != nil {
		return nil, err
	}
	regs, err := bitRegisters(stmts, prog.Clbits)
	if err != nil {
		return nil, err
	}
	circ, err := prog.ToIonQ()
	if err != nil {
		return nil, programErr("%v", err)
	}
	p := &program{prog: prog, circ: circ, regs: regs}
	p.n1q, p.n2q, p.nm = countOps(prog)
	return p, nil
}

// HQC returns the cost in H-System Quantum Credits of a circuit with n1q
// one-qubit operations, n2q two-qubit operations and nm state preparations
// and measurements, run shots times: 5 + shots·(n1q + 10·n2q + 5·nm)/5000,
// rounded to 4 decimal places.
//
// UNCERTAIN: the formula is not in the project's provider reference; it is
// the one Azure Quantum's Quantinuum provider page publishes, where nm
// includes the implicit initial preparation of every qubit.
func HQC(n1q, n2q, nm, shots int) float64 {
	c := 5 + float64(shots)*float64(n1q+10*n2q+5*nm)/5000
	return math.Round(c*1e4) / 1e4
}

// EstimateHQC returns the emulator's HQC cost of running prog shots times,
// counting operations as the emulator does (see countOps).
func EstimateHQC(prog *qasm.Program, shots int) (float64, error) {
	if prog == nil {
		return 0, errors.New("quantinuumsim: nil program")
	}
	n1q, n2q, nm := countOps(prog)
	return HQC(n1q, n2q, nm, shots), nil
}

func (p *program) cost(shots int) float64 { return HQC(p.n1q, p.n2q, p.nm, shots) }

// countOps returns the operation counts of the HQC formula: one-qubit
// operations (id excluded), two-qubit operations, and one preparation per
// qubit plus one per measurement. ccx and cswap count as the 6 CNOTs of
// the textbook Toffoli decomposition (an emulator model; the service
// counts native gates after its own compilation).
func countOps(prog *qasm.Program) (n1q, n2q, nm int) {
	for _, op := range prog.Ops {
		switch n := len(op.Qubits); {
		case op.Name == "id":
		case n == 1:
			n1q++
		case n == 2:
			n2q++
		default:
			n2q += 6
		}
	}
	return n1q, n2q, prog.Qubits + len(prog.Measures)
}

// work is gates × 2^qubits, the simulation effort.
func (p *program) work() uint64 {
	if p.circ.Qubits > 62 {
		return math.MaxUint64
	}
	return uint64(len(p.circ.Circuit)) << uint(p.circ.Qubits)
}

// firstStatement returns the source's first statement without comments,
// whitespace runs collapsed to one space.
func firstStatement(src string) string {
	if s := statements(src); len(s) > 0 {
		return s[0]
	}
	return ""
}

// statements splits src into statements: comments and #pragma lines
// removed, braces treated as separators, whitespace runs collapsed. It is
// only used on programs package qasm accepted (or to name the header of
// one it refused), whose only string literal is "stdgates.inc".
func statements(src string) []string {
	var b strings.Builder
	for i := 0; i < len(src); {
		switch {
		case strings.HasPrefix(src[i:], "//"):
			j := strings.IndexByte(src[i:], '\n')
			if j < 0 {
				j = len(src) - i
			}
			i += j
		case strings.HasPrefix(src[i:], "/*"):
			j := strings.Index(src[i+2:], "*/")
			if j < 0 {
				i = len(src)
			} else {
				i += 2 + j + 2
			}
			b.WriteByte(' ')
		default:
			b.WriteByte(src[i])
			i++
		}
	}
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue // #pragma: qasm ignores the whole line
		}
		for _, r := range line {
			if r == ';' || r == '{' || r == '}' {
				if s := strings.Join(strings.Fields(cur.String()), " "); s != "" {
					out = append(out, s)
				}
				cur.Reset()
				continue
			}
			cur.WriteRune(r)
		}
		cur.WriteByte(' ')
	}
	if s := strings.Join(strings.Fields(cur.String()), " "); s != "" {
		out = append(out, s)
	}
	return out
}

// firstWord returns the leading identifier of a statement.
func firstWord(s string) string {
	end := strings.IndexFunc(s, func(r rune) bool { return !isIdentRune(r) })
	if end < 0 {
		return s
	}
	return s[:end]
}

func isIdentRune(r rune) bool {
	return r == '_' || r == '$' || unicode.IsLetter(r) || unicode.IsDigit(r)
}

// hasWord reports whether w occurs in s as a whole identifier.
func hasWord(s, w string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], w)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(w)
		before, _ := utf8.DecodeLastRuneInString(s[:start])
		after, _ := utf8.DecodeRuneInString(s[end:])
		if (start == 0 || !isIdentRune(before)) && (end == len(s) || !isIdentRune(after)) {
			return true
		}
		i = end
	}
}

// checkTerminalMeasurements refuses a gate that follows any measurement.
// The emulator samples the final state, so it cannot run mid-circuit
// measurement (which the service supports): refusing is the honest
// answer. The check is conservative: a gate after a measurement of another
// qubit is refused too.
func checkTerminalMeasurements(stmts []string) error {
	measured := false
	for _, s := range stmts {
		switch w := firstWord(s); {
		case w == "OPENQASM" || w == "include" || w == "qubit" || w == "qreg" || w == "barrier" || w == "box":
		case hasWord(s, "measure"):
			measured = true
		case w == "bit" || w == "creg":
		case measured:
			return programErr("gate %q after a measurement: mid-circuit measurement is not supported by the emulator (it measures once, at the end)", clip(s))
		}
	}
	return nil
}

var (
	cregRE    = regexp.MustCompile(`^creg ?([^\s\[\]=]+) ?(?:\[ ?([0-9_]+) ?\])?$`)
	bitArrRE  = regexp.MustCompile(`^bit ?\[ ?([0-9_]+) ?\] ?([^\s\[\]=]+) ?(?:=.*)?$`)
	bitOneRE  = regexp.MustCompile(`^bit ([^\s\[\]=]+) ?(?:=.*)?$`)
	maxRegLen = 1 << 16
)

// bitRegisters finds the classical registers in declaration order (the
// order qasm flattens them in) and checks that their sizes add up to the
// clbits qasm counted; if they do not, the program is refused rather than
// reported under wrong names.
func bitRegisters(stmts []string, clbits int) ([]creg, error) {
	var regs []creg
	offset := 0
	for _, s := range stmts {
		w := firstWord(s)
		if w != "bit" && w != "creg" {
			continue
		}
		name, size := "", 1
		var sizeText string
		if m := cregRE.FindStringSubmatch(s); m != nil {
			name, sizeText = m[1], m[2]
		} else if m := bitArrRE.FindStringSubmatch(s); m != nil {
			name, sizeText = m[2], m[1]
		} else if m := bitOneRE.FindStringSubmatch(s); m != nil {
			name = m[1]
		} else {
			return nil, programErr("the emulator cannot read the classical register declaration %q", clip(s))
		}
		if sizeText != "" {
			n, err := strconv.Atoi(strings.ReplaceAll(sizeText, "_", ""))
			if err != nil || n < 1 || n > maxRegLen {
				return nil, programErr("the emulator cannot read the size of register %q", clip(name))
			}
			size = n
		}
		regs = append(regs, creg{name: name, size: size, offset: offset})
		offset += size
	}
	if offset != clbits {
		return nil, programErr("the emulator read %d classical bits in the declarations but the program has %d", offset, clbits)
	}
	return regs, nil
}

// clip shortens s for an error message.
func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// simulate runs p and returns shots bitstrings per classical register.
// Bit i of a register is character len-1-i of its string (pytket reads bit
// i at index -1-i). A bit that no measurement writes reads 0; when several
// measurements write one bit, the last wins.
func simulate(p *program, shots int, rng *rand.Rand) (map[string][]string, error) {
	st, err := sim.Run(p.circ)
	if err != nil {
		return nil, err
	}
	counts := st.Sample(shots, rng)
	outcomes := make([]int, 0, shots)
	for _, basis := range slices.Sorted(maps.Keys(counts)) {
		for range counts[basis] {
			outcomes = append(outcomes, basis)
		}
	}
	// Shots come back in the order they ran, not grouped by outcome.
	rng.Shuffle(len(outcomes), func(i, j int) { outcomes[i], outcomes[j] = outcomes[j], outcomes[i] })
	return bitstrings(p, outcomes), nil
}

// zeroResults is a syntax checker's answer: every bit 0 on every shot
// (UNCERTAIN: what the service's syntax checkers return).
func zeroResults(p *program, shots int) map[string][]string {
	return bitstrings(p, make([]int, shots))
}

// bitstrings turns basis-state outcomes (qubit 0 = least significant bit)
// into register bitstrings.
func bitstrings(p *program, outcomes []int) map[string][]string {
	// writer[clbit] is the qubit whose measurement lands in it last.
	writer := make([]int, p.prog.Clbits)
	for i := range writer {
		writer[i] = -1
	}
	for _, m := range p.prog.Measures {
		if m.Clbit >= 0 && m.Clbit < len(writer) {
			writer[m.Clbit] = m.Qubit
		}
	}
	res := make(map[string][]string, len(p.regs))
	buf := make([]byte, 0, 64)
	for _, r := range p.regs {
		rows := make([]string, len(outcomes))
		for s, basis := range outcomes {
			buf = buf[:0]
			for i := r.size - 1; i >= 0; i-- {
				q := writer[r.offset+i]
				if q >= 0 && basis>>q&1 == 1 {
					buf = append(buf, '1')
				} else {
					buf = append(buf, '0')
				}
			}
			rows[s] = string(buf)
		}
		res[r.name] = rows
	}
	return res
}
