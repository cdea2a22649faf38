package console

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/core"
)

func TestEmptyStates(t *testing.T) {
	e := newEnv(t, nil)
	b := e.signIn(t, "alice@example.test")
	home := e.get(t, b, "/ui/")
	wantStatus(t, home, http.StatusOK)
	mustContain(t, home.Body, "No requests are waiting for approval.", "No decisions yet.", "Pending approvals", "Recent decisions")
	mustNotContain(t, home.Body, "<table")
	au := e.get(t, b, "/ui/audit")
	wantStatus(t, au, http.StatusOK)
	mustContain(t, au.Body, "No events have been recorded yet.")
}

func TestHomeListsPendingAndRecentDecisions(t *testing.T) {
	e := newEnv(t, nil)
	now := e.clock.Now()
	denied := pendingApproval("apr-denied", now)
	denied.State, denied.Reason = api.ApprovalDenied, "too many shots"
	denied.Votes = []api.Vote{{Approver: "erin@example.test", Decision: "deny", Reason: "too many shots", Via: "console", At: now}}
	denied.DecidedAt = &now
	issued := pendingApproval("apr-issued", now)
	issued.State, issued.JTI = api.ApprovalIssued, "jti-123"
	issued.Votes = []api.Vote{{Approver: "bob@example.test", Decision: "approve", Via: "api", At: now}}
	e.add(pendingApproval("apr-1", now), denied, issued)
	b := e.signIn(t, "alice@example.test")
	r := e.get(t, b, "/ui/")
	wantStatus(t, r, http.StatusOK)
	mustContain(t, r.Body,
		`href="/ui/approvals/apr-1"`, "agent-7", "for carol@example.test", "researcher", "ionq / qpu.aria-1", ">200<", "$6.30",
		"5 min", "in 55 min", "0 of 1",
		"state-denied", "erin@example.test", "too many shots", "jti-123", "bob@example.test")
	mustNotContain(t, r.Body, "No requests are waiting for approval.")
	if got := e.be.listedBy[0]; got.ID != "alice@example.test" || got.Issuer != "dev" {
		t.Errorf("backend saw person %+v", got)
	}
}

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	e := newEnv(t, nil)
	e.add(pendingApproval("apr-1", e.clock.Now()))
	b := e.signIn(t, "alice@example.test")
	anon := browser(t)
	type req struct {
		c            *http.Client
		method, path string
		store        bool
	}
	for _, rq := range []req{
		{b, "GET", "/ui/", true}, {b, "GET", "/ui/approvals/apr-1", true}, {b, "GET", "/ui/approvals/nope", true},
		{b, "GET", "/ui/audit", true}, {b, "GET", "/ui/nothing-here", true}, {b, "POST", "/ui/approvals/apr-1/approve", true},
		{anon, "GET", "/ui/", true}, {anon, "GET", "/ui/login", true}, {anon, "GET", "/ui/login/once?token=x", true},
		{anon, "GET", "/ui/static/console.css", false},
	} {
		r := do(t, rq.c, rq.method, e.ts.URL+rq.path, url.Values{}, nil)
		h := r.Header
		for k, v := range map[string]string{
			"Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "same-origin",
			"X-Frame-Options":         "DENY",
		} {
			if h.Get(k) != v {
				t.Errorf("%s %s: %s = %q", rq.method, rq.path, k, h.Get(k))
			}
		}
		if cc := h.Get("Cache-Control"); rq.store != (cc == "no-store") {
			t.Errorf("%s %s: Cache-Control %q", rq.method, rq.path, cc)
		}
	}
	css := e.get(t, anon, "/ui/static/console.css")
	if css.Header.Get("Content-Type") != "text/css; charset=utf-8" || !strings.Contains(css.Body, ":focus-visible") {
		t.Errorf("stylesheet: %q", css.Header.Get("Content-Type"))
	}
}

