package e2e

// Issue #3: qbroker against a real, separately running OpenID provider —
// the certified npm oidc-provider (scripts/oidc-provider, pinned by its
// package-lock.json) — with RFC 9068 JWT access tokens from the
// client-credentials grant and from the device flow (RFC 8628), scripted end
// to end over HTTP.
//
// `make test` installs the provider (scripts/oidc-provider/install.sh) and
// sets QBROKER_OIDC_PROVIDER to its directory; plain `go test ./...` has no
// Node dependency and skips these tests.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Fixed by scripts/oidc-provider/server.mjs.
const (
	opClient      = "quantum-agent"
	opOtherClient = "other-agent"
	opAudience    = "https://broker.test"
	opOtherAud    = "https://other.test"
	opScope       = "quantum"
)

var reOPListening = regexp.MustCompile(`(?m)^listening on (http://127\.0\.0\.1:\d+)$`)

// oidcProviderDir returns $QBROKER_OIDC_PROVIDER, skipping the test when it
// is unset. When it is set the provider must be installed: no skip then.
func oidcProviderDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("QBROKER_OIDC_PROVIDER")
	if dir == "" {
		t.Skip("QBROKER_OIDC_PROVIDER is unset: `make test` installs the npm oidc-provider (scripts/oidc-provider/install.sh) and runs this test against it")
	}
	for _, f := range []string{"server.mjs", "node_modules/oidc-provider/package.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("QBROKER_OIDC_PROVIDER=%s: %v (run scripts/oidc-provider/install.sh)", dir, err)
		}
	}
	return dir
}

// startOP runs `node server.mjs 0` in dir (a free port chosen by the
// kernel) and returns the issuer URL it printed. The process is killed in
// t.Cleanup and its output logged if the test failed.
func startOP(t *testing.T, dir, clientSecret string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("QBROKER_OIDC_PROVIDER is set but node is not on PATH: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, node, "server.mjs", "0")
	cmd.Dir = dir
	cmd.Env = baseEnv("OIDC_CLIENT_SECRET=" + clientSecret)
	cmd.WaitDelay = stopTimeout
	p := &proc{t: t, name: "oidc-provider", cmd: cmd, stdout: newSyncBuf(), stderr: newSyncBuf(), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start oidc-provider: %v", err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-p.done
		if t.Failed() {
			t.Logf("oidc-provider stdout:\n%s\noidc-provider stderr:\n%s", p.stdout, p.stderr)
		}
	})
	return p.waitLine(reOPListening)[1]
}

// oidcStack is a provider, an IonQ emulator and a qbroker server (with its
// in-process gateway) trusting the provider, with broker role "e2e" and
// the IonQ credential provisioned.
type oidcStack struct {
	op, broker, gw, root, dataDir string
	clientSecret, ionqKey         string
	srv                           *proc
}

