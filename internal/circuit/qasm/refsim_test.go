package qasm

import (
	"fmt"
	"math"
	"math/cmplx"
)

// This file is an independent reference for the OpenQASM 3 semantics of
// every supported gate, written from the stdgates.inc definitions (with their
// exact phases), so that ToIonQ followed by package sim can be checked
// against it. Qubit 0 is the least significant bit, as in package sim.

type mat2 [4]complex128

func expi(x float64) complex128 { return cmplx.Exp(complex(0, x)) }

// refMatrix returns the exact single-qubit unitary of the target part of a
// canonical gate (for controlled gates, the gate applied when the controls
// are 1).
func refMatrix(name string, th []float64) (mat2, error) {
	r := complex(1/math.Sqrt2, 0)
	switch name {
	case "id":
		return mat2{1, 0, 0, 1}, nil
	case "h", "ch":
		return mat2{r, r, r, -r}, nil
	case "x", "cx", "ccx":
		return mat2{0, 1, 1, 0}, nil
	case "y", "cy":
		return mat2{0, -1i, 1i, 0}, nil
	case "z", "cz":
		return mat2{1, 0, 0, -1}, nil
	case "s":
		return mat2{1, 0, 0, 1i}, nil
	case "sdg":
		return mat2{1, 0, 0, -1i}, nil
	case "t":
		return mat2{1, 0, 0, expi(math.Pi / 4)}, nil
	case "tdg":
		return mat2{1, 0, 0, expi(-math.Pi / 4)}, nil
	case "sx":
		return mat2{(1 + 1i) / 2, (1 - 1i) / 2, (1 - 1i) / 2, (1 + 1i) / 2}, nil
	case "sxdg":
		return mat2{(1 - 1i) / 2, (1 + 1i) / 2, (1 + 1i) / 2, (1 - 1i) / 2}, nil
	case "rx", "crx":
		c, s := math.Cos(th[0]/2), math.Sin(th[0]/2)
		return mat2{complex(c, 0), complex(0, -s), complex(0, -s), complex(c, 0)}, nil
	case "ry", "cry":
		c, s := math.Cos(th[0]/2), math.Sin(th[0]/2)
		return mat2{complex(c, 0), complex(-s, 0), complex(s, 0), complex(c, 0)}, nil
	case "rz", "crz":
		return mat2{expi(-th[0] / 2), 0, 0, expi(th[0] / 2)}, nil
	case "p", "cp":
		return mat2{1, 0, 0, expi(th[0])}, nil
	case "u":
		t, p, l := th[0], th[1], th[2]
		c, s := complex(math.Cos(t/2), 0), complex(math.Sin(t/2), 0)
		return mat2{c, -expi(l) * s, expi(p) * s, expi(p+l) * c}, nil
	}
	return mat2{}, fmt.Errorf("no reference matrix for %q", name)
}

type refState []complex128

func newRef(n int) refState {
	s := make(refState, 1<<n)
	s[0] = 1
	return s
}

func (s refState) apply(m mat2, target int, controls []int) {
	cmask := 0
	for _, c := range controls {
		cmask |= 1 << c
	}
	bit := 1 << target
	for i := range s {
		if i&bit != 0 || i&cmask != cmask {
			continue
		}
		j := i | bit
		a0, a1 := s[i], s[j]
		s[i] = m[0]*a0 + m[1]*a1
		s[j] = m[2]*a0 + m[3]*a1
	}
}

func (s refState) swap(a, b int, controls []int) {
	cmask := 0
	for _, c := range controls {
		cmask |= 1 << c
	}
	for i := range s {
		if i&(1<<a) != 0 && i&(1<<b) == 0 && i&cmask == cmask {
			j := i ^ (1 << a) ^ (1 << b)
			s[i], s[j] = s[j], s[i]
		}
	}
}

// refRun applies the program's ops with their exact OpenQASM semantics.
func refRun(p *Program) (refState, error) {
	s := newRef(p.Qubits)
	for _, op := range p.Ops {
		switch op.Name {
		case "swap":
			s.swap(op.Qubits[0], op.Qubits[1], nil)
			continue
		case "cswap":
			s.swap(op.Qubits[1], op.Qubits[2], op.Qubits[:1])
			continue
		}
		m, err := refMatrix(op.Name, op.Params)
		if err != nil {
			return nil, err
		}
		last := len(op.Qubits) - 1
		s.apply(m, op.Qubits[last], op.Qubits[:last])
	}
	return s, nil
}

// fidelity returns |⟨a|b⟩|², which is 1 exactly when the states are equal up
// to a global phase.
func fidelity(a, b []complex128) float64 {
	var ip complex128
	for i := range a {
		ip += cmplx.Conj(a[i]) * b[i]
	}
	return real(ip)*real(ip) + imag(ip)*imag(ip)
}
