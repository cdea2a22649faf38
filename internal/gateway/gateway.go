// Package gateway is qbroker's data path to the quantum providers: the only
// component that holds a provider's real credential while talking to it.
//
// It serves an IonQ-compatible front under /ionq/v0.4/... so an agent keeps
// IonQ's own API shape (base URL = gateway + "/ionq", API key = job token):
//
//   - POST /ionq/v0.4/jobs takes a job token in place of the API key. The
//     gateway verifies the token, checks the request against it (provider,
//     device, shots and, when bound, the circuit digest), and only then
//     redeems the token with the broker, so a refused request changes no
//     state (invariants 7 and 10). It injects the real key and forwards the
//     original bytes upstream, records the job's owner with the broker, and
//     audits before answering (invariant 4).
//   - GET /ionq/v0.4/jobs/{id}, GET .../{id}/results/probabilities and
//     PUT .../{id}/status/cancel take the agent's broker token. The job must
//     have been recorded for that agent; someone else's job is "not found".
//   - GET /ionq/v0.4/backends and /backends/{name} are forwarded without a
//     credential (IonQ needs none).
//
// Everything else is refused and never forwarded. The upstream URL is built
// only from configuration and validated path pieces: neither the Host header
// nor an absolute-form request target can pick the host (invariant 6), and
// upstream redirects are not followed.
//
// Other providers' own API shapes are served by [Front]s (HTTP, one path
// prefix each) and [GRPCFront]s (gRPC over HTTP/2, h2c included, told apart
// by content type and routed by method name: Rigetti QCS, whose job is a
// checked translation followed by one execution of exactly the encrypted
// job that translation returned).
//
// The gateway talks to the broker through [Broker]: in-process in
// `qbroker dev`, or over HTTP with [RemoteBroker] for `qbroker gateway`.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/token"
)

// Errors a [Broker] returns so the gateway can branch.
var (
	ErrTokenUsed      = errors.New("gateway: job token already used")
	ErrTokenExpired   = errors.New("gateway: job token expired")
	ErrTokenRevoked   = errors.New("gateway: job token revoked")
	ErrUnknownToken   = errors.New("gateway: unknown job token")
	ErrNotFound       = errors.New("gateway: not found")
	ErrBadBrokerToken = errors.New("gateway: invalid, expired or revoked broker token")
	ErrForbidden      = errors.New("permission denied")
)

// Broker is what the gateway needs from the broker.
type Broker interface {
	// Redeem marks the job token jti used, exactly once, and returns
	// success only after the redemption is durably audited (the gateway
	// relies on this: nothing is forwarded without an audit record). It returns
	// ErrTokenUsed, ErrTokenExpired, ErrTokenRevoked or ErrUnknownToken
	// (possibly wrapped) when the token cannot be redeemed.
	Redeem(ctx context.Context, jti string) error
	// RecordJob records a submitted job's owner.
	RecordJob(ctx context.Context, j api.JobRecord) error
	// Job returns a recorded job, or ErrNotFound.
	Job(ctx context.Context, provider, id string) (api.JobRecord, error)
	// AgentForToken resolves a broker token to its agent id, or
	// ErrBadBrokerToken when it is invalid, expired or revoked.
	AgentForToken(ctx context.Context, brokerToken string) (agentID string, err error)
	// Authorize asks policy whether the agent behind brokerToken may do
	// action ("ReadJob", "ReadResult" or "CancelJob") on its job. A refusal
	// wraps ErrForbidden with the reason.
	Authorize(ctx context.Context, brokerToken, action string, job api.JobRecord) error
	// Credential returns the real upstream API key for provider.
	Credential(ctx context.Context, provider string) (string, error)
	// Audit records e durably before returning; an error means the caller
	// must refuse.
	Audit(ctx context.Context, e *audit.Event) error
}

// UpstreamForgetter is what a [Broker] implements so that an upstream
// credential the provider rejected (401 or 403) is replaced rather than
// used until it expires: the gateway reports it by its Digest.
type UpstreamForgetter interface {
	ForgetUpstream(ctx context.Context, prov, role, digest string)
}

// RoleResolver is what a [Broker] implements to serve a provider's
// public routes (device lists): the broker token's agent and role, whose
// upstream credential the request is sent with.
type RoleResolver interface {
	RoleForToken(ctx context.Context, brokerToken string) (agentID, role string, err error)
}

