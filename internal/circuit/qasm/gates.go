package qasm

// gateSpec is the shape of a canonical gate: how many qubits (controls
// included) and how many parameters it takes.
type gateSpec struct {
	qubits, params int
}

// canonicalGate maps a gate name as written (stdgates name or alias) to its
// canonical name. It reports false for names outside the subset.
func canonicalGate(name string) (string, bool) {
	switch name {
	case "h", "x", "y", "z", "s", "sdg", "t", "tdg", "sx", "sxdg", "id",
		"rx", "ry", "rz", "p", "cx", "cy", "cz", "ch", "cp", "crx", "cry", "crz",
		"swap", "ccx", "cswap", "u":
		return name, true
	case "cnot", "CX":
		return "cx", true
	case "phaseshift", "phase", "u1":
		return "p", true
	case "si":
		return "sdg", true
	case "ti":
		return "tdg", true
	case "v":
		return "sx", true
	case "vi":
		return "sxdg", true
	case "i":
		return "id", true
	case "cphaseshift", "cphase":
		return "cp", true
	case "ccnot":
		return "ccx", true
	case "u3", "U":
		return "u", true
	}
	return "", false
}

// specOf returns the shape of a canonical gate name.
func specOf(canon string) (gateSpec, bool) {
	switch canon {
	case "h", "x", "y", "z", "s", "sdg", "t", "tdg", "sx", "sxdg", "id":
		return gateSpec{1, 0}, true
	case "rx", "ry", "rz", "p":
		return gateSpec{1, 1}, true
	case "u":
		return gateSpec{1, 3}, true
	case "cx", "cy", "cz", "ch", "swap":
		return gateSpec{2, 0}, true
	case "cp", "crx", "cry", "crz":
		return gateSpec{2, 1}, true
	case "ccx", "cswap":
		return gateSpec{3, 0}, true
	}
	return gateSpec{}, false
}

// knownUnsupportedGate reports gates of stdgates.inc or Braket's gate set
// that the subset does not implement, so that they are refused as
// unsupported rather than unknown.
func knownUnsupportedGate(name string) bool {
	switch name {
	case "cu", "u2", "cu1", "cu3", "rxx", "ryy", "rzz", "rzx", "xx", "yy", "zz", "xy",
		"ecr", "iswap", "pswap", "gpi", "gpi2", "ms", "prx", "cv",
		"cphaseshift00", "cphaseshift01", "cphaseshift10", "rccx", "c3x", "c4x", "c3sqrtx", "csx":
		return true
	}
	return false
}

// unsupportedKeyword returns the message for a statement that starts with a
// keyword of OpenQASM 3 outside the subset, or "".
func unsupportedKeyword(word string) string {
	switch word {
	case "gate":
		return "gate definitions are unsupported"
	case "opaque":
		return "opaque gate declarations are unsupported"
	case "def":
		return "subroutine definitions (def) are unsupported"
	case "defcal", "defcalgrammar", "cal":
		return "pulse-level calibration (" + word + ") is unsupported"
	case "extern":
		return "extern declarations are unsupported"
	case "for", "while":
		return "loops (" + word + ") are unsupported"
	case "if", "else":
		return "conditionals (" + word + ") are unsupported"
	case "switch", "case", "default", "break", "continue", "return", "end":
		return "control flow (" + word + ") is unsupported"
	case "reset":
		return "reset is unsupported"
	case "delay":
		return "delay is unsupported"
	case "gphase":
		return "gphase is unsupported"
	case "input", "output":
		return "input/output declarations (" + word + ") are unsupported"
	case "let":
		return "let aliases are unsupported"
	case "const", "mutable", "readonly", "int", "uint", "float", "angle", "bool",
		"complex", "duration", "stretch", "array", "void":
		return "classical declarations (" + word + ") are unsupported"
	case "ctrl", "negctrl", "inv", "pow":
		return "gate modifier \"" + word + " @\" is unsupported"
	case "pragma":
		return "pragma without '#' is unsupported (write #pragma)"
	case "durationof", "sizeof":
		return word + " is unsupported"
	}
	return ""
}

// reservedName reports identifiers that cannot name a register: keywords,
// gate names and aliases, constants and functions.
func reservedName(name string) bool {
	if _, ok := canonicalGate(name); ok {
		return true
	}
	if knownUnsupportedGate(name) || unsupportedKeyword(name) != "" || isConstant(name) || isFunction(name) {
		return true
	}
	switch name {
	case "OPENQASM", "include", "qubit", "qreg", "bit", "creg", "measure", "barrier", "box", "true", "false", "im":
		return true
	}
	return false
}
