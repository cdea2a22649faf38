package rigetti

import (
	"context"
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

const (
	// DefaultIssuer is QCS's Okta authorization server.
	DefaultIssuer = "https://auth.qcs.rigetti.com/oauth2/aus8jcovzG0gW2TUG355"
	// DefaultClientID is the QCS SDK's public OAuth client.
	DefaultClientID = "0oa3ykoirzDKpkfzk357"
	// MaxTokenLifetime is the longest a QCS access token is believed to
	// live (a token from the web console lasts 24 h); a longer expires_in
	// is cut to it.
	MaxTokenLifetime = 24 * time.Hour
	// ExchangeTimeout bounds one refresh once it is sent. The caller's
	// context cannot cut it short: QCS may already have rotated the token.
	ExchangeTimeout = 30 * time.Second
)

// maxAnswer bounds the token answer read (real ones are a few KiB).
const maxAnswer = 1 << 20

// Minter exchanges the QCS refresh token (the provider root credential)
// for QCS access tokens. The zero value targets QCS's public Okta server
// with the SDK's client id. Mint must not run concurrently with the same
// root (see the package doc); the Minter itself holds no state.
type Minter struct {
	// Issuer is the authorization server (default DefaultIssuer); the
	// token endpoint is Issuer + "/v1/token". Ignored when TokenURL is set.
	Issuer string
	// TokenURL is the token endpoint, overriding the one derived from
	// Issuer. Either must be https, or http to a loopback address (an
	// emulator), since the refresh token travels in the request body.
	TokenURL string
	// ClientID is the OAuth client the refresh token was issued to
	// (default DefaultClientID, the SDK's). It is sent in the form, as the
	// SDK does; QCS's refresh grant needs no client secret.
	ClientID string
	// HTTPClient sends the exchange (default: http.DefaultTransport).
	// Redirects are never followed, whatever the client says, so the
	// refresh token cannot be replayed to another host.
	HTTPClient *http.Client
	// Now is the clock Expires is computed on (default time.Now).
	Now func() time.Time
}

var _ provider.Minter = (*Minter)(nil)

// tokenAnswer is a token endpoint answer (RFC 6749 §5.1 and §5.2).
type tokenAnswer struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// Mint implements provider.Minter. root is the current refresh token
// (ParseRoot's format). It sends the refresh_token grant and returns the
// access token as Credential.Secret, expiring expires_in after the request
// was sent (at most MaxTokenLifetime), and the new refresh token as
// rotated ("" if the server did not rotate). rotated can be non-empty
// even when err is not nil — the answer carried a new refresh token but
// no usable access token — and must be stored all the same: the old one
// is dead. An invalid_grant refusal is a *TokenError matching
// ErrRefreshRejected. role selects nothing (QCS tokens cannot be
// narrowed) and the scope is empty.
func (m *Minter) Mint(ctx context.Context, root, role string) (provider.Credential, provider.Scope, string, error) {
	tok, err := ParseRoot(root)
	if err != nil {
		return provider.Credential{}, provider.Scope{}, "", err
	}
	endpoint, err := m.tokenURL()
	if err != nil {
		return provider.Credential{}, provider.Scope{}, "", err
	}
	if err := ctx.Err(); err != nil { // nothing sent yet: give up cleanly
		return provider.Credential{}, provider.Scope{}, "", fmt.Errorf("rigetti: refresh not sent: %w", err)
	}
	form := url.Values{"grant_type": {"refresh_token"}, "client_id": {m.clientID()}, "refresh_token": {tok}}
	// From here on QCS may rotate the token: finish the exchange even if
	// the caller stops waiting, so the new token is not lost.
	xctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ExchangeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(xctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return provider.Credential{}, provider.Scope{}, "", fmt.Errorf("rigetti: build the token request: %w", redact(err, tok))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "qbroker")
	start := m.now()
	resp, err := m.client().Do(req)
	if err != nil {
		// *url.Error names the method and URL only; the token is in the body.
		return provider.Credential{}, provider.Scope{}, "", fmt.Errorf("rigetti: token refresh (if it reached QCS, the stored refresh token may be spent): %w", redact(err, tok))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return provider.Credential{}, provider.Scope{}, "", fmt.Errorf("rigetti: read the token answer (the stored refresh token may be spent): %w", redact(err, tok))
	}
	if len(body) > maxAnswer {
		return provider.Credential{}, provider.Scope{}, "", errors.New("rigetti: the token answer is too large")
	}
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return provider.Credential{}, provider.Scope{}, "", fmt.Errorf("rigetti: the token endpoint answered HTTP %d (a redirect); redirects are not followed, so the refresh token is sent nowhere else: configure the final token URL", resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return provider.Credential{}, provider.Scope{}, "", refusal(resp.StatusCode, body, tok)
	}
	return answer(start, body, tok)
}

// answer reads a 200 token answer. The new refresh token is taken first
// and returned with any later error: the presented one is already spent.
func answer(start time.Time, body []byte, old string) (provider.Credential, provider.Scope, string, error) {
	var ans tokenAnswer
	if err := json.Unmarshal(body, &ans); err != nil {
		return provider.Credential{}, provider.Scope{}, "", errors.New("rigetti: the token answer is not JSON (the stored refresh token may be spent)")
	}
	var rotated string
	if ans.RefreshToken != "" {
		r, err := ParseRoot(ans.RefreshToken)
		if err != nil || r != ans.RefreshToken {
			return provider.Credential{}, provider.Scope{}, "", errors.New("rigetti: the token answer's refresh_token is malformed; the stored one is probably spent and an operator must re-enrol (`qbroker provider set rigetti`)")
		}
		rotated = r
	}
	fail := func(msg string) (provider.Credential, provider.Scope, string, error) {
		return provider.Credential{}, provider.Scope{}, rotated, errors.New("rigetti: " + msg)
	}
	switch {
	case ans.AccessToken == "" || strings.ContainsAny(ans.AccessToken, " \t\r\n"):
		return fail("the token answer holds no usable access_token")
	case ans.AccessToken == old || ans.AccessToken == rotated:
		return fail("the token answer's access_token is a refresh token")
	case !strings.EqualFold(ans.TokenType, "Bearer"):
		return fail(fmt.Sprintf("the token answer's token_type is %q, not Bearer", clean(ans.TokenType, 32, ans.AccessToken, old, rotated)))
	case ans.ExpiresIn <= 0:
		return fail("the token answer gives no expires_in")
	}
	life := time.Duration(min(ans.ExpiresIn, int64(MaxTokenLifetime/time.Second))) * time.Second
	return provider.Credential{Secret: ans.AccessToken, Expires: start.Add(life)}, provider.Scope{}, rotated, nil
}

// refusal reads an OAuth error answer {"error","error_description"}.
func refusal(status int, body []byte, tok string) error {
	var e struct {
		Code        string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(body, &e)
	return &TokenError{Status: status, Code: clean(e.Code, 64, tok), Description: clean(e.Description, 200, tok)}
}

func (m *Minter) tokenURL() (string, error) {
	raw := m.TokenURL
	if raw == "" {
		iss := m.Issuer
		if iss == "" {
			iss = DefaultIssuer
		}
		raw = strings.TrimSuffix(iss, "/") + "/v1/token"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		// Not quoted: a malformed URL may carry credentials.
		return "", fmt.Errorf("rigetti: the token URL (TokenURL, or Issuer + /v1/token) is not a URL like %s/v1/token without user info, query or fragment", DefaultIssuer)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	default:
		return "", fmt.Errorf("rigetti: token URL %s://%s must be https (http only to a loopback emulator): the refresh token travels in the request", clean(u.Scheme, 16), clean(u.Host, 200))
	}
	return u.String(), nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (m *Minter) clientID() string {
	if m.ClientID != "" {
		return m.ClientID
	}
	return DefaultClientID
}

func (m *Minter) client() *http.Client {
	var c http.Client
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
