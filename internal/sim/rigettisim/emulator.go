package rigettisim

import (
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc"
)

// Defaults and limits.
const (
	// DefaultIssuerPath is the path of QCS's Okta authorization server
	// (issuer https://auth.qcs.rigetti.com/oauth2/aus8jcovzG0gW2TUG355).
	DefaultIssuerPath = "/oauth2/aus8jcovzG0gW2TUG355"
	// DefaultClientID is the QCS SDK's default client_id.
	DefaultClientID = "0oa3ykoirzDKpkfzk357"
	// DefaultAccessTokenTTL is an access token's lifetime: the SDK's test
	// fixture uses expires_in=3600 (UNCERTAIN; QCS's API docs say a token
	// downloaded from the web console lasts 24 hours).
	DefaultAccessTokenTTL = time.Hour
	// DefaultRefreshTokenTTL is how long an unused refresh token stays
	// valid; each rotation starts a new period (UNCERTAIN: the reference
	// does not give QCS's refresh-token policy).
	DefaultRefreshTokenTTL = 30 * 24 * time.Hour
	// DefaultMaxRefreshTokens bounds the live refresh tokens kept.
	DefaultMaxRefreshTokens = 10_000
	// MaxFormBytes bounds a token request body.
	MaxFormBytes = 64 << 10
	// rsaBits is the size of a generated signing key.
	rsaBits = 2048
)

// DefaultQuantumProcessors are the processors listed by default.
func DefaultQuantumProcessors() []string { return []string{"Ankaa-3", "Cepheus-1-108Q"} }

// Config configures an Emulator.
type Config struct {
	// ClientID is the one OAuth client (default DefaultClientID).
	ClientID string
	// ClientSecret enables the client_credentials grant (HTTP Basic
	// client_id:secret). Empty means that grant is refused.
	ClientSecret string
	// RefreshToken is a refresh token valid at start, as if the user had
	// logged in (what ~/.qcs/secrets.toml would hold). Empty means none;
	// see IssueRefreshToken.
	RefreshToken string
	// IssuerPath is the authorization server's path (default
	// DefaultIssuerPath).
	IssuerPath string
	// Issuer is the full issuer URL. Empty means it is derived from each
	// request: http(s)://Host + IssuerPath.
	Issuer string
	// AccessTokenTTL is the access-token lifetime (default 1h).
	AccessTokenTTL time.Duration
	// RefreshTokenTTL is how long an unused refresh token stays valid
	// (default 30 days).
	RefreshTokenTTL time.Duration
	// Email is the user's profile email (default "qcs-user@example.com").
	Email string
	// QuantumProcessors are the processor ids listed (default
	// DefaultQuantumProcessors()).
	QuantumProcessors []string
	// SigningKey signs access tokens (RS256). Nil means a fresh 2048-bit key.
	SigningKey *rsa.PrivateKey
	// Now is the clock for token expiry (default time.Now).
	Now func() time.Time
	// Logger receives debug logs (default: discard). Secrets never reach it.
	Logger *slog.Logger
	// MaxRefreshTokens bounds the live refresh tokens kept (default
	// 10,000); beyond it the oldest are forgotten.
	MaxRefreshTokens int
	// MaxShots is every processor's shot limit for a translation
	// (default DefaultMaxShots).
	MaxShots int
	// ExecutionDelay is how long an execution is queued and running
	// before its results are ready (default DefaultExecutionDelay).
	ExecutionDelay time.Duration
}

// Emulator is the Rigetti QCS emulator: the Okta authorization server QCS
// uses and a slice of the QCS REST API. It is an http.Handler with no
// background work.
type Emulator struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	mux     *http.ServeMux
	key     *rsa.PrivateKey
	kid     string
	signer  jose.Signer
	secret  [32]byte
	userID  int64
	idpID   string
	created time.Time

	mu      sync.Mutex
	refresh map[[32]byte]refreshRecord
	order   [][32]byte // refresh-token hashes, oldest first

	// gRPC execution (grpc.go).
	grpc      *grpc.Server
	jobAEAD   cipher.AEAD // seals encrypted controller jobs
	jobKeyID  string
	execMu    sync.Mutex
	execs     map[string]*execution
	execOrder []string // execution ids, oldest first
}

// refreshRecord is a live refresh token, by hash.
type refreshRecord struct {
	clientID string
	expires  time.Time
}

var _ http.Handler = (*Emulator)(nil)

