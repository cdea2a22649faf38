package quantinuum

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/qbroker/qbroker/internal/provider"
)

// DefaultBaseURL is the legacy machine API's root.
const DefaultBaseURL = "https://qapi.quantinuum.com"

// DefaultIDTokenLifetime is how long an id-token is taken to live when its
// expiry cannot be read from it: pytket's cache setting.
const DefaultIDTokenLifetime = 55 * time.Minute

// MaxIDTokenLifetime bounds an id-token's expiry, whatever it claims.
const MaxIDTokenLifetime = time.Hour

// codeMFARequired is the login error code of an account that needs an MFA
// code (pytket-quantinuum's ERROR_CODE_MFA_REQUIRED).
const codeMFARequired = 73

// maxLoginAnswer bounds the login answer read.
const maxLoginAnswer = 1 << 20

// Minter logs in to the machine API with the root credential (a refresh
// token or "email:password") for an id-token. The zero value targets the
// public service. It holds no state and is safe for concurrent use.
type Minter struct {
	// BaseURL is the API root (default DefaultBaseURL); the login endpoint
	// is BaseURL + "/v1/login". It must be https, or http to a loopback
	// address (an emulator), since the secret travels in the body.
	BaseURL string
	// HTTPClient sends the login (default: a client with a 15 s timeout).
	// Redirects are never followed, so the secret cannot be replayed to
	// another host.
	HTTPClient *http.Client
	// Now is the clock expiries are computed on (default time.Now).
	Now func() time.Time
	// IDTokenLifetime is assumed for an id-token whose expiry cannot be
	// read from it (default DefaultIDTokenLifetime; at most
	// MaxIDTokenLifetime).
	IDTokenLifetime time.Duration
}

var _ provider.Minter = (*Minter)(nil)

// MintError is the service's refusal of a login: the HTTP status and the
// error code and text of its {"error":{"code","text"}} answer. It never
// holds the root credential.
type MintError struct {
	Status int
	Code   int
	Text   string
}

func (e *MintError) Error() string {
	hint := ""
	switch {
	case e.Code == codeMFARequired:
		hint = " (the account requires MFA: store its refresh token as the root credential instead of email:password)"
	case e.Status == http.StatusBadRequest && strings.Contains(e.Text, "Invalid Refresh Token"):
		hint = " (the stored refresh token is invalid or expired: store a new one)"
	}
	return fmt.Sprintf("quantinuum: login refused: HTTP %d, code %d: %s%s", e.Status, e.Code, e.Text, hint)
}

// rootCredential is a parsed root credential: a refresh token, or an email
// and password.
type rootCredential struct {
	refresh         string
	email, password string
}

// parseRoot reads the stored root credential: "email:password" when an '@'
// comes before the first ':', otherwise a refresh token.
func parseRoot(root string) (rootCredential, error) {
	if user, pass, ok := strings.Cut(root, ":"); ok && strings.Contains(user, "@") {
		email := strings.TrimSpace(user)
		if email == "" || strings.ContainsAny(email, " \t\r\n") || pass == "" {
			return rootCredential{}, errors.New("quantinuum: the root credential looks like email:password but one of them is empty or malformed")
		}
		return rootCredential{email: email, password: pass}, nil
	}
	tok := strings.TrimSpace(root)
	if tok == "" {
		return rootCredential{}, errors.New("quantinuum: the stored root credential (a refresh token or email:password) is empty")
	}
	if strings.ContainsAny(tok, " \t\r\n") {
		return rootCredential{}, errors.New("quantinuum: the stored refresh token contains whitespace")
	}
	return rootCredential{refresh: tok}, nil
}

// secrets are the strings redacted from any error.
func (r rootCredential) secrets() []string {
	var s []string
	for _, v := range []string{r.refresh, r.password} {
		if v != "" {
			s = append(s, v)
		}
	}
	return s
}

