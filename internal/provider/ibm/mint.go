package ibm

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

// DefaultIAMURL is IBM Cloud IAM's public endpoint.
const DefaultIAMURL = "https://iam.cloud.ibm.com"

// GrantTypeAPIKey is IAM's grant type for exchanging an API key.
const GrantTypeAPIKey = "urn:ibm:params:oauth:grant-type:apikey"

// MaxTokenLifetime is the longest an IAM access token lives ("expires
// after 1 hour"); a longer answer is cut to it.
const MaxTokenLifetime = time.Hour

// maxIAMAnswer bounds the token answer read (real ones are a few KiB).
const maxIAMAnswer = 1 << 20

// Minter exchanges the IBM Cloud API key (the provider root credential)
// for IAM bearer tokens. The zero value targets IBM Cloud's public IAM.
type Minter struct {
	// IAMURL is IAM's base URL (default DefaultIAMURL); the token endpoint
	// is IAMURL + "/identity/token". It must be https, or http to a
	// loopback address (an emulator), since the API key travels in the
	// request body.
	IAMURL string
	// HTTPClient sends the exchange (default: a client with a 15 s
	// timeout). Redirects are never followed, whatever the client says, so
	// the key cannot be replayed to another host.
	HTTPClient *http.Client
	// Now is the clock Expires is computed on (default time.Now).
	Now func() time.Time
}

var _ provider.Minter = (*Minter)(nil)

// MintError is IAM's refusal of an exchange: the HTTP status and IAM's
// errorCode (e.g. BXNIM0415E, an unknown API key) and errorMessage. It
// never holds the API key.
type MintError struct {
	Status  int
	Code    string
	Message string
}

func (e *MintError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("ibm: IAM refused the API key exchange: HTTP %d", e.Status)
	}
	return fmt.Sprintf("ibm: IAM refused the API key exchange: HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// tokenAnswer is the part of IAM's answer the minter reads.
type tokenAnswer struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Expiration  int64  `json:"expiration"`
}

// Mint implements provider.Minter: it exchanges root, the API key, for an
// IAM access token (Credential.Secret), expiring at the earlier of
// expires_in and expiration (at most MaxTokenLifetime from now). IAM
// cannot narrow a token, so role selects nothing and the scope is empty;
// no rotated credential is ever returned.
func (m *Minter) Mint(ctx context.Context, root, role string) (provider.Credential, provider.Scope, string, error) {
	key := strings.TrimSpace(root)
	if key == "" {
		return provider.Credential{}, provider.Scope{}, "", errors.New("ibm: the stored root credential (an IBM Cloud API key) is empty")
	}
	endpoint, err := m.tokenURL()
	if err != nil {
		return provider.Credential{}, provider.Scope{}, "", err
	}
	form := url.Values{"grant_type": {GrantTypeAPIKey}, "apikey": {key}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return provider.Credential{}, provider.Scope{}, "", fmt.Errorf("ibm: build the IAM request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "qbroker")
	start := m.now()
	resp, err := m.client().Do(req)
	if err != nil {
		// *url.Error names the method and URL only; the key is in the body.
		return provider.Credential{}, provider.Scope{}, "", fmt.Errorf("ibm: IAM token exchange: %w", redact(err, key))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxIAMAnswer+1))
	if err != nil {
		return provider.Credential{}, provider.Scope{}, "", fmt.Errorf("ibm: read the IAM answer: %w", redact(err, key))
	}
	if len(body) > maxIAMAnswer {
		return provider.Credential{}, provider.Scope{}, "", errors.New("ibm: the IAM answer is too large")
	}
	if resp.StatusCode != http.StatusOK {
		return provider.Credential{}, provider.Scope{}, "", iamRefusal(resp.StatusCode, body, key)
	}
	var ans tokenAnswer
	if err := json.Unmarshal(body, &ans); err != nil {
		return provider.Credential{}, provider.Scope{}, "", errors.New("ibm: the IAM answer is not a token response")
	}
	switch {
	case ans.AccessToken == "" || strings.ContainsAny(ans.AccessToken, " \t\r\n"):
		return provider.Credential{}, provider.Scope{}, "", errors.New("ibm: the IAM answer holds no usable access_token")
	case !strings.EqualFold(ans.TokenType, "Bearer"):
		return provider.Credential{}, provider.Scope{}, "", fmt.Errorf("ibm: the IAM answer's token_type is %q, not Bearer", truncate(ans.TokenType, 32))
	}
	exp, err := expiry(start, ans)
	if err != nil {
		return provider.Credential{}, provider.Scope{}, "", err
	}
	return provider.Credential{Secret: ans.AccessToken, Expires: exp}, provider.Scope{}, "", nil
}

// expiry is the earlier of start+expires_in and expiration, cut to
// MaxTokenLifetime. Measuring from before the request was sent keeps it on
// the safe side of the network delay.
func expiry(start time.Time, ans tokenAnswer) (time.Time, error) {
	var exp time.Time
	if ans.ExpiresIn > 0 {
		exp = start.Add(time.Duration(min(ans.ExpiresIn, int64(MaxTokenLifetime/time.Second))) * time.Second)
	}
	if ans.Expiration > 0 {
		// Trusted only when it is in the future: a clock ahead of IAM's
		// would otherwise make every token look expired.
		if at := time.Unix(ans.Expiration, 0); at.After(start) && (exp.IsZero() || at.Before(exp)) {
			exp = at
		}
	}
	if exp.IsZero() || !exp.After(start) {
		return time.Time{}, errors.New("ibm: the IAM answer gives no future expiry (expires_in or expiration)")
	}
	if limit := start.Add(MaxTokenLifetime); exp.After(limit) {
		exp = limit
	}
	return exp, nil
}

// iamRefusal reads IAM's error shape {"errorCode","errorMessage",…}.
func iamRefusal(status int, body []byte, key string) error {
	var e struct {
		Code    string `json:"errorCode"`
		Message string `json:"errorMessage"`
	}
	_ = json.Unmarshal(body, &e)
	clean := func(s string) string { return truncate(strings.ReplaceAll(s, key, "[redacted]"), 200) }
	return &MintError{Status: status, Code: clean(e.Code), Message: clean(e.Message)}
}

// redactedError is an error whose text had the key removed. It unwraps
// only to a context error (for errors.Is), never to the original text.
type redactedError struct {
	msg   string
	cause error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.cause }

// redact hides key in err's text (a transport error could quote what it
// was sending).
func redact(err error, key string) error {
	if !strings.Contains(err.Error(), key) {
		return err
	}
	var cause error
	for _, c := range []error{context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, c) {
			cause = c
		}
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), key, "[redacted]"), cause: cause}
}

func (m *Minter) tokenURL() (string, error) {
	base := m.IAMURL
	if base == "" {
		base = DefaultIAMURL
	}
	u, err := url.Parse(strings.TrimSuffix(base, "/"))
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("ibm: IAM URL %q is not a base URL like %s", base, DefaultIAMURL)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	default:
		return "", fmt.Errorf("ibm: IAM URL %q must be https (http only to a loopback emulator): the API key travels in the request", base)
	}
	return u.String() + "/identity/token", nil
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

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
