package rigettisim

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// grantedScopes are the scopes of every token the emulator issues.
var grantedScopes = []string{"openid", "offline_access"}

// accessAudience is the aud claim of access tokens (an emulator choice;
// UNCERTAIN: QCS's audience is not in the reference).
const accessAudience = "api://qcs"

// discovery is the OIDC discovery document. The QCS SDK reads issuer,
// authorization_endpoint, token_endpoint, jwks_uri and scopes_supported,
// checks that issuer equals the URL it asked, and that scopes_supported
// (when present) includes "openid".
type discovery struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	JWKSURI               string   `json:"jwks_uri"`
	ScopesSupported       []string `json:"scopes_supported"`
	GrantTypesSupported   []string `json:"grant_types_supported"`
	ResponseTypes         []string `json:"response_types_supported"`
	TokenEndpointAuth     []string `json:"token_endpoint_auth_methods_supported"`
	SigningAlgs           []string `json:"id_token_signing_alg_values_supported"`
}

func (e *Emulator) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	iss := e.issuer(r)
	writeJSON(w, http.StatusOK, discovery{
		Issuer: iss,
		// Listed because the SDK requires it; the emulator does not serve
		// the interactive PKCE login behind it.
		AuthorizationEndpoint: iss + "/v1/authorize",
		TokenEndpoint:         iss + "/v1/token",
		JWKSURI:               iss + "/v1/keys",
		ScopesSupported:       grantedScopes,
		GrantTypesSupported:   []string{"refresh_token", "client_credentials"},
		ResponseTypes:         []string{"code"},
		TokenEndpointAuth:     []string{"client_secret_basic", "none"},
		SigningAlgs:           []string{"RS256"},
	})
}

func (e *Emulator) handleKeys(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key: &e.key.PublicKey, KeyID: e.kid, Algorithm: string(jose.RS256), Use: "sig",
	}}})
}