// CredentialInvalidator is an optional extra a [Broker] may implement: the
// gateway calls it when the upstream refuses the credential (401), before it
// fetches the credential again, so a caching broker client drops its copy.
type CredentialInvalidator interface {
	InvalidateCredential(provider string)
}

// Verifier checks a job token's signature and times. *token.Verifier
// implements it.
type Verifier interface {
	Verify(ctx context.Context, raw string) (*token.Claims, error)
}

// Config configures a [Gateway].
type Config struct {
	Broker   Broker
	Verifier Verifier
	// IonQUpstream is the IonQ API base without the version, e.g.
	// https://api.ionq.co; requests go to <IonQUpstream>/v0.4/....
	IonQUpstream *url.URL
	// Client sends upstream requests. The gateway uses its Transport
	// directly (nil means http.DefaultTransport) and applies its Timeout, if
	// any, per request; it ignores CheckRedirect and Jar: upstream redirects
	// are never followed and no cookies are kept. Default: a dedicated tuned
	// Transport (keep-alives, MaxIdleConnsPerHost 256) and no overall
	// timeout.
	Client *http.Client
	// MaxBody bounds a submission body. Default 1 MiB.
	MaxBody int64
	// CredentialTTL is how long the gateway keeps a provider credential in
	// memory before asking the broker again (it also refetches when the
	// upstream answers 401). Default 5 minutes. Never written to disk.
	CredentialTTL time.Duration
	// Logger receives warnings (broker and upstream failures) and per-request
	// debug lines. Default: discard.
	Logger *slog.Logger
	// Fronts serve other providers' own API shapes through their adapters
	// (the broker connection must implement UpstreamSource).
	Fronts []Front
	// Observe, when set, is told how long each upstream request took to
	// answer (headers), by provider: the upstream latency histogram.
	Observe func(provider string, d time.Duration)
	// GRPCFronts serve gRPC providers' own APIs (Rigetti QCS): calls with
	// content type application/grpc over HTTP/2 go to them by method name.
	GRPCFronts []GRPCFront
}

// Defaults.
const (
	DefaultMaxBody       = 1 << 20
	DefaultCredentialTTL = 5 * time.Minute
	// maxUpstreamBody bounds upstream bodies the gateway buffers (job
	// objects, error bodies, submission answers). Results are streamed.
	maxUpstreamBody = 8 << 20
	providerIonQ    = "ionq"
	prefixIonQ      = "/ionq"
	prefixV04       = "/ionq/v0.4/"
)

// Gateway is the HTTP handler. It is safe for concurrent use.
type Gateway struct {
	broker   Broker
	verifier Verifier
	rt       http.RoundTripper
	timeout  time.Duration // per upstream request; 0 = none
	upstream string        // scheme://host[/path] without trailing slash
	maxBody  int64
	credTTL  time.Duration
	log      *slog.Logger
	now      func() time.Time

	fronts     []*front
	grpcFronts []*grpcFront
	observe    func(provider string, d time.Duration)

	credMu sync.Mutex                 // serializes credential fetches
	cred   atomic.Pointer[cachedCred] // nil until fetched
}

type cachedCred struct {
	key     string
	fetched time.Time
}

var _ http.Handler = (*Gateway)(nil)

