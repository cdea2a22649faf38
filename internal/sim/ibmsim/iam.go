package ibmsim

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"time"
)

// GrantTypeAPIKey is the only grant type the emulated IAM accepts.
const GrantTypeAPIKey = "urn:ibm:params:oauth:grant-type:apikey"

// iamMaxBody bounds a token request; real ones are a few hundred bytes.
const iamMaxBody = 64 << 10

// tokenRecord is a live access token, remembered by its SHA-256 only.
type tokenRecord struct {
	expires time.Time
}

// TokenResponse is IAM's answer to an API-key exchange.
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	// RefreshToken is "not_supported": IAM's API-key grant no longer issues
	// refresh tokens (recorded answers, 2023–2026; the reference's example
	// shows an opaque refresh token, from older docs).
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	Expiration   int64  `json:"expiration"`
	Scope        string `json:"scope"`
}

// handleToken is POST /identity/token.
func (e *Emulator) handleToken(w http.ResponseWriter, r *http.Request) {
	now := e.now()
	form, err := readForm(w, r)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeIAMError(w, now, http.StatusRequestEntityTooLarge, "BXNIM0109E", "Property missing or empty.", "Request body too large.")
			return
		}
		form = url.Values{} // unreadable or not a form: every property is missing
	}
	grant := form.Get("grant_type")
	switch {
	case grant == "":
		writeIAMError(w, now, http.StatusBadRequest, "BXNIM0109E", "Property missing or empty.",
			"Property 'grant_type' either missing or empty.")
		return
	case grant != GrantTypeAPIKey:
		// UNCERTAIN: IAM's code and text for a grant type it does not
		// support were not found; the status is 400 as for every other
		// malformed token request.
		writeIAMError(w, now, http.StatusBadRequest, "BXNIM0103E", "Unsupported grant type.",
			"The grant type is not supported by this endpoint.")
		return
	}
	key := form.Get("apikey")
	if key == "" {
		writeIAMError(w, now, http.StatusBadRequest, "BXNIM0109E", "Property missing or empty.",
			"Property 'apikey' either missing or empty.")
		return
	}
	if !e.apiKeyValid(key) {
		e.log.Debug("ibmsim: IAM refused an API key")
		writeIAMError(w, now, http.StatusBadRequest, "BXNIM0415E", "Provided API key could not be found.", "")
		return
	}
	token, exp := e.mintToken(now)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, TokenResponse{
		AccessToken:  token,
		RefreshToken: "not_supported",
		TokenType:    "Bearer",
		ExpiresIn:    int64(e.cfg.TokenTTL / time.Second),
		Expiration:   exp.Unix(),
		Scope:        "ibm openid",
	})
	e.log.Debug("ibmsim: IAM token issued", "expires", exp)
}

// readForm reads an application/x-www-form-urlencoded body. Any other
// content type yields an empty form, as IAM then finds no properties.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	r.Body = http.MaxBytesReader(w, r.Body, iamMaxBody)
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return url.Values{}, nil
	}
	if err := r.ParseForm(); err != nil {
		return nil, err
	}
	return r.PostForm, nil
}

// mintToken issues a JWT-shaped access token and remembers it until it
// expires. IBM's SDKs decode the (unverified) payload for exp and iat, so the
// token must be a JWT; its signature is random bytes, since the emulator
// validates tokens by looking them up, not by signature.
func (e *Emulator) mintToken(now time.Time) (string, time.Time) {
	exp := now.Add(e.cfg.TokenTTL)
	header, _ := json.Marshal(map[string]string{"kid": "ibmsim", "alg": "RS256"})
	payload, _ := json.Marshal(map[string]any{
		"iam_id":     e.iamID,
		"id":         e.iamID,
		"realmid":    "iam",
		"jti":        newUUID(),
		"identifier": e.iamID[len("iam-"):],
		"sub":        e.iamID[len("iam-"):],
		"sub_type":   "ServiceId",
		"account":    map[string]any{"valid": true, "bss": e.accountID, "frozen": true},
		"iat":        now.Unix(),
		"exp":        exp.Unix(),
		"iss":        "https://iam.cloud.ibm.com/identity",
		"grant_type": GrantTypeAPIKey,
		"scope":      "ibm openid",
		"client_id":  "default",
		"acr":        1,
		"amr":        []string{"pwd"},
	})
	sig := make([]byte, 256)
	_, _ = rand.Read(sig)
	enc := base64.RawURLEncoding
	token := enc.EncodeToString(header) + "." + enc.EncodeToString(payload) + "." + enc.EncodeToString(sig)

	sum := sha256.Sum256([]byte(token))
	e.mu.Lock()
	defer e.mu.Unlock()
	for len(e.tokenOrder) > 0 {
		oldest := e.tokenOrder[0]
		if rec, ok := e.tokens[oldest]; ok && now.Before(rec.expires) && len(e.tokens) < DefaultMaxTokens {
			break
		}
		delete(e.tokens, oldest)
		e.tokenOrder = e.tokenOrder[1:]
	}
	e.tokens[sum] = tokenRecord{expires: exp}
	e.tokenOrder = append(e.tokenOrder, sum)
	return token, exp
}

// tokenValid reports whether token is a live access token at now.
func (e *Emulator) tokenValid(token string, now time.Time) bool {
	sum := sha256.Sum256([]byte(token))
	e.mu.Lock()
	rec, ok := e.tokens[sum]
	e.mu.Unlock()
	return ok && now.Before(rec.expires)
}

// apiKeyValid compares key with the configured API key in constant time.
func (e *Emulator) apiKeyValid(key string) bool {
	got := sha256.Sum256([]byte(key))
	return subtle.ConstantTimeCompare(got[:], e.keyHash[:]) == 1 && e.hasKey
}
