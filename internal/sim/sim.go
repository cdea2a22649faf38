// Package sim is a dense state-vector quantum simulator for IonQ QIS
// circuits (see package circuit). It is pure computation: no I/O, no global
// state.
//
// Qubit 0 is the least significant bit of a basis-state index, as in IonQ's
// results: for two qubits, index 1 is qubit 0 set and index 2 is qubit 1 set.
// Memory grows as 16·2^n bytes, so simulations are capped at [MaxQubits].
package sim

import (
	"errors"
	"fmt"
	"math"
	"math/cmplx"
	"math/rand/v2"
	"slices"

	"github.com/qbroker/qbroker/internal/circuit"
)

// MaxQubits is the largest register New accepts (2^20 amplitudes, 16 MiB).
const MaxQubits = 20

// ErrTooManyQubits is returned by New and Run for registers above MaxQubits.
var ErrTooManyQubits = errors.New("sim: too many qubits")

// State is an n-qubit pure state. It is not safe for concurrent use.
type State struct {
	n   int
	amp []complex128
}

// New returns the state |0…0⟩ on qubits qubits.
func New(qubits int) (*State, error) {
	if qubits < 1 {
		return nil, fmt.Errorf("sim: qubit count %d must be at least 1", qubits)
	}
	if qubits > MaxQubits {
		return nil, fmt.Errorf("%w: %d requested, at most %d", ErrTooManyQubits, qubits, MaxQubits)
	}
	amp := make([]complex128, 1<<qubits)
	amp[0] = 1
	return &State{n: qubits, amp: amp}, nil
}

// Qubits returns the register size.
func (s *State) Qubits() int { return s.n }

// Amplitudes returns a copy of the amplitudes, indexed by basis state.
func (s *State) Amplitudes() []complex128 { return slices.Clone(s.amp) }

// Matrix is a 2×2 unitary in row-major order: [[m[0], m[1]], [m[2], m[3]]].
type Matrix [4]complex128

const invSqrt2 = complex(1/math.Sqrt2, 0)

// GateMatrix returns the 2×2 unitary of a single-qubit QIS gate. rotation is
// used only by rx, ry and rz (radians).
func GateMatrix(name string, rotation float64) (Matrix, error) {
	switch name {
	case "x", "not", "cnot":
		return Matrix{0, 1, 1, 0}, nil
	case "y":
		return Matrix{0, -1i, 1i, 0}, nil
	case "z":
		return Matrix{1, 0, 0, -1}, nil
	case "h":
		return Matrix{invSqrt2, invSqrt2, invSqrt2, -invSqrt2}, nil
	case "s":
		return Matrix{1, 0, 0, 1i}, nil
	case "si":
		return Matrix{1, 0, 0, -1i}, nil
	case "t":
		return Matrix{1, 0, 0, cmplx.Exp(complex(0, math.Pi/4))}, nil
	case "ti":
		return Matrix{1, 0, 0, cmplx.Exp(complex(0, -math.Pi/4))}, nil
	case "v": // √X
		return Matrix{(1 + 1i) / 2, (1 - 1i) / 2, (1 - 1i) / 2, (1 + 1i) / 2}, nil
	case "vi": // √X†
		return Matrix{(1 - 1i) / 2, (1 + 1i) / 2, (1 + 1i) / 2, (1 - 1i) / 2}, nil
	case "rx":
		c, s := math.Cos(rotation/2), math.Sin(rotation/2)
		return Matrix{complex(c, 0), complex(0, -s), complex(0, -s), complex(c, 0)}, nil
	case "ry":
		c, s := math.Cos(rotation/2), math.Sin(rotation/2)
		return Matrix{complex(c, 0), complex(-s, 0), complex(s, 0), complex(c, 0)}, nil
	case "rz":
		return Matrix{cmplx.Exp(complex(0, -rotation/2)), 0, 0, cmplx.Exp(complex(0, rotation/2))}, nil
	default:
		return Matrix{}, fmt.Errorf("sim: no single-qubit matrix for gate %q", name)
	}
}

func (s *State) checkQubit(q int, what string) error {
	if q < 0 || q >= s.n {
		return fmt.Errorf("sim: %s %d out of range for %d qubits", what, q, s.n)
	}
	return nil
}