// New builds a Gateway from cfg.
func New(cfg Config) (*Gateway, error) {
	if cfg.Broker == nil {
		return nil, errors.New("gateway: Config.Broker is required")
	}
	if cfg.Verifier == nil {
		return nil, errors.New("gateway: Config.Verifier is required")
	}
	up, err := upstreamBase(cfg.IonQUpstream)
	if err != nil {
		return nil, err
	}
	g := &Gateway{
		broker:   cfg.Broker,
		verifier: cfg.Verifier,
		upstream: up,
		maxBody:  cfg.MaxBody,
		credTTL:  cfg.CredentialTTL,
		log:      cfg.Logger,
		now:      time.Now,
	}
	if g.maxBody <= 0 {
		g.maxBody = DefaultMaxBody
	}
	g.observe = cfg.Observe
	if g.observe == nil {
		g.observe = func(string, time.Duration) {}
	}
	for _, f := range cfg.Fronts {
		fr, err := newFront(f)
		if err != nil {
			return nil, err
		}
		g.fronts = append(g.fronts, fr)
	}
	for _, f := range cfg.GRPCFronts {
		fr, err := newGRPCFront(f)
		if err != nil {
			return nil, err
		}
		g.grpcFronts = append(g.grpcFronts, fr)
	}
	if g.credTTL <= 0 {
		g.credTTL = DefaultCredentialTTL
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	// Requests go straight to the RoundTripper: no redirect following, no
	// cookie jar, and none of http.Client's per-request header copying.
	// Without a configured Timeout there is no overall deadline (it would
	// cut off long result downloads); the Transport bounds dial, TLS and
	// header waits, and each request carries its caller's context.
	switch {
	case cfg.Client == nil:
		g.rt = NewTransport()
	case cfg.Client.Transport == nil:
		g.rt, g.timeout = http.DefaultTransport, cfg.Client.Timeout
	default:
		g.rt, g.timeout = cfg.Client.Transport, cfg.Client.Timeout
	}
	return g, nil
}

// upstreamBase validates the configured upstream and renders it without a
// trailing slash.
func upstreamBase(u *url.URL) (string, error) {
	if u == nil {
		return "", errors.New("gateway: Config.IonQUpstream is required")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("gateway: IonQ upstream scheme %q: want http or https", u.Scheme)
	}
	if u.Host == "" || u.Opaque != "" {
		return "", errors.New("gateway: IonQ upstream must be an absolute URL with a host")
	}
	if u.User != nil {
		return "", errors.New("gateway: IonQ upstream must not carry user info")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", errors.New("gateway: IonQ upstream must not have a query or fragment")
	}
	base := url.URL{Scheme: u.Scheme, Host: u.Host, Path: strings.TrimRight(u.Path, "/")}
	return base.String(), nil
}

// NewTransport returns the Transport the gateway uses by default: keep-alives
// on, up to 256 idle connections per upstream host, bounded dial and header
// timeouts, and no transparent gzip (bodies pass through as sent).
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		DisableCompression:    true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: time.Minute,
		ExpectContinueTimeout: time.Second,
	}
}

// ServeHTTP routes a request. Only the path is looked at: r.Host and an
// absolute-form r.URL.Host are ignored.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if len(g.grpcFronts) > 0 && isGRPC(r) {
		g.serveGRPC(w, r)
		return
	}
	p := r.URL.Path
	for _, f := range g.fronts {
		if strings.HasPrefix(p, f.Prefix+"/") {
			g.serveFront(f, w, r)
			return
		}
	}
	if !strings.HasPrefix(p, prefixV04) {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	segs := strings.Split(p[len(prefixV04):], "/")
	switch {
	case len(segs) == 1 && segs[0] == "jobs":
		if r.Method != http.MethodPost {
			methodNotAllowed(w, http.MethodPost)
			return
		}
		g.submit(w, r)
	case len(segs) >= 2 && segs[0] == "jobs":
		g.jobRoute(w, r, segs[1:])
	case segs[0] == "backends" && (len(segs) == 1 || len(segs) == 2 && segs[1] != ""):
		if r.Method != http.MethodGet {
			methodNotAllowed(w, http.MethodGet)
			return
		}
		g.backends(w, r, segs[1:])
	default:
		writeError(w, http.StatusNotFound, "not found")
	}
}

// jobRoute handles /jobs/{id}[/...].
func (g *Gateway) jobRoute(w http.ResponseWriter, r *http.Request, rest []string) {
	id := rest[0]
	var kind readKind
	method := http.MethodGet
	switch {
	case len(rest) == 1:
		kind = readJob
	case len(rest) == 3 && rest[1] == "results" && rest[2] == "probabilities":
		kind = readProbabilities
	case len(rest) == 3 && rest[1] == "status" && rest[2] == "cancel":
		kind, method = cancelJob, http.MethodPut
	default:
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	if r.Method != method {
		methodNotAllowed(w, method)
		return
	}
	if !validJobID(id) {
		writeError(w, http.StatusBadRequest, "invalid job id: want 1 to 64 letters, digits or '-'")
		return
	}
	g.jobRead(w, r, kind, id)
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, "method not allowed")
}

// validJobID reports whether id matches ^[A-Za-z0-9-]{1,64}$.
func validJobID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// validBackendName reports whether name matches ^[A-Za-z0-9._-]{1,64}$ and is
// not a dot segment.
func validBackendName(name string) bool {
	if len(name) == 0 || len(name) > 64 || name == "." || name == ".." {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}
