package quantinuumsim

import (
	"encoding/json"
	"net/http"
)

// codeMFARequired is the error code of a login that needs an MFA code
// (pytket-quantinuum's ERROR_CODE_MFA_REQUIRED).
const codeMFARequired = 73

// errorBody is the error shape pytket reads: {"error":{"code":N,"text":"…"}}
// (api_wrappers.py reads error.code on a 401 login and error.text on a 400
// refresh). Only code 73 is known from the source; for every other error
// the emulator uses the HTTP status as the code (an emulator choice).
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code int    `json:"code"`
	Text string `json:"text"`
}

// writeError writes an error answer; code 0 means "use the status".
func writeError(w http.ResponseWriter, status, code int, text string) {
	if code == 0 {
		code = status
	}
	writeJSON(w, status, errorBody{Error: errorDetail{Code: code, Text: text}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":{"code":500,"text":"could not encode the answer"}}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// loginRequest is the body of POST /v1/login: a password login (email,
// password and, with MFA, code) or a refresh (refresh-token). pytket also
// sends {"provider-token"} for Microsoft federated login, which the
// emulator does not support.
type loginRequest struct {
	Email         *string `json:"email"`
	Password      *string `json:"password"`
	Code          *string `json:"code"`
	RefreshToken  *string `json:"refresh-token"`
	ProviderToken *string `json:"provider-token"`
}

// loginResponse is the answer to a successful login or refresh.
type loginResponse struct {
	IDToken      string `json:"id-token"`
	RefreshToken string `json:"refresh-token"`
}

// jobRequest is the body of POST /v1/job (pytket's submit_program).
type jobRequest struct {
	Name     *string          `json:"name"`
	Count    *int             `json:"count"`
	Machine  *string          `json:"machine"`
	Language *string          `json:"language"`
	Program  *string          `json:"program"`
	Priority *string          `json:"priority"`
	Options  *json.RawMessage `json:"options"`
	MaxCost  *float64         `json:"max-cost"`
	Group    *string          `json:"group"`
	// Accepted by the service, refused by the emulator (see the package
	// documentation).
	CFL       *json.RawMessage `json:"cfl"`
	BatchExec *json.RawMessage `json:"batch-exec"`
	BatchEnd  *json.RawMessage `json:"batch-end"`
}

// submitResponse is the answer to POST /v1/job. pytket reads only "job".
type submitResponse struct {
	Job    string `json:"job"`
	Status string `json:"status"`
}

// jobView is the answer to GET /v1/job/{id} and POST /v1/job/{id}/cancel.
// pytket reads status, name, submit-date, result-date, queue-position,
// cost, error and results.
type jobView struct {
	Job           string              `json:"job"`
	Name          string              `json:"name"`
	Status        string              `json:"status"`
	Machine       string              `json:"machine"`
	Count         int                 `json:"count"`
	Language      string              `json:"language"`
	Priority      string              `json:"priority"`
	Group         *string             `json:"group,omitempty"`
	MaxCost       *float64            `json:"max-cost,omitempty"`
	SubmitDate    string              `json:"submit-date"`
	StartDate     *string             `json:"start-date"`
	ResultDate    *string             `json:"result-date"`
	QueuePosition *int                `json:"queue-position"`
	Cost          float64             `json:"cost"`
	Error         *errorDetail        `json:"error,omitempty"`
	Results       map[string][]string `json:"results,omitempty"`
}

// machineInfo is one entry of GET /v1/machine/?config=true, in the shape of
// pytket's offline machine list; GET /v1/machine/{name} adds "state".
type machineInfo struct {
	Name                string   `json:"name"`
	Qubits              int      `json:"n_qubits"`
	Gateset             []string `json:"gateset"`
	ClassicalRegisters  int      `json:"n_classical_registers"`
	MaxShots            int      `json:"n_shots"`
	SystemType          string   `json:"system_type"`
	Emulator            string   `json:"emulator,omitempty"`
	SyntaxChecker       string   `json:"syntax_checker,omitempty"`
	Batching            bool     `json:"batching"`
	WASM                bool     `json:"wasm"`
	State               string   `json:"state,omitempty"`
	MaxClassicalRegBits int      `json:"max_classical_register_width"`
}

// timeFormat is the emulator's job timestamp format (UNCERTAIN: the
// service's format is not in the reference).
const timeFormat = "2006-01-02T15:04:05.000000"
