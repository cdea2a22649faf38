package localagent

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/client"
	"github.com/qbroker/qbroker/internal/core"
)

// The agent API: what a tool server on this desktop (`qbroker mcp` run by
// an MCP host) needs to act as the signed-in agent without ever holding
// its broker token. The daemon makes each call with the token and answers
// with the result, never the token. The list is closed: there is no
// generic proxy to the broker or the gateway.
//
//	GET  /v1/whoami                       WhoAmI: role, entity, display name, policies, expiry
//	GET  /v1/quantum/devices              {"devices": [api.DeviceInfo]}
//	GET  /v1/sys/budgets                  {"budgets": [api.BudgetUsage]} (the agent's own)
//	GET  /v1/sys/approvals/<id>?wait=D    api.Approval (the agent's own; D at most 60s)
//	POST /v1/sys/audit/tool-call          api.ToolCallRequest → 204
//	GET  /v1/gateway/ionq/v0.4/jobs/<id>[/results/probabilities]
//	PUT  /v1/gateway/ionq/v0.4/jobs/<id>/status/cancel
//	GET  /v1/gateway/braket/quantum-task/<task ARN>[/results]
//	PUT  /v1/gateway/braket/quantum-task/<task ARN>/cancel
//
// The gateway calls are the reads and cancels of the agent's jobs, which
// the gateway serves only to their owner's broker token: the daemon adds
// it (apiKey for the IonQ front, Bearer for the Braket front) and passes
// the gateway's answer back unchanged. Jobs submitted through an exec
// session's passthrough are not among them: only their session reads
// them. Job tokens still come from POST
// /v1/jobtoken/<role>, after consent. X-Qbroker-Client, when sent, names
// the client software in the broker's and the gateway's audit trail.
func (d *Daemon) registerAgentAPI(m *http.ServeMux) {
	m.HandleFunc("GET /v1/whoami", d.handleWhoAmI)
	m.HandleFunc("GET /v1/quantum/devices", d.handleDevices)
	m.HandleFunc("GET /v1/sys/budgets", d.handleBudgets)
	m.HandleFunc("GET /v1/sys/approvals/{id}", d.handleApproval)
	m.HandleFunc("POST /v1/sys/audit/tool-call", d.handleToolCall)
	m.HandleFunc("/v1/gateway/", d.handleGateway)
}

// WhoAmI is GET /v1/whoami: the agent the daemon acts as. Neither the
// token nor its accessor is in it.
type WhoAmI struct {
	Role        string     `json:"role"`
	EntityID    string     `json:"entity_id"`
	DisplayName string     `json:"display_name,omitempty"`
	Policies    []string   `json:"policies,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
}

// clientOf is the self-declared client name of a socket request.
func clientOf(r *http.Request) string { return core.CleanClientName(r.Header.Get(api.ClientHeader)) }

// named is c with the client name, when there is one.
func named(c *client.Client, name string) *client.Client {
	if name == "" {
		return c
	}
	return c.WithClientName(name)
}

// noQuery refuses a request with a query string (nothing is passed on
// that the endpoint does not name).
func noQuery(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.RawQuery != "" {
		writeError(w, fmt.Errorf("%w: this endpoint takes no query parameters", errBadRequest))
		return false
	}
	return true
}

func (d *Daemon) handleWhoAmI(w http.ResponseWriter, r *http.Request) {
	if !noQuery(w, r) {
		return
	}
	var ti api.TokenInfo
	err := d.call(r.Context(), func(c *client.Client) error {
		var err error
		ti, err = c.LookupSelf(r.Context())
		return err
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, WhoAmI{Role: ti.Role, EntityID: ti.EntityID, DisplayName: ti.DisplayName, Policies: ti.Policies, ExpiresAt: ti.ExpireTime})
}

func (d *Daemon) handleDevices(w http.ResponseWriter, r *http.Request) {
	if !noQuery(w, r) {
		return
	}
	var ds []api.DeviceInfo
	err := d.call(r.Context(), func(c *client.Client) error {
		var err error
		ds, err = named(c, clientOf(r)).Devices(r.Context())
		return err
	})
	if err != nil {
		writeError(w, err)
		return
	}
	if ds == nil {
		ds = []api.DeviceInfo{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": ds})
}

func (d *Daemon) handleBudgets(w http.ResponseWriter, r *http.Request) {
	if !noQuery(w, r) { // ?agent= is root's; the daemon reads its own
		return
	}
	var us []api.BudgetUsage
	err := d.call(r.Context(), func(c *client.Client) error {
		var err error
		us, err = named(c, clientOf(r)).Budgets(r.Context(), "")
		return err
	})
	if err != nil {
		writeError(w, err)
		return
	}
	if us == nil {
		us = []api.BudgetUsage{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"budgets": us})
}

// approvalID is the shape of an approval id; anything else never reaches
// the broker.
var approvalID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_\-]{0,127}$`)

