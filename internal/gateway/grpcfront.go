package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/provider"
)

// GRPCFront serves one gRPC provider's own API (Rigetti QCS) through its
// provider.GRPCAdapter. gRPC clients cannot add a path prefix, so calls
// are told apart from the HTTP fronts by their content type
// (application/grpc over HTTP/2, h2c included) and routed by method name.
//
// A job takes two calls. The submission (QCS's translation) carries what
// the job token is checked against; the gateway redeems the token, and
// remembers a ticket — the digest of the opaque job the upstream returns —
// for the agent. The execution must carry exactly such a job: at most
// once, by the same agent, on the same device. Reads and cancels take the
// job owner's broker token, as on the HTTP fronts.
type GRPCFront struct {
	Adapter  provider.GRPCAdapter
	Upstream *url.URL // e.g. https://grpc.qcs.rigetti.com
	// Devices maps the catalogue's device names (as in job tokens) to the
	// provider's own device ids (as in requests), e.g. "ankaa-3" → "Ankaa-3".
	Devices map[string]string
	// Transport sends upstream calls. Default: HTTP/2 only (TLS with ALPN
	// for https, prior-knowledge h2c for an http emulator).
	Transport http.RoundTripper
	// TicketTTL is how long an approved submission may be executed
	// (default 15 minutes).
	TicketTTL time.Duration
}

// Defaults and limits of gRPC fronts.
const (
	DefaultTicketTTL = 15 * time.Minute
	maxTickets       = 100_000
)

type grpcFront struct {
	GRPCFront
	base string
	rt   http.RoundTripper

	mu      sync.Mutex
	tickets map[string]*ticket // by ticket digest
}

// ticket is an approved submission, executable once.
type ticket struct {
	jti, agent, role, device, target string
	shots                            int
	expires                          time.Time
	executed                         bool
}

func newGRPCFront(f GRPCFront) (*grpcFront, error) {
	if f.Adapter == nil {
		return nil, errors.New("gateway: a gRPC front needs an adapter")
	}
	base, err := upstreamBase(f.Upstream)
	if err != nil {
		return nil, fmt.Errorf("gateway: gRPC front %s: %w", f.Adapter.Name(), err)
	}
	if f.TicketTTL <= 0 {
		f.TicketTTL = DefaultTicketTTL
	}
	rt := f.Transport
	if rt == nil {
		t := NewTransport()
		t.Protocols = new(http.Protocols)
		t.Protocols.SetHTTP2(true)
		t.Protocols.SetUnencryptedHTTP2(true)
		rt = t
	}
	return &grpcFront{GRPCFront: f, base: base, rt: rt, tickets: map[string]*ticket{}}, nil
}

// isGRPC reports whether r is a gRPC call.
func isGRPC(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return r.ProtoMajor == 2 && (ct == "application/grpc" || strings.HasPrefix(ct, "application/grpc+") || strings.HasPrefix(ct, "application/grpc;"))
}

// serveGRPC routes a gRPC call to the front whose adapter knows its method.
func (g *Gateway) serveGRPC(w http.ResponseWriter, r *http.Request) {
	method := r.URL.Path
	for _, f := range g.grpcFronts {
		switch kind := f.Adapter.Classify(method); kind {
		case provider.GRPCRefused:
			continue
		case provider.GRPCSubmit:
			g.grpcSubmit(f, w, r)
		case provider.GRPCExecute:
			g.grpcExecute(f, w, r)
		default:
			g.grpcJob(f, w, r, kind)
		}
		return
	}
	grpcError(w, codes.Unimplemented, "method "+truncate(method)+" is not available through the qbroker gateway")
}

// grpcCode maps the gateway's HTTP refusal statuses to gRPC codes.
func grpcCode(status int) codes.Code {
	switch status {
	case http.StatusBadRequest:
		return codes.InvalidArgument
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusNotFound:
		return codes.NotFound
	case http.StatusConflict:
		return codes.FailedPrecondition
	case http.StatusRequestEntityTooLarge, http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return codes.Unavailable
	}
	return codes.Unknown
}

// grpcError answers a call "trailers-only": status and message in the
// response headers, no message.
func grpcError(w http.ResponseWriter, code codes.Code, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/grpc")
	h.Set("Grpc-Status", strconv.Itoa(int(code)))
	h.Set("Grpc-Message", encodeGRPCMessage(msg))
	w.WriteHeader(http.StatusOK)
}

