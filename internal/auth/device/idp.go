package device

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/qbroker/qbroker/internal/auth/authutil"
)

const (
	wellKnownSuffix = "/.well-known/openid-configuration"
	maxBody         = 1 << 20
)

type endpoints struct {
	deviceAuthURL string
	tokenURL      string
}

// discover reads the IdP's discovery document once (retrying on later calls
// until it succeeds) with go-oidc and checks it names the configured issuer
// and both endpoints the device grant needs.
func (f *Flow) discover(ctx context.Context) (*endpoints, error) {
	f.discoverMu.Lock()
	defer f.discoverMu.Unlock()
	if f.endpoints != nil {
		return f.endpoints, nil
	}
	base := strings.TrimSuffix(f.cfg.DiscoveryURL, wellKnownSuffix)
	// The discovery base may differ from the issuer; go-oidc's equality check
	// is replaced by the exact check below.
	dctx := oidc.InsecureIssuerURLContext(oidc.ClientContext(ctx, f.client), f.cfg.Issuer)
	p, err := oidc.NewProvider(dctx, base)
	if err != nil {
		return nil, fmt.Errorf("%w: discovery: %w", ErrIdPUnavailable, err)
	}
	var doc struct {
		Issuer        string `json:"issuer"`
		DeviceAuthURL string `json:"device_authorization_endpoint"`
		TokenURL      string `json:"token_endpoint"`
	}
	if err := p.Claims(&doc); err != nil {
		return nil, fmt.Errorf("%w: discovery document: %w", ErrIdPUnavailable, err)
	}
	if doc.Issuer != f.cfg.Issuer {
		return nil, fmt.Errorf("%w: discovery document names issuer %q, want %q", ErrIdPUnavailable, doc.Issuer, f.cfg.Issuer)
	}
	if err := authutil.CheckIdPURL(doc.DeviceAuthURL); err != nil {
		return nil, fmt.Errorf("%w: discovery device_authorization_endpoint: %w", ErrIdPUnavailable, err)
	}
	if err := authutil.CheckIdPURL(doc.TokenURL); err != nil {
		return nil, fmt.Errorf("%w: discovery token_endpoint: %w", ErrIdPUnavailable, err)
	}
	f.endpoints = &endpoints{deviceAuthURL: doc.DeviceAuthURL, tokenURL: doc.TokenURL}
	return f.endpoints, nil
}

// deviceAuth is a validated RFC 8628 §3.2 response.
type deviceAuth struct {
	deviceCode, userCode                     string
	verificationURI, verificationURIComplete string
	lifetime, interval                       time.Duration
}

func (f *Flow) deviceAuthorization(ctx context.Context, u string, form url.Values) (deviceAuth, error) {
	var raw struct {
		DeviceCode              string `json:"device_code"`
		UserCode                string `json:"user_code"`
		VerificationURI         string `json:"verification_uri"`
		VerificationURL         string `json:"verification_url"` // Google's spelling
		VerificationURIComplete string `json:"verification_uri_complete"`
		ExpiresIn               int64  `json:"expires_in"`
		Interval                int64  `json:"interval"`
	}
	if err := f.post(ctx, u, form, &raw); err != nil {
		return deviceAuth{}, fmt.Errorf("device authorization request: %w", err)
	}
	if raw.VerificationURI == "" {
		raw.VerificationURI = raw.VerificationURL
	}
	if raw.DeviceCode == "" || raw.UserCode == "" || authutil.CheckIdPURL(raw.VerificationURI) != nil || raw.ExpiresIn <= 0 {
		return deviceAuth{}, fmt.Errorf("%w: malformed device authorization response", ErrIdPRefused)
	}
	if raw.VerificationURIComplete != "" && authutil.CheckIdPURL(raw.VerificationURIComplete) != nil {
		raw.VerificationURIComplete = ""
	}
	da := deviceAuth{
		deviceCode: raw.DeviceCode, userCode: raw.UserCode,
		verificationURI: raw.VerificationURI, verificationURIComplete: raw.VerificationURIComplete,
		lifetime: seconds(raw.ExpiresIn, MaxLifetime), interval: seconds(raw.Interval, time.Hour),
	}
	if da.interval <= 0 {
		da.interval = DefaultInterval
	}
	return da, nil
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	IDToken     string `json:"id_token"`
	ExpiresIn   int64  `json:"expires_in"`
}

func (f *Flow) token(ctx context.Context, u string, form url.Values) (tokenResponse, error) {
	var tok tokenResponse
	if err := f.post(ctx, u, form, &tok); err != nil {
		return tokenResponse{}, err
	}
	if tok.AccessToken == "" {
		return tokenResponse{}, fmt.Errorf("%w: token response without access_token", ErrIdPRefused)
	}
	if tok.TokenType != "" && !strings.EqualFold(tok.TokenType, "Bearer") && !strings.EqualFold(tok.TokenType, "DPoP") {
		return tokenResponse{}, fmt.Errorf("%w: unexpected token_type", ErrIdPRefused)
	}
	if tok.ExpiresIn < 0 {
		tok.ExpiresIn = 0
	}
	return tok, nil
}

// post sends an authenticated form POST and decodes a 2xx JSON body into out.
// OAuth error responses map to the package's sentinels.
func (f *Flow) post(ctx context.Context, u string, form url.Values, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrIdPUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if f.cfg.ClientSecret != "" {
		// RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
		req.SetBasicAuth(url.QueryEscape(f.cfg.ClientID), url.QueryEscape(f.cfg.ClientSecret))
	}
	resp, err := f.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %w", ErrIdPUnavailable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("%w: reading response: %w", ErrIdPUnavailable, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("%w: response is not JSON", ErrIdPRefused)
		}
		return nil
	}
	var oe struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(body, &oe)
	switch oe.Error {
	case "authorization_pending":
		return ErrPending
	case "slow_down":
		return ErrSlowDown
	case "access_denied":
		return ErrDenied
	case "expired_token":
		return ErrExpired
	}
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		return fmt.Errorf("%w: HTTP %d", ErrIdPUnavailable, resp.StatusCode)
	}
	// Only the registered error code is kept: descriptions are IdP-controlled text.
	return fmt.Errorf("%w: HTTP %d, error %q", ErrIdPRefused, resp.StatusCode, safeCode(oe.Error))
}

// safeCode keeps an OAuth error code only if it has the RFC 6749 §5.2 charset
// and a sane length.
func safeCode(s string) string {
	if len(s) > 64 {
		return "invalid"
	}
	for _, r := range s {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return "invalid"
		}
	}
	return s
}

// seconds converts a positive count of seconds, capped at limit.
func seconds(n int64, limit time.Duration) time.Duration {
	if n <= 0 {
		return 0
	}
	if n > int64(limit/time.Second) || n > math.MaxInt64/int64(time.Second) {
		return limit
	}
	return time.Duration(n) * time.Second
}
