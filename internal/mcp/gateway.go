package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// ionqJob is the part of IonQ's v0.4 job object the tools read.
type ionqJob struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Backend string `json:"backend"`
	Shots   int    `json:"shots"`
	Failure *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"failure"`
	Stats *struct {
		Qubits int `json:"qubits"`
	} `json:"stats"`
	Qubits int `json:"-"`
}

// jobID is the shape of an IonQ job id; anything else never reaches a URL.
var jobID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9\-]{0,63}$`)

func checkJobID(id string) (string, error) {
	id = strings.TrimSpace(id)
	if id == "" {
		return "", refusef("job_id is required: the job_id submit_circuit returned")
	}
	if !jobID.MatchString(id) {
		return "", refusef("job_id is not a job id (letters, digits and '-', as submit_circuit returned it)")
	}
	return id, nil
}

// errGatewayUnknown refuses a gateway call before its address is known.
var errGatewayUnknown = &refusal{msg: "qbroker mcp does not know the gateway address yet (QBROKER_GATEWAY_ADDR is not set and no job was submitted in this server); submit a job first, or ask the person running the agent to set it"}

// frontBase is the base URL of one of the gateway's provider fronts
// (path "/ionq/v0.4", "/braket").
func (s *Server) frontBase(path string) (string, error) {
	gw := s.gatewayURL()
	if gw == "" {
		return "", errGatewayUnknown
	}
	return gw + path, nil
}

// submitIonQ sends IonQ's own job request to the gateway with the job
// token as the API key. The token is used for this one request only.
func (s *Server) submitIonQ(ctx context.Context, c *caller, jobToken, backend string, shots int, input json.RawMessage) (ionqJob, error) {
	body, err := json.Marshal(map[string]any{"type": "ionq.circuit.v1", "name": "qbroker-mcp", "backend": backend, "shots": shots, "input": input})
	if err != nil {
		return ionqJob{}, fmt.Errorf("encode job: %w", err)
	}
	var j ionqJob
	if err := s.jobTokenCall(ctx, c, "/ionq/v0.4/jobs", jobToken, body, http.StatusCreated, &j); err != nil {
		return ionqJob{}, err
	}
	if !jobID.MatchString(j.ID) {
		return ionqJob{}, &refusal{msg: "the gateway accepted the job but returned no usable job id; check job status later", cause: fmt.Errorf("job id %q", j.ID)}
	}
	return j, nil
}

// ionqJob reads one of the caller's jobs with the owner's credential.
func (s *Server) ionqJob(ctx context.Context, c *caller, id string) (ionqJob, error) {
	id, err := checkJobID(id)
	if err != nil {
		return ionqJob{}, err
	}
	var j ionqJob
	if err := s.ownerCall(ctx, c, http.MethodGet, "/ionq/v0.4/jobs/"+url.PathEscape(id), http.StatusOK, &j); err != nil {
		return ionqJob{}, err
	}
	if j.Stats != nil {
		j.Qubits = j.Stats.Qubits
	}
	return j, nil
}

// ionqProbabilities reads a completed job's probabilities.
func (s *Server) ionqProbabilities(ctx context.Context, c *caller, id string) (map[string]float64, error) {
	id, err := checkJobID(id)
	if err != nil {
		return nil, err
	}
	// The result URL IonQ gives is relative to its host; only the path
	// under this job is followed, never a host from the answer.
	var probs map[string]float64
	if err := s.ownerCall(ctx, c, http.MethodGet, "/ionq/v0.4/jobs/"+url.PathEscape(id)+"/results/probabilities", http.StatusOK, &probs); err != nil {
		return nil, err
	}
	return probs, nil
}

// ionqCancel cancels one of the caller's jobs.
func (s *Server) ionqCancel(ctx context.Context, c *caller, id string) error {
	id, err := checkJobID(id)
	if err != nil {
		return err
	}
	var out map[string]any
	return s.ownerCall(ctx, c, http.MethodPut, "/ionq/v0.4/jobs/"+url.PathEscape(id)+"/status/cancel", http.StatusOK, &out)
}

// jobTokenCall sends a submission to a provider front (path) with the
// job token as its only credential.
func (s *Server) jobTokenCall(ctx context.Context, c *caller, path, jobToken string, body []byte, want int, out any) error {
	base, err := s.frontBase("")
	if err != nil {
		return err
	}
	resp, err := s.gatewayDo(ctx, c.client, http.MethodPost, base+path, frontScheme(path)+jobToken, body)
	if err != nil {
		return err
	}
	return s.gatewayAnswer(ctx, resp, http.MethodPost, path, want, out)
}

// ownerCall reads or cancels one of the caller's jobs at a provider front
// with the owner's credential (the caller's broker, which holds it or
// asks the local agent to add it).
func (s *Server) ownerCall(ctx context.Context, c *caller, method, path string, want int, out any) error {
	resp, err := c.broker.OwnerCall(ctx, method, path)
	if err != nil {
		return err
	}
	return s.gatewayAnswer(ctx, resp, method, path, want, out)
}

// gatewayAnswer reads a provider front's answer, and turns a refusal into
// words a model can act on. The fronts answer errors as {"message": ...};
// the local agent's own refusals are {"errors": [...]}.
func (s *Server) gatewayAnswer(ctx context.Context, resp *http.Response, method, path string, want int, out any) error {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return &refusal{msg: "the qbroker gateway's answer was cut off; try again", cause: err}
	}
	if resp.StatusCode == want {
		if err := json.Unmarshal(b, out); err != nil {
			return &refusal{msg: "the qbroker gateway answered something qbroker mcp cannot read; try again later", cause: err}
		}
		return nil
	}
	var e struct {
		Message string   `json:"message"`
		Errors  []string `json:"errors"`
	}
	_ = json.Unmarshal(b, &e)
	if e.Message == "" {
		e.Message = strings.Join(e.Errors, "; ")
	}
	reason := redact(strings.TrimSpace(e.Message))
	if reason == "" {
		reason = http.StatusText(resp.StatusCode)
	}
	s.log.InfoContext(ctx, "gateway refused", "method", method, "path", path, "status", resp.StatusCode, "reason", reason)
	switch resp.StatusCode {
	case http.StatusNotFound:
		if strings.HasSuffix(path, "/probabilities") || strings.HasSuffix(path, "/results") {
			return refusef("the job has no result (it did not complete successfully)")
		}
		return refusef("no job with that job_id belongs to you (" + reason + ")")
	case http.StatusUnauthorized:
		return refusef("the gateway refused the credential (" + reason + "); if this keeps happening the broker token was revoked and a person must give qbroker mcp a new one")
	case http.StatusForbidden:
		return refusef("refused by policy: " + reason + ". This exact request will be refused again.")
	case http.StatusBadRequest:
		return refusef("the provider refused the request as invalid: " + reason)
	case http.StatusTooManyRequests:
		return refusef("the provider is busy (" + reason + "); try again later")
	default:
		return &refusal{msg: fmt.Sprintf("the qbroker gateway answered %d (%s); nothing more was done. Try again later.", resp.StatusCode, reason)}
	}
}