// encodeGRPCMessage percent-encodes a grpc-message value as the gRPC
// HTTP/2 protocol says: bytes outside printable ASCII, and '%'.
func encodeGRPCMessage(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// readUnary reads the one message of a unary call: a 5-byte prefix
// (compressed flag 0, big-endian length) and the message.
func readUnary(body []byte) ([]byte, error) {
	if len(body) < 5 {
		return nil, errors.New("want exactly one length-prefixed message")
	}
	if body[0] != 0 {
		return nil, errors.New("compressed messages are not accepted")
	}
	n := binary.BigEndian.Uint32(body[1:5])
	if uint64(n) != uint64(len(body)-5) {
		return nil, errors.New("want exactly one length-prefixed message")
	}
	return body[5:], nil
}

func frame(msg []byte) []byte {
	out := make([]byte, 5+len(msg))
	binary.BigEndian.PutUint32(out[1:5], uint32(len(msg)))
	copy(out[5:], msg)
	return out
}

// grpcRequest reads the call's message, answering the refusal itself
// (audited when ev is not nil) when it cannot.
func (g *Gateway) grpcRequest(w http.ResponseWriter, r *http.Request, ev *audit.Event) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.maxBody+5))
	if err == nil {
		var msg []byte
		if msg, err = readUnary(body); err == nil {
			return msg, true
		}
	} else {
		err = fmt.Errorf("request exceeds %d bytes or could not be read", g.maxBody)
	}
	if ev != nil {
		g.grpcRefuse(r.Context(), w, ev, codes.InvalidArgument, "invalid request: "+err.Error())
	} else {
		grpcError(w, codes.InvalidArgument, "invalid request: "+err.Error())
	}
	return nil, false
}

// bearer reads "authorization: Bearer <token>" (exactly one).
func bearer(h http.Header) (string, bool) {
	vals := h.Values("Authorization")
	if len(vals) != 1 {
		return "", false
	}
	scheme, tok, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return tok, true
}

// grpcRefuse audits a refusal, then answers it (UNAVAILABLE when the audit
// cannot be recorded).
func (g *Gateway) grpcRefuse(ctx context.Context, w http.ResponseWriter, ev *audit.Event, code codes.Code, msg string) {
	ev.Decision, ev.Reason, ev.Status = audit.DecisionDeny, msg, int(code)
	if err := g.broker.Audit(ctx, ev); err != nil {
		g.log.WarnContext(ctx, "audit failed; refusing", "type", ev.Type, "err", err)
		grpcError(w, codes.Unavailable, "audit unavailable; request refused")
		return
	}
	grpcError(w, code, msg)
}

// grpcFail audits a failure after the token was redeemed.
func (g *Gateway) grpcFail(ctx context.Context, w http.ResponseWriter, ev *audit.Event, code codes.Code, msg string, cause error) {
	ev.Decision, ev.Reason, ev.Status = audit.DecisionError, msg, int(code)
	if cause != nil {
		ev.Error = cause.Error()
		g.log.WarnContext(ctx, "gRPC call failed", "provider", ev.Provider, "reason", msg, "err", cause)
	}
	if err := g.broker.Audit(ctx, ev); err != nil {
		code, msg = codes.Unavailable, "audit unavailable; request refused"
	}
	grpcError(w, code, msg)
}

// grpcAnswer is an upstream answer: its message (if any) and status.
type grpcAnswer struct {
	contentType string
	msg         []byte
	hasMsg      bool
	status      string // grpc-status, "0" for OK
	message     string // grpc-message, as sent (percent-encoded)
	details     string // grpc-status-details-bin
}

func (a *grpcAnswer) ok() bool { return a.status == "0" }

