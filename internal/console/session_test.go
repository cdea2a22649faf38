package console

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// sessionCookie returns the browser's session cookie value.
func (e *env) sessionCookie(t *testing.T, b *http.Client) string {
	t.Helper()
	u, _ := url.Parse(e.ts.URL)
	for _, c := range b.Jar.Cookies(u) {
		if c.Name == "qbroker_session" {
			return c.Value
		}
	}
	t.Fatal("no session cookie")
	return ""
}

// withCookie is a fresh browser carrying only the given session cookie.
func (e *env) withCookie(t *testing.T, value string) *http.Client {
	t.Helper()
	b := browser(t)
	u, _ := url.Parse(e.ts.URL)
	b.Jar.SetCookies(u, []*http.Cookie{{Name: "qbroker_session", Value: value, Path: "/"}})
	return b
}

func TestSessionTamperingRefused(t *testing.T) {
	e := newEnv(t, nil)
	b := e.signIn(t, "alice@example.test")
	good := e.sessionCookie(t, b)
	wantStatus(t, e.get(t, e.withCookie(t, good), "/ui/"), http.StatusOK)

	payload, sig, _ := strings.Cut(good, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(payload)
	asBob := base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(raw), "alice@example.test", "bob@example.test", 1)))
	otherKey := deriveKeys([]byte("another key that is 32 bytes long!!"))
	forged, err := seal(otherKey.session, session{Person: "bob@example.test", Method: methodLink, ID: "x", Expires: e.clock.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	// Signed with our key but for the OIDC method, which is not configured.
	wrongMethod, _ := seal(e.c.keys.session, session{Person: "bob@example.test", Issuer: "https://idp.example", Method: methodOIDC, ID: "y", Expires: e.clock.Now().Add(time.Hour).Unix()})
	// A flash, signed with the flash key, is not a session.
	crossPurpose, _ := seal(e.c.keys.flash, session{Person: "bob@example.test", Method: methodLink, ID: "z", Expires: e.clock.Now().Add(time.Hour).Unix()})
	for name, v := range map[string]string{
		"payload changed":          asBob + "." + sig,
		"signature dropped":        payload,
		"signature of other key":   forged,
		"signature truncated":      good[:len(good)-4],
		"disabled sign-in method":  wrongMethod,
		"signed for other purpose": crossPurpose,
		"garbage":                  "%%%.###",
	} {
		r := e.get(t, e.withCookie(t, v), "/ui/")
		if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/ui/login") {
			t.Errorf("%s: status %d, Location %q", name, r.StatusCode, r.Header.Get("Location"))
		}
	}
	if len(e.be.listedBy) != 2 { // the home page lists twice: pending and recent
		t.Errorf("backend was asked %d times; only the genuine session should reach it", len(e.be.listedBy))
	}

	// Expiry: the session lasts SessionTTL (default 8 h).
	e.clock.Advance(DefaultSessionTTL - time.Minute)
	wantStatus(t, e.get(t, b, "/ui/"), http.StatusOK)
	e.clock.Advance(2 * time.Minute)
	wantStatus(t, e.get(t, b, "/ui/"), http.StatusSeeOther)
}

func TestLogoutEndsTheSession(t *testing.T) {
	e := newEnv(t, nil)
	b := e.signIn(t, "alice@example.test")
	stolen := e.sessionCookie(t, b)
	tok := logoutCSRF.FindStringSubmatch(e.get(t, b, "/ui/").Body)[1]
	r := do(t, b, "POST", e.ts.URL+"/ui/logout", url.Values{"csrf": {tok}}, nil)
	wantStatus(t, r, http.StatusSeeOther)
	if r.Header.Get("Location") != "/ui/signed-out" {
		t.Fatalf("Location %q", r.Header.Get("Location"))
	}
	if c := cookieNamed(r.Response, "qbroker_session"); c == nil || c.MaxAge >= 0 {
		t.Errorf("session cookie not cleared: %+v", c)
	}
	// A copy of the cookie kept from before is refused too.
	wantStatus(t, e.get(t, e.withCookie(t, stolen), "/ui/"), http.StatusSeeOther)
	mustContain(t, e.get(t, b, "/ui/signed-out").Body, "You are signed out")
}

