package ibm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/qbroker/qbroker/internal/circuit/qasm"
	"github.com/qbroker/qbroker/internal/provider"
)

// Members of a job the adapter accepts. The others Qiskit Runtime knows
// are refused: session_id, start_session and session_time (sessions run
// later jobs the token did not check), calibration_id, runtime (another
// primitive image) and remote_storage.
var (
	jobMembers    = []string{"program_id", "backend", "params", "tags", "log_level", "cost", "private"}
	paramsMembers = []string{"pubs", "options", "shots", "version", "support_qiskit"}
	// Only default_shots: twirling changes how many shots run, execution
	// what is measured, and the others how the circuit is executed.
	optionMembers = []string{"default_shots"}
	logLevels     = []string{"critical", "error", "warning", "info", "debug"}
)

// Limits of the job schema.
const (
	maxTags      = 8
	maxTagLength = 86
	maxInt32     = 1<<31 - 1
)

// ParseSubmit implements provider.Adapter for POST /jobs. It accepts a
// SamplerV2 job (program_id "sampler") with exactly one PUB: an OpenQASM 3
// string, or [circuit, parameter values, shots] whose parameter values are
// null, {} or []. Device is the backend; Shots are the PUB's, else
// params.shots, else params.options.default_shots; a job that gives none
// is refused rather than left to the service's default, which is not
// documented, and so is one whose params.shots and default_shots disagree
// when the PUB has none. ProgramSHA256 is qasm.Digest of the circuit
// source. Duplicate keys, non-integer numbers, invalid UTF-8, escaped
// surrogates and unknown members are refused at every level, so the
// service reads the job the gateway checked.
func (Adapter) ParseSubmit(body []byte) (provider.Submission, error) {
	if !utf8.Valid(body) {
		return provider.Submission{}, errors.New("the job is not valid UTF-8")
	}
	top, err := decodeObject(body)
	if err != nil {
		return provider.Submission{}, fmt.Errorf("the job is not one JSON object: %w", err)
	}
	if err := only(top, jobMembers, ""); err != nil {
		return provider.Submission{}, err
	}
	if err := checkJobMembers(top); err != nil {
		return provider.Submission{}, err
	}
	backend, err := str(top, "backend")
	if err != nil {
		return provider.Submission{}, err
	}
	if !backendRE.MatchString(backend) {
		return provider.Submission{}, errors.New("backend must be a backend name (1-64 of [A-Za-z0-9_])")
	}
	pub, err := samplerParams(top["params"])
	if err != nil {
		return provider.Submission{}, err
	}
	prog, err := qasm.Parse([]byte(pub.source))
	if err == nil && prog.Version == "2.0" {
		err = errors.New("OpenQASM 2.0: Qiskit Runtime takes OpenQASM 3 circuits")
	}
	if err != nil {
		return provider.Submission{}, fmt.Errorf("params.pubs[0]: the circuit is not OpenQASM 3 that qbroker can check: %w", err)
	}
	return provider.Submission{Device: backend, Shots: pub.shots, ProgramSHA256: qasm.Digest([]byte(pub.source)), Qubits: prog.Qubits}, nil
}

// checkJobMembers checks the members other than backend and params.
func checkJobMembers(top map[string]json.RawMessage) error {
	prog, err := str(top, "program_id")
	if err != nil {
		return err
	}
	if prog != "sampler" {
		return fmt.Errorf("program_id %q: only the sampler primitive is accepted", truncate(prog, 40))
	}
	if raw, ok := top["tags"]; ok {
		var tags []string
		if err := json.Unmarshal(raw, &tags); err != nil || tags == nil {
			return errors.New("tags must be an array of strings")
		}
		if len(tags) > maxTags {
			return fmt.Errorf("tags: at most %d", maxTags)
		}
		for _, t := range tags {
			if utf8.RuneCountInString(t) > maxTagLength {
				return fmt.Errorf("tags: each at most %d characters", maxTagLength)
			}
		}
	}
	if _, ok := top["log_level"]; ok {
		lvl, err := str(top, "log_level")
		if err != nil || !slices.Contains(logLevels, lvl) {
			return fmt.Errorf("log_level must be one of %v", logLevels)
		}
	}
	if raw, ok := top["cost"]; ok {
		if n, ok := jsonInt(raw); !ok || n < 0 {
			return errors.New("cost (the maximum execution time in seconds) must be a non-negative integer")
		}
	}
	if raw, ok := top["private"]; ok {
		if s := string(bytes.TrimSpace(raw)); s != "true" && s != "false" {
			return errors.New("private must be a boolean")
		}
	}
	return nil
}