// grpcSend makes one upstream unary call with the credential: only the
// message, content type and grpc-timeout of the caller's call are
// forwarded; its metadata (its authorization included) is not.
// grpcSend calls method upstream with cred (the credential of broker role
// role); an UNAUTHENTICATED or PERMISSION_DENIED answer drops cred so the
// next call gets a fresh one.
func (g *Gateway) grpcSend(ctx context.Context, f *grpcFront, in *http.Request, method string, msg []byte, cred provider.Credential, role string) (*grpcAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.base+method, bytes.NewReader(frame(msg)))
	if err != nil {
		return nil, fmt.Errorf("gateway: build upstream call: %w", err)
	}
	req.ContentLength = int64(len(msg) + 5)
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	req.Header.Set("User-Agent", "qbroker-gateway")
	if in != nil {
		if v := in.Header.Get("Grpc-Timeout"); validGRPCTimeout(v) {
			req.Header.Set("Grpc-Timeout", v)
		}
	}
	req.Header.Set("Authorization", "Bearer "+cred.Secret)
	start := time.Now()
	resp, err := f.rt.RoundTrip(req)
	g.observe(f.Adapter.Name(), time.Since(start))
	if err != nil {
		return nil, fmt.Errorf("gateway: upstream %s: %w", method, err)
	}
	body, err := readBody(resp) // reads to EOF, so trailers are in
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("gateway: upstream %s: HTTP status %d", method, resp.StatusCode)
	}
	a := &grpcAnswer{contentType: resp.Header.Get("Content-Type")}
	get := func(k string) string {
		if v := resp.Trailer.Get(k); v != "" {
			return v
		}
		return resp.Header.Get(k) // a trailers-only answer
	}
	a.status, a.message, a.details = get("Grpc-Status"), get("Grpc-Message"), get("Grpc-Status-Details-Bin")
	if a.status == "" {
		return nil, fmt.Errorf("gateway: upstream %s: no grpc-status", method)
	}
	switch a.status {
	case strconv.Itoa(int(codes.Unauthenticated)):
		g.rejected(ctx, f.Adapter.Name(), role, cred, http.StatusUnauthorized)
	case strconv.Itoa(int(codes.PermissionDenied)):
		g.rejected(ctx, f.Adapter.Name(), role, cred, http.StatusForbidden)
	}
	if len(body) > 0 {
		if a.msg, err = readUnary(body); err != nil {
			return nil, fmt.Errorf("gateway: upstream %s answer: %w", method, err)
		}
		a.hasMsg = true
	}
	if a.ok() && !a.hasMsg {
		return nil, fmt.Errorf("gateway: upstream %s: OK without a message", method)
	}
	// A last line of defence for invariant 1: an answer that echoes the
	// credential is withheld (a message cannot be edited in place).
	if s := cred.Secret; s != "" && (bytes.Contains(a.msg, []byte(s)) || strings.Contains(a.message+a.details, s)) {
		return nil, fmt.Errorf("gateway: upstream %s answer contained the credential; withheld", method)
	}
	return a, nil
}

// validGRPCTimeout checks a grpc-timeout value: up to 8 digits and a unit.
func validGRPCTimeout(v string) bool {
	if len(v) < 2 || len(v) > 9 || !strings.Contains("HMSmun", v[len(v)-1:]) {
		return false
	}
	return strings.Trim(v[:len(v)-1], "0123456789") == ""
}