var (
	issuerPathRE = regexp.MustCompile(`^(/[A-Za-z0-9._~-]+)+$`)
	processorRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

// New validates cfg and returns an emulator.
func New(cfg Config) (*Emulator, error) {
	if cfg.ClientID == "" {
		cfg.ClientID = DefaultClientID
	}
	if cfg.IssuerPath == "" {
		cfg.IssuerPath = DefaultIssuerPath
	}
	if cfg.AccessTokenTTL <= 0 {
		cfg.AccessTokenTTL = DefaultAccessTokenTTL
	}
	if cfg.RefreshTokenTTL <= 0 {
		cfg.RefreshTokenTTL = DefaultRefreshTokenTTL
	}
	if cfg.Email == "" {
		cfg.Email = "qcs-user@example.com"
	}
	if cfg.QuantumProcessors == nil {
		cfg.QuantumProcessors = DefaultQuantumProcessors()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxRefreshTokens <= 0 {
		cfg.MaxRefreshTokens = DefaultMaxRefreshTokens
	}
	var problems []error
	if !issuerPathRE.MatchString(cfg.IssuerPath) || strings.HasPrefix(cfg.IssuerPath, "/v1/") {
		problems = append(problems, fmt.Errorf("issuer path %q is not an absolute path outside /v1/", cfg.IssuerPath))
	}
	if cfg.Issuer != "" && !strings.HasSuffix(cfg.Issuer, cfg.IssuerPath) {
		problems = append(problems, fmt.Errorf("issuer %q does not end with the issuer path %q", cfg.Issuer, cfg.IssuerPath))
	}
	if strings.ContainsAny(cfg.ClientID, ":\x00") {
		problems = append(problems, errors.New("client id must not contain ':'"))
	}
	seen := map[string]bool{}
	for i, p := range cfg.QuantumProcessors {
		if !processorRE.MatchString(p) || seen[p] {
			problems = append(problems, fmt.Errorf("quantumProcessors[%d]: %q is not a unique processor id", i, p))
		}
		seen[p] = true
	}
	if cfg.SigningKey != nil && cfg.SigningKey.N.BitLen() < rsaBits {
		problems = append(problems, fmt.Errorf("signing key has %d bits, fewer than %d", cfg.SigningKey.N.BitLen(), rsaBits))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("rigettisim: invalid config: %w", errors.Join(problems...))
	}
	key := cfg.SigningKey
	if key == nil {
		var err error
		if key, err = rsa.GenerateKey(rand.Reader, rsaBits); err != nil {
			return nil, fmt.Errorf("rigettisim: signing key: %w", err)
		}
	}
	kidSum := sha256.Sum256(key.N.Bytes())
	kid := hex.EncodeToString(kidSum[:8])
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		return nil, fmt.Errorf("rigettisim: signer: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Emulator{
		cfg:     cfg,
		log:     log,
		now:     cfg.Now,
		mux:     http.NewServeMux(),
		key:     key,
		kid:     kid,
		signer:  signer,
		secret:  sha256.Sum256([]byte(cfg.ClientSecret)),
		userID:  1001,
		idpID:   "00u" + randomToken()[:17],
		created: cfg.Now().UTC(),
		refresh: map[[32]byte]refreshRecord{},
	}
	if e.jobAEAD, e.jobKeyID, err = newJobKey(); err != nil {
		return nil, fmt.Errorf("rigettisim: job key: %w", err)
	}
	e.execs = map[string]*execution{}
	e.grpc = e.newGRPC()
	if cfg.RefreshToken != "" {
		e.storeRefresh(cfg.RefreshToken, cfg.ClientID, e.now())
	}
	e.routes()
	return e, nil
}

func (e *Emulator) routes() {
	p := e.cfg.IssuerPath
	e.mux.HandleFunc("GET "+p+"/.well-known/openid-configuration", e.handleDiscovery)
	e.mux.HandleFunc("GET "+p+"/.well-known/oauth-authorization-server", e.handleDiscovery)
	e.mux.HandleFunc("POST "+p+"/v1/token", e.handleToken)
	e.mux.HandleFunc("GET "+p+"/v1/keys", e.handleKeys)
	e.mux.Handle("GET /v1/auth:getUser", e.bearer(e.handleGetUser))
	e.mux.Handle("GET /v1/quantumProcessors", e.bearer(e.handleListProcessors))
	e.mux.Handle("GET /v1/quantumProcessors/{id}", e.bearer(e.handleGetProcessor))
}

// ServeHTTP implements http.Handler. Unknown paths are 404 and known paths
// with the wrong method 405: OAuth-shaped under the issuer path, QCS-shaped
// elsewhere.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if isGRPC(r) {
		e.grpc.ServeHTTP(w, r)
		return
	}
	if _, pattern := e.mux.Handler(r); pattern != "" {
		e.mux.ServeHTTP(w, r)
		return
	}
	rec := &headerRecorder{header: http.Header{}}
	h, _ := e.mux.Handler(r)
	h.ServeHTTP(rec, r)
	status, msg := http.StatusNotFound, "route not found"
	if rec.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", rec.header.Get("Allow"))
		status, msg = http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on this route", r.Method)
	}
	if strings.HasPrefix(r.URL.Path, e.cfg.IssuerPath+"/") {
		writeOAuthError(w, status, "invalid_request", msg)
		return
	}
	writeAPIError(w, status, codeFor(status), msg)
}

// headerRecorder captures the status and headers of ServeMux's built-in
// error handlers.
type headerRecorder struct {
	header http.Header
	status int
}

func (h *headerRecorder) Header() http.Header         { return h.header }
func (h *headerRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (h *headerRecorder) WriteHeader(status int)      { h.status = status }

// IssuerPath returns the authorization server's path; the issuer URL is
// the emulator's base URL followed by it.
func (e *Emulator) IssuerPath() string { return e.cfg.IssuerPath }

// ClientID returns the OAuth client id the emulator accepts.
func (e *Emulator) ClientID() string { return e.cfg.ClientID }

// QuantumProcessors returns a copy of the processor list.
func (e *Emulator) QuantumProcessors() []string { return slices.Clone(e.cfg.QuantumProcessors) }

// IssueRefreshToken returns a new valid refresh token, as an interactive
// (PKCE) login would: the way back in after a lost rotation.
func (e *Emulator) IssueRefreshToken() string {
	tok := randomToken()
	e.storeRefresh(tok, e.cfg.ClientID, e.now())
	return tok
}

// issuer returns the issuer URL for r.
func (e *Emulator) issuer(r *http.Request) string {
	if e.cfg.Issuer != "" {
		return e.cfg.Issuer
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + e.cfg.IssuerPath
}
