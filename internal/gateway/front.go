package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/provider"
)

// Front serves one provider's own API shape under Prefix through its
// provider.Adapter (the IonQ front predates this and has its own code).
type Front struct {
	Prefix   string // e.g. "/braket"
	Adapter  provider.Adapter
	Upstream *url.URL // the provider's API base, e.g. https://braket.us-east-1.amazonaws.com
	// Devices maps the catalogue's device names (as in job tokens) to the
	// provider's own device ids (as in requests), e.g. "sv1" → its ARN.
	Devices map[string]string
}

// Settler is what a [Broker] implements to settle a job's budget
// reservation when the gateway sees the job finish (actualUSD < 0: no cost
// reported). Best effort: the gateway never delays an answer for it.
type Settler interface {
	Settle(ctx context.Context, s api.SettleRequest) error
}

// settle reports a finished job to the broker, off the request path: its
// cost and QPU time when the provider reported them.
func (g *Gateway) settle(jti string, completed bool, cost, qpuSeconds *float64) {
	s, ok := g.broker.(Settler)
	if !ok || jti == "" {
		return
	}
	req := api.SettleRequest{JTI: jti, Completed: completed, ActualUSD: -1, QPUSeconds: qpuSeconds}
	if cost != nil {
		req.ActualUSD = *cost
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Settle(ctx, req); err != nil {
			g.log.Warn("settle failed", "jti", jti, "err", err)
		}
	}()
}

// UpstreamSource is what a [Broker] implements to serve [Front]s: the
// credential (minted or stored, cached by the broker) and the scope of a
// broker role at a provider.
type UpstreamSource interface {
	Upstream(ctx context.Context, provider, role string) (provider.Credential, provider.Scope, error)
}

type front struct {
	Front
	base string // Upstream without a trailing slash
}

func newFront(f Front) (*front, error) {
	if f.Adapter == nil || !strings.HasPrefix(f.Prefix, "/") || strings.HasSuffix(f.Prefix, "/") {
		return nil, fmt.Errorf("gateway: front %q needs an adapter and a prefix like /braket", f.Prefix)
	}
	base, err := upstreamBase(f.Upstream)
	if err != nil {
		return nil, fmt.Errorf("gateway: front %s: %w", f.Prefix, err)
	}
	return &front{Front: f, base: base}, nil
}

// serveFront handles a request under f's prefix.
func (g *Gateway) serveFront(f *front, w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.EscapedPath(), f.Prefix)
	if rest == "" {
		rest = "/"
	}
	if up, ok := f.Adapter.(provider.Uploads); ok {
		switch up.UploadRoute(r.Method, rest) {
		case provider.UploadGrant:
			g.frontGrant(f, up, w, r)
			return
		case provider.UploadStaging:
			up.ServeStaging(w, r, rest)
			return
		}
	}
	route := f.Adapter.Route(r.Method, rest)
	switch route.Kind {
	case provider.Submit:
		g.frontSubmit(f, w, r, rest)
	case provider.Read, provider.Cancel:
		g.frontJob(f, w, r, rest, route)
	case provider.Public:
		g.frontPublic(f, w, r, rest)
	default:
		f.Adapter.WriteError(w, http.StatusForbidden, fmt.Sprintf("%s %s is not available through the qbroker gateway", r.Method, rest))
	}
}

