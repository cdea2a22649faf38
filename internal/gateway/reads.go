package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/provider/ionq"
)

type readKind int

const (
	readJob readKind = iota
	readProbabilities
	cancelJob
)

// jobRead handles GET /jobs/{id}, GET /jobs/{id}/results/probabilities and
// PUT /jobs/{id}/status/cancel for the agent that owns the job. id has been
// validated.
func (g *Gateway) jobRead(w http.ResponseWriter, r *http.Request, kind readKind, id string) {
	ctx := r.Context()
	tok, ok := ionq.APIKeyFromHeader(r.Header)
	if !ok || tok == "" {
		writeError(w, http.StatusUnauthorized, "missing broker token: send it as the API key (Authorization: apiKey <broker token>)")
		return
	}
	agent, err := g.broker.AgentForToken(ctx, tok)
	if err != nil {
		if errors.Is(err, ErrBadBrokerToken) {
			writeError(w, http.StatusUnauthorized, "invalid, expired or revoked broker token")
			return
		}
		g.log.WarnContext(ctx, "broker token lookup failed", "err", err)
		writeError(w, http.StatusServiceUnavailable, "broker unavailable")
		return
	}
	rec, err := g.broker.Job(ctx, providerIonQ, id)
	switch {
	case errors.Is(err, ErrNotFound), err == nil && rec.AgentID != agent:
		// Someone else's job gets the same answer as no job at all.
		writeError(w, http.StatusNotFound, "job not found")
		return
	case err != nil:
		g.log.WarnContext(ctx, "job lookup failed", "err", err)
		writeError(w, http.StatusServiceUnavailable, "broker unavailable")
		return
	}

	action := map[readKind]string{readJob: "ReadJob", readProbabilities: "ReadResult", cancelJob: "CancelJob"}[kind]
	if err := g.broker.Authorize(ctx, tok, action, rec); err != nil {
		if errors.Is(err, ErrForbidden) {
			writeError(w, http.StatusForbidden, err.Error())
			return
		}
		g.log.WarnContext(ctx, "authorization failed", "err", err)
		writeError(w, http.StatusServiceUnavailable, "broker unavailable")
		return
	}

	req := upstreamReq{method: http.MethodGet, path: "/v0.4/jobs/" + id, auth: true, in: r.Header}
	switch kind {
	case readJob:
		req.query = forwardQuery(r.URL.RawQuery)
	case readProbabilities:
		req.path += "/results/probabilities"
		req.query = forwardQuery(r.URL.RawQuery)
	case cancelJob:
		req.method = http.MethodPut
		req.path += "/status/cancel"
		// A cancel changes state upstream: audit it before forwarding.
		ev := &audit.Event{
			Type: "cancel", Agent: agent, Role: rec.Role, Provider: providerIonQ,
			Device: rec.Device, JobID: id, JTI: rec.JTI, Decision: audit.DecisionAllow,
			Path: r.URL.Path, RemoteAddr: r.RemoteAddr, Client: clientName(r),
		}
		if err := g.broker.Audit(ctx, ev); err != nil {
			g.log.WarnContext(ctx, "audit failed; not forwarding cancel", "err", err)
			writeError(w, http.StatusServiceUnavailable, "audit unavailable; request refused")
			return
		}
	}

	resp, err := g.send(ctx, req)
	if err != nil {
		g.log.WarnContext(ctx, "upstream request failed", "err", err)
		writeError(w, http.StatusBadGateway, "upstream unavailable")
		return
	}
	if kind != readJob || resp.StatusCode != http.StatusOK {
		g.passThrough(w, resp)
		return
	}

	body, err := readBody(resp)
	if err != nil {
		writeError(w, http.StatusBadGateway, "upstream answer could not be read")
		return
	}
	var st struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(body, &st) == nil && ionq.IsTerminal(st.Status) {
		g.settle(rec.JTI, st.Status == ionq.StatusCompleted, nil, nil) // IonQ's job object reports no cost or QPU time
	}
	g.writeBuffered(w, resp, rewriteJobURLs(body, id))
}

// rewriteJobURLs prefixes the job's relative result URLs with /ionq so they
// resolve against the gateway, as [ionq.RewriteResultURLs] does, without
// decoding and re-encoding the object (this sits on the hottest read path).
//
// It rewrites each JSON string value that begins with the job's own path,
// `"/v0.4/jobs/<id>/`, into `"/ionq/v0.4/jobs/<id>/`. A match counts only
// where the quote directly follows a ':' (whitespace allowed between): such
// a quote necessarily opens an object member's value, whereas a quote inside
// a string is escaped and a closing quote is never followed by '/'. Job ids
// are assigned by the upstream after submission, so an agent cannot plant a
// value with that prefix in its job's name or metadata in advance. Absolute
// URLs and URLs already under /ionq are left alone; every other byte is
// passed through as the upstream sent it.
func rewriteJobURLs(body []byte, id string) []byte {
	old := make([]byte, 0, len(id)+13)
	old = append(old, `"/v0.4/jobs/`...)
	old = append(old, id...)
	old = append(old, '/')
	if !bytes.Contains(body, old) {
		return body
	}
	out := make([]byte, 0, len(body)+4*len(prefixIonQ))
	rest := body
	for {
		i := bytes.Index(rest, old)
		if i < 0 {
			return append(out, rest...)
		}
		out = append(out, rest[:i+1]...) // through the opening quote
		if memberValue(rest[:i]) {
			out = append(out, prefixIonQ...)
		}
		rest = rest[i+1:]
	}
}

// memberValue reports whether the last non-whitespace byte of b is ':'.
func memberValue(b []byte) bool {
	for i := len(b) - 1; i >= 0; i-- {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			continue
		case ':':
			return true
		default:
			return false
		}
	}
	return false
}

// backends forwards GET /backends and /backends/{name} without a
// credential (IonQ needs none there).
func (g *Gateway) backends(w http.ResponseWriter, r *http.Request, rest []string) {
	path := "/v0.4/backends"
	if len(rest) == 1 {
		if !validBackendName(rest[0]) {
			writeError(w, http.StatusBadRequest, "invalid backend name")
			return
		}
		path += "/" + rest[0]
	}
	resp, err := g.send(r.Context(), upstreamReq{
		method: http.MethodGet,
		path:   path,
		query:  forwardQuery(r.URL.RawQuery),
		in:     r.Header,
	})
	if err != nil {
		g.log.WarnContext(r.Context(), "upstream request failed", "err", err)
		writeError(w, http.StatusBadGateway, "upstream unavailable")
		return
	}
	g.passThrough(w, resp)
}
