package console

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/testidp"
)

const (
	webClientID     = "console"
	webClientSecret = "console-secret"
)

// oidcEnv starts the test IdP and a console that signs in with it.
func oidcEnv(t *testing.T, claimsInIDToken bool) (*env, *testidp.OP) {
	t.Helper()
	op := testidp.Start(t)
	e := newEnv(t, func(c *Config) {
		c.DevLogin = false
		c.OIDC = &OIDCConfig{Issuer: op.Issuer, ClientID: webClientID, ClientSecret: webClientSecret}
		op.AddWebClient(testidp.WebClient{
			ID: webClientID, Secret: webClientSecret, ClaimsInIDToken: claimsInIDToken,
			RedirectURIs: []string{c.BaseURL.String() + "/ui/callback"},
		})
	})
	return e, op
}

// idpBrowser follows redirects, except into the console's callback, so a
// test can look at (and replay) the IdP's answer.
func idpBrowser(t *testing.T, e *env) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	console, _ := url.Parse(e.ts.URL)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Host == console.Host {
			return http.ErrUseLastResponse
		}
		return nil
	}}
}

// toCallback starts a sign-in at /ui/login?next=next, logs in at the IdP
// as username and returns the callback URL the IdP sent the browser to,
// with the login-state cookie the console set.
func toCallback(t *testing.T, e *env, op *testidp.OP, b *http.Client, next, username string) (*url.URL, string) {
	t.Helper()
	first := *b // do not follow the console's redirect to the IdP
	first.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	r := do(t, &first, "GET", e.ts.URL+"/ui/login?next="+url.QueryEscape(next), nil, nil)
	wantStatus(t, r, http.StatusFound)
	st := cookieNamed(r.Response, "qbroker_login")
	if st == nil || !st.HttpOnly || st.SameSite != http.SameSiteLaxMode || st.Path != "/" {
		t.Fatalf("login-state cookie %+v", st)
	}
	loc, _ := url.Parse(r.Header.Get("Location"))
	if !strings.HasPrefix(loc.String(), op.Issuer) {
		t.Fatalf("not sent to the IdP: %s", loc)
	}
	page := do(t, b, "GET", loc.String(), nil, nil)
	wantStatus(t, page, http.StatusOK)
	resp := op.SubmitLogin(t, b, page.Request.URL, username, "pw-"+username)
	resp.Body.Close()
	cb, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound || cb.Path != "/ui/callback" {
		t.Fatalf("IdP answered %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return cb, st.Value
}

func TestOIDCSignInWithPKCE(t *testing.T) {
	for _, claimsInIDToken := range []bool{true, false} {
		name := "claims from userinfo"
		if claimsInIDToken {
			name = "claims in ID token"
		}
		t.Run(name, func(t *testing.T) {
			e, op := oidcEnv(t, claimsInIDToken)
			e.add(pendingApproval("apr-1", e.clock.Now()))
			b := idpBrowser(t, e)
			anon := e.get(t, b, "/ui/approvals/apr-1")
			wantStatus(t, anon, http.StatusSeeOther)
			next, _ := url.Parse(anon.Header.Get("Location"))
			cb, stateCookie := toCallback(t, e, op, b, next.Query().Get("next"), "alice")

			// The IdP got a PKCE S256 challenge made from the verifier in the
			// state cookie, and the state and nonce.
			q := op.LastQuery("/auth") // the example OP's authorization endpoint
			var st loginState
			if err := open(e.c.keys.state, stateCookie, &st); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256([]byte(st.Verifier))
			if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") != base64.RawURLEncoding.EncodeToString(sum[:]) {
				t.Fatalf("authorize query: %v", q)
			}
			if q.Get("state") != st.State || q.Get("nonce") != st.Nonce || q.Get("client_id") != webClientID || q.Get("response_type") != "code" {
				t.Fatalf("authorize query: %v", q)
			}
			if !strings.Contains(q.Get("scope"), "openid") || !strings.Contains(q.Get("scope"), "email") {
				t.Errorf("scope %q", q.Get("scope"))
			}
			if st.Next != "/ui/approvals/apr-1" {
				t.Errorf("return path %q", st.Next)
			}

			r := do(t, b, "GET", cb.String(), nil, nil)
			wantStatus(t, r, http.StatusSeeOther)
			if r.Header.Get("Location") != "/ui/approvals/apr-1" {
				t.Fatalf("returned to %q", r.Header.Get("Location"))
			}
			ck := cookieNamed(r.Response, "qbroker_session")
			if ck == nil || !ck.HttpOnly || ck.Secure || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" {
				t.Fatalf("session cookie %+v", ck)
			}
			page := e.get(t, b, "/ui/")
			wantStatus(t, page, http.StatusOK)
			mustContain(t, page.Body, "Signed in as <strong>alice Test</strong>", "(alice@example.test)")
			p := e.be.listedBy[0]
			if p.ID != "alice@example.test" || p.Issuer != op.Issuer || p.Name != "alice Test" {
				t.Errorf("backend saw %+v", p)
			}
			if n := op.Count("/userinfo"); (n > 0) == claimsInIDToken {
				t.Errorf("userinfo asked %d times with claimsInIDToken=%v", n, claimsInIDToken)
			}

			// The same callback again, even with the old state cookie, is refused.
			replay := idpBrowser(t, e)
			replay.Jar.SetCookies(cb, []*http.Cookie{{Name: "qbroker_login", Value: stateCookie, Path: "/"}})
			r = do(t, replay, "GET", cb.String(), nil, nil)
			wantStatus(t, r, http.StatusBadRequest)
			mustContain(t, r.Body, "already used")
			if cookieNamed(r.Response, "qbroker_session") != nil {
				t.Error("a replayed callback set a session")
			}
		})
	}
}