// frontPublic forwards a provider's public route (its device list) for an
// agent with a live broker token, with the upstream credential of the
// agent's role: no job, no job token, nothing to redeem or record.
func (g *Gateway) frontPublic(f *front, w http.ResponseWriter, r *http.Request, rest string) {
	ctx := r.Context()
	rr, ok := g.broker.(RoleResolver)
	if !ok {
		f.Adapter.WriteError(w, http.StatusForbidden, fmt.Sprintf("%s %s is not available through this gateway", r.Method, rest))
		return
	}
	tok, ok := f.Adapter.Token(r.Header)
	if !ok {
		f.Adapter.WriteError(w, http.StatusUnauthorized, "missing broker token: send it where the provider's client sends its credential (Authorization: Bearer, or X-Amz-Security-Token for AWS SDKs)")
		return
	}
	_, role, err := rr.RoleForToken(ctx, tok)
	if err != nil {
		if errors.Is(err, ErrBadBrokerToken) {
			f.Adapter.WriteError(w, http.StatusUnauthorized, "invalid, expired or revoked broker token")
			return
		}
		f.Adapter.WriteError(w, http.StatusServiceUnavailable, "broker unavailable")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		f.Adapter.WriteError(w, http.StatusRequestEntityTooLarge, "request body too large")
		return
	}
	cred, _, err := g.upstreamFor(ctx, f.Adapter.Name(), role)
	if err != nil {
		g.log.WarnContext(ctx, "no upstream credential", "provider", f.Adapter.Name(), "err", err)
		f.Adapter.WriteError(w, http.StatusForbidden, "no upstream credential for this role at "+f.Adapter.Name())
		return
	}
	resp, err := g.frontSend(ctx, f, r, rest, body, cred)
	if err != nil {
		g.log.WarnContext(ctx, "upstream request failed", "provider", f.Adapter.Name(), "err", err)
		f.Adapter.WriteError(w, http.StatusBadGateway, "upstream unavailable")
		return
	}
	g.rejected(ctx, f.Adapter.Name(), role, cred, resp.StatusCode)
	out, err := readBody(resp)
	if err != nil {
		f.Adapter.WriteError(w, http.StatusBadGateway, "upstream answer could not be read")
		return
	}
	g.writeBuffered(w, resp, out)
}

func (g *Gateway) frontRefuse(ctx context.Context, f *front, w http.ResponseWriter, ev *audit.Event, status int, msg string) {
	ev.Decision, ev.Reason, ev.Status = audit.DecisionDeny, msg, status
	if err := g.broker.Audit(ctx, ev); err != nil {
		g.log.WarnContext(ctx, "audit failed; refusing", "type", ev.Type, "err", err)
		f.Adapter.WriteError(w, http.StatusServiceUnavailable, "audit unavailable; request refused")
		return
	}
	f.Adapter.WriteError(w, status, msg)
}

func (g *Gateway) frontFail(ctx context.Context, f *front, w http.ResponseWriter, ev *audit.Event, status int, msg string, cause error) {
	ev.Decision, ev.Reason, ev.Status = audit.DecisionError, msg, status
	if cause != nil {
		ev.Error = cause.Error()
		g.log.WarnContext(ctx, "submission failed", "provider", f.Adapter.Name(), "reason", msg, "err", cause)
	}
	if err := g.broker.Audit(ctx, ev); err != nil {
		status, msg = http.StatusServiceUnavailable, "audit unavailable; request refused"
	}
	f.Adapter.WriteError(w, status, msg)
}

// rejected reports cred to the broker when the provider answered 401 or
// 403 with it (a session revoked at the provider, a token expired early):
// the broker drops it if it is still the cached one, and the next request
// gets a fresh credential.
func (g *Gateway) rejected(ctx context.Context, prov, role string, cred provider.Credential, status int) {
	if status != http.StatusUnauthorized && status != http.StatusForbidden {
		return
	}
	if f, ok := g.broker.(UpstreamForgetter); ok {
		f.ForgetUpstream(context.WithoutCancel(ctx), prov, role, cred.Digest())
	}
}

func (g *Gateway) upstreamFor(ctx context.Context, prov, role string) (provider.Credential, provider.Scope, error) {
	src, ok := g.broker.(UpstreamSource)
	if !ok {
		return provider.Credential{}, provider.Scope{}, errors.New("this gateway's broker connection cannot supply upstream credentials")
	}
	return src.Upstream(ctx, prov, role)
}