// Mint implements provider.Minter: it logs in with root and returns the
// id-token (Credential.Secret) with its expiry. A refresh-token login whose
// answer carries a different refresh token returns that token as rotated.
// The account's id-token is not scoped, so role selects nothing and the
// scope is empty.
func (m *Minter) Mint(ctx context.Context, root, role string) (provider.Credential, provider.Scope, string, error) {
	rc, err := parseRoot(root)
	if err != nil {
		return provider.Credential{}, provider.Scope{}, "", err
	}
	endpoint, err := m.loginURL()
	if err != nil {
		return provider.Credential{}, provider.Scope{}, "", err
	}
	var body []byte
	if rc.refresh != "" {
		body, err = json.Marshal(map[string]string{"refresh-token": rc.refresh})
	} else {
		body, err = json.Marshal(map[string]string{"email": rc.email, "password": rc.password})
	}
	if err != nil {
		return provider.Credential{}, provider.Scope{}, "", errors.New("quantinuum: encode the login request")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return provider.Credential{}, provider.Scope{}, "", fmt.Errorf("quantinuum: build the login request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "qbroker")
	start := m.now()
	resp, err := m.client().Do(req)
	if err != nil {
		return provider.Credential{}, provider.Scope{}, "", fmt.Errorf("quantinuum: login: %w", redact(err, rc.secrets()))
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxLoginAnswer+1))
	if err != nil {
		return provider.Credential{}, provider.Scope{}, "", fmt.Errorf("quantinuum: read the login answer: %w", redact(err, rc.secrets()))
	}
	if len(answer) > maxLoginAnswer {
		return provider.Credential{}, provider.Scope{}, "", errors.New("quantinuum: the login answer is too large")
	}
	if resp.StatusCode != http.StatusOK {
		return provider.Credential{}, provider.Scope{}, "", loginRefusal(resp.StatusCode, answer, rc.secrets())
	}
	var ans struct {
		IDToken      string `json:"id-token"`
		RefreshToken string `json:"refresh-token"`
	}
	if err := json.Unmarshal(answer, &ans); err != nil {
		return provider.Credential{}, provider.Scope{}, "", errors.New("quantinuum: the login answer is not JSON")
	}
	if !headerSafe(ans.IDToken) {
		return provider.Credential{}, provider.Scope{}, "", errors.New("quantinuum: the login answer holds no usable id-token")
	}
	rotated := ""
	if rc.refresh != "" && ans.RefreshToken != "" && ans.RefreshToken != rc.refresh {
		if strings.ContainsAny(ans.RefreshToken, " \t\r\n") {
			return provider.Credential{}, provider.Scope{}, "", errors.New("quantinuum: the login answer's refresh-token is malformed")
		}
		rotated = ans.RefreshToken
	}
	return provider.Credential{Secret: ans.IDToken, Expires: m.expiry(start, ans.IDToken)}, provider.Scope{}, rotated, nil
}

// expiry is the id-token's JWT exp when it has one in the future,
// otherwise start plus the assumed lifetime; never beyond
// MaxIDTokenLifetime. Measuring from before the login was sent keeps it
// on the safe side of the network delay.
func (m *Minter) expiry(start time.Time, idToken string) time.Time {
	life := m.IDTokenLifetime
	if life <= 0 {
		life = DefaultIDTokenLifetime
	}
	exp := start.Add(min(life, MaxIDTokenLifetime))
	if at, ok := jwtExpiry(idToken); ok && at.After(start) {
		exp = start.Add(min(at.Sub(start), MaxIDTokenLifetime))
	}
	return exp
}

// jwtExpiry reads the exp claim of a JWT without verifying it (the token
// is only ever sent back to the service that issued it).
func jwtExpiry(tok string) (time.Time, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp *json.Number `json:"exp"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.Exp == nil {
		return time.Time{}, false
	}
	sec, err := claims.Exp.Int64()
	if err != nil || sec <= 0 {
		return time.Time{}, false
	}
	return time.Unix(sec, 0), true
}

// loginRefusal reads the service's {"error":{"code","text"}}.
func loginRefusal(status int, body []byte, secrets []string) error {
	var e struct {
		Error struct {
			Code int    `json:"code"`
			Text string `json:"text"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	return &MintError{Status: status, Code: e.Error.Code, Text: truncate(scrub(e.Error.Text, secrets), 200)}
}

func (m *Minter) loginURL() (string, error) {
	base := m.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(strings.TrimSuffix(base, "/"))
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("quantinuum: base URL %q is not an absolute URL without query or credentials", base)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	default:
		return "", fmt.Errorf("quantinuum: base URL %q must be https (http only to a loopback emulator): the secret travels in the login request", base)
	}
	return u.String() + "/v1/login", nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (m *Minter) client() *http.Client {
	c := http.Client{Timeout: 15 * time.Second}
	if m.HTTPClient != nil {
		c = *m.HTTPClient
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

func (m *Minter) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// redactedError is an error whose text had the secrets removed. It unwraps
// only to a context error (for errors.Is), never to the original text.
type redactedError struct {
	msg   string
	cause error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.cause }

func redact(err error, secrets []string) error {
	var cause error
	switch {
	case errors.Is(err, context.Canceled):
		cause = context.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		cause = context.DeadlineExceeded
	}
	return &redactedError{msg: scrub(err.Error(), secrets), cause: cause}
}

func scrub(s string, secrets []string) string {
	for _, v := range secrets {
		s = strings.ReplaceAll(s, v, "[redacted]")
	}
	return s
}

// headerSafe reports whether s can be sent as a raw header value: not
// empty, printable ASCII without spaces.
func headerSafe(s string) bool {
	if s == "" || len(s) > 16<<10 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