func TestUnauthenticated(t *testing.T) {
	e := newEnv(t, nil)
	e.add(pendingApproval("apr-1", e.clock.Now()))
	anon := browser(t)
	r := e.get(t, anon, "/ui/approvals/apr-1")
	wantStatus(t, r, http.StatusSeeOther)
	if loc := r.Header.Get("Location"); loc != "/ui/login?next=%2Fui%2Fapprovals%2Fapr-1" {
		t.Errorf("Location %q", loc)
	}
	// DevLogin only: the sign-in page explains the printed link.
	r = e.get(t, anon, "/ui/login")
	wantStatus(t, r, http.StatusUnauthorized)
	mustContain(t, r.Body, "qbroker dev", "one-time sign-in link")
	// A POST without a session changes nothing.
	r = do(t, anon, "POST", e.ts.URL+"/ui/approvals/apr-1/approve", url.Values{"reason": {"x"}}, nil)
	wantStatus(t, r, http.StatusForbidden)
	if n := len(e.be.calls()); n != 0 {
		t.Fatalf("%d Decide calls without a session", n)
	}
	// Nothing configured: the page says so.
	e2 := newEnv(t, func(c *Config) { c.DevLogin = false })
	wantStatus(t, e2.get(t, anon, "/ui/login"), http.StatusServiceUnavailable)
}

func TestApproveAndDenyCallDecide(t *testing.T) {
	e := newEnv(t, nil)
	now := e.clock.Now()
	two := pendingApproval("apr-2", now)
	two.Required = 2
	e.add(pendingApproval("apr-1", now), two, pendingApproval("apr-3", now))
	b := e.signIn(t, "alice@example.test")

	tok := e.decisionToken(t, b, "apr-1")
	r := do(t, b, "POST", e.ts.URL+"/ui/approvals/apr-1/approve", url.Values{"csrf": {tok}, "reason": {"  looks fine  "}}, http.Header{"Origin": {e.ts.URL}})
	wantStatus(t, r, http.StatusSeeOther)
	if loc := r.Header.Get("Location"); loc != "/ui/approvals/apr-1" {
		t.Fatalf("Location %q", loc)
	}
	calls := e.be.calls()
	if len(calls) != 1 || calls[0].Person.ID != "alice@example.test" || calls[0].ID != "apr-1" || !calls[0].Approve || calls[0].Reason != "looks fine" || calls[0].Remote != "127.0.0.1" {
		t.Fatalf("Decide calls %+v", calls)
	}
	page := e.get(t, b, "/ui/approvals/apr-1")
	mustContain(t, page.Body, `role="status"`, "Approved — 1 of 1 approvals in.", "state-approved", "nothing left to decide")
	if again := e.get(t, b, "/ui/approvals/apr-1"); strings.Contains(again.Body, "Approved — 1 of 1") {
		t.Error("the flash message showed twice")
	}

	tok = e.decisionToken(t, b, "apr-2")
	r = do(t, b, "POST", e.ts.URL+"/ui/approvals/apr-2/approve", url.Values{"csrf": {tok}}, nil)
	wantStatus(t, r, http.StatusSeeOther)
	mustContain(t, e.get(t, b, "/ui/approvals/apr-2").Body, "Approved — 1 of 2 approvals in. It needs 1 more.")

	tok = e.decisionToken(t, b, "apr-3")
	r = do(t, b, "POST", e.ts.URL+"/ui/approvals/apr-3/deny", url.Values{"csrf": {tok}, "reason": {"not on a Friday"}}, nil)
	wantStatus(t, r, http.StatusSeeOther)
	calls = e.be.calls()
	if last := calls[len(calls)-1]; last.Approve || last.ID != "apr-3" || last.Reason != "not on a Friday" || last.Person.ID != "alice@example.test" {
		t.Fatalf("deny call %+v", last)
	}
	page = e.get(t, b, "/ui/approvals/apr-3")
	mustContain(t, page.Body, "Denied — the request will not go ahead.", "Denied by alice@example.test", "<q>not on a Friday</q>")

	// Another browser of the same person does not see this browser's flash.
	other := e.signIn(t, "alice@example.test")
	tok = e.decisionToken(t, b, "apr-2")
	do(t, b, "POST", e.ts.URL+"/ui/approvals/apr-2/approve", url.Values{"csrf": {tok}}, nil)
	mustNotContain(t, e.get(t, other, "/ui/approvals/apr-2").Body, "approvals in.")
}

