package quantinuumsim

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// tokenKind tells id-tokens from refresh tokens; one is never accepted as
// the other.
type tokenKind int

const (
	kindID tokenKind = iota + 1
	kindRefresh
)

type tokenInfo struct {
	kind    tokenKind
	expires time.Time
}

// tokenStore keeps the hashes of issued tokens, never the tokens. Expired
// tokens are kept (so that a refusal can say "expired") until room is
// needed. It is guarded by Emulator.mu.
type tokenStore struct {
	max   int
	m     map[[32]byte]tokenInfo
	order [][32]byte // oldest first
}

func newTokenStore(max int) tokenStore {
	return tokenStore{max: max, m: map[[32]byte]tokenInfo{}}
}

// add issues a new token of kind valid until expires.
func (s *tokenStore) add(kind tokenKind, now, expires time.Time) string {
	if len(s.m) >= s.max {
		s.prune(now)
	}
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	h := sha256.Sum256([]byte(tok))
	s.m[h] = tokenInfo{kind: kind, expires: expires}
	s.order = append(s.order, h)
	return tok
}

// prune forgets expired tokens, then the oldest ones, until a quarter of
// the room is free.
func (s *tokenStore) prune(now time.Time) {
	kept := s.order[:0]
	for _, h := range s.order {
		if info, ok := s.m[h]; ok && now.Before(info.expires) {
			kept = append(kept, h)
		} else {
			delete(s.m, h)
		}
	}
	s.order = kept
	for len(s.m) > s.max*3/4 && len(s.order) > 0 {
		delete(s.m, s.order[0])
		s.order = s.order[1:]
	}
}

// tokenState is the outcome of a token check.
type tokenState int

const (
	tokenValid tokenState = iota
	tokenUnknown
	tokenExpired
)

func (s *tokenStore) check(tok string, kind tokenKind, now time.Time) tokenState {
	info, ok := s.m[sha256.Sum256([]byte(tok))]
	switch {
	case !ok || info.kind != kind:
		return tokenUnknown
	case !now.Before(info.expires):
		return tokenExpired
	default:
		return tokenValid
	}
}

// expiry returns the expiry of a known token.
func (s *tokenStore) expiry(tok string) time.Time {
	return s.m[sha256.Sum256([]byte(tok))].expires
}

// readBody reads a request body of at most MaxBodyBytes, answering 413 or
// 400 itself when it cannot.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, 0, fmt.Sprintf("request body larger than %d bytes", MaxBodyBytes))
			return nil, false
		}
		writeError(w, http.StatusBadRequest, 0, "could not read request body")
		return nil, false
	}
	return body, true
}

// decodeStrict decodes one JSON object into v, refusing unknown fields and
// trailing data. pytket sends JSON without a Content-Type, so none is
// required.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err != io.EOF {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// equalSecret compares a presented secret with the configured one in
// constant time (over their hashes, so lengths do not leak either).
func equalSecret(presented string, want [32]byte) bool {
	got := sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

func (e *Emulator) handleLogin(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var req loginRequest
	if err := decodeStrict(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, 0, "invalid login body: "+jsonProblem(err))
		return
	}
	switch {
	case req.RefreshToken != nil:
		if req.Email != nil || req.Password != nil || req.Code != nil || req.ProviderToken != nil {
			writeError(w, http.StatusBadRequest, 0, "send either email and password or refresh-token, not both")
			return
		}
		e.refresh(w, *req.RefreshToken)
	case req.ProviderToken != nil:
		writeError(w, http.StatusBadRequest, 0, "federated (provider-token) login is not supported by the emulator")
	case req.Email == nil || req.Password == nil:
		writeError(w, http.StatusBadRequest, 0, "email and password are required")
	default:
		e.passwordLogin(w, *req.Email, *req.Password, req.Code)
	}
}

