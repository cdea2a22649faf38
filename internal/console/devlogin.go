package console

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Login-link lifetimes.
const (
	DefaultLinkTTL = 15 * time.Minute
	MaxLinkTTL     = 24 * time.Hour
)

// ErrDevLoginDisabled is returned by LoginLink when Config.DevLogin is off.
var ErrDevLoginDisabled = errors.New("console: one-time login links are disabled (DevLogin is off)")

// linkStore holds one-time login links by the SHA-256 of their token, so
// that the memory of the process never lists the tokens themselves.
type linkStore struct {
	mu    sync.Mutex
	now   func() time.Time
	links map[string]linkEntry
}

type linkEntry struct {
	p       Person
	expires time.Time
}

func newLinkStore(now func() time.Time) *linkStore {
	return &linkStore{now: now, links: map[string]linkEntry{}}
}

func tokenHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

func (s *linkStore) add(token string, e linkEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for k, v := range s.links {
		if !now.Before(v.expires) {
			delete(s.links, k)
		}
	}
	s.links[tokenHash(token)] = e
}

// take removes the link and returns its person; expired is true when the
// link existed but had expired.
func (s *linkStore) take(token string) (p Person, ok, expired bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := tokenHash(token)
	e, found := s.links[h]
	if !found {
		return Person{}, false, false
	}
	delete(s.links, h)
	if !s.now().Before(e.expires) {
		return Person{}, false, true
	}
	return e.p, true, false
}

// LoginLink returns an absolute one-time URL (BaseURL/ui/login/once?token=…)
// that signs p in. It works once, until ttl passes (default
// DefaultLinkTTL, at most MaxLinkTTL), and only in the process that made
// it. It needs Config.DevLogin; `qbroker dev` prints one at start.
func (c *Console) LoginLink(p Person, ttl time.Duration) (string, error) {
	if !c.devLogin {
		return "", ErrDevLoginDisabled
	}
	if p.ID == "" {
		return "", errors.New("console: login link needs a person ID")
	}
	if ttl <= 0 {
		ttl = DefaultLinkTTL
	}
	if ttl > MaxLinkTTL {
		return "", fmt.Errorf("console: login link lifetime %s is longer than %s", ttl, MaxLinkTTL)
	}
	if p.Issuer == "" {
		p.Issuer = "dev"
	}
	if p.Name == "" {
		p.Name = p.ID
	}
	token := randomString(32)
	c.links.add(token, linkEntry{p: p, expires: c.now().Add(ttl)})
	return c.abs("/ui/login/once") + "?token=" + url.QueryEscape(token), nil
}

// loginOnce redeems a one-time login link.
func (c *Console) loginOnce(w http.ResponseWriter, r *http.Request) {
	if !c.devLogin {
		c.notFound(w, r)
		return
	}
	p, ok, expired := c.links.take(r.URL.Query().Get("token"))
	if !ok {
		why := "it was already used, or it is not a link this console made"
		if expired {
			why = "it has expired"
		}
		c.message(w, r, http.StatusForbidden, "This sign-in link does not work", []string{
			"This one-time sign-in link cannot be used: " + why + ".",
			"Restart “qbroker dev” to get a new link.",
		}, nil)
		return
	}
	if err := c.startSession(w, p, methodLink); err != nil {
		c.internalError(w, r, err)
		return
	}
	c.log.Info("console: signed in with a one-time link", "person", p.ID, "remote", remoteHost(r))
	http.Redirect(w, r, c.href(home), http.StatusSeeOther)
}