func TestOIDCCallbackRefusals(t *testing.T) {
	e, op := oidcEnv(t, true)

	t.Run("wrong state", func(t *testing.T) {
		b := idpBrowser(t, e)
		cb, _ := toCallback(t, e, op, b, "/ui/", "alice")
		tokens := op.Count("/oauth/token")
		q := cb.Query()
		q.Set("state", "attacker-state")
		cb.RawQuery = q.Encode()
		r := do(t, b, "GET", cb.String(), nil, nil)
		wantStatus(t, r, http.StatusBadRequest)
		mustContain(t, r.Body, "does not belong to the sign-in this browser started")
		if op.Count("/oauth/token") != tokens {
			t.Error("the code was exchanged despite a wrong state")
		}
		if cookieNamed(r.Response, "qbroker_session") != nil {
			t.Error("session set")
		}
	})

	t.Run("no state cookie", func(t *testing.T) {
		b := idpBrowser(t, e)
		cb, _ := toCallback(t, e, op, b, "/ui/", "alice")
		r := do(t, idpBrowser(t, e), "GET", cb.String(), nil, nil) // another browser: login CSRF
		wantStatus(t, r, http.StatusBadRequest)
		mustContain(t, r.Body, "started in another browser")
	})

	t.Run("wrong nonce", func(t *testing.T) {
		b := idpBrowser(t, e)
		cb, raw := toCallback(t, e, op, b, "/ui/", "alice")
		// A state cookie with the right state and verifier but another
		// nonce: the code exchange succeeds, the ID token's nonce does not
		// match, and no session starts.
		var st loginState
		if err := open(e.c.keys.state, raw, &st); err != nil {
			t.Fatal(err)
		}
		st.Nonce = "another-nonce"
		forged, _ := seal(e.c.keys.state, st)
		tokens := op.Count("/oauth/token")
		b.Jar.SetCookies(cb, []*http.Cookie{{Name: "qbroker_login", Value: forged, Path: "/"}})
		r := do(t, b, "GET", cb.String(), nil, nil)
		wantStatus(t, r, http.StatusBadRequest)
		mustContain(t, r.Body, "could not be verified")
		if op.Count("/oauth/token") != tokens+1 {
			t.Error("expected the exchange to happen before the nonce check")
		}
		if cookieNamed(r.Response, "qbroker_session") != nil {
			t.Error("session set despite a wrong nonce")
		}
	})

	t.Run("wrong PKCE verifier", func(t *testing.T) {
		b := idpBrowser(t, e)
		cb, raw := toCallback(t, e, op, b, "/ui/", "alice")
		var st loginState
		_ = open(e.c.keys.state, raw, &st)
		st.Verifier = "a-verifier-that-does-not-match-the-challenge-sent-to-the-idp"
		forged, _ := seal(e.c.keys.state, st)
		b.Jar.SetCookies(cb, []*http.Cookie{{Name: "qbroker_login", Value: forged, Path: "/"}})
		r := do(t, b, "GET", cb.String(), nil, nil)
		wantStatus(t, r, http.StatusBadRequest)
		mustContain(t, r.Body, "refused to complete it")
	})

	t.Run("forged state cookie", func(t *testing.T) {
		b := idpBrowser(t, e)
		cb, _ := toCallback(t, e, op, b, "/ui/", "alice")
		forged, _ := seal(deriveKeys([]byte("attacker key attacker key attacker key")).state,
			loginState{State: cb.Query().Get("state"), Nonce: "n", Verifier: "v", Next: "/ui/", Expires: time.Now().Add(time.Hour).Unix()})
		b.Jar.SetCookies(cb, []*http.Cookie{{Name: "qbroker_login", Value: forged, Path: "/"}})
		wantStatus(t, do(t, b, "GET", cb.String(), nil, nil), http.StatusBadRequest)
	})

	t.Run("expired state", func(t *testing.T) {
		b := idpBrowser(t, e)
		cb, raw := toCallback(t, e, op, b, "/ui/", "alice")
		var st loginState
		_ = open(e.c.keys.state, raw, &st)
		st.Expires = time.Now().Add(-time.Second).Unix()
		old, _ := seal(e.c.keys.state, st)
		b.Jar.SetCookies(cb, []*http.Cookie{{Name: "qbroker_login", Value: old, Path: "/"}})
		wantStatus(t, do(t, b, "GET", cb.String(), nil, nil), http.StatusBadRequest)
	})

	t.Run("IdP error is not echoed", func(t *testing.T) {
		r := do(t, browser(t), "GET", e.ts.URL+"/ui/callback?error=evil&error_description=%3Cb%3EPhishing+text%3C%2Fb%3E", nil, nil)
		wantStatus(t, r, http.StatusBadRequest)
		mustNotContain(t, r.Body, "Phishing", "<b>")
		r = do(t, browser(t), "GET", e.ts.URL+"/ui/callback?error=access_denied", nil, nil)
		mustContain(t, r.Body, "cancelled or refused")
	})
}

