package server

// Harness for the end-to-end tests of this package: one `qbroker dev`
// (broker + gateway + IonQ emulator) per test, driven over real HTTP on
// loopback, with helpers that read the audit log and the store so a test can
// prove that a refused request changed nothing.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/token"
)

// Circuits used by the tests: a Bell pair, and a different two-qubit circuit.
const (
	bellInput  = `{"qubits":2,"gateset":"qis","circuit":[{"gate":"h","target":0},{"gate":"cnot","control":0,"target":1}]}`
	otherInput = `{"qubits":2,"gateset":"qis","circuit":[{"gate":"x","target":0},{"gate":"cnot","control":0,"target":1}]}`
)

// ionqBody is an IonQ v0.4 job submission.
func ionqBody(backend string, shots int, input string) string {
	return fmt.Sprintf(`{"type":"ionq.circuit.v1","backend":%q,"shots":%d,"input":%s}`, backend, shots, input)
}

// bell is the default submission: Bell pair, simulator, 100 shots.
func bell() string { return ionqBody("simulator", 100, bellInput) }

// env is one running dev stack.
type env struct {
	t       *testing.T
	d       *Dev
	ionqKey string
	hc      *http.Client
}

// newEnv starts a dev stack on ephemeral loopback ports with a known
// emulator key, closed when the test ends.
func newEnv(t *testing.T) *env {
	t.Helper()
	var kb [16]byte
	if _, err := rand.Read(kb[:]); err != nil {
		t.Fatal(err)
	}
	key := "ionq-test-" + hex.EncodeToString(kb[:])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := StartDev(ctx, DevOptions{
		Addr: "127.0.0.1:0", GatewayAddr: "127.0.0.1:0", SimAddr: "127.0.0.1:0",
		DataDir: t.TempDir(), IonQKey: key,
	})
	if err != nil {
		t.Fatalf("StartDev: %v", err)
	}
	e := &env{t: t, d: d, ionqKey: key, hc: &http.Client{Timeout: 20 * time.Second}}
	t.Cleanup(func() {
		e.hc.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

// result is an HTTP answer.
type result struct {
	status int
	header http.Header
	body   []byte
}

// msg returns the refusal message: Vault's {"errors":[...]} joined, or
// IonQ's {"message":...}.
func (r result) msg() string {
	var v struct {
		Errors  []string `json:"errors"`
		Message string   `json:"message"`
	}
	_ = json.Unmarshal(r.body, &v)
	if len(v.Errors) > 0 {
		return strings.Join(v.Errors, "; ")
	}
	return v.Message
}

func (r result) String() string { return fmt.Sprintf("%d %s", r.status, bytes.TrimSpace(r.body)) }

// do sends one request. hdr holds header pairs: name, value, name, value...
func (e *env) do(method, u, body string, hdr ...string) result {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read: %v", method, u, err)
	}
	return result{status: resp.StatusCode, header: resp.Header, body: b}
}

// broker calls the broker API with a token (none when tok is "").
func (e *env) broker(method, path, tok, body string) result {
	e.t.Helper()
	if tok == "" {
		return e.do(method, e.d.BrokerURL+path, body)
	}
	return e.do(method, e.d.BrokerURL+path, body, api.TokenHeader, tok)
}

// want fails the test unless r has status and its message matches every
// pattern (regular expressions).
func want(t *testing.T, what string, r result, status int, patterns ...string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: got %s, want status %d", what, r, status)
	}
	m := r.msg()
	if status >= 400 {
		t.Logf("%s: %d %s", what, r.status, m)
	}
	if status >= 400 && m == "" {
		t.Fatalf("%s: %d without a reason: %s", what, status, r)
	}
	for _, p := range patterns {
		if !regexp.MustCompile(p).MatchString(m) {
			t.Fatalf("%s: message %q does not match %q", what, m, p)
		}
	}
}

// decodeData unmarshals the "data" of a Vault envelope into v.
func decodeData(t *testing.T, r result, v any) {
	t.Helper()
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(r.body, &env); err != nil {
		t.Fatalf("decode %s: %v", r, err)
	}
	if err := json.Unmarshal(env.Data, v); err != nil {
		t.Fatalf("decode data of %s: %v", r, err)
	}
}

func loginBody(roleID, secretID string) string {
	b, _ := json.Marshal(api.AppRoleLoginRequest{RoleID: roleID, SecretID: secretID})
	return string(b)
}

// login tries an AppRole login.
func (e *env) login(roleID, secretID string) result {
	e.t.Helper()
	return e.broker(http.MethodPost, "/v1/auth/approle/login", "", loginBody(roleID, secretID))
}

// mustLogin logs in and returns the auth block.
func (e *env) mustLogin(roleID, secretID string) api.Auth {
	e.t.Helper()
	r := e.login(roleID, secretID)
	want(e.t, "login", r, http.StatusOK)
	var out struct {
		Auth *api.Auth `json:"auth"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil || out.Auth == nil || out.Auth.ClientToken == "" {
		e.t.Fatalf("login answer without a token: %s (%v)", r, err)
	}
	return *out.Auth
}

// agent logs in as the demo agent and returns its broker token.
func (e *env) agent() string {
	e.t.Helper()
	return e.mustLogin(e.d.RoleID, e.d.SecretID).ClientToken
}

// newSecretID mints a secret_id for role as root; extra is merged into the
// request body.
func (e *env) newSecretID(role, agent string, extra string) api.SecretIDData {
	e.t.Helper()
	body := fmt.Sprintf(`{"agent":%q%s}`, agent, extra)
	r := e.broker(http.MethodPost, "/v1/auth/approle/role/"+role+"/secret-id", e.d.RootToken, body)
	want(e.t, "secret-id", r, http.StatusOK)
	var d api.SecretIDData
	decodeData(e.t, r, &d)
	if d.SecretID == "" {
		e.t.Fatalf("secret-id answer without a secret: %s", r)
	}
	return d
}

// roleID reads a role's role_id as root.
func (e *env) roleID(role string) string {
	e.t.Helper()
	r := e.broker(http.MethodGet, "/v1/auth/approle/role/"+role+"/role-id", e.d.RootToken, "")
	want(e.t, "role-id", r, http.StatusOK)
	var d api.RoleIDData
	decodeData(e.t, r, &d)
	return d.RoleID
}

// putRole writes a role as root.
func (e *env) putRole(name, body string) {
	e.t.Helper()
	want(e.t, "put role "+name, e.broker(http.MethodPost, "/v1/sys/roles/"+name, e.d.RootToken, body), http.StatusOK)
}

// getRole reads a role as root and returns the raw data.
func (e *env) getRole(name string) string {
	e.t.Helper()
	r := e.broker(http.MethodGet, "/v1/sys/roles/"+name, e.d.RootToken, "")
	want(e.t, "get role "+name, r, http.StatusOK)
	var raw json.RawMessage
	decodeData(e.t, r, &raw)
	return string(raw)
}

func jobTokenBody(device string, shots int, digest string) string {
	b, _ := json.Marshal(api.JobTokenRequest{Provider: "ionq", Device: device, Shots: shots, ProgramSHA256: digest})
	return string(b)
}

// jobToken asks for a job token for role.
func (e *env) jobToken(tok, role, device string, shots int, digest string) result {
	e.t.Helper()
	return e.broker(http.MethodPost, "/v1/quantum/jobtoken/"+role, tok, jobTokenBody(device, shots, digest))
}

// mustJobToken gets a demo job token.
func (e *env) mustJobToken(tok, device string, shots int, digest string) api.JobTokenData {
	e.t.Helper()
	r := e.jobToken(tok, DemoRole, device, shots, digest)
	want(e.t, "job token", r, http.StatusOK)
	var d api.JobTokenData
	decodeData(e.t, r, &d)
	if d.Token == "" || d.JTI == "" {
		e.t.Fatalf("job token answer without a token: %s", r)
	}
	return d
}

// submitTo posts an IonQ job to a gateway with the job token as API key.
func (e *env) submitTo(gw, jobTok, body string) result {
	e.t.Helper()
	return e.do(http.MethodPost, gw+"/ionq/v0.4/jobs", body, "Authorization", "apiKey "+jobTok)
}

// submit posts an IonQ job to the dev gateway.
func (e *env) submit(jobTok, body string) result {
	e.t.Helper()
	return e.submitTo(e.d.GatewayURL, jobTok, body)
}

// mustSubmit submits and returns the job id.
func (e *env) mustSubmit(jobTok, body string) string {
	e.t.Helper()
	r := e.submit(jobTok, body)
	want(e.t, "submit", r, http.StatusCreated)
	var out struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil || out.ID == "" {
		e.t.Fatalf("submit answer without an id: %s", r)
	}
	return out.ID
}

// readJob reads a job at the gateway with a broker token; scheme is
// "apiKey" or "Bearer".
func (e *env) readJob(scheme, brokerTok, id string) result {
	e.t.Helper()
	return e.do(http.MethodGet, e.d.GatewayURL+"/ionq/v0.4/jobs/"+id, "", "Authorization", scheme+" "+brokerTok)
}

// simJob reads a job straight from the emulator with the real key.
func (e *env) simJob(id string) result {
	e.t.Helper()
	return e.do(http.MethodGet, e.d.SimURL+"/v0.4/jobs/"+id, "", "Authorization", "apiKey "+e.ionqKey)
}

// events returns the audit log so far.
func (e *env) events() []audit.Event {
	e.t.Helper()
	f, err := os.Open(filepath.Join(e.d.DataDir, "audit.log"))
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	var out []audit.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var ev audit.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			e.t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, ev)
	}
	if err := sc.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// count returns how many audit events match.
func (e *env) count(match func(audit.Event) bool) int {
	e.t.Helper()
	n := 0
	for _, ev := range e.events() {
		if match(ev) {
			n++
		}
	}
	return n
}

// redemptions counts successful job-token redemptions: every job that
// reaches the provider spends one, after the gateway's checks passed.
func (e *env) redemptions() int {
	e.t.Helper()
	return e.count(func(ev audit.Event) bool { return ev.Type == "redeem" && ev.Decision == audit.DecisionAllow })
}

// wantNotInAudit fails if any secret appears in the audit log verbatim
// (invariant 5: secrets appear there only as HMACs).
func (e *env) wantNotInAudit(secrets ...string) {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.d.DataDir, "audit.log"))
	if err != nil {
		e.t.Fatal(err)
	}
	for i, s := range secrets {
		if s != "" && bytes.Contains(b, []byte(s)) {
			e.t.Fatalf("secret #%d appears verbatim in the audit log", i)
		}
	}
}

// grant reads a job grant from the store.
func (e *env) grant(jti string) core.JobGrant {
	e.t.Helper()
	g, err := e.d.store.Grants().Get(context.Background(), jti)
	if err != nil {
		e.t.Fatalf("grant %s: %v", jti, err)
	}
	return g
}

// wantUnredeemed fails unless the grant behind jti is still unused.
func (e *env) wantUnredeemed(jti string) {
	e.t.Helper()
	if g := e.grant(jti); !g.RedeemedAt.IsZero() {
		e.t.Fatalf("grant %s was redeemed at %s by a refused request", jti, g.RedeemedAt)
	}
}

// claims returns valid claims for the demo agent, as the broker would
// sign them, with a fresh jti.
func (e *env) claims() token.Claims {
	now := time.Now()
	var b [12]byte
	_, _ = rand.Read(b[:])
	return token.Claims{
		Issuer: e.d.Broker.Issuer(), Audience: e.d.Broker.Audience(), Subject: "approle:demo:" + DemoAgent,
		IssuedAt: now, NotBefore: now, Expiry: now.Add(time.Minute), ID: hex.EncodeToString(b[:]),
		Role: DemoRole, Provider: "ionq", Device: "simulator", MaxShots: 100,
	}
}

// countingGateway starts a second in-process gateway (built exactly as the
// dev one, by NewInProcessGateway) whose upstream is a proxy in front of
// the dev emulator, so a test can count what the emulator was sent. The
// emulator has no job-listing API; this is the way to see "no job arrived".
func (e *env) countingGateway() (gwURL string, jobPosts func() int64) {
	e.t.Helper()
	sim, err := url.Parse(e.d.SimURL)
	if err != nil {
		e.t.Fatal(err)
	}
	var posts atomic.Int64
	rp := httputil.NewSingleHostReverseProxy(sim)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v0.4/jobs" {
			posts.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	e.t.Cleanup(proxy.Close)
	gw, err := NewInProcessGateway(e.d.Broker, proxy.URL, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	gs := httptest.NewServer(gw)
	e.t.Cleanup(gs.Close)
	return gs.URL, posts.Load
}

// assertDirHasNo fails if any file under dir (database, WAL, audit trail,
// keys) holds one of the secrets verbatim, hex- or base64-encoded.
func assertDirHasNo(t *testing.T, dir string, secrets ...string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for i, s := range secrets {
			if s == "" {
				continue
			}
			for _, enc := range []string{s, hex.EncodeToString([]byte(s)), base64.StdEncoding.EncodeToString([]byte(s)), base64.RawURLEncoding.EncodeToString([]byte(s))} {
				if bytes.Contains(b, []byte(enc)) {
					t.Fatalf("secret #%d is on disk in %s", i, filepath.Base(p))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
