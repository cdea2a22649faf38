package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
)

// Person is someone signed in to the console.
type Person struct {
	// ID is the stable identity approvers are configured by: the verified
	// email (or the configured PersonClaim) when the IdP asserts it, else the
	// subject.
	ID     string
	Name   string // for display only
	Issuer string // the IdP that vouched for the person ("dev" for a login link)
}

// Backend is what the console reads and changes. The broker implements it
// and authorizes every call for the person given.
type Backend interface {
	// ListApprovals returns approvals in state ("" = all), newest first.
	ListApprovals(ctx context.Context, p Person, state string, limit int) ([]api.Approval, error)
	// GetApproval returns one approval.
	GetApproval(ctx context.Context, p Person, id string) (api.Approval, error)
	// Decide records p's vote on approval id and returns the approval after it.
	Decide(ctx context.Context, p Person, id string, approve bool, reason, remoteAddr string) (api.Approval, error)
	// CanDecide reports whether p may vote on a now; why explains a refusal
	// in plain words ("you asked for this request").
	CanDecide(ctx context.Context, p Person, a api.Approval) (ok bool, why string)
	// RecentEvents returns the recent audit trail, newest first.
	RecentEvents(ctx context.Context, p Person, limit int) ([]audit.Event, error)
}

// Diagram is a rendered circuit with its metrics.
type Diagram struct {
	SVG                                          template.HTML // trusted: the renderer escapes what it draws
	Qubits, Gates, TwoQubit, Depth, Measurements int
}

// RenderFunc draws a program of the given format.
type RenderFunc func(format string, program json.RawMessage) (Diagram, error)

// OIDCConfig configures sign-in with an OpenID provider.
type OIDCConfig struct {
	Issuer       string // exactly as the IdP names itself
	ClientID     string
	ClientSecret string
	Scopes       []string // default openid email profile; openid is always asked for
	// PersonClaim names the claim that becomes Person.ID; default "email".
	// An email is used only when email_verified is not false.
	PersonClaim string
	HTTPClient  *http.Client // default: a client with a 10 s timeout
}

// Config configures a Console.
type Config struct {
	Backend Backend
	Render  RenderFunc // nil: programs are shown as text only
	// BaseURL is the broker's public URL; the console lives under
	// BaseURL + "/ui/".
	BaseURL *url.URL
	OIDC    *OIDCConfig // nil: no OIDC sign-in
	// DevLogin allows one-time login links (see LoginLink).
	DevLogin bool
	// SessionKey (at least 32 bytes) signs the session, login-state and
	// flash cookies and the CSRF tokens. Rotating it signs everyone out.
	SessionKey []byte
	SessionTTL time.Duration // default 8h
	Logger     *slog.Logger
	Now        func() time.Time
}

// Defaults and limits.
const (
	DefaultSessionTTL = 8 * time.Hour
	minKeyLen         = 32
	stateTTL          = 10 * time.Minute
	flashTTL          = time.Minute
	maxFormBytes      = 16 << 10
	maxReasonRunes    = 2000
	listLimit         = 100
	recentLimit       = 50
	auditLimit        = 200
)

// Console serves the approval console.
type Console struct {
	backend  Backend
	render   RenderFunc
	base     *url.URL
	origin   string // scheme://host[:port] of BaseURL, for the Origin check
	prefix   string // BaseURL's path without the trailing slash
	secure   bool   // BaseURL is https: Secure, __Host- cookies
	devLogin bool
	ttl      time.Duration
	log      *slog.Logger
	now      func() time.Time

	keys    keys
	oidc    *oidcClient
	pages   *pages
	cssHash string

	usedStates *onceSet   // login states already redeemed
	revoked    *onceSet   // session ids signed out before they expired
	links      *linkStore // one-time login links
	mux        *http.ServeMux
}

