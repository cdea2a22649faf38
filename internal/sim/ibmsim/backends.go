package ibmsim

import (
	"net/http"
	"slices"
)

// backendsV2Since is the first IBM-API-Version whose GET /backends answers
// device objects; earlier versions, or no header, answer a list of names
// (per the OpenAPI of 2024–2025; UNCERTAIN whether the current service still
// honours the old form).
const backendsV2Since = "2025-01-01"

type deviceStatus struct {
	Name   string `json:"name"`
	Reason string `json:"reason,omitempty"`
}

type processorType struct {
	Family   string `json:"family"`
	Revision string `json:"revision"`
}

// device is an entry of BackendsResponse (IBM-API-Version ≥ 2025-01-01).
type device struct {
	Name          string        `json:"name"`
	Status        deviceStatus  `json:"status"`
	IsSimulator   bool          `json:"is_simulator"`
	Qubits        int           `json:"qubits"`
	ProcessorType processorType `json:"processor_type"`
	QueueLength   int           `json:"queue_length"`
}

// listBackends is GET /api/v1/backends.
func (e *Emulator) listBackends(c *call) {
	if c.apiVersion == "" || c.apiVersion < backendsV2Since {
		names := make([]string, len(e.backends))
		for i, b := range e.backends {
			names[i] = b.Name
		}
		writeJSON(c.w, http.StatusOK, map[string][]string{"devices": names})
		return
	}
	devices := make([]device, len(e.backends))
	for i, b := range e.backends {
		devices[i] = device{
			Name:          b.Name,
			Status:        deviceStatus{Name: "online", Reason: "available"},
			Qubits:        b.Qubits,
			ProcessorType: processorType{Family: b.Family, Revision: b.Revision},
			QueueLength:   e.queued(b.Name),
		}
	}
	writeJSON(c.w, http.StatusOK, map[string][]device{"devices": devices})
}

// backendConfig carries the configuration fields a client or gateway needs,
// not the whole BackendConfigurationResponse (no pulse, timing or gate
// calibration data).
type backendConfig struct {
	BackendName           string        `json:"backend_name"`
	BackendVersion        string        `json:"backend_version"`
	NQubits               int           `json:"n_qubits"`
	BasisGates            []string      `json:"basis_gates"`
	SupportedInstructions []string      `json:"supported_instructions"`
	CouplingMap           [][2]int      `json:"coupling_map"`
	MaxShots              int           `json:"max_shots"`
	MaxExperiments        int           `json:"max_experiments"`
	Simulator             bool          `json:"simulator"`
	Local                 bool          `json:"local"`
	Conditional           bool          `json:"conditional"`
	OpenPulse             bool          `json:"open_pulse"`
	Memory                bool          `json:"memory"`
	ProcessorType         processorType `json:"processor_type"`
	SupportedFeatures     []string      `json:"supported_features"`
}

// backendConfiguration is GET /api/v1/backends/{id}/configuration.
func (e *Emulator) backendConfiguration(c *call) {
	b, ok := e.backend(c.r.PathValue("id"))
	if !ok {
		c.fail(backendNotFound(c.r.PathValue("id")))
		return
	}
	writeJSON(c.w, http.StatusOK, backendConfig{
		BackendName:           b.Name,
		BackendVersion:        "1.0.0",
		NQubits:               b.Qubits,
		BasisGates:            slices.Clone(b.BasisGates),
		SupportedInstructions: append(slices.Clone(b.BasisGates), "measure", "barrier"),
		CouplingMap:           couplingMap(b.Qubits),
		MaxShots:              b.MaxShots,
		MaxExperiments:        b.MaxExperiments,
		Memory:                true,
		ProcessorType:         processorType{Family: b.Family, Revision: b.Revision},
		SupportedFeatures:     []string{"qasm3"},
	})
}

// couplingMap is the emulator's synthetic topology: a line 0–1–…–(n-1),
// coupled both ways. Real Heron processors are heavy-hex lattices.
func couplingMap(n int) [][2]int {
	out := make([][2]int, 0, 2*(n-1))
	for q := 0; q+1 < n; q++ {
		out = append(out, [2]int{q, q + 1}, [2]int{q + 1, q})
	}
	return out
}

// coupled reports whether a two-qubit gate may act on a and b.
func coupled(a, b int) bool { return a-b == 1 || b-a == 1 }

type backendStatusResponse struct {
	State          bool   `json:"state"`
	Status         string `json:"status"`
	Message        string `json:"message"`
	LengthQueue    int    `json:"length_queue"`
	BackendVersion string `json:"backend_version"`
}

// backendStatus is GET /api/v1/backends/{id}/status.
func (e *Emulator) backendStatus(c *call) {
	b, ok := e.backend(c.r.PathValue("id"))
	if !ok {
		c.fail(backendNotFound(c.r.PathValue("id")))
		return
	}
	writeJSON(c.w, http.StatusOK, backendStatusResponse{
		State: true, Status: "active", Message: "available", LengthQueue: e.queued(b.Name), BackendVersion: "1.0.0",
	})
}