func startOIDCStack(t *testing.T) *oidcStack {
	t.Helper()
	dir := oidcProviderDir(t)
	s := &oidcStack{clientSecret: randomSecret(t, "op-client-"), ionqKey: randomSecret(t, "ionq-e2e-oidc-")}
	s.op = startOP(t, dir, s.clientSecret)
	simURL := startSim(t, s.ionqKey)

	cfgDir := t.TempDir()
	s.dataDir = filepath.Join(t.TempDir(), "data")
	polFile := filepath.Join(cfgDir, "e2e.cedar")
	cfgFile := filepath.Join(cfgDir, "qbroker.yaml")
	if err := os.WriteFile(polFile, []byte(e2ePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
data_dir: %s
gateway:
  listen: 127.0.0.1:0
providers:
  ionq:
    base_url: %s
policies:
  - %s
auth:
  jwt:
    issuers:
      - name: testop
        issuer: %s
        discovery_url: %s
    roles:
      - name: agent-role
        issuer: testop
        bound_audiences: [%s]
        bound_claims: {client_id: [%s]}
        claim_mappings: {client_id: client}
        broker_role: e2e
`, s.dataDir, simURL, polFile, s.op, s.op, opAudience, opClient)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s.srv = startProc(t, "qbroker server", baseEnv(), "server", "--config", cfgFile)
	s.root = s.srv.waitLine(reRootToken)[1]
	s.broker = s.srv.waitLine(reServerURL)[1]
	s.gw = s.srv.waitLine(reGatewayURL)[1]
	provision(t, adminEnv(s.broker, s.root), "e2e", "e2e-approle-agent", s.ionqKey)
	return s
}

// opToken asks the provider's token endpoint for an access token with the
// client-credentials grant for resource, authenticating with HTTP basic.
func (s *oidcStack) opToken(t *testing.T, clientID, resource string) string {
	t.Helper()
	status, body := opPost(t, http.DefaultClient, s.op+"/token", clientID, s.clientSecret, url.Values{
		"grant_type": {"client_credentials"}, "resource": {resource}, "scope": {opScope},
	})
	if status != http.StatusOK {
		t.Fatalf("client_credentials token for %s (%s): status %d: %s", clientID, resource, status, body)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		Scope       string `json:"scope"`
	}
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		t.Fatalf("token response %s: %v", body, err)
	}
	if tr.Scope != opScope {
		t.Errorf("token scope %q, want %q", tr.Scope, opScope)
	}
	return tr.AccessToken
}

// opPost posts a form to the provider; with clientID set it authenticates
// with HTTP basic. It returns the status and body.
func opPost(t *testing.T, hc *http.Client, u, clientID, secretValue string, form url.Values) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if clientID != "" {
		req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secretValue))
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: reading body: %v", u, err)
	}
	return resp.StatusCode, b
}

// jwtHeaderClaims decodes (without verifying) a compact JWT's header and
// claims.
func jwtHeaderClaims(t *testing.T, raw string) (map[string]any, map[string]any) {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("access token is not a compact JWS (%d parts)", len(parts))
	}
	var out [2]map[string]any
	for i := range out {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("JWT part %d: %v", i, err)
		}
		if err := json.Unmarshal(b, &out[i]); err != nil {
			t.Fatalf("JWT part %d: %v", i, err)
		}
	}
	return out[0], out[1]
}

// oidcLoginAnswer is the broker's answer to an OIDC login.
type oidcLoginAnswer struct {
	Auth struct {
		ClientToken string            `json:"client_token"`
		Metadata    map[string]string `json:"metadata"`
	} `json:"auth"`
	Errors []string `json:"errors"`
}

// oidcLogin is the article's request: POST /v1/auth/oidc/login
// {"role","jwt"}. It returns the status and the decoded answer.
func (a *agentHTTP) oidcLogin(broker, role, jwt string) (int, oidcLoginAnswer) {
	a.t.Helper()
	body, _ := json.Marshal(map[string]string{"role": role, "jwt": jwt})
	status, b := a.do(http.MethodPost, broker+"/v1/auth/oidc/login", body)
	var ans oidcLoginAnswer
	if err := json.Unmarshal(b, &ans); err != nil {
		a.t.Fatalf("oidc login answer %q: %v", b, err)
	}
	return status, ans
}

// expectRefused logs in with jwt and fails unless the broker answers 400
// with an error containing reason.
func (a *agentHTTP) expectRefused(broker, what, jwt, reason string) {
	a.t.Helper()
	status, ans := a.oidcLogin(broker, "agent-role", jwt)
	if status != http.StatusBadRequest {
		a.t.Errorf("%s: login status %d, want 400 (errors %v)", what, status, ans.Errors)
		return
	}
	if ans.Auth.ClientToken != "" {
		a.t.Errorf("%s: refused login still returned a client token", what)
	}
	got := strings.Join(ans.Errors, "; ")
	if !strings.Contains(got, reason) {
		a.t.Errorf("%s: errors %q, want the reason %q", what, got, reason)
	}
	a.t.Logf("%s: refused: %s", what, got)
}

// A client-credentials JWT from the real provider logs in as the article's
// agent does; the broker token it gets submits a job through the gateway.
// Tokens for another audience, of another client, or tampered are refused.
func TestOIDCProviderClientCredentials(t *testing.T) {
	t.Parallel()
	s := startOIDCStack(t)
	a := newAgentHTTP(t)

	jwt := s.opToken(t, opClient, opAudience)
	hdr, claims := jwtHeaderClaims(t, jwt)
	if hdr["alg"] != "RS256" || hdr["typ"] != "at+jwt" || hdr["kid"] == nil {
		t.Errorf("provider's JWT header %v, want RS256 at+jwt with a kid", hdr)
	}
	if claims["iss"] != s.op || claims["aud"] != opAudience || claims["client_id"] != opClient || claims["sub"] != opClient {
		t.Errorf("provider's JWT claims %v, want iss %s, aud %s, client_id and sub %s", claims, s.op, opAudience, opClient)
	}

	status, ans := a.oidcLogin(s.broker, "agent-role", jwt)
	if status != http.StatusOK {
		t.Fatalf("oidc login with the provider's JWT: status %d: %v", status, ans.Errors)
	}
	brokerTok := ans.Auth.ClientToken
	if !strings.HasPrefix(brokerTok, "qbt_") {
		t.Fatalf("oidc login returned client_token %q, want a qbt_ token", redact(brokerTok))
	}
	if got := ans.Auth.Metadata["client"]; got != opClient {
		t.Errorf("auth.metadata.client = %q, want %q (metadata %v)", got, opClient, ans.Auth.Metadata)
	}
	var self struct {
		Data struct {
			EntityID string `json:"entity_id"`
		} `json:"data"`
	}
	a.expect(http.StatusOK, &self, http.MethodGet, s.broker+"/v1/auth/token/lookup-self", nil, "X-Vault-Token: "+brokerTok)
	if want := "oidc:testop:" + opClient; self.Data.EntityID != want {
		t.Errorf("lookup-self entity_id %q, want %q", self.Data.EntityID, want)
	}

	// The broker token gets a job token for its role (e2e) and the job runs.
	jt := a.jobToken(s.broker, brokerTok, "e2e")
	st, id := a.submit(s.gw, jt)
	if st != http.StatusCreated {
		t.Fatalf("submit with the OIDC agent's job token: status %d, want 201", st)
	}
	assertBell(t, a.counts(s.gw, brokerTok, id))
	if st, _ := a.submit(s.gw, jt); st != http.StatusUnauthorized {
		t.Errorf("replayed job token: status %d, want 401", st)
	}

	// Refusals. Each is a real, validly signed token from the same issuer
	// unless said otherwise.
	other := s.opToken(t, opClient, opOtherAud)
	if _, c := jwtHeaderClaims(t, other); c["aud"] != opOtherAud {
		t.Fatalf("token for %s has aud %v", opOtherAud, c["aud"])
	}
	a.expectRefused(s.broker, "token for another audience", other, "audience")
	a.expectRefused(s.broker, "token of another client", s.opToken(t, opOtherClient, opAudience), "claim")
	parts := strings.Split(jwt, ".")
	forged := map[string]any{}
	for k, v := range claims {
		forged[k] = v
	}
	forged["client_id"], forged["sub"] = opClient, "admin"
	fb, _ := json.Marshal(forged)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(fb) + "." + parts[2]
	a.expectRefused(s.broker, "tampered claims", tampered, "signature")
	if st, ans := a.oidcLogin(s.broker, "no-such-role", jwt); st != http.StatusBadRequest || ans.Auth.ClientToken != "" {
		t.Errorf("login to an unknown JWT role: status %d, want 400", st)
	}

	secrets := []secret{{"IonQ API key", s.ionqKey}, {"provider client secret", s.clientSecret}, {"broker token", brokerTok}}
	a.assertNoLeak(secret{"IonQ API key", s.ionqKey}, secret{"provider client secret", s.clientSecret})
	assertAbsent(t, "server stderr (logs)", []byte(s.srv.stderr.String()), append(secrets, secret{"provider JWT", jwt})...)
	s.srv.terminate()
	assertDirClean(t, s.dataDir, append(secrets, secret{"provider JWT", jwt})...)
}

// A form in one of the provider's HTML pages: where it posts and its
// hidden inputs.
type htmlForm struct {
	action string
	fields url.Values
}

var (
	reFormAction = regexp.MustCompile(`<form[^>]*\baction="([^"]*)"`)
	reHidden     = regexp.MustCompile(`<input[^>]*type="hidden"[^>]*name="([^"]*)"[^>]*value="([^"]*)"`)
)

