package qasm

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/qbroker/qbroker/internal/circuit"
)

// ToIonQ converts p to an IonQ QIS circuit (gateset "qis") that has the same
// unitary up to a global phase of the whole circuit. Measurements are
// dropped, since IonQ measures every qubit at the end.
//
// Most gates map to one IonQ gate (cx → cnot, cy/cz/ch → y/z/h with a
// control, ccx → x with two controls, sdg/tdg/sx/sxdg → si/ti/v/vi, crx/cry/crz
// → rx/ry/rz with a control). Some map to several, exactly:
//
//   - id is dropped;
//   - p(λ) is s, si, t, ti or z for λ = ±π/2, ±π/4, ±π, and rz(λ) otherwise
//     (p(λ) = e^{iλ/2}·rz(λ), a global phase since the gate is not controlled);
//   - cp(λ) is a controlled s, si, t, ti or z for those angles, and otherwise
//     rz(λ) controlled by the first qubit followed by rz(λ/2) on it;
//   - u(θ,φ,λ) is rz(λ), ry(θ), rz(φ) on the same qubit;
//   - cswap c,a,b is cnot b→a, x on b controlled by c and a, cnot b→a.
//
// The result is validated with [circuit.Input.Validate]; a program without
// qubits or with more than [circuit.MaxQubits] is refused.
func (p *Program) ToIonQ() (*circuit.Input, error) {
	if p == nil || p.Qubits < 1 {
		return nil, errors.New("qasm: program uses no qubits")
	}
	in := &circuit.Input{Qubits: p.Qubits, Gateset: circuit.GatesetQIS, Circuit: []circuit.Gate{}}
	for i, op := range p.Ops {
		gs, err := opToIonQ(op)
		if err != nil {
			return nil, fmt.Errorf("qasm: ops[%d]: %w", i, err)
		}
		in.Circuit = append(in.Circuit, gs...)
	}
	if err := in.Validate(); err != nil {
		return nil, fmt.Errorf("qasm: converted circuit is not a valid IonQ circuit: %w", err)
	}
	return in, nil
}

func gate(name string, target int, controls ...int) circuit.Gate {
	g := circuit.Gate{Gate: name, Target: &target}
	switch len(controls) {
	case 0:
	case 1:
		g.Control = &controls[0]
	default:
		g.Controls = controls
	}
	return g
}

func rotation(name string, theta float64, target int, controls ...int) circuit.Gate {
	g := gate(name, target, controls...)
	g.Rotation = &theta
	return g
}

// phaseName returns the IonQ gate equal to p(λ) exactly, or "".
func phaseName(lambda float64) string {
	switch lambda {
	case math.Pi / 2:
		return "s"
	case -math.Pi / 2:
		return "si"
	case math.Pi / 4:
		return "t"
	case -math.Pi / 4:
		return "ti"
	case math.Pi, -math.Pi:
		return "z"
	}
	return ""
}

func opToIonQ(op Op) ([]circuit.Gate, error) {
	spec, ok := specOf(op.Name)
	if !ok {
		return nil, fmt.Errorf("%w: gate %q has no IonQ QIS equivalent", ErrUnsupported, clip(op.Name))
	}
	if len(op.Qubits) != spec.qubits || len(op.Params) != spec.params {
		return nil, fmt.Errorf("gate %q needs %d qubits and %d parameters, got %d and %d",
			op.Name, spec.qubits, spec.params, len(op.Qubits), len(op.Params))
	}
	q, th := op.Qubits, op.Params
	switch op.Name {
	case "id":
		return nil, nil
	case "h", "x", "y", "z", "s", "t":
		return []circuit.Gate{gate(op.Name, q[0])}, nil
	case "sdg":
		return []circuit.Gate{gate("si", q[0])}, nil
	case "tdg":
		return []circuit.Gate{gate("ti", q[0])}, nil
	case "sx":
		return []circuit.Gate{gate("v", q[0])}, nil
	case "sxdg":
		return []circuit.Gate{gate("vi", q[0])}, nil
	case "rx", "ry", "rz":
		return []circuit.Gate{rotation(op.Name, th[0], q[0])}, nil
	case "p":
		if n := phaseName(th[0]); n != "" {
			return []circuit.Gate{gate(n, q[0])}, nil
		}
		return []circuit.Gate{rotation("rz", th[0], q[0])}, nil
	case "u":
		return []circuit.Gate{
			rotation("rz", th[2], q[0]), rotation("ry", th[0], q[0]), rotation("rz", th[1], q[0]),
		}, nil
	case "cx":
		return []circuit.Gate{gate("cnot", q[1], q[0])}, nil
	case "cy", "cz", "ch":
		return []circuit.Gate{gate(op.Name[1:], q[1], q[0])}, nil
	case "crx", "cry", "crz":
		return []circuit.Gate{rotation(op.Name[1:], th[0], q[1], q[0])}, nil
	case "cp":
		if n := phaseName(th[0]); n != "" {
			return []circuit.Gate{gate(n, q[1], q[0])}, nil
		}
		return []circuit.Gate{rotation("rz", th[0], q[1], q[0]), rotation("rz", th[0]/2, q[0])}, nil
	case "swap":
		return []circuit.Gate{{Gate: "swap", Targets: []int{q[0], q[1]}}}, nil
	case "ccx":
		return []circuit.Gate{gate("x", q[2], q[0], q[1])}, nil
	case "cswap":
		return []circuit.Gate{gate("cnot", q[1], q[2]), gate("x", q[2], q[0], q[1]), gate("cnot", q[1], q[2])}, nil
	}
	return nil, fmt.Errorf("%w: gate %q has no IonQ QIS equivalent", ErrUnsupported, op.Name)
}

