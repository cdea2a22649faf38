package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/qbroker/qbroker/api"
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

// frontBase is the base URL of one of the gateway's provider fronts
// (path "/ionq/v0.4", "/braket").
func (s *Server) frontBase(path string) (string, error) {
	gw := s.gatewayURL()
	if gw == "" {
		return "", &refusal{msg: "qbroker mcp does not know the gateway address yet (QBROKER_GATEWAY_ADDR is not set and no job was submitted in this server); submit a job first, or ask the person running the agent to set it"}
	}
	return gw + path, nil
}

// ionqBase is the gateway's IonQ front.
func (s *Server) ionqBase() (string, error) { return s.frontBase("/ionq/v0.4") }

// submitIonQ sends IonQ's own job request to the gateway with the job
// token as the API key. The token is used for this one request only.
func (s *Server) submitIonQ(ctx context.Context, c *caller, jobToken, backend string, shots int, input json.RawMessage) (ionqJob, error) {
	base, err := s.ionqBase()
	if err != nil {
		return ionqJob{}, err
	}
	body, err := json.Marshal(map[string]any{"type": "ionq.circuit.v1", "name": "qbroker-mcp", "backend": backend, "shots": shots, "input": input})
	if err != nil {
		return ionqJob{}, fmt.Errorf("encode job: %w", err)
	}
	var j ionqJob
	if err := s.ionqCall(ctx, c.client, http.MethodPost, base+"/jobs", jobToken, body, http.StatusCreated, &j); err != nil {
		return ionqJob{}, err
	}
	if !jobID.MatchString(j.ID) {
		return ionqJob{}, &refusal{msg: "the gateway accepted the job but returned no usable job id; check job status later", cause: fmt.Errorf("job id %q", j.ID)}
	}
	return j, nil
}

// ionqJob reads one of the caller's jobs with its broker token.
func (s *Server) ionqJob(ctx context.Context, c *caller, id string) (ionqJob, error) {
	id, err := checkJobID(id)
	if err != nil {
		return ionqJob{}, err
	}
	base, err := s.ionqBase()
	if err != nil {
		return ionqJob{}, err
	}
	var j ionqJob
	if err := s.ionqCall(ctx, c.client, http.MethodGet, base+"/jobs/"+url.PathEscape(id), c.token, nil, http.StatusOK, &j); err != nil {
		return ionqJob{}, err
	}
	if j.Stats != nil {
		j.Qubits = j.Stats.Qubits
	}
	return j, nil
}

// ionqProbabilities reads a completed job's probabilities.
func (s *Server) ionqProbabilities(ctx context.Context, c *caller, id string) (map[string]float64, error) {
	base, err := s.ionqBase()
	if err != nil {
		return nil, err
	}
	// The result URL IonQ gives is relative to its host; only the path
	// under this job is followed, never a host from the answer.
	u := base + "/jobs/" + url.PathEscape(id) + "/results/probabilities"
	var probs map[string]float64
	if err := s.ionqCall(ctx, c.client, http.MethodGet, u, c.token, nil, http.StatusOK, &probs); err != nil {
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
	base, err := s.ionqBase()
	if err != nil {
		return err
	}
	var out map[string]any
	return s.ionqCall(ctx, c.client, http.MethodPut, base+"/jobs/"+url.PathEscape(id)+"/status/cancel", c.token, nil, http.StatusOK, &out)
}

// ionqCall makes one IonQ-shaped call (Authorization: apiKey <credential>).
func (s *Server) ionqCall(ctx context.Context, clientName, method, u, credential string, body []byte, want int, out any) error {
	return s.gatewayCall(ctx, clientName, method, u, "apiKey "+credential, body, want, out)
}

// gatewayCall makes one call to a provider front of the gateway with the
// given Authorization value, and turns a refusal into words a model can
// act on. The fronts answer errors as {"message": ...}.
func (s *Server) gatewayCall(ctx context.Context, clientName, method, u, authorization string, body []byte, want int, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("gateway request: %w", err)
	}
	req.Header.Set("Authorization", authorization)
	req.Header.Set(api.ClientHeader, clientName)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		s.log.WarnContext(ctx, "gateway unreachable", "method", method, "path", req.URL.Path, "err", redact(err.Error()))
		return &refusal{msg: "the qbroker gateway could not be reached; nothing was done. Try again later.", cause: err}
	}
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
		Message string `json:"message"`
		Error   string `json:"error"`
	}
	_ = json.Unmarshal(b, &e)
	reason := redact(strings.TrimSpace(e.Message))
	if reason == "" {
		reason = http.StatusText(resp.StatusCode)
	}
	s.log.InfoContext(ctx, "gateway refused", "method", method, "path", req.URL.Path, "status", resp.StatusCode, "reason", reason)
	switch resp.StatusCode {
	case http.StatusNotFound:
		if strings.HasSuffix(req.URL.Path, "/probabilities") || strings.HasSuffix(req.URL.Path, "/results") {
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