// tokenResponse is a successful token answer (RFC 6749 §5.1).
type tokenResponse struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	AccessToken  string `json:"access_token"`
	Scope        string `json:"scope"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// handleToken is the token endpoint. It takes a form (RFC 6749 §4, no
// parameter twice) with grant_type refresh_token (client_id in the form,
// or HTTP Basic) or client_credentials (HTTP Basic only).
func (e *Emulator) handleToken(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxFormBytes))
	if err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "request body unreadable or too large")
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "malformed form body")
		return
	}
	for k, v := range form {
		if len(v) > 1 {
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", "parameter "+k+" is repeated")
			return
		}
	}
	if scope := form.Get("scope"); scope != "" {
		for _, s := range strings.Fields(scope) {
			if !slices.Contains(grantedScopes, s) {
				writeOAuthError(w, http.StatusBadRequest, "invalid_scope", "The requested scope is invalid, unknown, or malformed.")
				return
			}
		}
	}
	switch form.Get("grant_type") {
	case "refresh_token":
		e.refreshGrant(w, r, form)
	case "client_credentials":
		e.clientCredentialsGrant(w, r)
	case "":
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "grant_type is required")
	default:
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "The authorization grant type is not supported by the authorization server.")
	}
}

const invalidClientMsg = "Client authentication failed. Either the client or the client credentials are invalid."

// clientOf authenticates the client of a refresh_token request: HTTP Basic
// with the configured secret, or a form client_id (a public client). It
// answers the refusal itself.
func (e *Emulator) clientOf(w http.ResponseWriter, r *http.Request, form url.Values) bool {
	if _, _, basic := r.BasicAuth(); basic {
		if !e.basicOK(r) {
			writeOAuthError(w, http.StatusUnauthorized, "invalid_client", invalidClientMsg)
			return false
		}
		if id := form.Get("client_id"); id != "" && id != e.cfg.ClientID {
			writeOAuthError(w, http.StatusUnauthorized, "invalid_client", invalidClientMsg)
			return false
		}
		return true
	}
	if form.Get("client_id") != e.cfg.ClientID {
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", invalidClientMsg)
		return false
	}
	return true
}

// basicOK checks HTTP Basic client_id:secret in constant time. A client
// without a configured secret never passes.
func (e *Emulator) basicOK(r *http.Request) bool {
	id, secret, ok := r.BasicAuth()
	if !ok || e.cfg.ClientSecret == "" {
		return false
	}
	got := sha256.Sum256([]byte(secret))
	good := subtle.ConstantTimeCompare(got[:], e.secret[:]) == 1
	return good && id == e.cfg.ClientID
}

const invalidGrantMsg = "The refresh token is invalid or expired."

// refreshGrant exchanges a refresh token for an access token and a NEW
// refresh token. The presented token stops working at once: a second use,
// even concurrent, is invalid_grant, and a client that loses the new token
// is locked out until it logs in again. The reference does not say whether
// QCS detects reuse (revoking the newer tokens too); the emulator does not.
// UNCERTAIN: whether QCS rotates on every use (the SDK stores a rotated
// token "if the authorization server returns a new one") and whether Okta's
// optional grace period for the old token is on.
func (e *Emulator) refreshGrant(w http.ResponseWriter, r *http.Request, form url.Values) {
	if !e.clientOf(w, r, form) {
		e.log.Debug("rigettisim: refresh refused", "reason", "client authentication")
		return
	}
	presented := form.Get("refresh_token")
	if presented == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "refresh_token is required")
		return
	}
	now := e.now()
	h := sha256.Sum256([]byte(presented))
	e.mu.Lock()
	rec, ok := e.refresh[h]
	if ok {
		delete(e.refresh, h) // consumed, valid or not
	}
	e.mu.Unlock()
	if !ok || !now.Before(rec.expires) || rec.clientID != e.cfg.ClientID {
		e.log.Debug("rigettisim: refresh refused", "reason", "invalid_grant", "known", ok)
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", invalidGrantMsg)
		return
	}
	access, err := e.accessToken(r, now, "qcs-user")
	if err != nil {
		writeOAuthError(w, http.StatusInternalServerError, "server_error", "could not sign the access token")
		return
	}
	next := randomToken()
	e.storeRefresh(next, rec.clientID, now)
	e.log.Debug("rigettisim: refresh token rotated")
	writeToken(w, tokenResponse{
		TokenType: "Bearer", ExpiresIn: int64(e.cfg.AccessTokenTTL / time.Second),
		AccessToken: access, Scope: strings.Join(grantedScopes, " "), RefreshToken: next,
	})
}

func (e *Emulator) clientCredentialsGrant(w http.ResponseWriter, r *http.Request) {
	if !e.basicOK(r) {
		e.log.Debug("rigettisim: client_credentials refused")
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", invalidClientMsg)
		return
	}
	access, err := e.accessToken(r, e.now(), "")
	if err != nil {
		writeOAuthError(w, http.StatusInternalServerError, "server_error", "could not sign the access token")
		return
	}
	writeToken(w, tokenResponse{
		TokenType: "Bearer", ExpiresIn: int64(e.cfg.AccessTokenTTL / time.Second),
		AccessToken: access, Scope: strings.Join(grantedScopes, " "),
	})
}

// accessClaims are the claims of an access token, in Okta's shape.
type accessClaims struct {
	Version  int              `json:"ver"`
	ID       string           `json:"jti"`
	Issuer   string           `json:"iss"`
	Audience string           `json:"aud"`
	IssuedAt *jwt.NumericDate `json:"iat"`
	Expiry   *jwt.NumericDate `json:"exp"`
	ClientID string           `json:"cid"`
	UserID   string           `json:"uid,omitempty"`
	Scopes   []string         `json:"scp"`
	Subject  string           `json:"sub"`
}

// accessToken signs an RS256 JWT access token; user is "" for a
// client_credentials token (whose subject is the client).
func (e *Emulator) accessToken(r *http.Request, now time.Time, user string) (string, error) {
	c := accessClaims{
		Version:  1,
		ID:       "AT." + randomToken(),
		Issuer:   e.issuer(r),
		Audience: accessAudience,
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(now.Add(e.cfg.AccessTokenTTL)),
		ClientID: e.cfg.ClientID,
		Scopes:   grantedScopes,
		Subject:  e.cfg.ClientID,
	}
	if user != "" {
		c.UserID, c.Subject = e.idpID, e.cfg.Email
	}
	return jwt.Signed(e.signer).Claims(c).Serialize()
}

// storeRefresh records a live refresh token, forgetting expired ones and
// then the oldest when full.
func (e *Emulator) storeRefresh(tok, clientID string, now time.Time) {
	h := sha256.Sum256([]byte(tok))
	e.mu.Lock()
	defer e.mu.Unlock()
	// Consumed tokens leave the map at once but stay in order until the
	// next compaction, so compact when either grows too long.
	if len(e.refresh) >= e.cfg.MaxRefreshTokens || len(e.order) >= 2*e.cfg.MaxRefreshTokens {
		kept := e.order[:0]
		for _, k := range e.order {
			if rec, ok := e.refresh[k]; ok && now.Before(rec.expires) {
				kept = append(kept, k)
			} else {
				delete(e.refresh, k)
			}
		}
		e.order = kept
		for len(e.refresh) >= e.cfg.MaxRefreshTokens && len(e.order) > 0 {
			delete(e.refresh, e.order[0])
			e.order = e.order[1:]
		}
	}
	e.refresh[h] = refreshRecord{clientID: clientID, expires: now.Add(e.cfg.RefreshTokenTTL)}
	e.order = append(e.order, h)
}

// randomToken returns 32 random bytes, base64url-encoded.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// errExpired marks an access token past its exp.
var errExpired = errors.New("token expired")

// verifyAccess checks an access token's signature (RS256, this emulator's
// key) and expiry against Config.Now, with no leeway.
func (e *Emulator) verifyAccess(tok string) (*accessClaims, error) {
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, err
	}
	var c accessClaims
	if err := parsed.Claims(&e.key.PublicKey, &c); err != nil {
		return nil, err
	}
	if c.Expiry == nil || c.Audience != accessAudience || c.ClientID != e.cfg.ClientID {
		return nil, errors.New("token claims are not the emulator's")
	}
	if !e.now().Before(c.Expiry.Time()) {
		return nil, errExpired
	}
	return &c, nil
}
