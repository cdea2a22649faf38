package diagram

import (
	"errors"
	"fmt"
	"slices"

	"github.com/qbroker/qbroker/internal/circuit"
)

// Op is one operation: a gate named Name on Targets with optional Controls
// and Params (angles in radians), or, when Measure is set, a measurement of
// Targets[0] into classical bit Clbit (-1 when the bit is unknown). Name is
// untrusted text; see the package documentation for how it is drawn.
type Op struct {
	Name              string
	Targets, Controls []int
	Params            []float64
	Measure           bool
	Clbit             int
}

// Circuit is what is drawn: Ops in program order on qubits 0..Qubits-1.
// MeasureAll means every qubit is measured after the last operation, as on
// IonQ.
type Circuit struct {
	Qubits     int
	Ops        []Op
	MeasureAll bool
}

// Stats summarises a circuit. Gates counts every operation that is not a
// measurement, split by the number of distinct qubits it touches (targets
// and controls): OneQubit (one, or none), TwoQubit (two) and MultiQubit
// (three or more). Measurements counts measurement operations plus, with
// MeasureAll, one per qubit. Depth is described in the package
// documentation.
type Stats struct {
	Qubits, Gates, OneQubit, TwoQubit, MultiQubit, Measurements, Depth int
}

// ErrInvalidCircuit is wrapped by the error [SVG] returns for a circuit it
// refuses to draw, such as one with a qubit index out of range.
var ErrInvalidCircuit = errors.New("invalid circuit")

// FromIonQ converts an IonQ circuit input. Gate names are kept as IonQ
// spells them ("cnot", "si", "rz"), a rotation becomes the only parameter,
// and MeasureAll is set because IonQ measures every qubit at the end. The
// result shares no memory with in. A nil in gives an empty circuit.
func FromIonQ(in *circuit.Input) Circuit {
	c := Circuit{MeasureAll: true}
	if in == nil {
		return c
	}
	c.Qubits = in.Qubits
	c.Ops = make([]Op, 0, len(in.Circuit))
	for i := range in.Circuit {
		g := &in.Circuit[i]
		op := Op{
			Name:     g.Gate,
			Targets:  slices.Clone(g.TargetQubits()),
			Controls: slices.Clone(g.ControlQubits()),
		}
		if g.Rotation != nil {
			op.Params = []float64{*g.Rotation}
		}
		c.Ops = append(c.Ops, op)
	}
	return c
}

// Analyze computes the statistics of c. It accepts any circuit, including
// one [SVG] would refuse; qubit indices are taken as given.
func Analyze(c Circuit) Stats {
	s := Stats{Qubits: c.Qubits}
	var l layering
	for i := range c.Ops {
		op := &c.Ops[i]
		l.place(op)
		if op.Measure {
			s.Measurements++
			continue
		}
		s.Gates++
		switch n := distinctQubits(op); {
		case n <= 1:
			s.OneQubit++
		case n == 2:
			s.TwoQubit++
		default:
			s.MultiQubit++
		}
	}
	s.Depth = l.depth
	if c.MeasureAll && c.Qubits > 0 {
		s.Depth++
		s.Measurements += c.Qubits
	}
	return s
}

// layering assigns operations to ASAP layers: an operation goes in the first
// layer after the last one used on any qubit it touches.
type layering struct {
	next  map[int]int // qubit → first free layer
	depth int
}

// place returns op's layer and records it. An operation touching no qubit
// gets layer 0 and does not add to the depth.
func (l *layering) place(op *Op) int {
	if l.next == nil {
		l.next = map[int]int{}
	}
	layer := 0
	for _, qs := range [2][]int{op.Targets, op.Controls} {
		for _, q := range qs {
			layer = max(layer, l.next[q])
		}
	}
	touched := false
	for _, qs := range [2][]int{op.Targets, op.Controls} {
		for _, q := range qs {
			l.next[q] = layer + 1
			touched = true
		}
	}
	if touched {
		l.depth = max(l.depth, layer+1)
	}
	return layer
}

// distinctQubits counts the distinct qubits among op's targets and controls.
func distinctQubits(op *Op) int {
	switch n := len(op.Targets) + len(op.Controls); {
	case n <= 1:
		return n
	case n == 2 && len(op.Targets) == 1:
		if op.Targets[0] == op.Controls[0] {
			return 1
		}
		return 2
	}
	all := make([]int, 0, len(op.Targets)+len(op.Controls))
	all = append(append(all, op.Targets...), op.Controls...)
	slices.Sort(all)
	return len(slices.Compact(all))
}

// validate checks that c can be drawn: a non-negative qubit count, and for
// every operation at least one target, qubits in range and distinct, and
// for a measurement exactly one target, no control and Clbit >= -1.
func validate(c *Circuit) error {
	if c.Qubits < 0 {
		return fmt.Errorf("%w: negative qubit count %d", ErrInvalidCircuit, c.Qubits)
	}
	for i := range c.Ops {
		op := &c.Ops[i]
		if op.Measure {
			if len(op.Targets) != 1 || len(op.Controls) != 0 {
				return fmt.Errorf("%w: operation %d: a measurement takes one target and no control", ErrInvalidCircuit, i)
			}
			if op.Clbit < -1 {
				return fmt.Errorf("%w: operation %d: classical bit %d is negative", ErrInvalidCircuit, i, op.Clbit)
			}
		} else if len(op.Targets) == 0 {
			return fmt.Errorf("%w: operation %d: no target", ErrInvalidCircuit, i)
		}
		for _, qs := range [2][]int{op.Targets, op.Controls} {
			for _, q := range qs {
				if q < 0 || q >= c.Qubits {
					return fmt.Errorf("%w: operation %d: qubit %d out of range for %d qubits", ErrInvalidCircuit, i, q, c.Qubits)
				}
			}
		}
		if distinctQubits(op) != len(op.Targets)+len(op.Controls) {
			return fmt.Errorf("%w: operation %d: a qubit is repeated", ErrInvalidCircuit, i)
		}
	}
	return nil
}