// pubSpec is the one PUB of a job: its circuit source and resolved shots.
type pubSpec struct {
	source string
	shots  int
}

// samplerParams checks params and returns its one PUB.
func samplerParams(raw json.RawMessage) (pubSpec, error) {
	if raw == nil {
		return pubSpec{}, errors.New("params is required")
	}
	params, err := decodeObject(raw)
	if err != nil {
		return pubSpec{}, fmt.Errorf("params is not a JSON object: %w", err)
	}
	if err := only(params, paramsMembers, "params."); err != nil {
		return pubSpec{}, err
	}
	if v, ok := params["version"]; ok {
		if n, ok := jsonInt(v); !ok || n != 2 {
			return pubSpec{}, errors.New("params.version must be 2 (SamplerV2)")
		}
	}
	if v, ok := params["support_qiskit"]; ok {
		if s := string(bytes.TrimSpace(v)); s != "true" && s != "false" {
			return pubSpec{}, errors.New("params.support_qiskit must be a boolean")
		}
	}
	paramShots, err := optShots(params, "shots", "params.shots")
	if err != nil {
		return pubSpec{}, err
	}
	defaultShots := -1
	if v, ok := params["options"]; ok {
		opts, err := decodeObject(v)
		if err != nil {
			return pubSpec{}, fmt.Errorf("params.options is not a JSON object: %w", err)
		}
		if err := only(opts, optionMembers, "params.options."); err != nil {
			return pubSpec{}, err
		}
		if defaultShots, err = optShots(opts, "default_shots", "params.options.default_shots"); err != nil {
			return pubSpec{}, err
		}
	}
	var pubs []json.RawMessage
	if v, ok := params["pubs"]; !ok || json.Unmarshal(v, &pubs) != nil || pubs == nil {
		return pubSpec{}, errors.New("params.pubs must be an array")
	}
	if len(pubs) != 1 {
		return pubSpec{}, fmt.Errorf("params.pubs holds %d PUBs; exactly one is accepted (one job token binds one circuit)", len(pubs))
	}
	p, pubShots, err := onePub(pubs[0])
	if err != nil {
		return pubSpec{}, err
	}
	switch {
	case pubShots >= 0:
		p.shots = pubShots
	case paramShots >= 0 && defaultShots >= 0 && paramShots != defaultShots:
		return pubSpec{}, fmt.Errorf("params.shots (%d) and params.options.default_shots (%d) disagree; give the PUB's shots", paramShots, defaultShots)
	case paramShots >= 0:
		p.shots = paramShots
	case defaultShots >= 0:
		p.shots = defaultShots
	default:
		return pubSpec{}, errors.New("no shot count: give it in the PUB ([circuit, null, shots]), params.shots or params.options.default_shots")
	}
	if p.shots < 1 {
		return pubSpec{}, errors.New("the PUB's shots must be at least 1")
	}
	return p, nil
}