func TestCSRFRefusals(t *testing.T) {
	e := newEnv(t, nil)
	now := e.clock.Now()
	e.add(pendingApproval("apr-1", now), pendingApproval("apr-2", now))
	alice := e.signIn(t, "alice@example.test")
	bob := e.signIn(t, "bob@example.test")
	aliceAgain := e.signIn(t, "alice@example.test")
	tok1 := e.decisionToken(t, alice, "apr-1")
	tok2 := e.decisionToken(t, alice, "apr-2")
	bobTok := e.decisionToken(t, bob, "apr-1")
	otherSessionTok := e.decisionToken(t, aliceAgain, "apr-1")
	logoutTok := logoutCSRF.FindStringSubmatch(e.get(t, alice, "/ui/").Body)[1]
	approve := e.ts.URL + "/ui/approvals/apr-1/approve"
	for name, tc := range map[string]struct {
		url  string
		form url.Values
		hdr  http.Header
		why  string
	}{
		"missing token":            {approve, url.Values{"reason": {"ok"}}, nil, "security token is missing"},
		"empty token":              {approve, url.Values{"csrf": {""}}, nil, "security token is missing"},
		"garbage token":            {approve, url.Values{"csrf": {"!!!"}}, nil, "does not belong"},
		"token of another request": {approve, url.Values{"csrf": {tok2}}, nil, "does not belong"},
		"token of another person":  {approve, url.Values{"csrf": {bobTok}}, nil, "does not belong"},
		"token of another session": {approve, url.Values{"csrf": {otherSessionTok}}, nil, "does not belong"},
		"token of another action":  {approve, url.Values{"csrf": {logoutTok}}, nil, "does not belong"},
		"token only in the query":  {approve + "?csrf=" + url.QueryEscape(tok1), url.Values{}, nil, "security token is missing"},
		"foreign origin":           {approve, url.Values{"csrf": {tok1}}, http.Header{"Origin": {"https://evil.example"}}, "from another site"},
		"null origin":              {approve, url.Values{"csrf": {tok1}}, http.Header{"Origin": {"null"}}, "from another site"},
		"cross-site fetch":         {approve, url.Values{"csrf": {tok1}}, http.Header{"Sec-Fetch-Site": {"cross-site"}}, "from another site"},
		"deny with foreign origin": {e.ts.URL + "/ui/approvals/apr-1/deny", url.Values{"csrf": {tok1}}, http.Header{"Origin": {"http://127.0.0.1:1"}}, "from another site"},
	} {
		r := do(t, alice, "POST", tc.url, tc.form, tc.hdr)
		if r.StatusCode != http.StatusForbidden {
			t.Errorf("%s: status %d", name, r.StatusCode)
		}
		mustContain(t, r.Body, "Nothing was changed", tc.why)
	}
	if calls := e.be.calls(); len(calls) != 0 {
		t.Fatalf("refused forms reached Decide: %+v", calls)
	}
	// Logout needs its token too, and a refused logout keeps the session.
	r := do(t, alice, "POST", e.ts.URL+"/ui/logout", url.Values{"csrf": {tok1}}, nil)
	wantStatus(t, r, http.StatusForbidden)
	wantStatus(t, e.get(t, alice, "/ui/"), http.StatusOK)
	// The genuine token still works afterwards.
	r = do(t, alice, "POST", approve, url.Values{"csrf": {tok1}}, http.Header{"Origin": {e.ts.URL}, "Sec-Fetch-Site": {"same-origin"}})
	wantStatus(t, r, http.StatusSeeOther)
}