// writeGRPC answers the caller with an upstream answer, its status and
// message passed on as they are.
func writeGRPC(w http.ResponseWriter, a *grpcAnswer) {
	h := w.Header()
	ct := a.contentType
	if !strings.HasPrefix(ct, "application/grpc") {
		ct = "application/grpc"
	}
	h.Set("Content-Type", ct)
	if !a.hasMsg {
		h.Set("Grpc-Status", a.status)
		setIf(h, "Grpc-Message", a.message)
		setIf(h, "Grpc-Status-Details-Bin", a.details)
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(frame(a.msg))
	h.Set(http.TrailerPrefix+"Grpc-Status", a.status)
	setIf(h, http.TrailerPrefix+"Grpc-Message", a.message)
	setIf(h, http.TrailerPrefix+"Grpc-Status-Details-Bin", a.details)
}

func setIf(h http.Header, k, v string) {
	if v != "" {
		h.Set(k, v)
	}
}

// grpcSubmit checks a submission against its job token before anything
// changes, redeems the token, forwards with the broker-held credential,
// and keeps the ticket of the opaque job the upstream returns.
func (g *Gateway) grpcSubmit(f *grpcFront, w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := f.Adapter.Name()
	ev := &audit.Event{Type: "submit", Provider: name, Path: r.URL.Path, RemoteAddr: r.RemoteAddr, Client: clientName(r)}
	msg, ok := g.grpcRequest(w, r, ev)
	if !ok {
		return
	}
	raw, ok := bearer(r.Header)
	if !ok {
		g.grpcRefuse(ctx, w, ev, codes.Unauthenticated, "missing job token: send it as authorization: Bearer <job token>")
		return
	}
	claims, err := g.verifier.Verify(ctx, raw)
	if err != nil {
		status, m := verifyRefusal(err)
		g.grpcRefuse(ctx, w, ev, grpcCode(status), m)
		return
	}
	ev.Agent, ev.Role, ev.JTI, ev.Device = claims.Subject, claims.Role, claims.ID, claims.Device
	if claims.Provider != name {
		g.grpcRefuse(ctx, w, ev, codes.PermissionDenied, fmt.Sprintf("job token is for provider %q, not %s", claims.Provider, name))
		return
	}
	sub, err := f.Adapter.ParseSubmit(msg)
	if err != nil {
		g.grpcRefuse(ctx, w, ev, codes.InvalidArgument, "invalid submission: "+truncate(err.Error()))
		return
	}
	ev.Shots = sub.Shots
	target := f.Devices[claims.Device]
	switch {
	case target == "" || sub.Device != target:
		g.grpcRefuse(ctx, w, ev, codes.PermissionDenied, fmt.Sprintf("job token is for device %s; request names %s", claims.Device, truncate(sub.Device)))
		return
	case sub.Shots > claims.MaxShots:
		g.grpcRefuse(ctx, w, ev, codes.PermissionDenied, fmt.Sprintf("request asks for %d shots; job token allows at most %d", sub.Shots, claims.MaxShots))
		return
	case claims.ProgramSHA256 != "" && sub.ProgramSHA256 != claims.ProgramSHA256:
		g.grpcRefuse(ctx, w, ev, codes.PermissionDenied, "program does not match the program digest the job token is bound to")
		return
	}
	cred, _, err := g.upstreamFor(ctx, name, claims.Role)
	if err != nil { // before redeeming: no token is spent
		g.grpcFail(ctx, w, ev, codes.Unavailable, "no upstream credential for this role; job token not used", err)
		return
	}
	if err := g.broker.Redeem(ctx, claims.ID); err != nil {
		status, m := redeemRefusal(err)
		g.grpcRefuse(ctx, w, ev, grpcCode(status), m)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), afterRedeemTimeout)
	defer cancel()
	a, err := g.grpcSend(ctx, f, r, r.URL.Path, msg, cred, claims.Role)
	if err != nil {
		g.grpcFail(ctx, w, ev, codes.Unavailable, "upstream unavailable; job not submitted", err)
		return
	}
	if !a.ok() {
		ev.Decision, ev.Reason, ev.Status = audit.DecisionError, "upstream refused the submission", atoiOr(a.status)
		g.settle(claims.ID, false, nil, nil) // the token is spent and no job exists: settle at 0
		if err := g.broker.Audit(ctx, ev); err != nil {
			grpcError(w, codes.Unavailable, "audit unavailable; request refused")
			return
		}
		writeGRPC(w, a)
		return
	}
	digest, err := f.Adapter.Ticket(a.msg)
	if err != nil {
		g.grpcFail(ctx, w, ev, codes.Unavailable, "upstream answer has no usable job", err)
		return
	}
	ev.Decision, ev.Reason, ev.Status = audit.DecisionAllow, "translated; the job may be executed once", 0
	if err := g.broker.Audit(ctx, ev); err != nil {
		grpcError(w, codes.Unavailable, "audit unavailable; request refused")
		return
	}
	// Executable only once the approval is on record.
	f.approve(digest, &ticket{jti: claims.ID, agent: claims.Subject, role: claims.Role, device: claims.Device, target: target,
		shots: sub.Shots, expires: g.now().Add(f.TicketTTL)}, g.now())
	writeGRPC(w, a)
}

func atoiOr(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// approve records an approved ticket, dropping expired ones (and the
// oldest-expiring when full).
func (f *grpcFront) approve(digest string, t *ticket, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.tickets) >= maxTickets {
		for k, v := range f.tickets {
			if now.After(v.expires) {
				delete(f.tickets, k)
			}
		}
		for k := range f.tickets { // still full: drop an arbitrary one
			if len(f.tickets) < maxTickets {
				break
			}
			delete(f.tickets, k)
		}
	}
	f.tickets[digest] = t
}

