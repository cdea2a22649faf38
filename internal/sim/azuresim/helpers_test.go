package azuresim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const (
	testTenant    = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	testClient    = "0b6b2c6d-1b2a-4c1e-9a3e-5f6a7b8c9d0e"
	testSecret    = "s3cr3t~value-0123456789abcdef"
	testSub       = "00000000-0000-0000-0000-000000000001"
	testRG        = "my-resource-group"
	testWorkspace = "my-workspace"
	testIssuer    = "https://token.actions.githubusercontent.com"
	testSubject   = "repo:qbroker/qbroker:ref:refs/heads/main"
	testKID       = "fed-key-1"
	apiV          = "api-version=" + DefaultAPIVersion
)

const bellIonQ = `{"qubits":2,"circuit":[{"gate":"h","target":0},{"gate":"cnot","control":0,"target":1}]}`

const bellQASM2 = `OPENQASM 2.0;
include "qelib1.inc";
// a Bell pair
qreg q[2];
creg m[2];
h q[0];
cx q[0], q[1];
measure q -> m;
`

// clock is a settable clock for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type harness struct {
	t     *testing.T
	e     *Emulator
	srv   *httptest.Server
	clock *clock
	fed   *ecdsa.PrivateKey // the federated issuer's signing key
}

func testConfig(t *testing.T) (Config, *ecdsa.PrivateKey) {
	t.Helper()
	fed, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		TenantID: testTenant, ClientID: testClient, ClientSecret: testSecret,
		FederatedIssuer: testIssuer, FederatedSubject: testSubject,
		FederatedKeys:  &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &fed.PublicKey, KeyID: testKID, Algorithm: string(jose.ES256), Use: "sig"}}},
		SubscriptionID: testSub, ResourceGroup: testRG, Workspace: testWorkspace,
		StepDelay: 2 * time.Millisecond,
	}, fed
}