func TestDecideErrorsShowUserMessageAndStatus(t *testing.T) {
	e := newEnv(t, nil)
	now := e.clock.Now()
	e.add(pendingApproval("apr-1", now))
	b := e.signIn(t, "alice@example.test")
	for _, tc := range []struct {
		err    error
		status int
		text   string
	}{
		{core.Errorf(core.KindPermissionDenied, "you are not in approver group admins"), 403, "you are not in approver group admins"},
		{core.Errorf(core.KindNotFound, "no such approval"), 404, "no such approval"},
		{core.Errorf(core.KindConflict, "you already voted"), 409, "you already voted"},
		{core.Errorf(core.KindBadRequest, "a reason is required to deny"), 400, "a reason is required to deny"},
		{core.Wrap(core.KindUnavailable, errors.New("disk full at /var/audit"), "the audit trail is unavailable"), 503, "the audit trail is unavailable"},
		{errors.New("sql: connection refused to db.internal"), 500, "something went wrong on our side"},
	} {
		e.be.decideErr = tc.err
		tok := e.decisionToken(t, b, "apr-1")
		r := do(t, b, "POST", e.ts.URL+"/ui/approvals/apr-1/deny", url.Values{"csrf": {tok}, "reason": {"kept <text>"}}, nil)
		if r.StatusCode != tc.status {
			t.Errorf("%v: status %d, want %d", tc.err, r.StatusCode, tc.status)
		}
		mustContain(t, r.Body, `role="alert"`, "Your decision to deny was not recorded: "+tc.text, "kept &lt;text&gt;</textarea>")
		mustNotContain(t, r.Body, "connection refused", "db.internal", "disk full")
	}
	// An expired request answers 410 Gone.
	e.be.mu.Lock()
	e.be.approvals[0].State = api.ApprovalExpired
	e.be.mu.Unlock()
	e.be.decideErr = core.Errorf(core.KindConflict, "the request has expired")
	tok := decisionCSRFFor(e, "apr-1", b, t)
	r := do(t, b, "POST", e.ts.URL+"/ui/approvals/apr-1/approve", url.Values{"csrf": {tok}}, nil)
	wantStatus(t, r, http.StatusGone)
	mustContain(t, r.Body, "the request has expired")
	// Too long a reason never reaches the backend.
	e.be.decideErr = nil
	n := len(e.be.calls())
	r = do(t, b, "POST", e.ts.URL+"/ui/approvals/apr-1/approve", url.Values{"csrf": {tok}, "reason": {strings.Repeat("x", maxReasonRunes+1)}}, nil)
	wantStatus(t, r, http.StatusBadRequest)
	if len(e.be.calls()) != n {
		t.Error("an over-long reason reached Decide")
	}
}

// decisionCSRFFor computes the token the page would carry, for a request
// whose page no longer shows the form.
func decisionCSRFFor(e *env, id string, b *http.Client, t *testing.T) string {
	t.Helper()
	u, _ := url.Parse(e.ts.URL)
	for _, ck := range b.Jar.Cookies(u) {
		if ck.Name == "qbroker_session" {
			var s session
			if err := open(e.c.keys.session, ck.Value, &s); err != nil {
				t.Fatal(err)
			}
			return e.c.csrfToken(s.ID, actionDecide, id)
		}
	}
	t.Fatal("no session cookie")
	return ""
}

