package quantinuum

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"unicode/utf8"

	"github.com/qbroker/qbroker/internal/circuit/qasm"
	"github.com/qbroker/qbroker/internal/provider"
)

// LanguageQASM is the only job language accepted.
const LanguageQASM = "OPENQASM 2.0"

// maxNameLen bounds a job's name.
const maxNameLen = 256

// jobRequest is a POST /v1/job body as the gateway reads it. Members it
// does not know are refused; cfl, batch-exec and batch-end are known only
// to be refused by name.
type jobRequest struct {
	Name      *string          `json:"name"`
	Count     *int             `json:"count"`
	Machine   string           `json:"machine"`
	Language  string           `json:"language"`
	Program   string           `json:"program"`
	Priority  *string          `json:"priority"`
	Options   *json.RawMessage `json:"options"`
	MaxCost   *float64         `json:"max-cost"`
	Group     *string          `json:"group"`
	CFL       *json.RawMessage `json:"cfl"`
	BatchExec *json.RawMessage `json:"batch-exec"`
	BatchEnd  *json.RawMessage `json:"batch-end"`
}

// forwardedJob is the job as it is forwarded: only the checked members.
type forwardedJob struct {
	Name     *string `json:"name,omitempty"`
	Count    int     `json:"count"`
	Machine  string  `json:"machine"`
	Language string  `json:"language"`
	Program  string  `json:"program"`
	Priority *string `json:"priority,omitempty"`
	MaxCost  float64 `json:"max-cost"`
	Group    string  `json:"group,omitempty"`
}

// ParseSubmit implements provider.Adapter: one OpenQASM 2.0 program, the
// machine as Device, count as Shots, and qasm.Digest of the program text
// as ProgramSHA256 (the digest the broker computes for the job token's
// program).
func (a Adapter) ParseSubmit(body []byte) (provider.Submission, error) {
	j, prog, err := a.decode(body)
	if err != nil {
		return provider.Submission{}, err
	}
	return provider.Submission{Device: j.Machine, Shots: *j.Count, ProgramSHA256: qasm.Digest([]byte(j.Program)), Qubits: prog.Qubits}, nil
}

// Prepare implements provider.Adapter: the job re-encoded from the checked
// members only, with max-cost at most MaxCostHQC (set to it when the job
// names none or more) and the configured billing group. The scope is not
// read: it has no cost ceiling yet.
func (a Adapter) Prepare(body []byte, _ provider.Scope) ([]byte, error) {
	if !(a.MaxCostHQC > 0) || math.IsInf(a.MaxCostHQC, 0) {
		return nil, errors.New("no HQC ceiling (max-cost) is configured for Quantinuum jobs")
	}
	j, _, err := a.decode(body)
	if err != nil {
		return nil, err
	}
	out := forwardedJob{Name: j.Name, Count: *j.Count, Machine: j.Machine, Language: j.Language, Program: j.Program,
		Priority: j.Priority, MaxCost: a.MaxCostHQC, Group: a.Group}
	if j.MaxCost != nil && *j.MaxCost < a.MaxCostHQC {
		out.MaxCost = *j.MaxCost
	}
	if j.Group != nil {
		out.Group = *j.Group
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return nil, fmt.Errorf("encode the job: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// decode reads and checks a job body.
func (a Adapter) decode(body []byte) (*jobRequest, *qasm.Program, error) {
	if !utf8.Valid(body) {
		return nil, nil, errors.New("job body is not UTF-8")
	}
	if err := checkMembers(body); err != nil {
		return nil, nil, fmt.Errorf("job body: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var j jobRequest
	if err := dec.Decode(&j); err != nil {
		return nil, nil, fmt.Errorf("job body: %w", err)
	}
	switch {
	case j.CFL != nil:
		return nil, nil, errors.New("cfl (WASM) is not accepted: the job token cannot bind it")
	case j.BatchExec != nil || j.BatchEnd != nil:
		return nil, nil, errors.New("batch-exec and batch-end (batching) are not accepted")
	case j.Machine == "":
		return nil, nil, errors.New("machine is required")
	case !machineRE.MatchString(j.Machine):
		return nil, nil, errors.New("machine is not a machine name")
	case j.Count == nil:
		return nil, nil, errors.New("count (the shots) is required")
	case *j.Count < 1:
		return nil, nil, errors.New("count must be at least 1")
	case j.Language != LanguageQASM:
		return nil, nil, fmt.Errorf("language must be %q (the only one the gateway can check)", LanguageQASM)
	case j.Program == "":
		return nil, nil, errors.New("program is required")
	case j.Name != nil && len(*j.Name) > maxNameLen:
		return nil, nil, fmt.Errorf("name is longer than %d bytes", maxNameLen)
	case j.Priority != nil && *j.Priority != "normal":
		return nil, nil, errors.New(`priority must be "normal"`)
	case j.MaxCost != nil && *j.MaxCost < 0:
		return nil, nil, errors.New("max-cost must not be negative")
	case j.Group != nil && (*j.Group == "" || len(*j.Group) > maxNameLen):
		return nil, nil, errors.New("group must be a non-empty name")
	case j.Group != nil && a.Group == "":
		return nil, nil, errors.New("group is not accepted: no billing group is configured for this gateway (send none)")
	case j.Group != nil && *j.Group != a.Group:
		return nil, nil, errors.New("group is not the billing group configured for this gateway")
	}
	if j.Options != nil {
		var opts map[string]json.RawMessage
		if err := json.Unmarshal(*j.Options, &opts); err != nil || opts == nil {
			return nil, nil, errors.New("options must be an object")
		}
		if len(opts) > 0 {
			return nil, nil, errors.New("options are not accepted: the job token cannot bind what they change (send none, or {})")
		}
	}
	prog, err := qasm.Parse([]byte(j.Program))
	if err != nil {
		return nil, nil, fmt.Errorf("program: %w", err)
	}
	if prog.Version != "2.0" {
		return nil, nil, fmt.Errorf("program: language %q needs an OpenQASM 2.0 program (\"OPENQASM 2.0;\"), not OpenQASM %s", LanguageQASM, prog.Version)
	}
	if prog.Qubits < 1 {
		return nil, nil, errors.New("program: it uses no qubits")
	}
	return &j, prog, nil
}

// maxDepth bounds the nesting checkMembers walks.
const maxDepth = 32

// checkMembers refuses a body that is not one JSON object, has data after
// it, nests deeper than maxDepth, or repeats a member name in any object
// (escaped spellings included): decoders disagree on which repeat wins.
func checkMembers(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if t != json.Delim('{') {
		return errors.New("not a JSON object")
	}
	if err := walkObject(dec, 1); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return nil
}

func walkObject(dec *json.Decoder, depth int) error {
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := t.(string)
		if seen[key] {
			return fmt.Errorf("member %q appears twice", truncate(key, 40))
		}
		seen[key] = true
		if err := walkValue(dec, depth); err != nil {
			return err
		}
	}
	_, err := dec.Token() // '}'
	return err
}

func walkValue(dec *json.Decoder, depth int) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := t.(json.Delim)
	if !ok {
		return nil
	}
	if depth >= maxDepth {
		return errors.New("nested too deeply")
	}
	if d == '{' {
		return walkObject(dec, depth+1)
	}
	for dec.More() { // '['
		if err := walkValue(dec, depth+1); err != nil {
			return err
		}
	}
	_, err = dec.Token() // ']'
	return err
}
