package console

import (
	"crypto/hmac"
	"encoding/base64"
	"net/http"
	"net/url"
	"time"
)

// Sign-in methods recorded in a session.
const (
	methodOIDC = "oidc"
	methodLink = "link"
)

// session is the signed payload of the session cookie.
type session struct {
	Person  string `json:"p"`
	Name    string `json:"n"`
	Issuer  string `json:"i"`
	Method  string `json:"m"`
	ID      string `json:"s"` // random; binds CSRF tokens and flashes; revoked on sign-out
	Expires int64  `json:"e"` // unix seconds
}

func (s session) person() Person { return Person{ID: s.Person, Name: s.Name, Issuer: s.Issuer} }

// startSession sets a new session cookie for p.
func (c *Console) startSession(w http.ResponseWriter, p Person, method string) error {
	exp := c.now().Add(c.ttl)
	v, err := seal(c.keys.session, session{
		Person: p.ID, Name: p.Name, Issuer: p.Issuer, Method: method,
		ID: randomString(18), Expires: exp.Unix(),
	})
	if err != nil {
		return err
	}
	c.setCookie(w, "session", v, exp)
	return nil
}

// currentSession returns the request's valid session, if any: signed with
// our key, unexpired, not signed out, and from a sign-in method that is
// still enabled.
func (c *Console) currentSession(r *http.Request) (session, bool) {
	raw := c.readCookie(r, "session")
	if raw == "" {
		return session{}, false
	}
	var s session
	if open(c.keys.session, raw, &s) != nil || s.Person == "" || s.ID == "" {
		return session{}, false
	}
	if !c.now().Before(time.Unix(s.Expires, 0)) || c.revoked.has(s.ID) {
		return session{}, false
	}
	switch s.Method {
	case methodOIDC:
		if c.oidc == nil || s.Issuer != c.oidc.issuer {
			return session{}, false
		}
	case methodLink:
		if !c.devLogin {
			return session{}, false
		}
	default:
		return session{}, false
	}
	return s, true
}

// authed runs h with the request's session; without one a page request is
// sent to sign in and a POST is refused.
func (c *Console) authed(h func(http.ResponseWriter, *http.Request, session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, ok := c.currentSession(r)
		if !ok {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				c.refuse(w, r, http.StatusForbidden, "You are not signed in", "Your session has ended or was never started, so nothing was changed. Sign in and try again.")
				return
			}
			http.Redirect(w, r, c.href("/ui/login")+"?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		h(w, r, s)
	}
}

// CSRF actions.
const (
	actionDecide = "decide" // approve and deny share one form
	actionLogout = "logout"
)

// csrfToken binds a form to the session, the action and the approval.
func (c *Console) csrfToken(sid, action, approvalID string) string {
	return base64.RawURLEncoding.EncodeToString(mac(c.keys.csrf, "csrf|"+sid+"|"+action+"|"+approvalID))
}

// checkPost refuses a POST that is not ours: a foreign Origin or
// Sec-Fetch-Site, or a missing or mismatched CSRF token. It returns a
// plain-words description of the problem, or "" when the POST may proceed.
// It parses the form (bounded).
func (c *Console) checkPost(w http.ResponseWriter, r *http.Request, s session, action, approvalID string) string {
	if o := r.Header.Get("Origin"); o != "" && o != c.origin {
		return "the form was sent from another site (" + truncate(o, 100) + "), not from this console"
	}
	if sfs := r.Header.Get("Sec-Fetch-Site"); sfs != "" && sfs != "same-origin" && sfs != "none" {
		return "the form was sent from another site, not from this console"
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return "the form could not be read"
	}
	got := r.PostForm.Get("csrf")
	if got == "" {
		return "the form's security token is missing"
	}
	gotB, err := base64.RawURLEncoding.DecodeString(got)
	want := mac(c.keys.csrf, "csrf|"+s.ID+"|"+action+"|"+approvalID)
	if err != nil || !hmac.Equal(gotB, want) {
		return "the form's security token does not belong to this request and this sign-in"
	}
	return ""
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
