package device

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/qbroker/qbroker/internal/auth/authutil"
)

// Defaults and limits.
const (
	DefaultMaxPending = 1024
	DefaultInterval   = 5 * time.Second // RFC 8628 §3.2: "clients MUST use 5 as the default"
	MaxLifetime       = 30 * time.Minute
	slowDownStep      = 5 * time.Second // RFC 8628 §3.5
	handleBytes       = 32
	httpTimeout       = 10 * time.Second
)

// Config is the broker's OAuth client registration at one IdP.
type Config struct {
	Issuer       string       // the IdP's exact issuer
	DiscoveryURL string       // OIDC discovery base; default Issuer
	ClientID     string       // the broker's client at the IdP (registered for the device_code grant)
	ClientSecret string       // empty for a public client; sent as client_secret_basic otherwise
	Scopes       []string     // default ["openid"] (an ID token needs "openid")
	HTTPClient   *http.Client // default: 10 s timeout, no redirects
	Now          func() time.Time
	MaxPending   int // cap on concurrent pending logins; default DefaultMaxPending
}

// Pending is what the agent may see of a started login. It never contains the
// device code.
type Pending struct {
	Handle                  string // opaque, unguessable; the agent polls with it
	UserCode                string
	VerificationURI         string
	VerificationURIComplete string // may be empty
	ExpiresAt               time.Time
	Interval                time.Duration
}

// Result is the IdP's token response for the person who approved. The broker
// verifies the raw token (IDToken, or a JWT AccessToken) before trusting it.
type Result struct {
	AccessToken string
	IDToken     string // present when the "openid" scope was requested
	Expiry      time.Time
	Label       string // what StartFor was given (e.g. the requested broker role)
}

// String keeps tokens out of logs and %v.
func (r Result) String() string {
	return fmt.Sprintf("device.Result{AccessToken:[redacted] IDToken:[redacted] Expiry:%s Label:%q}", r.Expiry.Format(time.RFC3339), r.Label)
}

// LogValue keeps tokens out of slog.
func (r Result) LogValue() slog.Value {
	return slog.GroupValue(slog.Time("expiry", r.Expiry), slog.Bool("id_token", r.IDToken != ""))
}

var (
	_ fmt.Stringer   = Result{}
	_ slog.LogValuer = Result{}
)

// entry is a pending login; deviceCode never leaves this package.
type entry struct {
	deviceCode string
	expiresAt  time.Time
	interval   time.Duration
	lastPoll   time.Time // Start time, then the time of the last IdP request
	polling    bool      // an IdP request for this handle is in flight
	label      string
}

// Flow runs device logins against one IdP. It is safe for concurrent use.
type Flow struct {
	cfg    Config
	client *http.Client
	now    func() time.Time

	discoverMu sync.Mutex
	endpoints  *endpoints // nil until discovery succeeds

	mu      sync.Mutex
	pending map[string]*entry
}