func (d *Daemon) handleApproval(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !approvalID.MatchString(id) {
		writeError(w, fmt.Errorf("%w: not an approval id", errBadRequest))
		return
	}
	q := r.URL.Query()
	var wait time.Duration
	for k := range q {
		if k != "wait" {
			writeError(w, fmt.Errorf("%w: unknown parameter %q (only wait)", errBadRequest, k))
			return
		}
	}
	if s := q.Get("wait"); s != "" {
		var err error
		if wait, err = time.ParseDuration(s); err != nil || wait < 0 || wait > time.Minute {
			writeError(w, fmt.Errorf("%w: wait must be a duration of at most 60s", errBadRequest))
			return
		}
	}
	var a api.Approval
	err := d.call(r.Context(), func(c *client.Client) error {
		var err error
		a, err = named(c, clientOf(r)).Approval(r.Context(), id, wait)
		return err
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (d *Daemon) handleToolCall(w http.ResponseWriter, r *http.Request) {
	if !noQuery(w, r) {
		return
	}
	var req api.ToolCallRequest
	if err := decodeStrict(http.MaxBytesReader(w, r.Body, 16<<10), &req); err != nil {
		writeError(w, err)
		return
	}
	name := core.CleanClientName(req.Client)
	err := d.call(r.Context(), func(c *client.Client) error {
		return named(c, name).RecordToolCall(r.Context(), req)
	})
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Gateway routes of the agent API: the job id and what follows it.
var (
	ionqJobPath   = regexp.MustCompile(`^/v1/gateway/ionq/v0\.4/jobs/([A-Za-z0-9][A-Za-z0-9\-]{0,63})(/results/probabilities|/status/cancel)?$`)
	braketTaskARN = regexp.MustCompile(`^arn:aws:braket:[a-z0-9-]+:[0-9]{12}:quantum-task/[A-Za-z0-9-]{1,64}$`)
)

// gatewayRoute checks a gateway call against the allow-list and returns
// the job, the gateway path, the Authorization scheme and the body to send.
func gatewayRoute(method, escapedPath string) (job, path, scheme string, body []byte, err error) {
	refused := fmt.Errorf("%w: %s %s is not a job read or cancel the local agent forwards", errNotAllowed, method, escapedPath)
	if m := ionqJobPath.FindStringSubmatch(escapedPath); m != nil {
		want := http.MethodGet
		if m[2] == "/status/cancel" {
			want = http.MethodPut
		}
		if method != want {
			return "", "", "", nil, refused
		}
		return m[1], strings.TrimPrefix(escapedPath, "/v1/gateway"), "apiKey ", nil, nil
	}
	rest, ok := strings.CutPrefix(escapedPath, "/v1/gateway/braket/quantum-task/")
	if !ok {
		return "", "", "", nil, refused
	}
	seg, suffix, _ := strings.Cut(rest, "/")
	arn, err := url.PathUnescape(seg)
	if err != nil || !braketTaskARN.MatchString(arn) {
		return "", "", "", nil, refused
	}
	switch {
	case suffix == "" && method == http.MethodGet, suffix == "results" && method == http.MethodGet:
	case suffix == "cancel" && method == http.MethodPut:
		// The daemon writes the cancel's body itself; nothing of the
		// client's is passed on.
		var nonce [16]byte
		if _, err := rand.Read(nonce[:]); err != nil {
			return "", "", "", nil, fmt.Errorf("client token: %w", err)
		}
		body, _ = json.Marshal(map[string]string{"clientToken": hex.EncodeToString(nonce[:])})
	default:
		return "", "", "", nil, refused
	}
	p := "/braket/quantum-task/" + url.PathEscape(arn)
	if suffix != "" {
		p += "/" + suffix
	}
	return arn, p, "Bearer ", body, nil
}

func (d *Daemon) handleGateway(w http.ResponseWriter, r *http.Request) {
	if !noQuery(w, r) {
		return
	}
	// No client body is passed on; a small one is read (and dropped) so
	// the client is not cut off mid-write.
	if _, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, 16<<10)); err != nil {
		writeError(w, fmt.Errorf("%w: the body is over 16 KiB", errBadRequest))
		return
	}
	job, p, scheme, body, err := gatewayRoute(r.Method, r.URL.EscapedPath())
	if err != nil {
		d.log.Warn("local agent: refused a gateway call outside the allow-list", "method", r.Method, "path", r.URL.EscapedPath(), "pid", program(r).PID)
		writeError(w, err)
		return
	}
	if d.sessions.isPrivate(job) {
		// A job of an exec session is read only through that session's
		// passthrough key, as before the agent API existed.
		d.log.Warn("local agent: refused an agent-API read of an exec session's job", "job", job, "pid", program(r).PID)
		writeError(w, fmt.Errorf("%w: job %s belongs to an exec session; only that session reads it", errNotAllowed, job))
		return
	}
	d.gwMu.Lock()
	gw := d.gwURL
	d.gwMu.Unlock()
	if gw == "" {
		writeError(w, fmt.Errorf("%w: the local agent does not know the gateway yet (start it with --gateway or QBROKER_GATEWAY_ADDR)", ErrBrokerUnavailable))
		return
	}
	tok, err := d.token()
	if err != nil {
		writeError(w, fmt.Errorf("%w: %w", ErrBrokerUnavailable, err))
		return
	}
	var rd io.Reader
	if body != nil {
		rd = strings.NewReader(string(body))
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, strings.TrimSuffix(gw, "/")+p, rd)
	if err != nil {
		writeError(w, fmt.Errorf("%w: %w", errBadRequest, err))
		return
	}
	out.Header.Set("Authorization", scheme+tok)
	if body != nil {
		out.Header.Set("Content-Type", "application/json")
	}
	if name := clientOf(r); name != "" {
		out.Header.Set(api.ClientHeader, name)
	}
	resp, err := d.forward.Do(out)
	if err != nil {
		writeError(w, fmt.Errorf("%w: the gateway is unreachable", ErrBrokerUnavailable))
		return
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, io.LimitReader(resp.Body, 16<<20))
}

// consented remembers, for a job-token request the person consented to
// and the broker then held for an approver, what it was, so that
// redeeming that approval for exactly the same request does not ask the
// person a second time. Memory only, until the approval expires.
type consented struct {
	mu sync.Mutex
	m  map[string]consentedReq
}

type consentedReq struct {
	fingerprint string
	until       time.Time
}

// fingerprint binds a job-token request: role, device, shots and program.
func fingerprint(role string, req api.JobTokenRequest) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%d\x00%s\x00%s\x00", role, req.Provider, req.Device, req.Shots, req.ProgramSHA256, req.Format)
	h.Write(req.Program)
	return hex.EncodeToString(h.Sum(nil))
}

func (c *consented) remember(id, fp string, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]consentedReq{}
	}
	now := time.Now()
	for k, v := range c.m {
		if now.After(v.until) {
			delete(c.m, k)
		}
	}
	if until.IsZero() || until.Sub(now) > 24*time.Hour {
		until = now.Add(24 * time.Hour)
	}
	c.m[id] = consentedReq{fingerprint: fp, until: until}
}

// covers reports whether the person consented to exactly this request
// before the broker held it as approval id.
func (c *consented) covers(id, fp string) bool {
	if id == "" {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[id]
	return ok && v.fingerprint == fp && time.Now().Before(v.until)
}