// frontSubmit checks a submission against its job token before anything
// changes, redeems the token, and forwards the (prepared) submission with
// the broker-held credential.
func (g *Gateway) frontSubmit(f *front, w http.ResponseWriter, r *http.Request, rest string) {
	ctx := r.Context()
	name := f.Adapter.Name()
	ev := &audit.Event{Type: "submit", Provider: name, Path: r.URL.Path, RemoteAddr: r.RemoteAddr, Client: clientName(r)}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.maxBody))
	if err != nil {
		g.frontRefuse(ctx, f, w, ev, http.StatusRequestEntityTooLarge, "request body exceeds "+strconv.FormatInt(g.maxBody, 10)+" bytes or could not be read")
		return
	}
	raw, ok := f.Adapter.Token(r.Header)
	if !ok {
		g.frontRefuse(ctx, f, w, ev, http.StatusUnauthorized, "missing job token: send it where the provider's client sends its credential (Authorization: Bearer, or X-Amz-Security-Token for AWS SDKs)")
		return
	}
	claims, err := g.verifier.Verify(ctx, raw)
	if err != nil {
		status, msg := verifyRefusal(err)
		g.frontRefuse(ctx, f, w, ev, status, msg)
		return
	}
	ev.Agent, ev.Role, ev.JTI, ev.Device = claims.Subject, claims.Role, claims.ID, claims.Device
	if claims.Provider != name {
		g.frontRefuse(ctx, f, w, ev, http.StatusForbidden, fmt.Sprintf("job token is for provider %q, not %s", claims.Provider, name))
		return
	}
	sub, err := f.Adapter.ParseSubmit(body)
	if err != nil {
		g.frontRefuse(ctx, f, w, ev, http.StatusBadRequest, "invalid submission: "+truncate(err.Error()))
		return
	}
	ev.Shots = sub.Shots
	if want := f.Devices[claims.Device]; want == "" || sub.Device != want {
		g.frontRefuse(ctx, f, w, ev, http.StatusForbidden, fmt.Sprintf("job token is for device %s; request names %s", claims.Device, truncate(sub.Device)))
		return
	}
	if sub.Shots > claims.MaxShots {
		g.frontRefuse(ctx, f, w, ev, http.StatusForbidden, fmt.Sprintf("request asks for %d shots; job token allows at most %d", sub.Shots, claims.MaxShots))
		return
	}
	if claims.ProgramSHA256 != "" && sub.ProgramSHA256 != claims.ProgramSHA256 {
		g.frontRefuse(ctx, f, w, ev, http.StatusForbidden, "program does not match the program digest the job token is bound to")
		return
	}
	cred, scope, err := g.upstreamFor(ctx, name, claims.Role)
	if err != nil { // before redeeming: a broker that cannot supply credentials spends no token
		g.frontFail(ctx, f, w, ev, http.StatusServiceUnavailable, "no upstream credential for this role; job token not used", err)
		return
	}
	prepared, err := f.Adapter.Prepare(body, scope)
	if err != nil {
		g.frontRefuse(ctx, f, w, ev, http.StatusBadRequest, "invalid submission: "+truncate(err.Error()))
		return
	}
	if err := g.broker.Redeem(ctx, claims.ID); err != nil {
		status, msg := redeemRefusal(err)
		g.frontRefuse(ctx, f, w, ev, status, msg)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), afterRedeemTimeout)
	defer cancel()

	var resp *http.Response
	if up, ok := f.Adapter.(provider.Uploads); ok {
		resp, err = up.Send(ctx, provider.Route{Kind: provider.Submit}, rest, prepared, cred, g.timedRT(f))
	} else {
		resp, err = g.frontSend(ctx, f, r, rest, prepared, cred)
	}
	if err != nil {
		g.frontFail(ctx, f, w, ev, http.StatusBadGateway, "upstream unavailable; job not submitted", err)
		return
	}
	g.rejected(ctx, name, claims.Role, cred, resp.StatusCode)
	respBody, err := readBody(resp)
	if err != nil {
		g.frontFail(ctx, f, w, ev, http.StatusBadGateway, "upstream answer could not be read; job state unknown", err)
		return
	}
	if resp.StatusCode/100 != 2 {
		ev.Decision, ev.Reason, ev.Status = audit.DecisionError, "upstream refused the job", resp.StatusCode
		g.settle(claims.ID, false, nil, nil) // nothing runs: its reservation settles at 0 and leaves the in-flight count
		if err := g.broker.Audit(ctx, ev); err != nil {
			f.Adapter.WriteError(w, http.StatusServiceUnavailable, "audit unavailable; request refused")
			return
		}
		g.writeBuffered(w, resp, respBody)
		return
	}
	id, err := f.Adapter.JobID(respBody)
	if err != nil {
		g.frontFail(ctx, f, w, ev, http.StatusBadGateway, "upstream accepted the job but returned no usable job id", err)
		return
	}
	ev.JobID, ev.Decision, ev.Reason, ev.Status = id, audit.DecisionAllow, "submitted", resp.StatusCode
	rec := api.JobRecord{Provider: name, ID: id, AgentID: claims.Subject, Role: claims.Role, JTI: claims.ID, Device: claims.Device, Shots: sub.Shots, CreatedAt: g.now().UTC()}
	var recErr error
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		recErr = g.recordJob(ctx, rec)
	}()
	auditErr := g.broker.Audit(ctx, ev)
	<-recorded
	if recErr != nil || auditErr != nil {
		// The agent is told the job failed, so it must not run.
		g.log.WarnContext(ctx, "job not recorded or audited; canceling upstream", "provider", name, "job", id, "record_err", recErr, "audit_err", auditErr)
		g.frontCancel(ctx, f, id, cred)
		f.Adapter.WriteError(w, http.StatusServiceUnavailable, "job could not be recorded or audited; canceled upstream")
		return
	}
	g.writeBuffered(w, resp, respBody)
}