func TestOIDCOpenRedirectRefused(t *testing.T) {
	e, op := oidcEnv(t, true)
	for _, next := range []string{"https://evil.example/", "//evil.example/ui/", "/\\evil.example", "/ui//evil.example", "/ui/../../x", "javascript:alert(1)"} {
		b := idpBrowser(t, e)
		cb, _ := toCallback(t, e, op, b, next, "bob")
		r := do(t, b, "GET", cb.String(), nil, nil)
		wantStatus(t, r, http.StatusSeeOther)
		if loc := r.Header.Get("Location"); loc != "/ui/" {
			t.Errorf("next=%q: redirected to %q", next, loc)
		}
	}
}

func TestOIDCSessionNotValidForAnotherIssuer(t *testing.T) {
	e, _ := oidcEnv(t, true)
	s, _ := seal(e.c.keys.session, session{Person: "alice@example.test", Issuer: "https://other-idp.example/", Method: methodOIDC, ID: "s", Expires: e.clock.Now().Add(time.Hour).Unix()})
	wantStatus(t, e.get(t, e.withCookie(t, s), "/ui/"), http.StatusSeeOther)
	// Dev login is off here, so a link session is refused as well.
	s, _ = seal(e.c.keys.session, session{Person: "alice@example.test", Method: methodLink, ID: "s", Expires: e.clock.Now().Add(time.Hour).Unix()})
	wantStatus(t, e.get(t, e.withCookie(t, s), "/ui/"), http.StatusSeeOther)
	// And the signed-out page offers OIDC sign-in.
	mustContain(t, e.get(t, browser(t), "/ui/signed-out").Body, `href="/ui/login">Sign in again`)
}

func TestPersonFrom(t *testing.T) {
	for _, tc := range []struct {
		claims map[string]any
		claim  string
		want   Person
	}{
		{map[string]any{"email": "a@x", "email_verified": true, "name": "A"}, "email", Person{"a@x", "A", "iss"}},
		{map[string]any{"email": "a@x"}, "email", Person{"a@x", "a@x", "iss"}},
		{map[string]any{"email": "a@x", "email_verified": false}, "email", Person{"sub-1", "sub-1", "iss"}},
		{map[string]any{"email": "a@x", "email_verified": "false", "preferred_username": "al"}, "email", Person{"sub-1", "al", "iss"}},
		{map[string]any{"email": 42}, "email", Person{"sub-1", "sub-1", "iss"}},
		{map[string]any{"upn": "a@corp", "email_verified": false}, "upn", Person{"a@corp", "a@corp", "iss"}},
		{map[string]any{}, "upn", Person{"sub-1", "sub-1", "iss"}},
	} {
		if got := personFrom(tc.claims, "sub-1", "iss", tc.claim); got != tc.want {
			t.Errorf("personFrom(%v, %q) = %+v, want %+v", tc.claims, tc.claim, got, tc.want)
		}
	}
}