func (e *Emulator) passwordLogin(w http.ResponseWriter, email, password string, code *string) {
	ok := e.cfg.Email != "" && email == e.cfg.Email
	ok = equalSecret(password, e.passHash) && ok
	if !ok {
		e.log.Debug("quantinuumsim: login refused", "reason", "bad credentials")
		writeError(w, http.StatusUnauthorized, 0, "invalid email or password")
		return
	}
	if e.cfg.MFACode != "" {
		if code == nil {
			writeError(w, http.StatusUnauthorized, codeMFARequired, "MFA verification code is required")
			return
		}
		if !equalSecret(*code, sha256.Sum256([]byte(e.cfg.MFACode))) {
			e.log.Debug("quantinuumsim: login refused", "reason", "bad MFA code")
			writeError(w, http.StatusUnauthorized, 0, "invalid MFA verification code")
			return
		}
	}
	now := e.now()
	e.mu.Lock()
	refresh := e.tokens.add(kindRefresh, now, now.Add(e.cfg.RefreshTokenTTL))
	id := e.tokens.add(kindID, now, now.Add(e.cfg.IDTokenTTL))
	e.mu.Unlock()
	e.log.Debug("quantinuumsim: password login")
	writeJSON(w, http.StatusOK, loginResponse{IDToken: id, RefreshToken: refresh})
}

// refresh answers a refresh-token login with a new id-token and the same
// refresh token, which keeps its expiry. UNCERTAIN: pytket stores whatever
// refresh-token the answer carries, so the service may rotate it; the
// emulator does not.
func (e *Emulator) refresh(w http.ResponseWriter, tok string) {
	now := e.now()
	e.mu.Lock()
	state := e.tokens.check(tok, kindRefresh, now)
	var id string
	if state == tokenValid {
		expires := now.Add(e.cfg.IDTokenTTL)
		// An id-token never outlives the refresh token it came from.
		if rexp := e.tokens.expiry(tok); rexp.Before(expires) {
			expires = rexp
		}
		id = e.tokens.add(kindID, now, expires)
	}
	e.mu.Unlock()
	if state != tokenValid {
		// pytket looks for "Invalid Refresh Token" in error.text of a 400
		// to fall back to a password login.
		e.log.Debug("quantinuumsim: refresh refused", "expired", state == tokenExpired)
		writeError(w, http.StatusBadRequest, 0, "Invalid Refresh Token")
		return
	}
	e.log.Debug("quantinuumsim: id-token refreshed")
	writeJSON(w, http.StatusOK, loginResponse{IDToken: id, RefreshToken: tok})
}

// auth wraps an authenticated route: the Authorization header must be
// exactly one bare, live id-token.
func (e *Emulator) auth(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		vals := r.Header.Values("Authorization")
		switch {
		case len(vals) == 0 || vals[0] == "":
			writeError(w, http.StatusUnauthorized, 0, "missing Authorization header; expected the id-token from POST /v1/login")
			return
		case len(vals) > 1:
			writeError(w, http.StatusUnauthorized, 0, "more than one Authorization header")
			return
		case strings.ContainsAny(vals[0], " \t"):
			// The service takes the raw id-token; "Bearer <token>" is not it.
			writeError(w, http.StatusUnauthorized, 0, "malformed Authorization header; expected the bare id-token, without a scheme")
			return
		}
		e.mu.Lock()
		state := e.tokens.check(vals[0], kindID, e.now())
		e.mu.Unlock()
		switch state {
		case tokenExpired:
			writeError(w, http.StatusUnauthorized, 0, "id-token has expired; refresh it with POST /v1/login")
			return
		case tokenUnknown:
			writeError(w, http.StatusUnauthorized, 0, "invalid id-token")
			return
		}
		next(w, r)
	})
}

// jsonProblem describes a decoding error without echoing the body (which
// may hold a password).
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at offset %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q must be %s", typ.Field, typ.Type)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	case errors.Is(err, io.EOF):
		return "empty body"
	default:
		return "malformed JSON"
	}
}
