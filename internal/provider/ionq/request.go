package ionq

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/qbroker/qbroker/internal/circuit"
)

// Job types defined by IonQ v0.4.
const (
	TypeCircuit         = "ionq.circuit.v1"
	TypeMultiCircuit    = "ionq.multi-circuit.v1"
	TypeQctrlQAOA       = "qctrl.qaoa.v1"
	TypeQuantumFunction = "quantum-function.v1"
)

// Shot limits from IonQ's schema.
const (
	MinShots       = 1
	MaxShots       = 1_000_000
	DefaultShots   = 100
	MinDebiasShots = 500 // debiasing needs at least this many shots
)

// BackendSimulator is the only backend that accepts a noise model.
const BackendSimulator = "simulator"

// IsNoiseModel reports whether m is a simulator noise model IonQ accepts.
func IsNoiseModel(m string) bool {
	switch m {
	case "ideal", "harmony", "harmony-1", "harmony-2", "aria-1", "aria-2", "forte-1", "forte-enterprise-1":
		return true
	}
	return false
}

// ValidationError is the error type for every problem found in a request;
// Field is a JSON path such as "shots" or "input.circuit[3].target". It is the
// same type as circuit.ValidationError, so errors.As works with either name.
type ValidationError = circuit.ValidationError

// ErrUnsupportedType is wrapped (via ValidationError.Err) when the job type
// is valid for IonQ but not supported by qbroker (anything other than
// ionq.circuit.v1).
var ErrUnsupportedType = errors.New("job type not supported by qbroker")