// frontCancel is a best-effort upstream cancel of a job the gateway could
// not record or audit.
func (g *Gateway) frontCancel(ctx context.Context, f *front, id string, cred provider.Credential) {
	if up, ok := f.Adapter.(provider.Uploads); ok {
		if resp, err := up.Send(ctx, provider.Route{Kind: provider.Cancel, JobID: id, Action: "CancelJob"}, "", nil, cred, g.timedRT(f)); err == nil {
			drain(resp)
		}
		return
	}
	cc, ok := f.Adapter.(provider.CancelCaller)
	if !ok {
		g.log.WarnContext(ctx, "cannot cancel upstream: the adapter has no cancel call", "provider", f.Adapter.Name(), "job", id)
		return
	}
	method, path, body := cc.CancelCall(id)
	resp, err := g.frontSendMethod(ctx, f, nil, method, path, body, cred)
	if err != nil {
		g.log.WarnContext(ctx, "upstream cancel failed", "provider", f.Adapter.Name(), "job", id, "err", err)
		return
	}
	drain(resp)
}

// frontJob serves reads and cancels of a recorded job: the caller's broker
// token must be its owner's, and policy must allow the action.
func (g *Gateway) frontJob(f *front, w http.ResponseWriter, r *http.Request, rest string, route provider.Route) {
	ctx := r.Context()
	name := f.Adapter.Name()
	tok, ok := f.Adapter.Token(r.Header)
	if !ok {
		f.Adapter.WriteError(w, http.StatusUnauthorized, "missing broker token: send it where the provider's client sends its credential (Authorization: Bearer, or X-Amz-Security-Token for AWS SDKs)")
		return
	}
	agent, err := g.broker.AgentForToken(ctx, tok)
	if err != nil {
		if errors.Is(err, ErrBadBrokerToken) {
			f.Adapter.WriteError(w, http.StatusUnauthorized, "invalid, expired or revoked broker token")
			return
		}
		f.Adapter.WriteError(w, http.StatusServiceUnavailable, "broker unavailable")
		return
	}
	rec, err := g.broker.Job(ctx, name, route.JobID)
	switch {
	case errors.Is(err, ErrNotFound), err == nil && rec.AgentID != agent:
		f.Adapter.WriteError(w, http.StatusNotFound, "job not found")
		return
	case err != nil:
		f.Adapter.WriteError(w, http.StatusServiceUnavailable, "broker unavailable")
		return
	}
	if err := g.broker.Authorize(ctx, tok, route.Action, rec); err != nil {
		if errors.Is(err, ErrForbidden) {
			f.Adapter.WriteError(w, http.StatusForbidden, err.Error())
			return
		}
		f.Adapter.WriteError(w, http.StatusServiceUnavailable, "broker unavailable")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		f.Adapter.WriteError(w, http.StatusRequestEntityTooLarge, "request body too large")
		return
	}
	if route.Kind == provider.Cancel {
		ev := &audit.Event{Type: "cancel", Agent: agent, Role: rec.Role, Provider: name, Device: rec.Device, JobID: rec.ID, JTI: rec.JTI,
			Decision: audit.DecisionAllow, Path: r.URL.Path, RemoteAddr: r.RemoteAddr, Client: clientName(r)}
		if err := g.broker.Audit(ctx, ev); err != nil {
			f.Adapter.WriteError(w, http.StatusServiceUnavailable, "audit unavailable; request refused")
			return
		}
	}
	cred, _, err := g.upstreamFor(ctx, name, rec.Role)
	if err != nil {
		g.log.WarnContext(ctx, "no upstream credential", "provider", name, "err", err)
		f.Adapter.WriteError(w, http.StatusServiceUnavailable, "no upstream credential for this role")
		return
	}
	var resp *http.Response
	if up, ok := f.Adapter.(provider.Uploads); ok {
		resp, err = up.Send(ctx, route, rest, body, cred, g.timedRT(f))
	} else if rf, ok := f.Adapter.(provider.ResultFetcher); ok && route.Result {
		resp, err = rf.FetchResult(ctx, rec.ID, cred, g.timedRT(f))
	} else {
		resp, err = g.frontSend(ctx, f, r, rest, body, cred)
	}
	if err != nil {
		g.log.WarnContext(ctx, "upstream request failed", "provider", name, "err", err)
		f.Adapter.WriteError(w, http.StatusBadGateway, "upstream unavailable")
		return
	}
	g.rejected(ctx, name, rec.Role, cred, resp.StatusCode)
	if route.Kind == provider.Read && !route.Result && resp.StatusCode == http.StatusOK {
		// A status read: when the job has finished, settle its budget.
		out, err := readBody(resp)
		if err != nil {
			f.Adapter.WriteError(w, http.StatusBadGateway, "upstream answer could not be read")
			return
		}
		if oc, err := f.Adapter.Outcome(out); err == nil && oc.Terminal {
			g.settle(rec.JTI, isCompleted(oc.Status), oc.CostUSD, oc.QPUSeconds)
		}
		g.writeBuffered(w, resp, out)
		return
	}
	g.passThrough(w, resp)
}

