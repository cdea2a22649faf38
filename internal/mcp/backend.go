package mcp

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/qbroker/qbroker/api"
)

// jobView is a job as the tools report it, whatever its provider.
type jobView struct {
	ID, Status, Device, Failure string
	Shots, Qubits               int
}

// backend is one of the gateway's provider fronts, spoken in that
// provider's own API shape.
type backend interface {
	// tokenRequest is the job-token request that binds p to d.
	tokenRequest(d Device, shots int, p program) (api.JobTokenRequest, error)
	// submit sends the job with the job token as its only credential.
	submit(ctx context.Context, c *caller, jobToken string, d Device, shots int, p program) (jobView, error)
	// job, probabilities and cancel act with the caller's broker token.
	job(ctx context.Context, c *caller, id string) (jobView, error)
	probabilities(ctx context.Context, c *caller, j jobView) (map[string]float64, error) // bitstring (qubit 0 rightmost) → p
	cancel(ctx context.Context, c *caller, id string) error
}

// backendFor is the backend for a provider's devices.
func (s *Server) backendFor(provider string) (backend, bool) {
	switch provider {
	case "ionq":
		return ionqBackend{s}, true
	case "aws":
		return braketBackend{s}, true
	}
	return nil, false
}

// submittable reports whether submit_circuit can reach a provider.
func submittable(provider string) bool { return provider == "ionq" || provider == "aws" }

// backendForJob picks the backend by the job id's shape: a Braket task ARN,
// or an IonQ job id.
func (s *Server) backendForJob(id string) (backend, error) {
	id = strings.TrimSpace(id)
	switch {
	case id == "":
		return nil, refusef("job_id is required: the job_id submit_circuit returned")
	case strings.HasPrefix(id, "arn:"):
		if !braketTaskARN.MatchString(id) {
			return nil, refusef("job_id is not a Braket quantum-task ARN as submit_circuit returned it")
		}
		return braketBackend{s}, nil
	case jobID.MatchString(id):
		return ionqBackend{s}, nil
	}
	return nil, refusef("job_id is not a job id (letters, digits and '-', or a Braket task ARN, as submit_circuit returned it)")
}

// ionqBackend drives the gateway's IonQ front (/ionq/v0.4).
type ionqBackend struct{ s *Server }

func (b ionqBackend) tokenRequest(d Device, shots int, p program) (api.JobTokenRequest, error) {
	return api.JobTokenRequest{Provider: d.Provider, Device: d.Name, Shots: shots, ProgramSHA256: p.digest, Program: p.input, Format: api.FormatIonQ}, nil
}

func (b ionqBackend) submit(ctx context.Context, c *caller, jobToken string, d Device, shots int, p program) (jobView, error) {
	j, err := b.s.submitIonQ(ctx, c, jobToken, d.Name, shots, p.input)
	if err != nil {
		return jobView{}, err
	}
	return jobView{ID: j.ID, Status: j.Status, Device: d.ID, Shots: shots, Qubits: p.qubits}, nil
}

func (b ionqBackend) job(ctx context.Context, c *caller, id string) (jobView, error) {
	j, err := b.s.ionqJob(ctx, c, id)
	if err != nil {
		return jobView{}, err
	}
	v := jobView{ID: j.ID, Status: j.Status, Device: "ionq/" + j.Backend, Shots: j.Shots, Qubits: j.Qubits}
	if j.Failure != nil {
		v.Failure = strings.TrimSpace(j.Failure.Code + ": " + j.Failure.Message)
	}
	return v, nil
}

func (b ionqBackend) probabilities(ctx context.Context, c *caller, j jobView) (map[string]float64, error) {
	probs, err := b.s.ionqProbabilities(ctx, c, j.ID)
	if err != nil {
		return nil, err
	}
	// IonQ keys results by the basis state's decimal index, qubit 0 the
	// least significant bit.
	width := max(j.Qubits, 1)
	idx := make(map[string]uint64, len(probs))
	for k := range probs {
		n, err := strconv.ParseUint(k, 10, 64)
		if err != nil {
			return nil, &refusal{msg: "the provider returned a result qbroker cannot read; try again later", cause: fmt.Errorf("result key %q", k)}
		}
		idx[k] = n
		width = max(width, len(strconv.FormatUint(n, 2)))
	}
	out := make(map[string]float64, len(probs))
	for k, p := range probs {
		out[fmt.Sprintf("%0*b", width, idx[k])] = p
	}
	return out, nil
}

func (b ionqBackend) cancel(ctx context.Context, c *caller, id string) error {
	return b.s.ionqCancel(ctx, c, id)
}

var _ backend = ionqBackend{}