// New validates cfg. Discovery happens on the first Start (the broker may start
// before its IdP); a discovery document without device_authorization_endpoint
// or token_endpoint fails that Start with ErrIdPUnavailable wrapped.
func New(_ context.Context, cfg Config) (*Flow, error) {
	var errs []error
	if err := authutil.CheckIdPURL(cfg.Issuer); err != nil {
		errs = append(errs, fmt.Errorf("issuer: %w", err))
	}
	if cfg.DiscoveryURL == "" {
		cfg.DiscoveryURL = cfg.Issuer
	} else if err := authutil.CheckIdPURL(cfg.DiscoveryURL); err != nil {
		errs = append(errs, fmt.Errorf("discovery_url: %w", err))
	}
	if cfg.ClientID == "" {
		errs = append(errs, errors.New("client_id is required"))
	}
	if cfg.MaxPending < 0 {
		errs = append(errs, errors.New("max_pending must not be negative"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("device login config: %w", errors.Join(errs...))
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{"openid"}
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	f := &Flow{cfg: cfg, client: cfg.HTTPClient, now: cfg.Now, pending: make(map[string]*entry)}
	if f.client == nil {
		f.client = &http.Client{
			Timeout: httpTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse // never replay client credentials elsewhere
			},
		}
	}
	if f.now == nil {
		f.now = time.Now
	}
	return f, nil
}

// Start asks the IdP for a device code and keeps it under a new Handle.
func (f *Flow) Start(ctx context.Context) (Pending, error) { return f.StartFor(ctx, "") }

// StartFor is Start with a label kept alongside the device code and returned in
// Result.Label, so the broker can bind the login to what was asked at start
// (the role in /v1/auth/device/start) without a second, unbounded map.
func (f *Flow) StartFor(ctx context.Context, label string) (Pending, error) {
	// Refuse early when full, so a flood of starts cannot reach the IdP.
	if !f.hasRoom() {
		return Pending{}, ErrTooManyPending
	}
	ep, err := f.discover(ctx)
	if err != nil {
		return Pending{}, err
	}
	form := url.Values{"client_id": {f.cfg.ClientID}, "scope": {strings.Join(f.cfg.Scopes, " ")}}
	da, err := f.deviceAuthorization(ctx, ep.deviceAuthURL, form)
	if err != nil {
		return Pending{}, err
	}
	handle, err := newHandle()
	if err != nil {
		return Pending{}, err
	}
	now := f.now()
	e := &entry{deviceCode: da.deviceCode, expiresAt: now.Add(da.lifetime), interval: da.interval, lastPoll: now, label: label}

	f.mu.Lock()
	f.sweepLocked(now)
	if len(f.pending) >= f.cfg.MaxPending {
		f.mu.Unlock()
		return Pending{}, ErrTooManyPending
	}
	f.pending[handle] = e
	f.mu.Unlock()

	return Pending{
		Handle:                  handle,
		UserCode:                da.userCode,
		VerificationURI:         da.verificationURI,
		VerificationURIComplete: da.verificationURIComplete,
		ExpiresAt:               e.expiresAt,
		Interval:                e.interval,
	}, nil
}

// Poll makes one token request at the IdP for handle, unless the handle is
// unknown (ErrUnknownHandle), expired (ErrExpired), or polled again within its
// interval or while another poll for it is in flight (ErrSlowDown): those are
// answered without contacting the IdP. ErrPending and ErrSlowDown keep the
// handle; success and every other error remove it.
func (f *Flow) Poll(ctx context.Context, handle string) (Result, error) {
	now := f.now()
	f.mu.Lock()
	e, ok := f.pending[handle]
	switch {
	case !ok:
		f.mu.Unlock()
		return Result{}, ErrUnknownHandle
	case !now.Before(e.expiresAt):
		delete(f.pending, handle)
		f.mu.Unlock()
		return Result{}, ErrExpired
	case e.polling || now.Before(e.lastPoll.Add(e.interval)):
		f.mu.Unlock()
		return Result{}, ErrSlowDown
	}
	e.polling = true
	e.lastPoll = now
	deviceCode, label := e.deviceCode, e.label
	f.mu.Unlock()

	res, err := f.pollIdP(ctx, deviceCode)
	if err == nil {
		res.Label = label
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	e.polling = false
	switch {
	case errors.Is(err, ErrPending):
	case errors.Is(err, ErrSlowDown):
		e.interval += slowDownStep
	case errors.Is(err, ErrIdPUnavailable), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// Transient: the agent may poll again after its interval.
	default: // success, denied, expired, or a refusal: single use
		delete(f.pending, handle)
	}
	return res, err
}

func (f *Flow) pollIdP(ctx context.Context, deviceCode string) (Result, error) {
	ep, err := f.discover(ctx)
	if err != nil {
		return Result{}, err
	}
	form := url.Values{
		"grant_type":  {"urn:ietf:params:oauth:grant-type:device_code"},
		"device_code": {deviceCode},
		"client_id":   {f.cfg.ClientID},
	}
	tok, err := f.token(ctx, ep.tokenURL, form)
	if err != nil {
		return Result{}, err
	}
	res := Result{AccessToken: tok.AccessToken, IDToken: tok.IDToken}
	if tok.ExpiresIn > 0 {
		res.Expiry = f.now().Add(time.Duration(tok.ExpiresIn) * time.Second)
	}
	return res, nil
}

func (f *Flow) hasRoom() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.pending) < f.cfg.MaxPending {
		return true
	}
	f.sweepLocked(f.now())
	return len(f.pending) < f.cfg.MaxPending
}

// sweepLocked drops expired entries. f.mu must be held.
func (f *Flow) sweepLocked(now time.Time) {
	for h, e := range f.pending {
		if !now.Before(e.expiresAt) {
			delete(f.pending, h)
		}
	}
}

// Len is the number of pending logins (for metrics).
func (f *Flow) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pending)
}

func newHandle() (string, error) {
	b := make([]byte, handleBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("device login handle: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