func parseForm(t *testing.T, page []byte) htmlForm {
	t.Helper()
	m := reFormAction.FindSubmatch(page)
	if m == nil {
		t.Fatalf("no form in the provider's page:\n%s", page)
	}
	f := htmlForm{action: html.UnescapeString(string(m[1])), fields: url.Values{}}
	for _, h := range reHidden.FindAllSubmatch(page, -1) {
		f.fields.Set(html.UnescapeString(string(h[1])), html.UnescapeString(string(h[2])))
	}
	return f
}

// browser is the end user's side of the device flow: a cookie jar and
// redirects followed, as a browser would.
type browser struct {
	t  *testing.T
	hc *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, hc: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

func (b *browser) get(u string) []byte {
	b.t.Helper()
	resp, err := b.hc.Get(u)
	if err != nil {
		b.t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.t.Fatalf("GET %s: status %d (%v):\n%s", u, resp.StatusCode, err, body)
	}
	return body
}

// submit posts form f (its hidden fields plus extra) and returns the page
// at the end of the redirects.
func (b *browser) submit(f htmlForm, extra map[string]string) []byte {
	b.t.Helper()
	vals := url.Values{}
	for k, v := range f.fields {
		vals[k] = v
	}
	for k, v := range extra {
		vals.Set(k, v)
	}
	status, body := opPost(b.t, b.hc, f.action, "", "", vals)
	if status != http.StatusOK {
		b.t.Fatalf("POST %s: status %d:\n%s", f.action, status, body)
	}
	return body
}

// The device flow (RFC 8628) against the real provider, both sides scripted:
// the device asks for a code and polls; the user opens the verification
// URL, confirms the code and signs in (devInteractions: any password). The
// resulting JWT names the user, and it logs in to qbroker: its aud is the
// broker's and its client_id is the bound client.
func TestOIDCProviderDeviceFlow(t *testing.T) {
	t.Parallel()
	s := startOIDCStack(t)
	const user = "alice-device-user"

	// Device: ask for a user code.
	status, body := opPost(t, http.DefaultClient, s.op+"/device/auth", opClient, s.clientSecret, url.Values{
		"scope": {"openid " + opScope}, "resource": {opAudience},
	})
	if status != http.StatusOK {
		t.Fatalf("device authorization: status %d: %s", status, body)
	}
	var da struct {
		DeviceCode              string `json:"device_code"`
		UserCode                string `json:"user_code"`
		VerificationURIComplete string `json:"verification_uri_complete"`
	}
	if err := json.Unmarshal(body, &da); err != nil || da.DeviceCode == "" || da.UserCode == "" || da.VerificationURIComplete == "" {
		t.Fatalf("device authorization answer %s: %v", body, err)
	}
	poll := func() (int, []byte) {
		return opPost(t, http.DefaultClient, s.op+"/token", opClient, s.clientSecret, url.Values{
			"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode},
		})
	}
	if st, b := poll(); st != http.StatusBadRequest || !strings.Contains(string(b), "authorization_pending") {
		t.Fatalf("poll before the user acted: status %d %s, want 400 authorization_pending", st, b)
	}

	// User: open the link (a self-submitting form), confirm the code, sign in.
	br := newBrowser(t)
	page := br.submit(parseForm(t, br.get(da.VerificationURIComplete)), nil)
	if !strings.Contains(string(page), da.UserCode) {
		t.Fatalf("confirmation page does not show the user code %s:\n%s", da.UserCode, page)
	}
	confirm := parseForm(t, page)
	if confirm.fields.Get("confirm") != "yes" {
		t.Fatalf("confirmation form fields %v, want confirm=yes", confirm.fields)
	}
	login := parseForm(t, br.submit(confirm, nil)) // 303 → /interaction/<uid>
	if login.fields.Get("prompt") != "login" {
		t.Fatalf("sign-in form fields %v, want prompt=login", login.fields)
	}
	if page := br.submit(login, map[string]string{"login": user, "password": "any-password"}); !strings.Contains(string(page), "Sign-in Success") {
		t.Fatalf("after signing in, the provider's page is not Sign-in Success:\n%s", page)
	}

	// Device: the next poll gets the JWT; the device code is then spent.
	st, b := poll()
	if st != http.StatusOK {
		t.Fatalf("poll after the user signed in: status %d: %s", st, b)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(b, &tr); err != nil || tr.AccessToken == "" {
		t.Fatalf("device token answer %s: %v", b, err)
	}
	if st, _ := poll(); st != http.StatusBadRequest {
		t.Errorf("device code redeemed twice: status %d, want 400", st)
	}
	hdr, claims := jwtHeaderClaims(t, tr.AccessToken)
	if hdr["typ"] != "at+jwt" || hdr["alg"] != "RS256" {
		t.Errorf("device-flow JWT header %v, want RS256 at+jwt", hdr)
	}
	if claims["sub"] != user {
		t.Errorf("device-flow JWT sub %v, want the user who signed in, %q", claims["sub"], user)
	}
	if claims["aud"] != opAudience || claims["client_id"] != opClient || claims["iss"] != s.op {
		t.Fatalf("device-flow JWT claims %v, want aud %s, client_id %s, iss %s", claims, opAudience, opClient, s.op)
	}

	// Its aud and client_id fit agent-role, so it logs in; the agent is the
	// user (user_claim defaults to sub), the client is the mapped claim.
	a := newAgentHTTP(t)
	status, ans := a.oidcLogin(s.broker, "agent-role", tr.AccessToken)
	if status != http.StatusOK {
		t.Fatalf("oidc login with the device-flow JWT: status %d: %v", status, ans.Errors)
	}
	if ans.Auth.Metadata["client"] != opClient || ans.Auth.Metadata["subject"] != user {
		t.Errorf("device-flow login metadata %v, want client %s and subject %s", ans.Auth.Metadata, opClient, user)
	}
	var self struct {
		Data struct {
			EntityID string `json:"entity_id"`
		} `json:"data"`
	}
	a.expect(http.StatusOK, &self, http.MethodGet, s.broker+"/v1/auth/token/lookup-self", nil, "X-Vault-Token: "+ans.Auth.ClientToken)
	if want := "oidc:testop:" + user; self.Data.EntityID != want {
		t.Errorf("lookup-self entity_id %q, want %q", self.Data.EntityID, want)
	}
	jt := a.jobToken(s.broker, ans.Auth.ClientToken, "e2e")
	if st, _ := a.submit(s.gw, jt); st != http.StatusCreated {
		t.Errorf("submit with the device-flow agent's job token: status %d, want 201", st)
	}
	a.assertNoLeak(secret{"IonQ API key", s.ionqKey}, secret{"provider client secret", s.clientSecret})
}
