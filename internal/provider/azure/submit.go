package azure

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/qbroker/qbroker/internal/circuit"
	"github.com/qbroker/qbroker/internal/circuit/qasm"
	"github.com/qbroker/qbroker/internal/provider"
)

// family is what the adapter knows of one provider's targets: the formats
// it binds and the inputParams that name the shot count.
type family struct {
	id           string // providerId, lower case
	inputFormat  string
	outputFormat string
	contentType  string   // of the input blob
	shotsParams  []string // inputParams keys read as the shot count (all must agree)
}

// families are the providers whose programs the broker can bind: IonQ's
// JSON circuits (circuit.Digest) and Quantinuum's OpenQASM (qasm.Digest;
// the program must be in the OpenQASM 3 subset package qasm parses).
// Others (QIR targets, Rigetti, Pasqal) are refused.
var families = map[string]family{
	"ionq": {id: "ionq", inputFormat: "ionq.circuit.v1", outputFormat: "ionq.quantum-results.v1", contentType: "application/json", shotsParams: []string{"shots"}},
	"quantinuum": {id: "quantinuum", inputFormat: "honeywell.openqasm.v1", outputFormat: "honeywell.quantum-results.v1", contentType: "application/qasm",
		shotsParams: []string{"shots", "count"}},
}

// jobRequest is the writable part of JobDetails the gateway accepts.
// Anything else (outputDataUri, read-only members, unknown members) is
// refused by the decoder.
type jobRequest struct {
	ID               *string           `json:"id,omitempty"`
	Name             string            `json:"name"`
	ItemType         string            `json:"itemType,omitempty"`
	JobType          string            `json:"jobType,omitempty"`
	ProviderID       string            `json:"providerId"`
	Target           string            `json:"target"`
	ContainerURI     string            `json:"containerUri"`
	InputDataURI     string            `json:"inputDataUri,omitempty"`
	InputDataFormat  string            `json:"inputDataFormat"`
	OutputDataFormat string            `json:"outputDataFormat,omitempty"`
	InputParams      map[string]any    `json:"inputParams"`
	Metadata         map[string]string `json:"metadata,omitempty"`
	Tags             []string          `json:"tags,omitempty"`
	SessionID        *string           `json:"sessionId,omitempty"`
	Priority         string            `json:"priority,omitempty"`
}

// job is a decoded, validated job creation.
type job struct {
	req   jobRequest
	fam   family
	shots int
	// the staged container the job's input is in
	container, sig string
}

// decodeJob strictly decodes and validates a job creation body.
func decodeJob(body []byte) (*job, error) {
	// Duplicate members would let two parsers disagree; Canonical refuses them.
	if _, err := circuit.Canonical(body); err != nil {
		return nil, fmt.Errorf("job body: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var req jobRequest
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("job body: %s", jsonProblem(err))
	}
	j := &job{req: req}
	var problems []error
	bad := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }
	if req.ID != nil && !guidRE.MatchString(*req.ID) {
		bad("id must be the job's GUID")
	}
	if req.Name == "" || len(req.Name) > 1024 {
		bad("name is required (at most 1024 characters)")
	}
	if req.ItemType != "" && req.ItemType != "Job" {
		bad("itemType must be Job")
	}
	if req.JobType != "" && req.JobType != "QuantumComputing" {
		bad("jobType must be QuantumComputing")
	}
	if req.SessionID != nil {
		bad("sessionId is not available through the qbroker gateway (one job per job token)")
	}
	if req.Priority != "" && req.Priority != "Standard" {
		bad("priority must be Standard (the job token does not cover another)")
	}
	if len(req.Tags) > 32 || len(req.Metadata) > 64 {
		bad("at most 32 tags and 64 metadata entries")
	}
	for _, t := range req.Tags {
		if len(t) > 256 {
			bad("tags are limited to 256 characters")
			break
		}
	}
	for k, v := range req.Metadata {
		if len(k) > 128 || len(v) > 8192 {
			bad("metadata keys are limited to 128 characters and values to 8192")
			break
		}
	}
	fam, ok := families[strings.ToLower(req.ProviderID)]
	switch {
	case !ok:
		bad("providerId %q is not one whose programs the gateway can check (ionq, quantinuum)", clip(req.ProviderID, 64))
	case !strings.HasPrefix(strings.ToLower(req.Target), fam.id+".") || len(req.Target) > 128:
		bad("target %q does not belong to provider %s", clip(req.Target, 128), fam.id)
	case req.InputDataFormat != fam.inputFormat:
		bad("inputDataFormat must be %s for %s targets", fam.inputFormat, fam.id)
	case req.OutputDataFormat != "" && req.OutputDataFormat != fam.outputFormat:
		bad("outputDataFormat must be %s for %s targets", fam.outputFormat, fam.id)
	default:
		j.fam = fam
		shots, err := shotsOf(req.InputParams, fam)
		if err != nil {
			problems = append(problems, err)
		}
		j.shots = shots
	}
	cont, sig, err := stagingContainer(req.ContainerURI)
	if err != nil {
		bad("containerUri %w", err)
	} else if req.InputDataURI != "" {
		in, blob, err := stagingBlob(req.InputDataURI)
		if err != nil || in != cont || blob != InputBlob {
			bad("inputDataUri must be %s in the job's container", InputBlob)
		}
	}
	j.container, j.sig = cont, sig
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}
	return j, nil
}