func TestHostileStringsAreEscaped(t *testing.T) {
	const script = `<script>alert(1)</script>`
	const img = `"><img src=x onerror=alert(2)>`
	e := newEnv(t, func(c *Config) {
		c.Render = func(string, json.RawMessage) (Diagram, error) {
			return Diagram{}, errors.New(`bad gate <b onclick="x">`)
		}
	})
	now := e.clock.Now()
	a := pendingApproval("apr-x", now)
	a.Requester, a.ActingFor, a.Role, a.Owner, a.Team, a.Source = script, img, script, img, script, img
	a.Provider, a.Device, a.DeviceKind, a.Format, a.ProgramSHA256 = script, img, script, img, script
	a.Program = json.RawMessage(`"</pre><script>alert(3)</script>"`)
	a.Reasons, a.Rule, a.Group = []string{script, img}, script, img
	a.Votes = []api.Vote{{Approver: script, Decision: img, Reason: `<i>bold</i>` + script, Via: img, At: now}}
	d := a
	d.ID, d.State, d.Reason, d.JTI = "apr-y", api.ApprovalDenied, `<a href="javascript:alert(4)">click</a>`, script
	e.add(a, d)
	e.be.events = []audit.Event{{Time: now, Type: script, Agent: img, Action: script, Provider: script, Device: img, Decision: script, Reason: img, ApprovalID: script, ActingFor: img}}
	e.be.canDecide = func(Person, api.Approval) (bool, string) { return false, script }
	b := e.signIn(t, `mallory<script>@example.test`)
	for _, p := range []string{"/ui/", "/ui/approvals/apr-x", "/ui/approvals/apr-y", "/ui/audit"} {
		r := e.get(t, b, p)
		wantStatus(t, r, http.StatusOK)
		mustNotContain(t, r.Body, "<script", "<img", "<b onclick", "<i>", `<a href="javascript`, "alert(4)\">")
		mustContain(t, r.Body, "&lt;script&gt;")
	}
	detail := e.get(t, b, "/ui/approvals/apr-x").Body
	mustContain(t, detail, "The circuit could not be drawn: bad gate &lt;b onclick=&#34;x&#34;&gt;",
		`<pre class="program">&lt;/pre&gt;&lt;script&gt;alert(3)&lt;/script&gt;</pre>`,
		"You cannot decide on this request: &lt;script&gt;")
	// The audit page links the approval id path-escaped.
	mustContain(t, e.get(t, b, "/ui/audit").Body, `href="/ui/approvals/`+url.PathEscape(script)+`"`)
}

func TestDetailPage(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Render = func(format string, program json.RawMessage) (Diagram, error) {
			return Diagram{SVG: `<svg role="img" aria-label="circuit"><title>circuit</title></svg>`, Qubits: 2, Gates: 2, TwoQubit: 1, Depth: 2, Measurements: 0}, nil
		}
	})
	now := e.clock.Now()
	a := pendingApproval("apr-1", now)
	a.Votes = []api.Vote{{Approver: "bob@example.test", Decision: "approve", Reason: "fine by me", Via: "api", At: now}}
	expired := pendingApproval("apr-exp", now)
	expired.State, expired.Reason, expired.ExpiresAt = api.ApprovalExpired, "nobody approved in time", now.Add(-time.Hour)
	issued := pendingApproval("apr-iss", now)
	issued.State, issued.JTI, issued.Approved = api.ApprovalIssued, "jti-77", 1
	own := pendingApproval("apr-own", now)
	own.Requester = "alice@example.test"
	e.add(a, expired, issued, own)
	b := e.signIn(t, "alice@example.test")

	r := e.get(t, b, "/ui/approvals/apr-1")
	wantStatus(t, r, http.StatusOK)
	mustContain(t, r.Body,
		"<h1>Request apr-1</h1>", "agent-7", "carol@example.test", "researcher", "dana@example.test", "qml", "10.0.0.7",
		"ionq", "qpu.aria-1", "real quantum hardware (qpu)", "200", "qasm3", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		"$6.30", "$0.30", "$0.03", "hardware device needs approval", "admins",
		`<svg role="img" aria-label="circuit">`, "<dt>Two-qubit gates</dt><dd>1</dd>", "<dt>Depth</dt><dd>2</dd>",
		"<details class=\"program-text\">", "OPENQASM 3; qubit[2] q;",
		"bob@example.test", "fine by me",
		`<label for="reason">Reason</label>`, `<textarea id="reason" name="reason"`,
		`<button type="submit" class="approve">Approve</button>`, `formaction="/ui/approvals/apr-1/deny">Deny</button>`,
		"in 55 min")

	r = e.get(t, b, "/ui/approvals/apr-own")
	mustContain(t, r.Body, "You cannot decide on this request: you asked for this request.")
	mustNotContain(t, r.Body, "<textarea", "<button type=\"submit\" class=\"approve\"")

	r = e.get(t, b, "/ui/approvals/apr-exp")
	mustContain(t, r.Body, "state-expired", "Expired at", "1 h ago", "nobody approved in time")
	mustNotContain(t, r.Body, "<textarea")
	r = e.get(t, b, "/ui/approvals/apr-iss")
	mustContain(t, r.Body, "state-issued", "issued as job token <code>jti-77</code>")

	r = e.get(t, b, "/ui/approvals/missing")
	wantStatus(t, r, http.StatusNotFound)
	mustContain(t, r.Body, "Approval missing not found")
}

