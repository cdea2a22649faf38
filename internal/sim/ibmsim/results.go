package ibmsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/qbroker/qbroker/internal/sim"
)

// Result is the pure-JSON result of a Sampler job (params.support_qiskit
// absent or false), the form IBM's C/Rust client reads: one entry per PUB,
// each keyed by classical register name.
type Result struct {
	Results  []PubResult    `json:"results"`
	Metadata map[string]any `json:"metadata"`
}

// PubResult is the result of one PUB.
type PubResult struct {
	Data     map[string]RegisterData `json:"data"`
	Metadata map[string]any          `json:"metadata"`
}

// RegisterData holds one classical register's shots: each sample is the
// register's value in hexadecimal ("0x3"), with bit 0 of the register as the
// least significant bit, as Qiskit's BitArray; NumBits is the register size.
type RegisterData struct {
	Samples []string `json:"samples"`
	NumBits int      `json:"num_bits"`
}

// Counts tallies d into bitstrings of NumBits characters with the register's
// bit 0 rightmost, as Qiskit's BitArray.get_counts does.
func Counts(d RegisterData) (map[string]int, error) {
	out := map[string]int{}
	for _, s := range d.Samples {
		hex, ok := strings.CutPrefix(s, "0x")
		v, okNum := new(big.Int).SetString(hex, 16)
		if !ok || !okNum || v.Sign() < 0 || v.BitLen() > d.NumBits {
			return nil, fmt.Errorf("ibmsim: sample %q is not a %d-bit hexadecimal value", s, d.NumBits)
		}
		bits := v.Text(2)
		if v.Sign() == 0 {
			bits = ""
		}
		out[strings.Repeat("0", d.NumBits-len(bits))+bits]++
	}
	return out, nil
}

// orderedData encodes a PUB's registers in declaration order.
type orderedData struct {
	names []string
	regs  []RegisterData
}

func (o orderedData) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, name := range o.names {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(name)
		v, err := json.Marshal(o.regs[i])
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

type pubResultOut struct {
	Data     orderedData    `json:"data"`
	Metadata map[string]any `json:"metadata"`
}

type resultOut struct {
	Results  []pubResultOut `json:"results"`
	Metadata map[string]any `json:"metadata"`
}

// execute runs j without the lock. It returns the results JSON and the
// usage in seconds, or the reason the job fails. UNCERTAIN: the metadata
// objects are minimal stand-ins ({"circuit_metadata":{}} per PUB and
// {"version":2} overall); IBM's carry execution spans and more.
func (e *Emulator) execute(j *job) ([]byte, float64, string) {
	for i, p := range j.pubs {
		if reason := checkISA(p, j.backend); reason != "" {
			return nil, 0, fmt.Sprintf("Job not valid. pubs[%d]: %s", i, reason)
		}
	}
	rng := rand.New(rand.NewPCG(e.seed, j.seq))
	out := resultOut{Results: make([]pubResultOut, len(j.pubs)), Metadata: map[string]any{"version": 2}}
	shots := 0
	for i, p := range j.pubs {
		st, err := sim.Run(p.in)
		if err != nil {
			return nil, 0, fmt.Sprintf("Job not valid. pubs[%d]: the circuit could not be simulated.", i)
		}
		out.Results[i] = pubResultOut{
			Data:     sampleRegisters(p, st.Sample(p.shots, rng), rng),
			Metadata: map[string]any{"circuit_metadata": map[string]any{}},
		}
		shots += p.shots
	}
	body, err := json.Marshal(out)
	if err != nil {
		return nil, 0, "Job not valid. The results could not be encoded."
	}
	// UNCERTAIN: a synthetic usage figure (2 s per job plus 1 s per 10,000
	// shots); IBM bills measured QPU time.
	return body, 2 + math.Ceil(float64(shots)/10_000), ""
}

// checkISA reports the first instruction of p that backend b cannot run:
// Qiskit Runtime does not transpile, so circuits must use the backend's
// basis gates on coupled qubits (the emulator's topology is a line; see
// couplingMap). The text is the emulator's; IBM's reads "The instruction h
// on qubits (0,) is not supported by the target system" on the client side.
func checkISA(p pub, b Backend) string {
	for _, op := range p.prog.Ops {
		if !slices.Contains(b.BasisGates, op.Name) {
			return fmt.Sprintf("The instruction %s on qubits %s is not supported by backend %s (basis gates %v).",
				op.Name, qubitTuple(op.Qubits), b.Name, b.BasisGates)
		}
		if len(op.Qubits) == 2 && !coupled(op.Qubits[0], op.Qubits[1]) {
			return fmt.Sprintf("The instruction %s on qubits %s acts on qubits that are not coupled on backend %s.",
				op.Name, qubitTuple(op.Qubits), b.Name)
		}
	}
	return ""
}

// qubitTuple formats qubits as a Python tuple: (0,) or (0, 1).
func qubitTuple(qs []int) string {
	parts := make([]string, len(qs))
	for i, q := range qs {
		parts[i] = fmt.Sprint(q)
	}
	if len(parts) == 1 {
		return "(" + parts[0] + ",)"
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// sampleRegisters turns sampled basis states into per-register hex samples,
// one per shot in a random order, as a device returns them. Measurements are
// applied in program order (a bit measured twice keeps the last value);
// bits never measured read 0. The simulator's index has qubit q at bit q.
func sampleRegisters(p pub, counts map[int]int, rng *rand.Rand) orderedData {
	keys := make([]int, 0, len(counts))
	total := 0
	for k, n := range counts {
		keys = append(keys, k)
		total += n
	}
	slices.Sort(keys)
	order := make([]int, 0, total) // basis state of each shot
	for _, k := range keys {
		for range counts[k] {
			order = append(order, k)
		}
	}
	rng.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })

	data := orderedData{names: make([]string, len(p.regs)), regs: make([]RegisterData, len(p.regs))}
	for ri, r := range p.regs {
		data.names[ri] = r.name
		data.regs[ri] = RegisterData{Samples: make([]string, 0, total), NumBits: r.size}
	}
	clbits := make([]byte, p.prog.Clbits)
	hexOf := make(map[int][]string, len(keys))
	for _, k := range keys {
		clear(clbits)
		for _, m := range p.prog.Measures {
			if m.Clbit >= 0 {
				clbits[m.Clbit] = byte(k>>m.Qubit) & 1
			}
		}
		hs := make([]string, len(p.regs))
		for ri, r := range p.regs {
			hs[ri] = hexValue(clbits[r.offset : r.offset+r.size])
		}
		hexOf[k] = hs
	}
	for _, k := range order {
		for ri, h := range hexOf[k] {
			data.regs[ri].Samples = append(data.regs[ri].Samples, h)
		}
	}
	return data
}

// hexValue formats bits (bits[0] least significant) as "0x…" without
// leading zeros.
func hexValue(bits []byte) string {
	var b strings.Builder
	b.WriteString("0x")
	started := false
	for n := (len(bits)+3)/4 - 1; n >= 0; n-- {
		nib := 0
		for i := 3; i >= 0; i-- {
			if idx := 4*n + i; idx < len(bits) && bits[idx] == 1 {
				nib |= 1 << i
			}
		}
		if nib == 0 && !started {
			continue
		}
		started = true
		b.WriteByte("0123456789abcdef"[nib])
	}
	if !started {
		b.WriteByte('0')
	}
	return b.String()
}
