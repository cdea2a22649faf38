package ibmsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"unicode/utf8"
)

// DefaultShots is the shot count of a PUB when neither the PUB, params.shots
// nor options.default_shots gives one. UNCERTAIN: the server's default was
// not found; 4096 is the default of Qiskit's SamplerV2.
const DefaultShots = 4096

// Limits of the job schema (JobRunParamsBase, Tags, JobCost).
const (
	maxTags      = 8
	maxTagLength = 86
	maxCost      = 10800
	maxInt32     = 1<<31 - 1
)

// jobRequest is a validated POST /jobs body.
type jobRequest struct {
	programID string
	backend   string
	runtime   string
	logLevel  string
	tags      []string
	cost      int
	private   bool
	params    json.RawMessage // as received, for GET /jobs/{id}
	pubs      []pubSpec
}

// pubSpec is one Sampler PUB: an OpenQASM 3 circuit and its shots.
type pubSpec struct {
	source string
	shots  int
}

// knownJobFields are the JobRunParams members; the OpenAPI does not close the
// object, but the emulator refuses anything else rather than ignore it
// (stricter than IBM, UNCERTAIN).
var knownJobFields = []string{"program_id", "backend", "params", "runtime", "tags", "log_level", "cost",
	"session_id", "calibration_id", "private", "start_session", "session_time", "remote_storage"}

var (
	samplerFields = []string{"pubs", "options", "shots", "support_qiskit", "version"}
	optionFields  = []string{"default_shots", "dynamical_decoupling", "execution", "twirling", "simulator", "experimental"}
	logLevels     = []string{"critical", "error", "warning", "info", "debug"}
)

// parseJobRequest validates body against the SamplerV2 job schema and the
// emulator's limits on what it can run.
func parseJobRequest(body []byte) (*jobRequest, *apiError) {
	top, err := decodeObject(body)
	if err != nil {
		return nil, validationError("the body is not a JSON object: %s", err)
	}
	for k := range top {
		if !slices.Contains(knownJobFields, k) {
			return nil, validationError("%q is not a property of the job", k)
		}
	}
	// UNCERTAIN: the cost IBM records when none is given was not found; the
	// emulator uses the maximum.
	req := &jobRequest{cost: maxCost}
	var aerr *apiError
	if req.programID, aerr = str(top, "program_id", true, 1, 10000); aerr != nil {
		return nil, aerr
	}
	if req.backend, aerr = str(top, "backend", true, 1, 10000); aerr != nil {
		return nil, aerr
	}
	if req.runtime, aerr = str(top, "runtime", false, 1, 10000); aerr != nil {
		return nil, aerr
	}
	if req.logLevel, aerr = str(top, "log_level", false, 1, 20); aerr != nil {
		return nil, aerr
	}
	if req.logLevel != "" && !slices.Contains(logLevels, req.logLevel) {
		return nil, validationError("log_level must be one of %v", logLevels)
	}
	if req.tags, aerr = tags(top); aerr != nil {
		return nil, aerr
	}
	if present(top, "cost") {
		n, ok := jsonInt(top["cost"])
		if !ok || n < 0 {
			return nil, validationError("cost must be a non-negative integer")
		}
		// "If the provided value exceeds the maximum, it will be capped at
		// that value." (JobCost)
		req.cost = int(min(n, maxCost))
	}
	if present(top, "private") {
		if err := json.Unmarshal(top["private"], &req.private); err != nil {
			return nil, validationError("private must be a boolean")
		}
	}
	if present(top, "session_id") {
		return nil, validationError("session_id: the session does not exist (the emulator has no sessions)")
	}
	if present(top, "start_session") || present(top, "session_time") {
		// Seen: IBM refuses starting a session through /jobs since 2024.
		return nil, validationError("starting a session using the /jobs endpoint is no longer supported; use the /sessions endpoint")
	}
	if present(top, "calibration_id") {
		return nil, validationError("calibration_id: the calibration does not exist (the emulator has none)")
	}
	if present(top, "remote_storage") {
		return nil, validationError("remote_storage is only for instances of the Channel Partner plan")
	}
	switch req.programID {
	case "sampler":
	case "estimator", "noise-learner", "executor":
		return nil, validationError("program_id %q: the emulator implements only the sampler primitive", req.programID)
	default:
		return nil, validationError("program_id %q is not a Qiskit Runtime primitive", req.programID)
	}
	if !present(top, "params") {
		return nil, validationError("params is required")
	}
	req.params = top["params"]
	if req.pubs, aerr = samplerPubs(top["params"]); aerr != nil {
		return nil, aerr
	}
	return req, nil
}