// TestPageStructure checks the accessibility basics axe-core will look for.
func TestPageStructure(t *testing.T) {
	e := newEnv(t, nil)
	now := e.clock.Now()
	e.add(pendingApproval("apr-1", now))
	e.be.events = []audit.Event{{Time: now, Type: "decision", Agent: "agent-7", Decision: "allow"}}
	b := e.signIn(t, "alice@example.test")
	anon := browser(t)
	h1 := regexp.MustCompile(`<h1[ >]`)
	headings := regexp.MustCompile(`<h([1-6])[ >]`)
	for _, rq := range []struct {
		c    *http.Client
		path string
	}{{b, "/ui/"}, {b, "/ui/approvals/apr-1"}, {b, "/ui/audit"}, {b, "/ui/nope"}, {anon, "/ui/login"}, {anon, "/ui/signed-out"}, {anon, "/ui/login/once?token=bad"}} {
		body := e.get(t, rq.c, rq.path).Body
		mustContain(t, body, `<html lang="en">`, "<title>", `<a class="skip-link" href="#main">`, `<main id="main"`, "<header", "</footer>")
		if n := len(h1.FindAllString(body, -1)); n != 1 {
			t.Errorf("%s: %d h1 elements", rq.path, n)
		}
		last := 0
		for _, m := range headings.FindAllStringSubmatch(body, -1) {
			lvl := int(m[1][0] - '0')
			if lvl > last+1 {
				t.Errorf("%s: heading h%d after h%d", rq.path, lvl, last)
			}
			last = lvl
		}
		if strings.Contains(body, "<th>") || strings.Contains(body, "<th ") && !strings.Contains(body, `<th scope="col"`) {
			t.Errorf("%s: table header without scope", rq.path)
		}
		if strings.Contains(body, "<script") || strings.Contains(body, " style=") {
			t.Errorf("%s: inline script or style", rq.path)
		}
	}
	mustContain(t, e.get(t, b, "/ui/").Body, "<nav aria-label=\"Main\">", `aria-current="page">Approvals`)
}

func TestProgramText(t *testing.T) {
	for in, want := range map[string]string{
		`"OPENQASM 3;\nh q;"`:    "OPENQASM 3;\nh q;",
		`{"qubits":2,"ops":[1]}`: "{\n  \"qubits\": 2,\n  \"ops\": [\n    1\n  ]\n}",
		`not json`:               "not json",
		``:                       "",
	} {
		if got := programText(json.RawMessage(in)); got != want {
			t.Errorf("programText(%q) = %q, want %q", in, got, want)
		}
	}
	big := programText(json.RawMessage(`"` + strings.Repeat("é", maxProgramShown) + `"`))
	if len(big) > maxProgramShown+32 || !strings.HasSuffix(big, "(truncated)") || !strings.Contains(big, "é") {
		t.Errorf("truncation: len %d", len(big))
	}
}

func TestFormatting(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ got, want string }{
		{rel(now, now.Add(12*time.Minute+30*time.Second)), "in 12 min"},
		{rel(now, now.Add(-3*time.Hour)), "3 h ago"},
		{rel(now, now.Add(90*time.Minute)), "in 1 h 30 min"},
		{rel(now, now.Add(20*time.Second)), "in less than a minute"},
		{rel(now, now.Add(-72*time.Hour)), "3 days ago"},
		{since(now, now.Add(-5*time.Minute)), "5 min"},
		{utc(now.In(time.FixedZone("x", 3600))), "2025-03-01 12:00 UTC"},
		{usd(6.3), "$6.30"}, {usd(0), "$0.00"}, {usd(0.03), "$0.03"}, {usd(0.00097), "$0.00097"}, {usd(1234.5), "$1234.50"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