func TestLoginLink(t *testing.T) {
	e := newEnv(t, nil)
	link, err := e.c.LoginLink(Person{ID: "alice@example.test"}, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(link, e.ts.URL+"/ui/login/once?token=") {
		t.Fatalf("link %q", link)
	}
	b := browser(t)
	r := do(t, b, "GET", link, nil, nil)
	wantStatus(t, r, http.StatusSeeOther)
	ck := cookieNamed(r.Response, "qbroker_session")
	if ck == nil || !ck.HttpOnly || ck.Secure || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" {
		t.Fatalf("session cookie %+v", ck)
	}
	mustContain(t, e.get(t, b, "/ui/").Body, "Signed in as <strong>alice@example.test</strong>")

	// Used once, then refused, even in another browser.
	r = do(t, browser(t), "GET", link, nil, nil)
	wantStatus(t, r, http.StatusForbidden)
	mustContain(t, r.Body, "already used")
	if cookieNamed(r.Response, "qbroker_session") != nil {
		t.Error("a refused link set a session")
	}

	// Expires.
	late, _ := e.c.LoginLink(Person{ID: "bob@example.test"}, time.Minute)
	e.clock.Advance(time.Minute)
	r = do(t, browser(t), "GET", late, nil, nil)
	wantStatus(t, r, http.StatusForbidden)
	mustContain(t, r.Body, "it has expired")

	// A made-up token is refused.
	wantStatus(t, e.get(t, browser(t), "/ui/login/once?token=AAAA"), http.StatusForbidden)
	if _, err := e.c.LoginLink(Person{ID: "x"}, 48*time.Hour); err == nil {
		t.Error("a two-day link was made")
	}
	if _, err := e.c.LoginLink(Person{}, time.Minute); err == nil {
		t.Error("a link without a person was made")
	}
}

func TestLoginLinkNeedsDevLogin(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.DevLogin = false })
	if _, err := e.c.LoginLink(Person{ID: "alice@example.test"}, time.Minute); !errors.Is(err, ErrDevLoginDisabled) {
		t.Fatalf("err = %v", err)
	}
	wantStatus(t, e.get(t, browser(t), "/ui/login/once?token=x"), http.StatusNotFound)
	// A session from a login link made while DevLogin was on is refused now.
	old, _ := seal(e.c.keys.session, session{Person: "alice@example.test", Method: methodLink, ID: "s", Expires: e.clock.Now().Add(time.Hour).Unix()})
	wantStatus(t, e.get(t, e.withCookie(t, old), "/ui/"), http.StatusSeeOther)
}

