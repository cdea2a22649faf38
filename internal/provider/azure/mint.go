package azure

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/qbroker/qbroker/internal/provider"
)

// Well-known Entra values (reference §4.1).
const (
	// QuantumScope is the scope of Azure Quantum data-plane tokens.
	QuantumScope = "https://quantum.microsoft.com/.default"
	// DefaultAuthority is the Entra ID token service of the public cloud.
	DefaultAuthority = "https://login.microsoftonline.com"
	// ClientAssertionType is the client_assertion_type of a JWT assertion.
	ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	// DefaultAssertionTTL is the lifetime of the client assertions the
	// Minter signs for a federated credential.
	DefaultAssertionTTL = 5 * time.Minute
	maxTokenAnswer      = 64 << 10
)

// Minter is the broker's provider.Minter for Azure Quantum: the client
// credentials grant of Microsoft Entra ID, authenticated by the root's
// client secret or by a client assertion it signs with the root's
// federated key, for the Azure Quantum scope. Every broker role gets the
// same service principal's token (Azure Quantum has no finer data-plane
// scope); the role argument of Mint is not used.
type Minter struct {
	// Authority is the Entra base URL (default DefaultAuthority); tests
	// point it at an emulator.
	Authority string
	// Client sends the token request (default: 15 s timeout).
	Client *http.Client
	// Now is the clock for assertion times and expiry (default time.Now).
	Now func() time.Time
	// AssertionTTL bounds signed client assertions (default 5 min).
	AssertionTTL time.Duration
}

var _ provider.Minter = (*Minter)(nil)

// TokenError is Entra's refusal of a token request. Code is the OAuth
// error (invalid_client: the root credential is wrong; invalid_scope,
// invalid_resource, unauthorized_client: the application is not set up
// for Azure Quantum); AADSTS are Entra's numeric codes.
type TokenError struct {
	Status      int
	Code        string
	AADSTS      []int
	Description string
}

func (e *TokenError) Error() string {
	codes := make([]string, len(e.AADSTS))
	for i, c := range e.AADSTS {
		codes[i] = "AADSTS" + strconv.Itoa(c)
	}
	return fmt.Sprintf("entra: token request refused (%d %s %s): %s", e.Status, e.Code, strings.Join(codes, ","), clip(e.Description, 300))
}

// Mint implements provider.Minter: root (see ParseRoot) is exchanged for
// an Azure Quantum access token. The credential expires when Entra says
// (expires_in, counted from before the request was sent).
func (m *Minter) Mint(ctx context.Context, root, _ string) (provider.Credential, provider.Scope, string, error) {
	r, err := ParseRoot(root)
	if err != nil {
		return provider.Credential{}, provider.Scope{}, "", err
	}
	c, err := m.Token(ctx, r)
	return c, provider.Scope{}, "", err
}

// Token requests an Azure Quantum access token for r.
func (m *Minter) Token(ctx context.Context, r *Root) (provider.Credential, error) {
	now := m.now()
	form := url.Values{}
	form.Set("grant_type", "client_credentials")
	form.Set("client_id", r.ClientID)
	form.Set("scope", QuantumScope)
	if r.federated != nil {
		assertion, err := m.assertion(r.federated, now)
		if err != nil {
			return provider.Credential{}, err
		}
		form.Set("client_assertion_type", ClientAssertionType)
		form.Set("client_assertion", assertion)
	} else {
		form.Set("client_secret", r.secret)
	}
	authority := strings.TrimSuffix(m.Authority, "/")
	if authority == "" {
		authority = DefaultAuthority
	}
	endpoint := authority + "/" + url.PathEscape(r.TenantID) + "/oauth2/v2.0/token"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return provider.Credential{}, fmt.Errorf("entra: token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	hc := m.Client
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		// The URL holds no secret (the secret is in the body).
		return provider.Credential{}, fmt.Errorf("entra: token request to %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenAnswer))
	if err != nil {
		return provider.Credential{}, fmt.Errorf("entra: read token answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return provider.Credential{}, tokenError(resp.StatusCode, body)
	}
	var out struct {
		TokenType   string  `json:"token_type"`
		ExpiresIn   seconds `json:"expires_in"`
		AccessToken string  `json:"access_token"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return provider.Credential{}, errors.New("entra: token answer is not the expected JSON")
	}
	if !strings.EqualFold(out.TokenType, "Bearer") || out.AccessToken == "" || out.ExpiresIn <= 0 {
		return provider.Credential{}, errors.New("entra: token answer lacks a bearer access token with expires_in")
	}
	return provider.Credential{Secret: out.AccessToken, Expires: now.Add(time.Duration(out.ExpiresIn) * time.Second)}, nil
}

func (m *Minter) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// assertion signs a client assertion for a federated credential: iss and
// sub of the credential, its audience, a random jti, valid from now for
// AssertionTTL.
func (m *Minter) assertion(f *federated, now time.Time) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: f.alg, Key: f.key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("entra: assertion signer: %w", err)
	}
	ttl := m.AssertionTTL
	if ttl <= 0 {
		ttl = DefaultAssertionTTL
	}
	var id [16]byte
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails
	claims := jwt.Claims{
		Issuer: f.issuer, Subject: f.subject, Audience: jwt.Audience{f.audience},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now),
		Expiry: jwt.NewNumericDate(now.Add(ttl)), ID: hex.EncodeToString(id[:]),
	}
	s, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("entra: sign assertion: %w", err)
	}
	return s, nil
}

// tokenError reads Entra's error JSON; a body that is not one gives a
// TokenError with the status only.
func tokenError(status int, body []byte) error {
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
		Codes       []int  `json:"error_codes"`
	}
	_ = json.Unmarshal(body, &e)
	if e.Error == "" {
		e.Error = "unexpected_answer"
	}
	return &TokenError{Status: status, Code: e.Error, AADSTS: e.Codes, Description: e.Description}
}

// seconds reads expires_in as Entra v2 sends it (a number) or as v1 did
// (a decimal string).
type seconds int64

func (s *seconds) UnmarshalJSON(b []byte) error {
	str := string(bytes.Trim(b, `"`))
	n, err := strconv.ParseInt(str, 10, 64)
	if err != nil {
		return errors.New("expires_in is not an integer")
	}
	*s = seconds(n)
	return nil
}

// clip bounds a text taken from an upstream answer.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
