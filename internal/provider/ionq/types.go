package ionq

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// Job statuses.
const (
	StatusSubmitted = "submitted"
	StatusReady     = "ready"
	StatusStarted   = "started"
	StatusCompleted = "completed"
	StatusFailed    = "failed"
	StatusCanceled  = "canceled"
)

// IsTerminal reports whether a job in status s can no longer change.
func IsTerminal(s string) bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCanceled
}

// Failure codes used by qbroker (IonQ defines more).
const (
	FailureInvalidInput     = "InvalidInput"
	FailureNotEnoughQubits  = "NotEnoughQubits"
	FailureTooManyGates     = "TooManyGates"
	FailureSimulationError  = "SimulationError"
	FailureSystemCancel     = "SystemCancel"
	FailureUnsupportedGate  = "UnsupportedGate"
	FailureQuotaExhausted   = "QuotaExhaustedError"
	FailureTooManyShots     = "TooManyShots"
	FailureInternalError    = "InternalError"
	FailureTooManyControls  = "TooManyControls"
	FailureCompilationError = "CompilationError"
)

// TimeFormat is the layout of IonQ's ISO timestamps ("2025-05-28T20:47:05.440Z").
const TimeFormat = "2006-01-02T15:04:05.000Z"

// FormatTime renders t as IonQ does (UTC, milliseconds).
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// Job is the body of GET /v0.4/jobs/{id} (IonQ's GetCircuitJobResponse).
// Fields IonQ marks required-but-nullable are pointers without omitempty, so
// they render as null.
type Job struct {
	ID                           string            `json:"id"`
	Status                       string            `json:"status"`
	Type                         string            `json:"type"`
	Backend                      string            `json:"backend"`
	DryRun                       bool              `json:"dry_run"`
	SubmitterID                  string            `json:"submitter_id"`
	ProjectID                    *string           `json:"project_id"`
	ParentJobID                  *string           `json:"parent_job_id"`
	ChildJobIDs                  []string          `json:"child_job_ids"`
	SessionID                    *string           `json:"session_id"`
	Metadata                     map[string]string `json:"metadata"`
	Name                         *string           `json:"name"`
	SubmittedAt                  string            `json:"submitted_at"`
	StartedAt                    *string           `json:"started_at"`
	CompletedAt                  *string           `json:"completed_at"`
	PredictedWaitTimeMS          *int64            `json:"predicted_wait_time_ms"`
	PredictedExecutionDurationMS *int64            `json:"predicted_execution_duration_ms"`
	ExecutionDurationMS          *int64            `json:"execution_duration_ms"`
	Shots                        int               `json:"shots"`
	Noise                        *Noise            `json:"noise,omitempty"`
	Failure                      *Failure          `json:"failure"`
	CostModel                    string            `json:"cost_model,omitempty"`
	Output                       json.RawMessage   `json:"output"`
	Settings                     json.RawMessage   `json:"settings"`
	Stats                        *Stats            `json:"stats"`
	Results                      *Results          `json:"results"`
}

// Failure explains a failed job.
type Failure struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Stats are a circuit job's statistics.
type Stats struct {
	Qubits                        int        `json:"qubits"`
	Circuits                      int        `json:"circuits"`
	GateCounts                    GateCounts `json:"gate_counts"`
	PredictedQuantumComputeTimeUS *int64     `json:"predicted_quantum_compute_time_us,omitempty"`
	BilledQuantumComputeTimeUS    *int64     `json:"billed_quantum_compute_time_us,omitempty"`
}

// GateCounts counts one- and two-qubit gates.
type GateCounts struct {
	OneQ int `json:"1q"`
	TwoQ int `json:"2q"`
}

// Results holds the (relative) URLs of a completed job's results.
type Results struct {
	Probabilities *URL `json:"probabilities,omitempty"`
	Histogram     *URL `json:"histogram,omitempty"`
	Shots         *URL `json:"shots,omitempty"`
}

// URL is IonQ's {"url": ...} wrapper.
type URL struct {
	URL string `json:"url"`
}

// ProbabilitiesPath is the relative result URL IonQ returns for job id.
func ProbabilitiesPath(id string) string { return "/v0.4/jobs/" + id + "/results/probabilities" }

// SubmitResponse is the 201 body of POST /v0.4/jobs.
type SubmitResponse struct {
	ID        string  `json:"id"`
	Status    string  `json:"status"`
	SessionID *string `json:"session_id"`
}

// CancelResponse is the body of PUT /v0.4/jobs/{id}/status/cancel.
type CancelResponse struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// WhoAmI is the body of GET /v0.4/whoami.
type WhoAmI struct {
	KeyID     string `json:"key_id"`
	KeyName   string `json:"key_name"`
	ProjectID string `json:"project_id,omitempty"`
}

// Backend describes one IonQ backend. IonQ's v0.4 schema gives last_updated
// as an ISO timestamp string.
type Backend struct {
	Backend            string `json:"backend"`
	Status             string `json:"status"`
	Qubits             int    `json:"qubits"`
	AverageQueueTime   int64  `json:"average_queue_time"`
	LastUpdated        string `json:"last_updated"`
	Degraded           bool   `json:"degraded"`
	CharacterizationID string `json:"characterization_id,omitempty"`
}

// Backend statuses.
const (
	BackendAvailable   = "available"
	BackendUnavailable = "unavailable"
	BackendRetired     = "retired"
)

// Probabilities is a probabilities result: basis-state index in decimal
// (qubit 0 is the least significant bit) → probability.
type Probabilities map[string]float64

// ProbabilitiesFromCounts converts sampled counts to probabilities
// counts/shots. States never observed are omitted, as IonQ does.
func ProbabilitiesFromCounts(counts map[int]int, shots int) Probabilities {
	p := make(Probabilities, len(counts))
	if shots <= 0 {
		return p
	}
	for idx, n := range counts {
		if n > 0 {
			p[strconv.Itoa(idx)] = float64(n) / float64(shots)
		}
	}
	return p
}

// Error is IonQ's error body.
type Error struct {
	StatusCode int         `json:"statusCode"`
	Error      string      `json:"error"`
	Message    string      `json:"message"`
	Validation *Validation `json:"validation,omitempty"`
}

// Validation names the request keys with bad values.
type Validation struct {
	Keys   []string `json:"keys,omitempty"`
	Source string   `json:"source,omitempty"`
}

// NewError returns an Error for status with message msg.
func NewError(status int, msg string) *Error {
	return &Error{StatusCode: status, Error: http.StatusText(status), Message: msg}
}

// Write renders e as the JSON response body with its status code.
func (e *Error) Write(w http.ResponseWriter) {
	WriteJSON(w, e.StatusCode, e)
}

// WriteError writes an IonQ-shaped error response.
func WriteError(w http.ResponseWriter, status int, msg string) {
	NewError(status, msg).Write(w)
}

// WriteJSON writes v as a JSON response with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"statusCode":500,"error":"Internal Server Error","message":"encoding response failed"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
