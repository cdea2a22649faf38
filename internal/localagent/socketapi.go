package localagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/client"
)

// The socket API (HTTP over the Unix socket; every peer is the owner).
//
//	GET    /v1/status             Info
//	POST   /v1/jobtoken/<role>    api.JobTokenRequest → api.JobTokenData (consent as the rules say)
//	GET    /v1/aws/creds/<role>   api.AWSCredsData (a credential export: consent)
//	POST   /v1/sessions           SessionRequest → SessionData (for `qbroker exec`)
//	DELETE /v1/sessions/<id>      204: the session's credentials are refused from now on
//
// and the agent API (agentapi.go) for tool servers such as `qbroker mcp`.
// Refusals are {"errors": [...], "code": ...}: code is consent_denied,
// broker (the broker's own refusal, with its status), broker_unavailable,
// approval_pending (409), bad_request, not_allowed or forbidden.
func (d *Daemon) socketHandler() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, d.Info()) })
	m.HandleFunc("POST /v1/jobtoken/{role}", d.handleJobToken)
	m.HandleFunc("GET /v1/aws/creds/{role}", d.handleAWSCreds)
	m.HandleFunc("POST /v1/sessions", d.handleOpenSession)
	m.HandleFunc("DELETE /v1/sessions/{id}", d.handleCloseSession)
	d.registerAgentAPI(m)
	return m
}

// SessionRequest opens an exec session.
type SessionRequest struct {
	Role     string `json:"role"`
	Provider string `json:"provider"` // aws (default: dynamic credentials); braket, ibm, ionq or quantinuum (the passthrough)
	// Device limits the session's jobs to one device (the broker's name,
	// e.g. sv1); required for braket, ibm and quantinuum.
	Device string `json:"device,omitempty"`
}