// take marks a ticket executed, once; the refusal says why not.
func (f *grpcFront) take(digest string, now time.Time) (*ticket, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tickets[digest]
	switch {
	case !ok:
		return nil, "the encrypted job was not approved by this gateway: translate it through the gateway with a job token first"
	case t.executed:
		return nil, "the encrypted job was already executed; a job token allows one execution"
	case now.After(t.expires):
		delete(f.tickets, digest)
		return nil, "the approval to execute this encrypted job has expired"
	}
	t.executed = true
	return t, ""
}

// untake makes a ticket executable again after the upstream refused the
// execution (nothing ran).
func (f *grpcFront) untake(digest string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t, ok := f.tickets[digest]; ok {
		t.executed = false
	}
}

// grpcExecute runs an approved ticket once. The caller proves it is the
// agent the ticket was approved for with the same job token (as a QCS
// client sends one bearer on both calls; it is checked, not redeemed
// again) or with that agent's broker token.
func (g *Gateway) grpcExecute(f *grpcFront, w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := f.Adapter.Name()
	ev := &audit.Event{Type: "execute", Provider: name, Path: r.URL.Path, RemoteAddr: r.RemoteAddr, Client: clientName(r)}
	msg, ok := g.grpcRequest(w, r, ev)
	if !ok {
		return
	}
	raw, ok := bearer(r.Header)
	if !ok {
		g.grpcRefuse(ctx, w, ev, codes.Unauthenticated, "missing token: send the job token (or your broker token) as authorization: Bearer")
		return
	}
	x, err := f.Adapter.ParseExecute(msg)
	if err != nil {
		g.grpcRefuse(ctx, w, ev, codes.InvalidArgument, "invalid execution: "+truncate(err.Error()))
		return
	}
	// Who is calling: a job token (its jti must be the ticket's) or a
	// broker token (its agent must be the ticket's).
	var jti, agent string
	if claims, err := g.verifier.Verify(ctx, raw); err == nil {
		jti, agent = claims.ID, claims.Subject
	} else if a, aerr := g.broker.AgentForToken(ctx, raw); aerr == nil {
		agent = a
	} else if errors.Is(aerr, ErrBadBrokerToken) {
		g.grpcRefuse(ctx, w, ev, codes.Unauthenticated, "invalid or expired job token or broker token")
		return
	} else {
		g.grpcRefuse(ctx, w, ev, codes.Unavailable, "broker unavailable")
		return
	}
	ev.Agent = agent
	t, why := f.take(x.Ticket, g.now())
	if t == nil {
		g.grpcRefuse(ctx, w, ev, codes.PermissionDenied, why)
		return
	}
	ev.Role, ev.JTI, ev.Device, ev.Shots = t.role, t.jti, t.device, t.shots
	switch {
	case t.agent != agent || jti != "" && jti != t.jti:
		f.untake(x.Ticket)
		g.grpcRefuse(ctx, w, ev, codes.PermissionDenied, "the encrypted job was approved for another agent or job token")
		return
	case x.Device != t.target:
		f.untake(x.Ticket)
		g.grpcRefuse(ctx, w, ev, codes.PermissionDenied, fmt.Sprintf("the encrypted job was approved for %s; request names %s", t.target, truncate(x.Device)))
		return
	}
	cred, _, err := g.upstreamFor(ctx, name, t.role)
	if err != nil {
		f.untake(x.Ticket)
		g.grpcFail(ctx, w, ev, codes.Unavailable, "no upstream credential for this role", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), afterRedeemTimeout)
	defer cancel()
	a, err := g.grpcSend(ctx, f, r, r.URL.Path, msg, cred, t.role)
	if err != nil {
		// The execution may have started: the ticket stays spent.
		g.grpcFail(ctx, w, ev, codes.Unavailable, "upstream unavailable; job state unknown", err)
		return
	}
	if !a.ok() {
		f.untake(x.Ticket) // refused upstream: nothing ran
		ev.Decision, ev.Reason, ev.Status = audit.DecisionError, "upstream refused the execution", atoiOr(a.status)
		if err := g.broker.Audit(ctx, ev); err != nil {
			grpcError(w, codes.Unavailable, "audit unavailable; request refused")
			return
		}
		writeGRPC(w, a)
		return
	}
	id, err := f.Adapter.ExecutedJob(a.msg)
	if err != nil {
		g.grpcFail(ctx, w, ev, codes.Unavailable, "upstream accepted the execution but returned no usable job id", err)
		return
	}
	ev.JobID, ev.Decision, ev.Reason, ev.Status = id, audit.DecisionAllow, "executed", 0
	rec := api.JobRecord{Provider: name, ID: id, AgentID: t.agent, Role: t.role, JTI: t.jti, Device: t.device, Shots: t.shots, CreatedAt: g.now().UTC()}
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
		method, cmsg := f.Adapter.CancelCall(id)
		if _, err := g.grpcSend(ctx, f, nil, method, cmsg, cred, t.role); err != nil {
			g.log.WarnContext(ctx, "upstream cancel failed", "provider", name, "job", id, "err", err)
		}
		grpcError(w, codes.Unavailable, "job could not be recorded or audited; canceled upstream")
		return
	}
	writeGRPC(w, a)
}