// shotsOf reads the shot count from inputParams: it must be given (the
// service's default would run shots the token was not checked for), as a
// positive integer, under the provider's names only (several must agree);
// any other parameter is refused, since the job token cannot bind it.
func shotsOf(params map[string]any, fam family) (int, error) {
	shots := 0
	for k, v := range params {
		if !slices.Contains(fam.shotsParams, k) {
			return 0, fmt.Errorf("inputParams.%s is not available through the qbroker gateway (only %s)", clip(k, 64), strings.Join(fam.shotsParams, ", "))
		}
		num, ok := v.(json.Number)
		if !ok {
			return 0, fmt.Errorf("inputParams.%s must be an integer", k)
		}
		n, err := strconv.Atoi(num.String())
		if err != nil || n < 1 {
			return 0, fmt.Errorf("inputParams.%s must be a positive integer", k)
		}
		if shots != 0 && n != shots {
			return 0, fmt.Errorf("inputParams %s disagree", strings.Join(fam.shotsParams, " and "))
		}
		shots = n
	}
	if shots == 0 {
		return 0, fmt.Errorf("inputParams.%s is required", fam.shotsParams[0])
	}
	return shots, nil
}

// stagingContainer reads a staging container URI the gateway handed out:
// …/storage/<container>?…&sig=<capability>. The host is not looked at;
// the capability is what identifies the container.
func stagingContainer(s string) (name, sig string, err error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "", "", errors.New("is not an absolute URL")
	}
	segs := strings.Split(strings.TrimSuffix(u.EscapedPath(), "/"), "/")
	q := u.Query()
	if len(segs) < 2 || segs[len(segs)-2] != "storage" || len(q["sig"]) != 1 {
		return "", "", errors.New("is not an upload container the qbroker gateway granted (POST …/storage/sasUri through the gateway)")
	}
	return segs[len(segs)-1], q.Get("sig"), nil
}

// stagingBlob reads a staging blob URI: …/storage/<container>/<blob>.
func stagingBlob(s string) (container, blob string, err error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "", "", errors.New("is not an absolute URL")
	}
	segs := strings.Split(u.EscapedPath(), "/")
	if len(segs) < 3 || segs[len(segs)-3] != "storage" {
		return "", "", errors.New("is not a blob of an upload container")
	}
	return segs[len(segs)-2], segs[len(segs)-1], nil
}

// ParseSubmit implements provider.Adapter for PUT {ws}/jobs/{id}: the
// JobDetails body is validated strictly and its input must be a blob the
// gateway itself received (staged through Grant and ServeStaging, still
// held, uploaded complete). The digest is computed from those bytes:
// circuit.Digest for ionq.circuit.v1, qasm.Digest for honeywell.openqasm.v1
// (after the program parses). Device is the target id in lower case.
func (a *Adapter) ParseSubmit(body []byte) (provider.Submission, error) {
	j, err := decodeJob(body)
	if err != nil {
		return provider.Submission{}, err
	}
	in, err := a.stage.input(j.container, j.sig)
	switch {
	case err != nil:
		return provider.Submission{}, errors.New("containerUri is not an upload container the qbroker gateway granted, or it expired")
	case in == nil:
		return provider.Submission{}, errors.New("no job input was uploaded to the container (PUT …/" + InputBlob + " through the gateway first)")
	}
	digest, qubits, err := digestOf(j.fam, in.data)
	if err != nil {
		return provider.Submission{}, err
	}
	return provider.Submission{Device: strings.ToLower(j.req.Target), Shots: j.shots, ProgramSHA256: digest, Qubits: qubits}, nil
}

// digestOf validates a staged input in the family's format and returns the
// digest the broker computes for the same program, and its qubit count.
func digestOf(fam family, data []byte) (string, int, error) {
	switch fam.inputFormat {
	case "ionq.circuit.v1":
		in, err := circuit.ParseInput(data)
		if err != nil {
			return "", 0, fmt.Errorf("job input: %w", err)
		}
		d, err := circuit.Digest(data)
		if err != nil {
			return "", 0, fmt.Errorf("job input: %w", err)
		}
		return d, in.Qubits, nil
	case "honeywell.openqasm.v1":
		p, err := qasm.Parse(data)
		if err != nil {
			return "", 0, fmt.Errorf("job input (OpenQASM 3 as the broker parses it): %w", err)
		}
		return qasm.Digest(data), p.Qubits, nil
	}
	return "", 0, fmt.Errorf("input format %s cannot be checked", fam.inputFormat)
}

// Prepare implements provider.Adapter: the job as it will be created,
// rebuilt from the validated fields only (so upstream reads exactly what
// was checked): target in lower case, itemType Job, the family's output
// format, inputParams with the shot count only. The staging URIs stay;
// Send replaces them with the workspace's own SAS URIs.
func (a *Adapter) Prepare(body []byte, _ provider.Scope) ([]byte, error) {
	j, err := decodeJob(body)
	if err != nil {
		return nil, err
	}
	return json.Marshal(j.prepared())
}

// prepared is the canonical job body.
func (j *job) prepared() jobRequest {
	r := j.req
	r.ItemType = "Job"
	r.JobType = ""
	r.Target = strings.ToLower(r.Target)
	r.OutputDataFormat = j.fam.outputFormat
	params := map[string]any{}
	for k := range r.InputParams {
		params[k] = j.shots
	}
	r.InputParams = params
	r.Priority = ""
	if r.ID != nil {
		id := strings.ToLower(*r.ID)
		r.ID = &id
	}
	return r
}
