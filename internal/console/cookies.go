package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"
)

// keys are independent HMAC keys derived from Config.SessionKey, one per
// purpose, so that a value signed for one purpose (a flash message) is
// never accepted as another (a session).
type keys struct {
	session, state, flash, csrf []byte
}

func deriveKeys(master []byte) keys {
	d := func(purpose string) []byte {
		m := hmac.New(sha256.New, master)
		m.Write([]byte("qbroker console v1 " + purpose))
		return m.Sum(nil)
	}
	return keys{session: d("session"), state: d("login state"), flash: d("flash"), csrf: d("csrf")}
}

var errBadCookie = errors.New("invalid or expired cookie")

const maxCookieLen = 4000

// seal encodes v as base64url(JSON) "." base64url(HMAC-SHA256(key, payload)).
// The payload is signed, not encrypted: it holds nothing the browser that
// carries it may not see.
func seal(key []byte, v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	payload := base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + base64.RawURLEncoding.EncodeToString(mac(key, payload)), nil
}

// open verifies and decodes a value made by seal.
func open(key []byte, s string, v any) error {
	if len(s) > maxCookieLen {
		return errBadCookie
	}
	payload, sig, ok := strings.Cut(s, ".")
	if !ok {
		return errBadCookie
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, mac(key, payload)) {
		return errBadCookie
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return errBadCookie
	}
	if err := json.Unmarshal(b, v); err != nil {
		return errBadCookie
	}
	return nil
}

func mac(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

// Cookie names. With an https BaseURL the __Host- prefix makes browsers
// insist on Secure, Path=/ and no Domain.
func (c *Console) cookieName(base string) string {
	if c.secure {
		return "__Host-qbroker_" + base
	}
	return "qbroker_" + base
}

func (c *Console) setCookie(w http.ResponseWriter, base, value string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name: c.cookieName(base), Value: value, Path: "/",
		Expires: expires, MaxAge: int(expires.Sub(c.now()).Seconds()),
		Secure: c.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}

func (c *Console) clearCookie(w http.ResponseWriter, base string) {
	http.SetCookie(w, &http.Cookie{
		Name: c.cookieName(base), Value: "", Path: "/", MaxAge: -1,
		Secure: c.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}

func (c *Console) readCookie(r *http.Request, base string) string {
	ck, err := r.Cookie(c.cookieName(base))
	if err != nil {
		return ""
	}
	return ck.Value
}

// onceSet remembers values until they expire, to refuse a second use.
type onceSet struct {
	mu   sync.Mutex
	now  func() time.Time
	seen map[string]time.Time
}

func newOnceSet(now func() time.Time) *onceSet {
	return &onceSet{now: now, seen: map[string]time.Time{}}
}

// add records v until expires and reports whether it was new.
func (s *onceSet) add(v string, expires time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for k, exp := range s.seen {
		if !now.Before(exp) {
			delete(s.seen, k)
		}
	}
	if _, ok := s.seen[v]; ok {
		return false
	}
	s.seen[v] = expires
	return true
}

func (s *onceSet) has(v string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.seen[v]
	return ok && s.now().Before(exp)
}
