package quantinuumsim

import "net/http"

// nativeGateset is the gateset pytket's offline machine list gives H1-1;
// informational only (the emulator runs any gate package qasm accepts).
var nativeGateset = []string{"Rz", "RZZ", "TK2", "U1q", "ZZ"}

func info(m Machine) machineInfo {
	return machineInfo{
		Name:                m.Name,
		Qubits:              m.Qubits,
		Gateset:             nativeGateset,
		ClassicalRegisters:  120,
		MaxShots:            m.MaxShots,
		SystemType:          m.SystemType,
		Emulator:            m.Emulator,
		SyntaxChecker:       m.SyntaxChecker,
		MaxClassicalRegBits: 32,
	}
}

// handleMachines answers GET /v1/machine/?config=true (pytket's machine
// list): every machine's configuration. Without config=true the emulator
// answers the same (UNCERTAIN: the service may answer names only).
func (e *Emulator) handleMachines(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	out := make([]machineInfo, 0, len(e.machines))
	for _, m := range e.machines {
		out = append(out, info(m))
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// handleMachine answers GET /v1/machine/{name}: the configuration plus
// "state", the field pytket's status() reads.
func (e *Emulator) handleMachine(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	m, ok := e.machine(r.PathValue("name"))
	e.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, 0, "unknown machine")
		return
	}
	v := info(m)
	v.State = m.State
	writeJSON(w, http.StatusOK, v)
}
