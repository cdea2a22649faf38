package console

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/core"
)

// fakeBackend is an in-memory Backend that records every Decide call.
type fakeBackend struct {
	mu        sync.Mutex
	approvals []api.Approval // newest first
	events    []audit.Event
	decides   []decideCall
	listedBy  []Person
	decideErr error
	canDecide func(p Person, a api.Approval) (bool, string)
	now       func() time.Time
}

type decideCall struct {
	Person  Person
	ID      string
	Approve bool
	Reason  string
	Remote  string
}

func (f *fakeBackend) ListApprovals(_ context.Context, p Person, state string, limit int) ([]api.Approval, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listedBy = append(f.listedBy, p)
	var out []api.Approval
	for _, a := range f.approvals {
		if (state == "" || a.State == state) && len(out) < limit {
			out = append(out, a)
		}
	}
	return out, nil
}

func (f *fakeBackend) GetApproval(_ context.Context, _ Person, id string) (api.Approval, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.approvals {
		if a.ID == id {
			return a, nil
		}
	}
	return api.Approval{}, core.Errorf(core.KindNotFound, "approval %s not found", id)
}

func (f *fakeBackend) Decide(_ context.Context, p Person, id string, approve bool, reason, remote string) (api.Approval, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.decides = append(f.decides, decideCall{p, id, approve, reason, remote})
	if f.decideErr != nil {
		return api.Approval{}, f.decideErr
	}
	for i, a := range f.approvals {
		if a.ID != id {
			continue
		}
		d := "deny"
		if approve {
			d = "approve"
			a.Approved++
			if a.Approved >= a.Required {
				a.State = api.ApprovalApproved
			}
		} else {
			a.State, a.Reason = api.ApprovalDenied, reason
		}
		a.Votes = append(a.Votes, api.Vote{Approver: p.ID, Decision: d, Reason: reason, Via: "console", At: f.now()})
		f.approvals[i] = a
		return a, nil
	}
	return api.Approval{}, core.Errorf(core.KindNotFound, "approval %s not found", id)
}

func (f *fakeBackend) CanDecide(_ context.Context, p Person, a api.Approval) (bool, string) {
	if f.canDecide != nil {
		return f.canDecide(p, a)
	}
	if p.ID == a.Requester {
		return false, "you asked for this request"
	}
	return true, ""
}

func (f *fakeBackend) RecentEvents(_ context.Context, _ Person, limit int) ([]audit.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events[:min(limit, len(f.events))]), nil
}

func (f *fakeBackend) calls() []decideCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.decides)
}

var _ Backend = (*fakeBackend)(nil)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var testKey = []byte("0123456789abcdef0123456789abcdef-test-key")

func pendingApproval(id string, now time.Time) api.Approval {
	return api.Approval{
		ID: id, State: api.ApprovalPending,
		Requester: "agent-7", ActingFor: "carol@example.test", Role: "researcher", Owner: "dana@example.test", Team: "qml", Source: "10.0.0.7",
		Action: "SubmitJob", Provider: "ionq", Device: "qpu.aria-1", DeviceKind: "qpu", Shots: 200,
		Program: json.RawMessage(`"OPENQASM 3; qubit[2] q; h q[0]; cx q[0], q[1];"`), Format: "qasm3",
		ProgramSHA256:    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		EstimatedCostUSD: 6.3, Price: &api.DevicePrice{PerTaskUSD: 0.3, PerShotUSD: 0.03},
		Reasons: []string{"hardware device needs approval"}, Rule: "hardware", Required: 1, Group: "admins",
		CreatedAt: now.Add(-5 * time.Minute), ExpiresAt: now.Add(55 * time.Minute),
	}
}

type env struct {
	c     *Console
	ts    *httptest.Server
	be    *fakeBackend
	clock *clock
}

// newEnv starts a console with DevLogin (and the given OIDC config) on a
// loopback test server. mod may change the config before New.
func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	be := &fakeBackend{now: clk.Now}
	ts := httptest.NewUnstartedServer(nil)
	base, _ := url.Parse("http://" + ts.Listener.Addr().String())
	cfg := Config{Backend: be, BaseURL: base, DevLogin: true, SessionKey: testKey, Now: clk.Now}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ui/", c.Handler())
	ts.Config.Handler = mux
	ts.Start()
	t.Cleanup(ts.Close)
	return &env{c: c, ts: ts, be: be, clock: clk}
}

// browser is a client with a cookie jar that does not follow redirects.
func browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

// signIn signs a new browser in as id with a one-time link.
func (e *env) signIn(t *testing.T, id string) *http.Client {
	t.Helper()
	link, err := e.c.LoginLink(Person{ID: id, Name: strings.Split(id, "@")[0]}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	b := browser(t)
	resp := do(t, b, http.MethodGet, link, nil, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/" {
		t.Fatalf("login link: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return b
}

type response struct {
	*http.Response
	Body string
}

func do(t *testing.T, c *http.Client, method, u string, form url.Values, hdr http.Header) response {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{Response: resp, Body: string(b)}
}

func (e *env) get(t *testing.T, c *http.Client, path string) response {
	t.Helper()
	return do(t, c, http.MethodGet, e.ts.URL+path, nil, nil)
}

var decisionCSRF = regexp.MustCompile(`class="decision-form">\s*<input type="hidden" name="csrf" value="([^"]+)"`)
var logoutCSRF = regexp.MustCompile(`action="/ui/logout">\s*<input type="hidden" name="csrf" value="([^"]+)"`)

// decisionToken reads the CSRF token of the decision form on approval id.
func (e *env) decisionToken(t *testing.T, c *http.Client, id string) string {
	t.Helper()
	r := e.get(t, c, "/ui/approvals/"+id)
	m := decisionCSRF.FindStringSubmatch(r.Body)
	if r.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("no decision form on %s (%d):\n%s", id, r.StatusCode, r.Body)
	}
	return m[1]
}

func mustContain(t *testing.T, body string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(body, s) {
			t.Errorf("page lacks %q", s)
		}
	}
}

func mustNotContain(t *testing.T, body string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if strings.Contains(body, s) {
			t.Errorf("page contains %q", s)
		}
	}
}

func wantStatus(t *testing.T, r response, want int) {
	t.Helper()
	if r.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d\n%s", r.Request.Method, r.Request.URL.Path, r.StatusCode, want, r.Body)
	}
}

func (e *env) add(as ...api.Approval) {
	e.be.mu.Lock()
	defer e.be.mu.Unlock()
	e.be.approvals = append(e.be.approvals, as...)
}

func cookieNamed(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}