func (s *State) controlMask(controls []int, targets ...int) (int, error) {
	mask := 0
	for _, c := range controls {
		if err := s.checkQubit(c, "control"); err != nil {
			return 0, err
		}
		if mask&(1<<c) != 0 || slices.Contains(targets, c) {
			return 0, fmt.Errorf("sim: control %d repeats a target or control", c)
		}
		mask |= 1 << c
	}
	return mask, nil
}

// ApplyMatrix applies m to target, conditioned on every qubit in controls
// being 1.
func (s *State) ApplyMatrix(m Matrix, target int, controls ...int) error {
	if err := s.checkQubit(target, "target"); err != nil {
		return err
	}
	cmask, err := s.controlMask(controls, target)
	if err != nil {
		return err
	}
	s.apply1(m, target, cmask)
	return nil
}

func (s *State) apply1(m Matrix, target, cmask int) {
	bit := 1 << target
	amp := s.amp
	// Walk blocks of 2·bit: the lower half has the target bit clear.
	for base := 0; base < len(amp); base += bit << 1 {
		for i := base; i < base+bit; i++ {
			if i&cmask != cmask {
				continue
			}
			j := i | bit
			a0, a1 := amp[i], amp[j]
			amp[i] = m[0]*a0 + m[1]*a1
			amp[j] = m[2]*a0 + m[3]*a1
		}
	}
}

// Swap exchanges qubits a and b, conditioned on controls.
func (s *State) Swap(a, b int, controls ...int) error {
	if err := s.checkQubit(a, "target"); err != nil {
		return err
	}
	if err := s.checkQubit(b, "target"); err != nil {
		return err
	}
	if a == b {
		return fmt.Errorf("sim: swap of qubit %d with itself", a)
	}
	cmask, err := s.controlMask(controls, a, b)
	if err != nil {
		return err
	}
	ba, bb := 1<<a, 1<<b
	for i := range s.amp {
		// Visit each pair once, from the member with a=1, b=0.
		if i&ba != 0 && i&bb == 0 && i&cmask == cmask {
			j := i ^ ba ^ bb
			s.amp[i], s.amp[j] = s.amp[j], s.amp[i]
		}
	}
	return nil
}

// Apply applies one QIS gate. The gate is validated against the register
// size first, so an invalid gate leaves the state unchanged.
func (s *State) Apply(g circuit.Gate) error {
	if err := g.Validate(0, s.n); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	targets, controls := g.TargetQubits(), g.ControlQubits()
	if g.Gate == "swap" {
		return s.Swap(targets[0], targets[1], controls...)
	}
	var rot float64
	if g.Rotation != nil {
		rot = *g.Rotation
	}
	m, err := GateMatrix(g.Gate, rot)
	if err != nil {
		return err
	}
	return s.ApplyMatrix(m, targets[0], controls...)
}

// Run validates in, prepares |0…0⟩ and applies every gate.
func Run(in *circuit.Input) (*State, error) {
	if err := in.Validate(); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	s, err := New(in.Qubits)
	if err != nil {
		return nil, err
	}
	for i, g := range in.Circuit {
		if err := s.Apply(g); err != nil {
			return nil, fmt.Errorf("sim: circuit[%d]: %w", i, err)
		}
	}
	return s, nil
}

// Probabilities returns |amplitude|² for every basis state.
func (s *State) Probabilities() []float64 {
	p := make([]float64, len(s.amp))
	for i, a := range s.amp {
		re, im := real(a), imag(a)
		p[i] = re*re + im*im
	}
	return p
}

// Sample measures the state shots times in the computational basis and
// returns how often each basis-state index occurred. A nil rng uses a
// randomly seeded generator; pass a seeded one for reproducible results.
func (s *State) Sample(shots int, rng *rand.Rand) map[int]int {
	counts := make(map[int]int)
	if shots <= 0 {
		return counts
	}
	if rng == nil {
		rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	cum := s.Probabilities()
	for i := 1; i < len(cum); i++ {
		cum[i] += cum[i-1]
	}
	total := cum[len(cum)-1]
	last := len(cum) - 1
	for last > 0 && cum[last] == cum[last-1] {
		last-- // the last state with non-zero probability
	}
	for range shots {
		x := rng.Float64() * total
		// First index whose cumulative weight exceeds x: never a state of
		// zero probability, since its cumulative equals its predecessor's.
		i, _ := slices.BinarySearchFunc(cum, x, func(c, x float64) int {
			if c <= x {
				return -1
			}
			return 1
		})
		if i > last {
			i = last // x rounded up to total
		}
		counts[i]++
	}
	return counts
}