// New checks cfg, discovers the OpenID provider when OIDC is set and
// returns a Console.
func New(ctx context.Context, cfg Config) (*Console, error) {
	if err := validate(cfg); err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	c := &Console{
		backend: cfg.Backend, render: cfg.Render, devLogin: cfg.DevLogin,
		base:   cfg.BaseURL,
		origin: originOf(cfg.BaseURL), prefix: strings.TrimSuffix(cfg.BaseURL.Path, "/"),
		secure: cfg.BaseURL.Scheme == "https",
		ttl:    cfg.SessionTTL, log: cfg.Logger, now: cfg.Now,
		keys: deriveKeys(cfg.SessionKey),
	}
	if c.ttl <= 0 {
		c.ttl = DefaultSessionTTL
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if !c.secure && !isLoopback(cfg.BaseURL.Hostname()) {
		c.log.Warn("console: BaseURL is plain http on a non-loopback host; session cookies are not Secure", "base_url", cfg.BaseURL.Redacted())
	}
	c.usedStates, c.revoked = newOnceSet(c.now), newOnceSet(c.now)
	c.links = newLinkStore(c.now)
	var err error
	if c.pages, err = c.parsePages(); err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	if c.cssHash, err = assetHash("static/console.css"); err != nil {
		return nil, fmt.Errorf("console: assets: %w", err)
	}
	if cfg.OIDC != nil {
		if c.oidc, err = newOIDCClient(ctx, *cfg.OIDC, c.abs("/ui/callback"), c.now); err != nil {
			return nil, fmt.Errorf("console: %w", err)
		}
	}
	c.mux = c.routes()
	return c, nil
}

func validate(cfg Config) error {
	var errs []error
	if cfg.Backend == nil {
		errs = append(errs, errors.New("Backend is required"))
	}
	if u := cfg.BaseURL; u == nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, errors.New("BaseURL must be an absolute http(s) URL without credentials, query or fragment"))
	}
	if len(cfg.SessionKey) < minKeyLen {
		errs = append(errs, fmt.Errorf("SessionKey must be at least %d bytes", minKeyLen))
	}
	if cfg.SessionTTL < 0 {
		errs = append(errs, errors.New("SessionTTL must not be negative"))
	}
	if o := cfg.OIDC; o != nil {
		if o.Issuer == "" || o.ClientID == "" {
			errs = append(errs, errors.New("OIDC needs Issuer and ClientID"))
		}
	}
	return errors.Join(errs...)
}

// Handler serves every path under /ui/; mount it at "/ui/" on the broker's
// mux, without stripping the prefix.
func (c *Console) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w.Header())
		c.mux.ServeHTTP(w, r)
	})
}

func (c *Console) routes() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /ui/{$}", c.authed(c.home))
	m.HandleFunc("GET /ui/approvals/{id}", c.authed(c.detail))
	m.HandleFunc("POST /ui/approvals/{id}/approve", c.authed(c.decide(true)))
	m.HandleFunc("POST /ui/approvals/{id}/deny", c.authed(c.decide(false)))
	m.HandleFunc("GET /ui/audit", c.authed(c.auditTrail))
	m.HandleFunc("GET /ui/login", c.login)
	m.HandleFunc("GET /ui/callback", c.callback)
	m.HandleFunc("GET /ui/login/once", c.loginOnce)
	m.HandleFunc("POST /ui/logout", c.authed(c.logout))
	m.HandleFunc("GET /ui/signed-out", c.signedOut)
	m.HandleFunc("GET /ui/static/console.css", c.css)
	m.HandleFunc("/ui/", c.notFound)
	return m
}

// securityHeaders are set on every response; pages add Cache-Control
// no-store, the stylesheet a long cache.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin") // not no-referrer: with it Chrome sends "Origin: null" on our own form posts
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// href is the public path of a console path given as "/ui/...".
func (c *Console) href(p string) string { return c.prefix + p }

// abs is the absolute URL of a console path given as "/ui/...".
func (c *Console) abs(p string) string {
	u := *c.base
	u.Path = c.prefix + p
	u.RawPath = ""
	return u.String()
}

func approvalPath(id string) string { return "/ui/approvals/" + url.PathEscape(id) }

// originOf is the serialized origin of u as browsers send it: lower-case
// scheme and host, default port dropped.
func originOf(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// remoteHost is the client address without the port.
func remoteHost(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}