// samplerPubs validates params against JobRunParamsSampler and resolves each
// PUB's shots: the PUB's own, else params.shots, else
// options.default_shots, else DefaultShots.
func samplerPubs(raw json.RawMessage) ([]pubSpec, *apiError) {
	params, err := decodeObject(raw)
	if err != nil {
		return nil, validationError("params is not a JSON object: %s", err)
	}
	for k := range params {
		if !slices.Contains(samplerFields, k) {
			return nil, validationError("params: %q is not a property of the SamplerV2 input", k)
		}
	}
	if present(params, "version") {
		if n, ok := jsonInt(params["version"]); !ok || n != 2 {
			return nil, validationError("params.version must be 2")
		}
	}
	if present(params, "support_qiskit") {
		var sq bool
		if err := json.Unmarshal(params["support_qiskit"], &sq); err != nil {
			return nil, validationError("params.support_qiskit must be a boolean")
		}
		if sq {
			return nil, validationError("params.support_qiskit: the emulator returns pure JSON results only, not Qiskit-encoded ones")
		}
	}
	defaultShots := DefaultShots
	if present(params, "options") {
		opts, err := decodeObject(params["options"])
		if err != nil {
			return nil, validationError("params.options is not a JSON object: %s", err)
		}
		for k, v := range opts {
			if !slices.Contains(optionFields, k) {
				return nil, validationError("params.options: %q is not a SamplerV2 option", k)
			}
			if k != "default_shots" && !bytes.HasPrefix(v, []byte("{")) {
				return nil, validationError("params.options.%s must be an object", k)
			}
		}
		if present(opts, "default_shots") {
			n, ok := jsonInt(opts["default_shots"])
			if !ok || n < 0 || n > maxInt32 {
				return nil, validationError("params.options.default_shots must be an integer from 0 to %d", maxInt32)
			}
			defaultShots = int(n)
		}
	}
	if present(params, "shots") {
		n, ok := jsonInt(params["shots"])
		if !ok || n < 0 || n > maxInt32 {
			return nil, validationError("params.shots must be an integer from 0 to %d", maxInt32)
		}
		defaultShots = int(n)
	}
	if !present(params, "pubs") {
		return nil, validationError("params.pubs is required")
	}
	var items []json.RawMessage
	if err := json.Unmarshal(params["pubs"], &items); err != nil {
		return nil, validationError("params.pubs must be an array")
	}
	if len(items) == 0 {
		return nil, validationError("params.pubs must hold at least one PUB")
	}
	pubs := make([]pubSpec, len(items))
	for i, item := range items {
		p, aerr := samplerPub(i, item, defaultShots)
		if aerr != nil {
			return nil, aerr
		}
		pubs[i] = p
	}
	return pubs, nil
}

// samplerPub validates one PUB: a circuit, or [circuit, parameter values?,
// shots?].
func samplerPub(i int, item json.RawMessage, defaultShots int) (pubSpec, *apiError) {
	p := pubSpec{shots: defaultShots}
	var parts []json.RawMessage
	switch {
	case bytes.HasPrefix(item, []byte("[")):
		if err := json.Unmarshal(item, &parts); err != nil || len(parts) < 1 || len(parts) > 3 {
			return p, validationError("params.pubs[%d] must be [circuit, parameter values, shots] with 1 to 3 items", i)
		}
	default:
		parts = []json.RawMessage{item}
	}
	circ := parts[0]
	switch {
	case bytes.HasPrefix(circ, []byte(`"`)):
		if err := json.Unmarshal(circ, &p.source); err != nil || p.source == "" {
			return p, validationError("params.pubs[%d]: the circuit must be a non-empty OpenQASM 3 string", i)
		}
	case bytes.HasPrefix(circ, []byte("{")):
		return p, validationError("params.pubs[%d]: QPY circuits are not supported by the emulator; send OpenQASM 3 text", i)
	default:
		return p, validationError("params.pubs[%d]: the circuit must be an OpenQASM 3 string", i)
	}
	if len(parts) >= 2 && !isNull(parts[1]) {
		v := bytes.TrimSpace(parts[1])
		if !bytes.Equal(v, []byte("{}")) && !bytes.Equal(v, []byte("[]")) {
			return p, validationError("params.pubs[%d]: parameter values are not supported by the emulator (its circuits have no parameters)", i)
		}
	}
	if len(parts) == 3 && !isNull(parts[2]) {
		n, ok := jsonInt(parts[2])
		if !ok || n > maxInt32 {
			return p, validationError("params.pubs[%d]: shots must be an integer or null", i)
		}
		p.shots = int(n)
	}
	return p, nil
}

func tags(top map[string]json.RawMessage) ([]string, *apiError) {
	if !present(top, "tags") {
		return nil, nil
	}
	var ts []string
	if err := json.Unmarshal(top["tags"], &ts); err != nil {
		return nil, validationError("tags must be an array of strings")
	}
	if len(ts) > maxTags {
		return nil, validationError("tags must hold at most %d tags", maxTags)
	}
	for _, t := range ts {
		if utf8.RuneCountInString(t) > maxTagLength {
			return nil, validationError("a tag must be at most %d characters", maxTagLength)
		}
	}
	return ts, nil
}

func present(m map[string]json.RawMessage, k string) bool {
	raw, ok := m[k]
	return ok && !isNull(raw)
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// str reads a string member of length [minLen, maxLen] (in characters).
func str(m map[string]json.RawMessage, k string, required bool, minLen, maxLen int) (string, *apiError) {
	if !present(m, k) {
		if required {
			return "", validationError("%s is required", k)
		}
		return "", nil
	}
	var s string
	if err := json.Unmarshal(m[k], &s); err != nil {
		return "", validationError("%s must be a string", k)
	}
	if n := utf8.RuneCountInString(s); n < minLen || n > maxLen {
		return "", validationError("%s must have length between %d and %d", k, minLen, maxLen)
	}
	return s, nil
}

var intLitRE = regexp.MustCompile(`^-?(0|[1-9][0-9]{0,17})$`)

// jsonInt reads an integer literal. Fractions and exponents ("1024.0",
// "1e3") are refused, so every reader of the body sees the same number.
func jsonInt(raw json.RawMessage) (int64, bool) {
	s := string(bytes.TrimSpace(raw))
	if !intLitRE.MatchString(s) {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

var errNotObject = errors.New("not a JSON object")

// decodeObject decodes one JSON object, refusing duplicate keys (which
// different parsers resolve differently) and trailing data.
func decodeObject(raw []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errNotObject
	}
	out := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("duplicate key %q", key)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		out[key] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("trailing data after the object")
	}
	return out, nil
}