// FromIonQ writes in as an OpenQASM 3 program of the supported subset:
//
//	OPENQASM 3.0;
//	include "stdgates.inc";
//	qubit[n] q;
//	bit[n] b;
//	<one line per gate>
//	b = measure q;
//
// in is validated first. Gates map to their stdgates names (controlled s, si,
// t and ti become cp(±π/2) and cp(±π/4)). Controlled v or vi, and gates with
// more controls than cx/ccx, crx/cry/crz, cy, cz and ch allow, have no
// equivalent without gate modifiers and are refused with an error wrapping
// [ErrUnsupported]. Rotations are written in the shortest decimal form that
// parses back to the same float64, so Parse then ToIonQ returns in's gates.
func FromIonQ(in *circuit.Input) (string, error) {
	if in == nil {
		return "", errors.New("qasm: nil circuit")
	}
	if err := in.Validate(); err != nil {
		return "", fmt.Errorf("qasm: %w", err)
	}
	var b strings.Builder
	n := strconv.Itoa(in.Qubits)
	b.WriteString("OPENQASM 3.0;\ninclude \"stdgates.inc\";\nqubit[" + n + "] q;\nbit[" + n + "] b;\n")
	for i := range in.Circuit {
		if err := writeGate(&b, &in.Circuit[i]); err != nil {
			return "", fmt.Errorf("qasm: circuit[%d]: %w", i, err)
		}
	}
	b.WriteString("b = measure q;\n")
	return b.String(), nil
}

// qasmName returns the stdgates name and parameter text for an IonQ gate
// with nc controls, or "" when there is none.
func qasmName(g *circuit.Gate, nc int) (name, param string) {
	base := g.Gate
	if base == "not" || base == "cnot" {
		base = "x"
	}
	if g.Rotation != nil {
		param = strconv.FormatFloat(*g.Rotation, 'g', -1, 64)
	}
	switch nc {
	case 0:
		switch base {
		case "x", "y", "z", "h", "s", "t", "rx", "ry", "rz", "swap":
			return base, param
		case "si":
			return "sdg", ""
		case "ti":
			return "tdg", ""
		case "v":
			return "sx", ""
		case "vi":
			return "sxdg", ""
		}
	case 1:
		switch base {
		case "x", "y", "z", "h", "rx", "ry", "rz":
			return "c" + base, param
		case "s":
			return "cp", "pi/2"
		case "si":
			return "cp", "-pi/2"
		case "t":
			return "cp", "pi/4"
		case "ti":
			return "cp", "-pi/4"
		}
	case 2:
		if base == "x" {
			return "ccx", ""
		}
	}
	return "", ""
}

func writeGate(b *strings.Builder, g *circuit.Gate) error {
	controls, targets := g.ControlQubits(), g.TargetQubits()
	name, param := qasmName(g, len(controls))
	if name == "" {
		return fmt.Errorf("%w: gate %q with %d control(s) has no equivalent in the OpenQASM 3 subset", ErrUnsupported, g.Gate, len(controls))
	}
	b.WriteString(name)
	if param != "" {
		b.WriteString("(" + param + ")")
	}
	for i, q := range slices.Concat(controls, targets) {
		if i == 0 {
			b.WriteString(" ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString("q[" + strconv.Itoa(q) + "]")
	}
	b.WriteString(";\n")
	return nil
}