func TestHTTPSCookies(t *testing.T) {
	be := &fakeBackend{now: time.Now}
	base, _ := url.Parse("https://broker.example.com:443/qb/")
	c, err := New(context.Background(), Config{Backend: be, BaseURL: base, DevLogin: true, SessionKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	link, _ := c.LoginLink(Person{ID: "alice@example.test"}, time.Minute)
	if !strings.HasPrefix(link, "https://broker.example.com:443/qb/ui/login/once?token=") {
		t.Fatalf("link %q", link)
	}
	u, _ := url.Parse(link)
	rec := httptest.NewRecorder()
	c.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/ui/login/once?"+u.RawQuery, nil))
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/qb/ui/" {
		t.Fatalf("%d %q", rec.Code, rec.Header().Get("Location"))
	}
	ck := cookieNamed(&http.Response{Header: rec.Header()}, "__Host-qbroker_session")
	if ck == nil || !ck.Secure || !ck.HttpOnly || ck.Path != "/" || ck.Domain != "" || ck.SameSite != http.SameSiteLaxMode {
		t.Fatalf("cookie %+v", ck)
	}
	// Origin check with the default port dropped, as browsers send it.
	if c.origin != "https://broker.example.com" {
		t.Errorf("origin %q", c.origin)
	}
	// Links carry the base path.
	req := httptest.NewRequest("GET", "/ui/", nil)
	req.AddCookie(ck)
	rec = httptest.NewRecorder()
	c.Handler().ServeHTTP(rec, req)
	mustContain(t, rec.Body.String(), `href="/qb/ui/audit"`, `action="/qb/ui/logout"`, `href="/qb/ui/static/console.css?v=`)
}

func TestNewValidates(t *testing.T) {
	base, _ := url.Parse("http://127.0.0.1:8200")
	for name, cfg := range map[string]Config{
		"no backend":   {BaseURL: base, SessionKey: testKey},
		"short key":    {Backend: &fakeBackend{}, BaseURL: base, SessionKey: []byte("short")},
		"no base":      {Backend: &fakeBackend{}, SessionKey: testKey},
		"relative":     {Backend: &fakeBackend{}, BaseURL: &url.URL{Path: "/x"}, SessionKey: testKey},
		"oidc no id":   {Backend: &fakeBackend{}, BaseURL: base, SessionKey: testKey, OIDC: &OIDCConfig{Issuer: "https://idp"}},
		"bad issuer":   {Backend: &fakeBackend{}, BaseURL: base, SessionKey: testKey, OIDC: &OIDCConfig{Issuer: "ftp://idp", ClientID: "x"}},
		"unreachable":  {Backend: &fakeBackend{}, BaseURL: base, SessionKey: testKey, OIDC: &OIDCConfig{Issuer: "http://127.0.0.1:1/", ClientID: "x"}},
		"negative ttl": {Backend: &fakeBackend{}, BaseURL: base, SessionKey: testKey, SessionTTL: -time.Second},
	} {
		if _, err := New(context.Background(), cfg); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}

func TestSafeReturn(t *testing.T) {
	for in, want := range map[string]string{
		"/ui/approvals/apr-1":              "/ui/approvals/apr-1",
		"/ui/audit?x=1":                    "/ui/audit?x=1",
		"/ui/":                             "/ui/",
		"/ui/approvals/a%20b":              "/ui/approvals/a%20b",
		"":                                 "/ui/",
		"https://evil.example/ui/":         "/ui/",
		"//evil.example/ui/":               "/ui/",
		"/\\evil.example/ui/":              "/ui/",
		"/ui//evil.example":                "/ui/",
		"/ui/\\evil.example":               "/ui/",
		"/ui/../../evil":                   "/ui/",
		"/ui/%2e%2e/evil":                  "/ui/",
		"/ui/%2f%2fevil.example":           "/ui/",
		"/ui/%5cevil.example":              "/ui/",
		"javascript:alert(1)":              "/ui/",
		"/ui/\r\nSet-Cookie: x=1":          "/ui/",
		"/ui/%0d%0aSet-Cookie:%20x=1":      "/ui/",
		"/uiX/evil":                        "/ui/",
		"/v1/sys/approvals":                "/ui/",
		"/ui/login":                        "/ui/",
		"/ui/login/once?token=x":           "/ui/",
		"/ui/callback?code=x":              "/ui/",
		"http:/ui/x":                       "/ui/",
		"/ui/x#frag":                       "/ui/x",
		"/ui/" + strings.Repeat("a", 2000): "/ui/",
	} {
		if got := safeReturn(in); got != want {
			t.Errorf("safeReturn(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOnceSetForgetsExpired(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	s := newOnceSet(clk.Now)
	if !s.add("a", clk.Now().Add(time.Minute)) || s.add("a", clk.Now().Add(time.Minute)) {
		t.Fatal("second add of a live value accepted")
	}
	clk.Advance(2 * time.Minute)
	if s.has("a") || !s.add("b", clk.Now().Add(time.Minute)) || len(s.seen) != 1 {
		t.Fatalf("expired values kept: %v", s.seen)
	}
}