// JobRequest is the body of POST /v0.4/jobs.
type JobRequest struct {
	Type      string            `json:"type"`
	Name      string            `json:"name,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	Shots     *int              `json:"shots,omitempty"`
	Backend   string            `json:"backend"`
	SessionID *string           `json:"session_id,omitempty"`
	Settings  json.RawMessage   `json:"settings,omitempty"`
	DryRun    *bool             `json:"dry_run,omitempty"`
	Noise     json.RawMessage   `json:"noise,omitempty"`
	Input     json.RawMessage   `json:"input"`

	circuit *circuit.Input // set by a successful Validate
}

// Noise is a simulator noise model.
type Noise struct {
	Model string `json:"model"`
	Seed  *int   `json:"seed,omitempty"`
}

// ParsedNoise returns the noise setting, or nil when none was given. Call it
// after Validate.
func (r *JobRequest) ParsedNoise() *Noise {
	if len(r.Noise) == 0 {
		return nil
	}
	var n Noise
	if json.Unmarshal(r.Noise, &n) != nil {
		return nil
	}
	return &n
}

func isRequestField(k string) bool {
	switch k {
	case "type", "name", "metadata", "shots", "backend", "session_id", "settings", "dry_run", "noise", "input":
		return true
	}
	return false
}

func verr(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// DecodeJobRequest strictly decodes a job-creation body. It rejects
// malformed JSON, trailing data, duplicate keys anywhere in the document,
// unknown or case-mismatched top-level fields (naming the field), null values
// (except session_id) and values of the wrong JSON type. It does not call
// Validate. Every error is a *ValidationError.
func DecodeJobRequest(body []byte) (*JobRequest, error) {
	// Canonical applies the strict JSON rules (duplicates, UTF-8, depth,
	// finite numbers, single value) to the whole document.
	if _, err := circuit.Canonical(body); err != nil {
		return nil, &ValidationError{Msg: "malformed JSON body: " + trimCause(err), Err: err}
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return nil, verr("", "body must be a JSON object")
	}
	keys := make([]string, 0, len(top))
	for k := range top {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	r := &JobRequest{}
	for _, k := range keys {
		raw := top[k]
		if !isRequestField(k) {
			return nil, verr(truncate(k), "unknown field %q", truncate(k))
		}
		if bytes.Equal(raw, []byte("null")) {
			if k == "session_id" {
				continue
			}
			return nil, verr(k, "must not be null")
		}
		var err error
		switch k {
		case "type":
			err = decodeAs(raw, &r.Type, "a string")
		case "name":
			err = decodeAs(raw, &r.Name, "a string")
		case "backend":
			err = decodeAs(raw, &r.Backend, "a string")
		case "session_id":
			var s string
			err = decodeAs(raw, &s, "a string")
			r.SessionID = &s
		case "shots":
			var n int
			err = decodeAs(raw, &n, "an integer")
			r.Shots = &n
		case "dry_run":
			var b bool
			err = decodeAs(raw, &b, "a boolean")
			r.DryRun = &b
		case "metadata":
			err = decodeMetadata(raw, r)
		case "settings", "noise", "input":
			if raw[0] != '{' {
				err = errors.New("must be a JSON object")
			}
			switch k {
			case "settings":
				r.Settings = raw
			case "noise":
				r.Noise = raw
			case "input":
				r.Input = raw
			}
		}
		if err != nil {
			var ve *ValidationError
			if errors.As(err, &ve) {
				return nil, ve
			}
			return nil, verr(k, "%s", err.Error())
		}
	}
	return r, nil
}

func decodeAs(raw json.RawMessage, dst any, what string) error {
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("must be %s", what)
	}
	return nil
}

func decodeMetadata(raw json.RawMessage, r *JobRequest) error {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return errors.New("must be an object of strings")
	}
	r.Metadata = make(map[string]string, len(m))
	for k, v := range m {
		s, ok := v.(string)
		if !ok {
			return verr("metadata."+truncate(k), "must be a string")
		}
		r.Metadata[k] = s
	}
	return nil
}

// Validate mirrors IonQ's checks on a job request: backend, type and input
// are required; type is one of IonQ's four job types (only ionq.circuit.v1 is
// supported; the others wrap ErrUnsupportedType); shots in 1..1,000,000;
// debiasing needs at least 500 shots; noise only on the simulator backend and
// only with a known model; input must be a valid QIS circuit. On success the
// parsed circuit is available from Circuit.
func (r *JobRequest) Validate() error {
	r.circuit = nil
	switch {
	case r.Backend == "":
		return verr("backend", "required")
	case r.Type == "":
		return verr("type", "required")
	case len(r.Input) == 0:
		return verr("input", "required")
	}
	switch r.Type {
	case TypeCircuit:
	case TypeMultiCircuit, TypeQctrlQAOA, TypeQuantumFunction:
		return &ValidationError{Field: "type", Msg: fmt.Sprintf("job type %q is not supported by qbroker", r.Type), Err: ErrUnsupportedType}
	default:
		return verr("type", "unknown job type %q", truncate(r.Type))
	}
	if r.Shots != nil && (*r.Shots < MinShots || *r.Shots > MaxShots) {
		return verr("shots", "must be between %d and %d, got %d", MinShots, MaxShots, *r.Shots)
	}
	debias, err := r.debiasing()
	if err != nil {
		return err
	}
	if debias && r.EffectiveShots() < MinDebiasShots {
		return verr("settings.error_mitigation.debiasing", "requires at least %d shots, got %d", MinDebiasShots, r.EffectiveShots())
	}
	if len(r.Noise) > 0 {
		if r.Backend != BackendSimulator {
			return verr("noise", "only allowed on the %q backend, not %q", BackendSimulator, truncate(r.Backend))
		}
		if err := validateNoise(r.Noise); err != nil {
			return err
		}
	}
	in, err := circuit.ParseInput(r.Input)
	if err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			return ve.WithPrefix("input")
		}
		return verr("input", "%s", err.Error())
	}
	r.circuit = in
	return nil
}

func validateNoise(raw json.RawMessage) error {
	obj, err := object(raw)
	if err != nil {
		return verr("noise", "must be a JSON object")
	}
	for k, v := range obj {
		switch k {
		case "model":
			var m string
			if json.Unmarshal(v, &m) != nil || !IsNoiseModel(m) {
				return verr("noise.model", "unknown noise model %s", truncate(string(v)))
			}
		case "seed":
			var n int32
			if json.Unmarshal(v, &n) != nil {
				return verr("noise.seed", "must be a 32-bit integer")
			}
		default:
			return verr("noise."+truncate(k), "unknown field")
		}
	}
	if _, ok := obj["model"]; !ok {
		return verr("noise.model", "required")
	}
	return nil
}

// object decodes a JSON object keeping keys exactly as sent (encoding/json
// matches struct fields case-insensitively, which IonQ does not).
func object(raw json.RawMessage) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, errors.New("not a JSON object")
	}
	return m, nil
}

// debiasing reports whether settings.error_mitigation.debiasing turns
// debiasing on (true, or an options object).
func (r *JobRequest) debiasing() (bool, error) {
	if len(r.Settings) == 0 {
		return false, nil
	}
	settings, err := object(r.Settings)
	if err != nil {
		return false, verr("settings", "must be a JSON object")
	}
	emRaw, ok := settings["error_mitigation"]
	if !ok || string(emRaw) == "null" {
		return false, nil
	}
	em, err := object(emRaw)
	if err != nil {
		return false, verr("settings.error_mitigation", "must be a JSON object")
	}
	switch d := bytes.TrimSpace(em["debiasing"]); {
	case len(d) == 0, string(d) == "false", string(d) == "null":
		return false, nil
	case string(d) == "true", d[0] == '{':
		return true, nil
	default:
		return false, verr("settings.error_mitigation.debiasing", "must be a boolean or an object")
	}
}

// Debiasing reports whether the request turns on error-mitigation
// debiasing. Malformed settings count as on (the stricter reading).
func (r *JobRequest) Debiasing() bool {
	on, err := r.debiasing()
	return on || err != nil
}

// EffectiveShots is the number of shots IonQ will run: Shots, or 100.
func (r *JobRequest) EffectiveShots() int {
	if r.Shots == nil {
		return DefaultShots
	}
	return *r.Shots
}

// Circuit returns the circuit parsed by the last successful Validate, or nil.
func (r *JobRequest) Circuit() *circuit.Input { return r.circuit }

// CircuitDigest is the canonical-JSON SHA-256 of the "input" value as sent;
// see package circuit for the exact rules.
func (r *JobRequest) CircuitDigest() (string, error) {
	if len(r.Input) == 0 {
		return "", verr("input", "required")
	}
	return circuit.Digest(r.Input)
}

func trimCause(err error) string {
	s := err.Error()
	p := circuit.ErrNotCanonicalizable.Error() + ": "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