// grpcJob serves status reads, result reads and cancels of recorded jobs:
// the caller's broker token must be every named job's owner's, and policy
// must allow the action.
func (g *Gateway) grpcJob(f *grpcFront, w http.ResponseWriter, r *http.Request, kind provider.GRPCKind) {
	ctx := r.Context()
	name := f.Adapter.Name()
	msg, ok := g.grpcRequest(w, r, nil)
	if !ok {
		return
	}
	tok, ok := bearer(r.Header)
	if !ok {
		grpcError(w, codes.Unauthenticated, "missing broker token: send it as authorization: Bearer <broker token>")
		return
	}
	agent, err := g.broker.AgentForToken(ctx, tok)
	if err != nil {
		if errors.Is(err, ErrBadBrokerToken) {
			grpcError(w, codes.Unauthenticated, "invalid, expired or revoked broker token")
			return
		}
		grpcError(w, codes.Unavailable, "broker unavailable")
		return
	}
	ref, err := f.Adapter.ParseJobs(kind, msg)
	if err != nil {
		grpcError(w, codes.InvalidArgument, "invalid request: "+truncate(err.Error()))
		return
	}
	action := map[provider.GRPCKind]string{provider.GRPCRead: "ReadJob", provider.GRPCResult: "ReadResult", provider.GRPCCancel: "CancelJob"}[kind]
	var recs []api.JobRecord
	for _, id := range ref.IDs {
		rec, err := g.broker.Job(ctx, name, id)
		switch {
		case errors.Is(err, ErrNotFound), err == nil && rec.AgentID != agent,
			err == nil && ref.Device != "" && ref.Device != f.Devices[rec.Device]:
			grpcError(w, codes.NotFound, "job "+truncate(id)+" not found")
			return
		case err != nil:
			grpcError(w, codes.Unavailable, "broker unavailable")
			return
		}
		if err := g.broker.Authorize(ctx, tok, action, rec); err != nil {
			if errors.Is(err, ErrForbidden) {
				grpcError(w, codes.PermissionDenied, err.Error())
				return
			}
			grpcError(w, codes.Unavailable, "broker unavailable")
			return
		}
		recs = append(recs, rec)
	}
	if kind == provider.GRPCCancel {
		for _, rec := range recs {
			ev := &audit.Event{Type: "cancel", Agent: agent, Role: rec.Role, Provider: name, Device: rec.Device, JobID: rec.ID, JTI: rec.JTI,
				Decision: audit.DecisionAllow, Path: r.URL.Path, RemoteAddr: r.RemoteAddr, Client: clientName(r)}
			if err := g.broker.Audit(ctx, ev); err != nil {
				grpcError(w, codes.Unavailable, "audit unavailable; request refused")
				return
			}
		}
	}
	cred, _, err := g.upstreamFor(ctx, name, recs[0].Role)
	if err != nil {
		g.log.WarnContext(ctx, "no upstream credential", "provider", name, "err", err)
		grpcError(w, codes.Unavailable, "no upstream credential for this role")
		return
	}
	a, err := g.grpcSend(ctx, f, r, r.URL.Path, msg, cred, recs[0].Role)
	if err != nil {
		g.log.WarnContext(ctx, "upstream call failed", "provider", name, "err", err)
		grpcError(w, codes.Unavailable, "upstream unavailable")
		return
	}
	if a.ok() && kind != provider.GRPCCancel {
		if oc, ok, err := f.Adapter.Outcome(kind, a.msg); err == nil && ok && oc.Terminal {
			g.settle(recs[0].JTI, isCompleted(oc.Status), oc.CostUSD, oc.QPUSeconds)
		}
	}
	writeGRPC(w, a)
}