// onePub reads a PUB: a circuit string, or [circuit, parameter values,
// shots] with 1 to 3 items. It returns shots -1 when the PUB gives none.
func onePub(raw json.RawMessage) (pubSpec, int, error) {
	parts := []json.RawMessage{raw}
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '[' {
		parts = nil
		if err := json.Unmarshal(raw, &parts); err != nil || len(parts) < 1 || len(parts) > 3 {
			return pubSpec{}, 0, errors.New("params.pubs[0] must be a circuit or [circuit, parameter values, shots]")
		}
	}
	circ := bytes.TrimSpace(parts[0])
	if len(circ) == 0 || circ[0] != '"' {
		return pubSpec{}, 0, errors.New("params.pubs[0]: the circuit must be OpenQASM 3 source in a JSON string (QPY circuits cannot be checked)")
	}
	if hasSurrogateEscape(circ) {
		return pubSpec{}, 0, errors.New("params.pubs[0]: the circuit holds an escaped UTF-16 surrogate")
	}
	var p pubSpec
	if err := json.Unmarshal(circ, &p.source); err != nil || p.source == "" {
		return pubSpec{}, 0, errors.New("params.pubs[0]: the circuit must be a non-empty string")
	}
	if len(parts) >= 2 {
		switch string(bytes.TrimSpace(parts[1])) {
		case "null", "{}", "[]":
		default:
			return pubSpec{}, 0, errors.New("params.pubs[0]: parameter values are not accepted (they change the program the job token binds)")
		}
	}
	shots := -1
	if len(parts) == 3 && !isNull(parts[2]) {
		n, ok := jsonInt(parts[2])
		if !ok || n < 0 || n > maxInt32 {
			return pubSpec{}, 0, fmt.Errorf("params.pubs[0]: shots must be null or an integer from 0 to %d", maxInt32)
		}
		shots = int(n)
	}
	return p, shots, nil
}

// optShots reads an optional shot count member (-1 when absent or null).
func optShots(m map[string]json.RawMessage, key, name string) (int, error) {
	raw, ok := m[key]
	if !ok || isNull(raw) {
		return -1, nil
	}
	n, ok := jsonInt(raw)
	if !ok || n < 0 || n > maxInt32 {
		return 0, fmt.Errorf("%s must be an integer from 0 to %d", name, maxInt32)
	}
	return int(n), nil
}

// Prepare implements provider.Adapter: the job is forwarded exactly as it
// was checked (IBM has nothing a role fixes per job).
func (Adapter) Prepare(body []byte, _ provider.Scope) ([]byte, error) {
	return bytes.Clone(body), nil
}

// only refuses members of m not in allowed.
func only(m map[string]json.RawMessage, allowed []string, prefix string) error {
	for k := range m {
		if !slices.Contains(allowed, k) {
			return fmt.Errorf("%s%q is not accepted through the qbroker gateway (accepted: %v)", prefix, truncate(k, 40), allowed)
		}
	}
	return nil
}

// str reads a required string member.
func str(m map[string]json.RawMessage, key string) (string, error) {
	raw, ok := m[key]
	if !ok || isNull(raw) {
		return "", fmt.Errorf("%s is required", key)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%s must be a string", key)
	}
	return s, nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

var intLitRE = regexp.MustCompile(`^-?(0|[1-9][0-9]{0,17})$`)

// jsonInt reads an integer literal; fractions and exponents (1024.0, 1e3)
// are refused, so every reader of the job sees the same number.
func jsonInt(raw json.RawMessage) (int64, bool) {
	s := string(bytes.TrimSpace(raw))
	if !intLitRE.MatchString(s) {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// hasSurrogateEscape reports whether a JSON string literal holds a \uD800-
// \uDFFF escape, which parsers decode differently (Go to U+FFFD, Python to
// a lone surrogate).
func hasSurrogateEscape(lit []byte) bool {
	for i := 0; i < len(lit); i++ {
		if lit[i] != '\\' || i+1 >= len(lit) {
			continue
		}
		if lit[i+1] == 'u' && i+5 < len(lit) {
			if v, err := strconv.ParseUint(string(lit[i+2:i+6]), 16, 16); err == nil && v >= 0xD800 && v <= 0xDFFF {
				return true
			}
		}
		i++ // skip the escaped character
	}
	return false
}

var errNotObject = errors.New("not a JSON object")

// decodeObject decodes one JSON object into its members, refusing
// duplicate keys (which parsers resolve differently) and trailing data.
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
			return nil, fmt.Errorf("duplicate key %q", truncate(key, 40))
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
		return nil, errors.New("data after the object")
	}
	return out, nil
}