// SessionData is an open session: Env is exactly what the child gets.
type SessionData struct {
	ID  string            `json:"id"`
	Env map[string]string `json:"env"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ErrorResponse is a refusal on the socket.
type ErrorResponse struct {
	Errors []string `json:"errors"`
	Code   string   `json:"code,omitempty"`
}

func writeError(w http.ResponseWriter, err error) {
	status, msg := errorStatus(err)
	writeJSON(w, status, ErrorResponse{Errors: []string{msg}, Code: errorCode(err)})
}

// errorStatus maps an error to the status and message a local client gets.
func errorStatus(err error) (int, string) {
	status := http.StatusInternalServerError
	msg := err.Error()
	var ce *client.Error
	var pe *client.PendingError
	switch {
	case errors.Is(err, ErrDenied):
		status = http.StatusForbidden
	case errors.As(err, new(forbiddenError)):
		status = http.StatusForbidden
	case errors.As(err, &ce):
		status, msg = ce.Status, "broker: "+strings.Join(ce.Errors, "; ")
	case errors.As(err, &pe):
		status = http.StatusConflict
	case errors.Is(err, ErrBrokerUnavailable):
		status = http.StatusBadGateway
	case errors.Is(err, errBadRequest):
		status = http.StatusBadRequest
	case errors.Is(err, errNotAllowed):
		status = http.StatusForbidden
	}
	return status, msg
}

// errorCode names the kind of refusal for programs (ErrorResponse.Code).
func errorCode(err error) string {
	var ce *client.Error
	var pe *client.PendingError
	switch {
	case errors.Is(err, ErrDenied):
		return "consent_denied"
	case errors.As(err, new(forbiddenError)):
		return "forbidden"
	case errors.As(err, &ce):
		return "broker"
	case errors.As(err, &pe):
		return "approval_pending"
	case errors.Is(err, ErrBrokerUnavailable):
		return "broker_unavailable"
	case errors.Is(err, errBadRequest):
		return "bad_request"
	case errors.Is(err, errNotAllowed):
		return "not_allowed"
	}
	return ""
}

var (
	errBadRequest = errors.New("bad request")
	errNotAllowed = errors.New("not allowed")
)

// program describes the socket peer behind r.
func program(r *http.Request) Program {
	p, ok := peerFrom(r.Context())
	if !ok {
		return Program{}
	}
	return DescribeProcess(p.PID)
}

func decodeStrict(r io.Reader, v any) error {
	dec := json.NewDecoder(io.LimitReader(r, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	// Reading to the end also lets the server notice a client that goes
	// away while its request waits (for consent): the request's context
	// ends and the question is withdrawn.
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: trailing data after the JSON body", errBadRequest)
	}
	return nil
}

// handleJobToken is POST /v1/jobtoken/<role>. With ?approval=return, a
// request the broker holds for an approver is answered at once, 202 with
// {"data": api.Approval} as the broker answers it, instead of waiting
// (--approval-wait) or 409: the client (a tool server) waits for the
// approval itself and asks again with its approval_id.
func (d *Daemon) handleJobToken(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	returnHeld := q.Get("approval") == "return"
	if len(q) > 1 || (len(q) == 1 && !returnHeld) {
		writeError(w, fmt.Errorf("%w: the only parameter is approval=return", errBadRequest))
		return
	}
	var req api.JobTokenRequest
	if err := decodeStrict(r.Body, &req); err != nil {
		writeError(w, err)
		return
	}
	jt, err := d.jobToken(r.Context(), program(r), r.PathValue("role"), req, jobTokenOpts{client: clientOf(r), returnHeld: returnHeld})
	var pe *client.PendingError
	if returnHeld && errors.As(err, &pe) {
		writeJSON(w, http.StatusAccepted, api.Response{Data: pe.Approval})
		return
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, jt)
}

func (d *Daemon) handleAWSCreds(w http.ResponseWriter, r *http.Request) {
	role := r.PathValue("role")
	if err := d.consent.Check(r.Context(), Request{Program: program(r), What: "AWS credentials", Role: role, Provider: "aws", CostUSD: -1, Export: true}); err != nil {
		writeError(w, err)
		return
	}
	c, err := d.awsCreds(r.Context(), role)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (d *Daemon) handleOpenSession(w http.ResponseWriter, r *http.Request) {
	var req SessionRequest
	if err := decodeStrict(r.Body, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.Provider == "" {
		req.Provider = "aws"
	}
	switch req.Provider {
	case "aws", "braket", "ionq", "ibm", "quantinuum":
	default:
		writeError(w, fmt.Errorf("%w: provider %q: want aws, braket, ibm, ionq or quantinuum", errBadRequest, req.Provider))
		return
	}
	if req.Role == "" {
		writeError(w, fmt.Errorf("%w: a role is required", errBadRequest))
		return
	}
	if (req.Provider == "braket" || req.Provider == "ibm" || req.Provider == "quantinuum") && req.Device == "" {
		writeError(w, fmt.Errorf("%w: a %s session names its device", errBadRequest, req.Provider))
		return
	}
	if req.Provider == "aws" && req.Device != "" {
		writeError(w, fmt.Errorf("%w: an aws session is for credentials, not a device (use provider braket)", errBadRequest))
		return
	}
	prog := program(r)
	what := "an exec session"
	if req.Provider == "aws" {
		what = "AWS credentials for a child process"
	}
	if err := d.consent.Check(r.Context(), Request{Program: prog, What: what, Role: req.Role, Provider: req.Provider, CostUSD: -1, Export: req.Provider == "aws"}); err != nil {
		writeError(w, err)
		return
	}
	sessProvider := req.Provider
	if sessProvider == "braket" {
		sessProvider = "aws"
	}
	es, secret, err := d.sessions.open(req.Role, sessProvider, req.Device, prog)
	if err != nil {
		writeError(w, err)
		return
	}
	if p, ok := peerFrom(r.Context()); ok {
		d.sessions.watchExit(es, p.PID)
	}
	out := SessionData{ID: es.id, Env: map[string]string{}}
	switch req.Provider {
	case "aws":
		out.Env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = "http://" + d.awsLn.Addr().String() + "/aws/" + es.id
		out.Env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = secret
	case "ionq":
		out.Env["IONQ_API_KEY"] = secret
		out.Env["IONQ_BASE_URL"] = "http://" + d.ptLn.Addr().String() + "/ionq"
	case "ibm":
		// A REST client's base URL and bearer token (Qiskit's IAM
		// exchange is not emulated: the key is the bearer token itself).
		out.Env["IBM_QUANTUM_BASE_URL"] = "http://" + d.ptLn.Addr().String() + "/ibm"
		out.Env["IBM_QUANTUM_TOKEN"] = secret
	case "quantinuum":
		out.Env["QUANTINUUM_BASE_URL"] = "http://" + d.ptLn.Addr().String() + "/quantinuum"
		out.Env["QUANTINUUM_TOKEN"] = secret // sent raw, where an id-token goes
	case "braket":
		// The SDK's default chain finds these first; the key is the
		// session's, the secret is not one (the gateway re-signs).
		out.Env["AWS_ENDPOINT_URL_BRAKET"] = "http://" + d.ptLn.Addr().String() + "/braket"
		out.Env["AWS_ACCESS_KEY_ID"] = secret
		out.Env["AWS_SECRET_ACCESS_KEY"] = "qbroker-passthrough"
	}
	d.log.Info("local agent: exec session opened", "session", es.id, "role", req.Role, "provider", req.Provider, "pid", prog.PID, "exe", prog.Exe)
	writeJSON(w, http.StatusOK, out)
}

func (d *Daemon) handleCloseSession(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !d.sessions.close(id) {
		writeJSON(w, http.StatusNotFound, api.ErrorResponse{Errors: []string{"no such session"}})
		return
	}
	d.log.Info("local agent: exec session closed", "session", id)
	w.WriteHeader(http.StatusNoContent)
}

// awsCreds asks the broker for an STS session (aws/creds/<role>).
func (d *Daemon) awsCreds(ctx context.Context, role string) (api.AWSCredsData, error) {
	var out api.AWSCredsData
	err := d.call(ctx, func(c *client.Client) error {
		return c.Do(ctx, http.MethodGet, "/v1/aws/creds/"+url.PathEscape(role), nil, &api.Response{Data: &out})
	})
	return out, err
}

// device looks a device up in the broker's catalogue (cached 10 minutes).
func (d *Daemon) device(ctx context.Context, provider, name string) (api.DeviceInfo, bool) {
	d.devMu.Lock()
	defer d.devMu.Unlock()
	if time.Since(d.devAt) > 10*time.Minute {
		var out struct {
			Devices []api.DeviceInfo `json:"devices"`
		}
		err := d.call(ctx, func(c *client.Client) error {
			return c.Do(ctx, http.MethodGet, "/v1/quantum/devices", nil, &api.Response{Data: &out})
		})
		if err == nil {
			d.devices = map[string]api.DeviceInfo{}
			for _, dev := range out.Devices {
				d.devices[dev.Provider+"/"+dev.Name] = dev
			}
			d.devAt = time.Now()
		}
	}
	dev, ok := d.devices[provider+"/"+name]
	if !ok {
		dev, ok = d.devices[name] // names that already carry the provider
	}
	return dev, ok
}

// jobTokenOpts are a job-token request's options.
type jobTokenOpts struct {
	client     string // the client software's name, for the broker's audit trail
	returnHeld bool   // a request held for an approver is returned, not waited for
}

// jobToken asks for consent as the rules say, then for a job token.
func (d *Daemon) jobToken(ctx context.Context, prog Program, role string, req api.JobTokenRequest, o jobTokenOpts) (api.JobTokenData, error) {
	cr := Request{Program: prog, Client: o.client, What: "a job token", Role: role, Provider: req.Provider, Device: req.Device, Shots: req.Shots, CostUSD: -1}
	if dev, ok := d.device(ctx, req.Provider, req.Device); ok {
		cr.Kind = dev.Kind
		if dev.Price.PerMinuteUSD == 0 {
			cr.CostUSD = dev.Price.PerTaskUSD + dev.Price.PerShotUSD*float64(req.Shots)
		}
	} else {
		cr.Kind = "unknown" // not in the catalogue: the broker will refuse it anyway
	}
	fp := fingerprint(role, req)
	if d.held.covers(req.ApprovalID, fp) {
		// The person consented to exactly this request before the broker
		// held it for its approver; redeeming the approval is not asked
		// again.
		d.log.Info("local agent: consent: given before the broker's approval", "approval", req.ApprovalID, "pid", prog.PID, "exe", prog.Exe, "role", role)
	} else if err := d.consent.Check(ctx, cr); err != nil {
		return api.JobTokenData{}, err
	}
	var out api.JobTokenData
	err := d.call(ctx, func(c *client.Client) error {
		var err error
		out, err = named(c, o.client).JobToken(ctx, role, req)
		return err
	})
	var pe *client.PendingError
	if errors.As(err, &pe) {
		d.held.remember(pe.Approval.ID, fp, pe.Approval.ExpiresAt)
	}
	if errors.As(err, &pe) && d.cfg.ApprovalWait > 0 && !o.returnHeld {
		// The broker holds it for an approver as well: wait (while the
		// client waits) and then redeem the approval, so that an SDK that
		// knows nothing of approvals simply sees a slower answer.
		out, err = d.afterApproval(ctx, role, req, pe.Approval, o.client)
	}
	if err == nil && out.GatewayAddr != "" {
		d.gwMu.Lock()
		if d.gwURL == "" {
			d.gwURL = out.GatewayAddr
		}
		d.gwMu.Unlock()
	}
	return out, err
}

// afterApproval waits for a held job-token request to be decided and, if
// approved, asks again with the approval's id.
func (d *Daemon) afterApproval(ctx context.Context, role string, req api.JobTokenRequest, held api.Approval, clientName string) (api.JobTokenData, error) {
	d.log.Info("local agent: the broker holds the request for approval", "approval", held.ID, "console", held.ConsoleURL)
	wctx, cancel := context.WithTimeout(ctx, d.cfg.ApprovalWait)
	defer cancel()
	var a api.Approval
	err := d.call(wctx, func(c *client.Client) error {
		var err error
		a, err = c.WaitApproval(wctx, held.ID, nil)
		return err
	})
	if err != nil {
		return api.JobTokenData{}, fmt.Errorf("waiting for approval %s: %w", held.ID, err)
	}
	if a.State != api.ApprovalApproved {
		return api.JobTokenData{}, fmt.Errorf("%w: approval %s was %s", ErrDenied, held.ID, a.State)
	}
	req.ApprovalID = held.ID
	var out api.JobTokenData
	err = d.call(ctx, func(c *client.Client) error {
		var err error
		out, err = named(c, clientName).JobToken(ctx, role, req)
		return err
	})
	return out, err
}
