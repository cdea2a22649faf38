package circuit

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// MaxQubits is the largest qubit count IonQ accepts in a circuit input.
const MaxQubits = 64

// Gateset values.
const (
	GatesetQIS    = "qis"
	GatesetNative = "native"
)

// Gate is one operation of an ionq.circuit.v1 QIS circuit.
type Gate struct {
	Gate     string   `json:"gate"`
	Target   *int     `json:"target,omitempty"`
	Targets  []int    `json:"targets,omitempty"`
	Control  *int     `json:"control,omitempty"`
	Controls []int    `json:"controls,omitempty"`
	Rotation *float64 `json:"rotation,omitempty"`
}

// Input is the "input" object of an ionq.circuit.v1 job.
type Input struct {
	Qubits  int    `json:"qubits"`
	Gateset string `json:"gateset,omitempty"`
	Circuit []Gate `json:"circuit"`
}

// ValidationError reports one problem with a circuit. Field is a JSON path
// relative to the input object, such as "circuit[3].target"; it is empty when
// the problem concerns the document as a whole.
type ValidationError struct {
	Field string
	Msg   string
	Err   error // optional underlying cause
}

func (e *ValidationError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

func (e *ValidationError) Unwrap() error { return e.Err }

// WithPrefix returns a copy of e whose Field is nested under prefix, so that
// a caller embedding the circuit at "input" can report "input.circuit[3]".
func (e *ValidationError) WithPrefix(prefix string) *ValidationError {
	c := *e
	switch {
	case c.Field == "":
		c.Field = prefix
	case c.Field[0] == '[':
		c.Field = prefix + c.Field
	default:
		c.Field = prefix + "." + c.Field
	}
	return &c
}

func verr(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// ErrUnsupportedGate is wrapped by the ValidationError returned for gates that
// IonQ defines but qbroker does not implement (xx, yy, zz, pauliexp).
var ErrUnsupportedGate = errors.New("gate not supported by qbroker")

type gateKind int

const (
	kindUnknown  gateKind = iota
	kindSingle            // one target, optional controls
	kindCNOT              // one control, one target
	kindSwap              // two targets
	kindRotation          // one target, rotation required, optional controls
	kindUnsupported
)

func kindOf(name string) gateKind {
	switch name {
	case "x", "y", "z", "h", "s", "si", "v", "vi", "t", "ti", "not":
		return kindSingle
	case "rx", "ry", "rz":
		return kindRotation
	case "cnot":
		return kindCNOT
	case "swap":
		return kindSwap
	case "xx", "yy", "zz", "pauliexp":
		return kindUnsupported
	default:
		return kindUnknown
	}
}

// TargetQubits returns the gate's targets, from target or targets.
func (g *Gate) TargetQubits() []int {
	if g.Target != nil {
		return append([]int{*g.Target}, g.Targets...)
	}
	return g.Targets
}

// ControlQubits returns the gate's controls, from control or controls.
func (g *Gate) ControlQubits() []int {
	if g.Control != nil {
		return append([]int{*g.Control}, g.Controls...)
	}
	return g.Controls
}

// NumQubits is the number of distinct qubits the gate acts on.
func (g *Gate) NumQubits() int { return len(g.TargetQubits()) + len(g.ControlQubits()) }

// Validate checks one gate for a circuit of n qubits. index is used only to
// name the gate in errors.
func (g *Gate) Validate(index, n int) error {
	p := "circuit[" + strconv.Itoa(index) + "]"
	kind := kindOf(g.Gate)
	switch kind {
	case kindUnknown:
		return verr(p+".gate", "unknown gate %q", truncate(g.Gate))
	case kindUnsupported:
		e := verr(p+".gate", "gate %q is not supported", g.Gate)
		e.Err = ErrUnsupportedGate
		return e
	}
	if g.Target != nil && len(g.Targets) > 0 {
		return verr(p, "target and targets are mutually exclusive")
	}
	if g.Control != nil && len(g.Controls) > 0 {
		return verr(p, "control and controls are mutually exclusive")
	}
	if g.Target == nil && g.Targets != nil && len(g.Targets) == 0 {
		return verr(p+".targets", "must not be empty")
	}
	if g.Control == nil && g.Controls != nil && len(g.Controls) == 0 {
		return verr(p+".controls", "must not be empty")
	}
	targets, controls := g.TargetQubits(), g.ControlQubits()
	tfield := p + ".target"
	if g.Target == nil {
		tfield = p + ".targets"
	}
	cfield := p + ".control"
	if g.Control == nil {
		cfield = p + ".controls"
	}
	switch kind {
	case kindSingle, kindRotation:
		if len(targets) != 1 {
			return verr(tfield, "gate %q takes exactly one target, got %d", g.Gate, len(targets))
		}
	case kindCNOT:
		if len(targets) != 1 {
			return verr(tfield, "gate \"cnot\" takes exactly one target, got %d", len(targets))
		}
		if len(controls) != 1 {
			return verr(cfield, "gate \"cnot\" takes exactly one control, got %d", len(controls))
		}
	case kindSwap:
		if len(targets) != 2 {
			return verr(tfield, "gate \"swap\" takes exactly two targets, got %d", len(targets))
		}
		if len(controls) != 0 {
			return verr(cfield, "gate \"swap\" takes no control")
		}
	}
	if kind == kindRotation {
		if g.Rotation == nil {
			return verr(p+".rotation", "required for gate %q", g.Gate)
		}
		if math.IsNaN(*g.Rotation) || math.IsInf(*g.Rotation, 0) {
			return verr(p+".rotation", "must be finite")
		}
	} else if g.Rotation != nil {
		return verr(p+".rotation", "not allowed for gate %q", g.Gate)
	}
	seen := make(map[int]bool, len(targets)+len(controls))
	for _, q := range targets {
		if q < 0 || q >= n {
			return verr(p, "target %d out of range for %d qubits", q, n)
		}
		if seen[q] {
			return verr(tfield, "qubit %d repeated", q)
		}
		seen[q] = true
	}
	for _, q := range controls {
		if q < 0 || q >= n {
			return verr(p, "control %d out of range for %d qubits", q, n)
		}
		if seen[q] {
			return verr(cfield, "control %d repeats a target or control", q)
		}
		seen[q] = true
	}
	return nil
}

// Validate checks the whole input; see the package documentation for the
// rules. It returns the first problem found as a *ValidationError.
func (in *Input) Validate() error {
	if in.Qubits < 1 || in.Qubits > MaxQubits {
		return verr("qubits", "must be between 1 and %d, got %d", MaxQubits, in.Qubits)
	}
	switch in.Gateset {
	case "", GatesetQIS:
	case GatesetNative:
		return verr("gateset", "native gateset is not supported")
	default:
		return verr("gateset", "unknown gateset %q", truncate(in.Gateset))
	}
	if in.Circuit == nil {
		return verr("circuit", "required")
	}
	for i := range in.Circuit {
		if err := in.Circuit[i].Validate(i, in.Qubits); err != nil {
			return err
		}
	}
	return nil
}

// GateCounts returns the number of gates acting on one qubit and on two or
// more qubits (controlled gates count their controls), as IonQ reports in a
// job's stats.gate_counts{1q,2q}. Multi-controlled gates count as one 2q gate
// here although hardware decomposes them further.
func (in *Input) GateCounts() (oneQ, twoQ int) {
	for i := range in.Circuit {
		if in.Circuit[i].NumQubits() <= 1 {
			oneQ++
		} else {
			twoQ++
		}
	}
	return oneQ, twoQ
}

// ParseInput strictly decodes an ionq.circuit.v1 input object and validates
// it. Unknown keys (matched case-sensitively), duplicate keys, null values,
// non-integral qubit indices, malformed JSON and trailing data are rejected.
// Every error is a *ValidationError.
func ParseInput(raw []byte) (*Input, error) {
	v, err := parseStrict(raw)
	if err != nil {
		return nil, &ValidationError{Msg: "malformed JSON: " + stripPrefix(err), Err: err}
	}
	in, err := decodeInput(v)
	if err != nil {
		return nil, err
	}
	if err := in.Validate(); err != nil {
		return nil, err
	}
	return in, nil
}

func stripPrefix(err error) string {
	s := err.Error()
	p := ErrNotCanonicalizable.Error() + ": "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

func decodeInput(v jvalue) (*Input, error) {
	obj, ok := v.v.(jobject)
	if !ok {
		return nil, verr("", "must be a JSON object")
	}
	in := &Input{}
	for _, m := range obj {
		if m.val.v == nil {
			return nil, verr(m.key, "must not be null")
		}
		switch m.key {
		case "qubits":
			n, err := asInt(m.val, m.key)
			if err != nil {
				return nil, err
			}
			in.Qubits = n
		case "gateset":
			s, ok := m.val.v.(string)
			if !ok {
				return nil, verr(m.key, "must be a string")
			}
			in.Gateset = s
		case "circuit":
			arr, ok := m.val.v.([]jvalue)
			if !ok {
				return nil, verr(m.key, "must be an array")
			}
			in.Circuit = make([]Gate, 0, len(arr))
			for i, gv := range arr {
				g, err := decodeGate(gv, "circuit["+strconv.Itoa(i)+"]")
				if err != nil {
					return nil, err
				}
				in.Circuit = append(in.Circuit, g)
			}
		default:
			return nil, verr(truncate(m.key), "unknown field")
		}
	}
	if _, ok := obj.get("qubits"); !ok {
		return nil, verr("qubits", "required")
	}
	return in, nil
}

func decodeGate(v jvalue, p string) (Gate, error) {
	var g Gate
	obj, ok := v.v.(jobject)
	if !ok {
		return g, verr(p, "must be a JSON object")
	}
	for _, m := range obj {
		f := p + "." + truncate(m.key)
		if m.val.v == nil {
			return g, verr(f, "must not be null")
		}
		switch m.key {
		case "gate":
			s, ok := m.val.v.(string)
			if !ok {
				return g, verr(f, "must be a string")
			}
			g.Gate = s
		case "target", "control":
			n, err := asInt(m.val, f)
			if err != nil {
				return g, err
			}
			if m.key == "target" {
				g.Target = &n
			} else {
				g.Control = &n
			}
		case "targets", "controls":
			arr, ok := m.val.v.([]jvalue)
			if !ok {
				return g, verr(f, "must be an array of integers")
			}
			ns := make([]int, 0, len(arr))
			for i, e := range arr {
				n, err := asInt(e, f+"["+strconv.Itoa(i)+"]")
				if err != nil {
					return g, err
				}
				ns = append(ns, n)
			}
			if m.key == "targets" {
				g.Targets = ns
			} else {
				g.Controls = ns
			}
		case "rotation":
			x, ok := m.val.v.(float64)
			if !ok {
				return g, verr(f, "must be a number")
			}
			g.Rotation = &x
		default:
			return g, verr(f, "unknown field")
		}
	}
	if _, ok := obj.get("gate"); !ok {
		return g, verr(p+".gate", "required")
	}
	return g, nil
}

// asInt accepts a JSON number with an integral value that fits in 32 bits (as
// IonQ's int32 schema does; 1.0 is the integer 1, as in JavaScript).
func asInt(v jvalue, field string) (int, error) {
	x, ok := v.v.(float64)
	if !ok {
		return 0, verr(field, "must be an integer")
	}
	if x != math.Trunc(x) || x < math.MinInt32 || x > math.MaxInt32 {
		return 0, verr(field, "must be a 32-bit integer, got %v", x)
	}
	return int(x), nil
}
