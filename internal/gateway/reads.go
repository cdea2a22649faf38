package gateway

import (
	"bytes"
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
			Path: r.URL.Path, RemoteAddr: r.RemoteAddr,
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

	// The job object: rewrite its relative result URLs so they resolve
	// against the gateway's /ionq prefix. A job without result URLs yet
	// (queued or running) is passed through untouched.
	body, err := readBody(resp)
	if err != nil {
		writeError(w, http.StatusBadGateway, "upstream answer could not be read")
		return
	}
	if bytes.Contains(body, []byte(`"url"`)) {
		body, err = ionq.RewriteResultURLsJSON(body, prefixIonQ)
		if err != nil {
			writeError(w, http.StatusBadGateway, "upstream returned an unreadable job object")
			return
		}
	}
	g.writeBuffered(w, resp, body)
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