// isCompleted tells a finished job that ran from one that failed or was
// cancelled (which providers do not bill).
func isCompleted(status string) bool {
	switch strings.ToLower(status) {
	case "completed", "succeeded", "done":
		return true
	}
	return false
}

// frontSend sends one authenticated request to f's upstream: the path as
// received (percent-encoding kept), only Accept, User-Agent and
// Content-Type from the client, and the adapter's credential.
func (g *Gateway) frontSend(ctx context.Context, f *front, in *http.Request, rest string, body []byte, cred provider.Credential) (*http.Response, error) {
	return g.frontSendMethod(ctx, f, in, in.Method, rest, body, cred)
}

// frontSendMethod is frontSend with an explicit method (in may be nil for
// the gateway's own requests).
func (g *Gateway) frontSendMethod(ctx context.Context, f *front, in *http.Request, method, rest string, body []byte, cred provider.Credential) (*http.Response, error) {
	target := f.base + rest
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("gateway: upstream url: %w", err)
	}
	if in != nil && in.URL.RawQuery != "" {
		u.RawQuery = forwardQuery(in.URL.RawQuery)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("gateway: build upstream request: %w", err)
	}
	req.ContentLength = int64(len(body))
	if len(body) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "qbroker-gateway")
	if in != nil {
		if v := in.Header.Get("Accept"); v != "" {
			req.Header.Set("Accept", v)
		}
		if v := in.Header.Get("Content-Type"); v != "" && len(body) > 0 {
			req.Header.Set("Content-Type", v)
		}
	}
	if err := f.Adapter.Authenticate(ctx, req, body, cred); err != nil {
		return nil, fmt.Errorf("gateway: authenticate upstream request: %w", err)
	}
	resp, err := g.timedRT(f)(req)
	if err != nil {
		return nil, fmt.Errorf("gateway: upstream %s %s: %w", req.Method, rest, err)
	}
	return resp, nil
}

// timedRT sends upstream requests for f, observing their latency.
func (g *Gateway) timedRT(f *front) func(*http.Request) (*http.Response, error) {
	return func(req *http.Request) (*http.Response, error) {
		start := time.Now()
		resp, err := g.rt.RoundTrip(req)
		g.observe(f.Adapter.Name(), time.Since(start))
		return resp, err
	}
}

// frontGrant answers an upload grant: the caller shows a job token that
// verifies and is for this provider; it is not redeemed here (the job
// creation that follows redeems it, after checking the uploaded program).
func (g *Gateway) frontGrant(f *front, up provider.Uploads, w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	raw, ok := f.Adapter.Token(r.Header)
	if !ok {
		f.Adapter.WriteError(w, http.StatusUnauthorized, "missing job token: send it as Authorization: Bearer")
		return
	}
	claims, err := g.verifier.Verify(ctx, raw)
	if err != nil {
		status, msg := verifyRefusal(err)
		f.Adapter.WriteError(w, status, msg)
		return
	}
	if claims.Provider != f.Adapter.Name() {
		f.Adapter.WriteError(w, http.StatusForbidden, fmt.Sprintf("job token is for provider %q, not %s", claims.Provider, f.Adapter.Name()))
		return
	}
	up.Grant(w, r, claims.ID, claims.Expiry)
}
