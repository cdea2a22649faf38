package localagent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/qbroker/qbroker/api"
)

// servePassthrough is the local gateway passthrough. A vendor client whose
// base URL is <passthrough>/ionq and whose API key is its exec session's
// key (qbl_…) works with no provider key at all:
//
//   - POST /ionq/v0.4/jobs: the daemon asks for a job token for exactly
//     this job (device, shots, the circuit's digest), with consent where
//     the rules want it, and forwards the unchanged body to the gateway
//     with the job token as the API key;
//   - other IonQ calls (status, results, cancel, backends) are forwarded
//     with the daemon's broker token, which owns the jobs it submitted.
//
// Only loopback clients are served; the session key never leaves the
// machine.
func (d *Daemon) servePassthrough(w http.ResponseWriter, r *http.Request) {
	if !isLoopback(r) {
		ionqError(w, http.StatusForbidden, "Forbidden", "only loopback clients are served")
		return
	}
	key := r.Header.Get("Authorization")
	for _, p := range []string{"apiKey ", "Bearer "} {
		key = strings.TrimPrefix(key, p)
	}
	es, ok := d.sessions.byPassthroughKey(key)
	if !ok {
		d.log.Warn("local agent: passthrough: refused a request without a session key", "remote", r.RemoteAddr, "path", r.URL.Path)
		ionqError(w, http.StatusUnauthorized, "UnauthorizedError", "missing or unknown key, or the session has ended")
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/"+es.provider+"/") {
		ionqError(w, http.StatusNotFound, "NotFoundError", "this session is for "+es.provider)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20+1))
	if err != nil || len(body) > 1<<20 {
		ionqError(w, http.StatusRequestEntityTooLarge, "PayloadTooLarge", "the body is over 1 MiB")
		return
	}
	var cred string
	if r.Method == http.MethodPost && r.URL.Path == "/ionq/v0.4/jobs" {
		req, err := ionqJobRequest(body)
		if err != nil {
			ionqError(w, http.StatusBadRequest, "BadRequestError", err.Error())
			return
		}
		jt, err := d.jobToken(r.Context(), es.program, es.role, req)
		if err != nil {
			d.log.Warn("local agent: passthrough: no job token", "session", es.id, "role", es.role, "device", req.Device, "err", err)
			ionqError(w, http.StatusForbidden, "Forbidden", err.Error())
			return
		}
		cred = jt.Token
	} else if cred, err = d.token(); err != nil {
		ionqError(w, http.StatusBadGateway, "BadGateway", "the local agent cannot reach the broker")
		return
	}
	d.gwMu.Lock()
	gw := d.gwURL
	d.gwMu.Unlock()
	if gw == "" {
		ionqError(w, http.StatusBadGateway, "BadGateway", "the local agent does not know the gateway yet (set --gateway)")
		return
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, strings.TrimSuffix(gw, "/")+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		ionqError(w, http.StatusBadRequest, "BadRequestError", "bad request")
		return
	}
	for _, h := range []string{"Content-Type", "Accept"} {
		if v := r.Header.Get(h); v != "" {
			out.Header.Set(h, v)
		}
	}
	out.Header.Set("Authorization", "apiKey "+cred)
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		ionqError(w, http.StatusBadGateway, "BadGateway", "the gateway is unreachable")
		return
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, io.LimitReader(resp.Body, 64<<20))
}

// ionqJobRequest reads what a job token must name from an IonQ job.
func ionqJobRequest(body []byte) (api.JobTokenRequest, error) {
	var j struct {
		Type    string          `json:"type"`
		Backend string          `json:"backend"`
		Shots   *int            `json:"shots"`
		Input   json.RawMessage `json:"input"`
	}
	if err := json.Unmarshal(body, &j); err != nil {
		return api.JobTokenRequest{}, fmt.Errorf("the job is not JSON: %w", err)
	}
	if j.Type != "" && j.Type != api.FormatIonQ {
		return api.JobTokenRequest{}, fmt.Errorf("job type %q is not supported (want %s)", j.Type, api.FormatIonQ)
	}
	if j.Backend == "" || len(j.Input) == 0 {
		return api.JobTokenRequest{}, fmt.Errorf("the job needs a backend and an input")
	}
	shots := 100 // IonQ's default
	if j.Shots != nil {
		shots = *j.Shots
	}
	return api.JobTokenRequest{Provider: "ionq", Device: j.Backend, Shots: shots, Program: j.Input, Format: api.FormatIonQ}, nil
}

func ionqError(w http.ResponseWriter, status int, kind, msg string) {
	writeJSON(w, status, map[string]any{"statusCode": status, "error": kind, "message": msg})
}