func newHarness(t *testing.T, mutate func(*Config)) *harness {
	t.Helper()
	cfg, fed := testConfig(t)
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	cfg.Now = clk.now
	if mutate != nil {
		mutate(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e)
	t.Cleanup(func() { srv.Close(); e.Close() })
	return &harness{t: t, e: e, srv: srv, clock: clk, fed: fed}
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

// send sends a request with the given headers (name → value).
func (h *harness) send(method, target string, body string, headers map[string]string) response {
	h.t.Helper()
	if !strings.HasPrefix(target, "http") {
		target = h.srv.URL + target
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, target, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{code: resp.StatusCode, header: resp.Header, body: b}
}

// tokenRequest posts form to the tenant's token endpoint.
func (h *harness) tokenRequest(tenant string, form url.Values) response {
	h.t.Helper()
	return h.send("POST", "/"+tenant+"/oauth2/v2.0/token", form.Encode(),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
}

func secretForm(scope string) url.Values {
	return url.Values{"grant_type": {"client_credentials"}, "client_id": {testClient},
		"client_secret": {testSecret}, "scope": {scope}}
}

// token gets an access token for scope with the client secret.
func (h *harness) token(scope string) string {
	h.t.Helper()
	r := h.tokenRequest(testTenant, secretForm(scope))
	if r.code != http.StatusOK {
		h.t.Fatalf("token: %d %s", r.code, r.body)
	}
	return r.json(h.t)["access_token"].(string)
}

// assertion mints an external token signed with key (kid testKID).
func assertion(t *testing.T, key *ecdsa.PrivateKey, c jwt.Claims) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", testKID))
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (h *harness) goodAssertionClaims() jwt.Claims {
	now := h.clock.now()
	return jwt.Claims{Issuer: testIssuer, Subject: testSubject, Audience: jwt.Audience{DefaultFederatedAudience},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(10 * time.Minute))}
}

func assertionForm(a string) url.Values {
	return url.Values{"grant_type": {"client_credentials"}, "client_id": {testClient}, "scope": {QuantumScope},
		"client_assertion_type": {ClientAssertionType}, "client_assertion": {a}}
}

// ws sends a workspace request: path is relative to the workspace prefix
// and query is appended as is.
func (h *harness) ws(method, path, query, token, body string) response {
	h.t.Helper()
	headers := map[string]string{}
	if token != "" {
		headers["Authorization"] = "Bearer " + token
	}
	if body != "" {
		headers["Content-Type"] = "application/json"
	}
	target := h.e.WorkspacePath() + path
	if query != "" {
		target += "?" + query
	}
	return h.send(method, target, body, headers)
}

// sasURI asks the workspace for a SAS URI.
func (h *harness) sasURI(token, containerName, blobName string) string {
	h.t.Helper()
	body := `{"containerName":"` + containerName + `"`
	if blobName != "" {
		body += `,"blobName":"` + blobName + `"`
	}
	r := h.ws("POST", "/storage/sasUri", apiV, token, body+"}")
	if r.code != http.StatusOK {
		h.t.Fatalf("sasUri: %d %s", r.code, r.body)
	}
	return r.json(h.t)["sasUri"].(string)
}

// putBlob uploads data to a blob SAS URL.
func (h *harness) putBlob(blobURL, data string) response {
	h.t.Helper()
	return h.send("PUT", blobURL, data, map[string]string{"x-ms-blob-type": "BlockBlob", "x-ms-blob-content-type": "application/json"})
}

// withBlob returns the container SAS URL with blob appended to its path.
func withBlob(containerURL, blob string) string {
	u, _ := url.Parse(containerURL)
	u.Path += "/" + blob
	return u.String()
}

// stage uploads input for a new job id and returns the id and container URI.
func (h *harness) stage(token, input string) (string, string) {
	h.t.Helper()
	id := newUUID()
	cont := h.sasURI(token, "job-"+id, "")
	if r := h.putBlob(withBlob(cont, "inputData"), input); r.code != http.StatusCreated {
		h.t.Fatalf("upload: %d %s", r.code, r.body)
	}
	return id, cont
}

func jobBody(target, provider, format, containerURI, params string) string {
	b, _ := json.Marshal(map[string]any{
		"itemType": "Job", "name": "bell", "providerId": provider, "target": target,
		"containerUri": containerURI, "inputDataFormat": format,
		"inputParams": json.RawMessage(params), "tags": []string{"tenant:t1"},
	})
	return string(b)
}

// submit stages input and creates a job; it fails the test unless 201.
func (h *harness) submit(token, target, provider, format, input, params string) map[string]any {
	h.t.Helper()
	id, cont := h.stage(token, input)
	r := h.ws("PUT", "/jobs/"+id, apiV, token, jobBody(target, provider, format, cont, params))
	if r.code != http.StatusCreated {
		h.t.Fatalf("create: %d %s", r.code, r.body)
	}
	return r.json(h.t)
}

// wait polls a job until it is terminal.
func (h *harness) wait(token, id string) map[string]any {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		r := h.ws("GET", "/jobs/"+id, apiV, token, "")
		if r.code != http.StatusOK {
			h.t.Fatalf("get: %d %s", r.code, r.body)
		}
		j := r.json(h.t)
		if IsTerminal(j["status"].(string)) {
			return j
		}
		time.Sleep(2 * time.Millisecond)
	}
	h.t.Fatalf("job %s did not finish", id)
	return nil
}

// apiCode returns the Azure error code of a workspace refusal.
func apiCode(t *testing.T, r response) string {
	t.Helper()
	m := r.json(t)
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object: %s", r.body)
	}
	if r.header.Get("x-ms-error-code") != e["code"] {
		t.Errorf("x-ms-error-code %q != body code %v", r.header.Get("x-ms-error-code"), e["code"])
	}
	return e["code"].(string)
}

func (e *Emulator) history(id string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if j, ok := e.jobs[id]; ok {
		return append([]string(nil), j.history...)
	}
	return nil
}

func (e *Emulator) jobCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.jobs)
}

func newTextLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// syncBuffer is a strings.Builder safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
