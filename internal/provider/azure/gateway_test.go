package azure

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/circuit"
	"github.com/qbroker/qbroker/internal/provider"
	"github.com/qbroker/qbroker/internal/sim/azuresim"
)

// jobToken is what the gateway's verifier reads from a job token.
type jobToken struct {
	jti, agent, provider, device string
	maxShots                     int
	digest                       string
	expires                      time.Time
}

// testGateway drives the Adapter the way the package documentation tells
// a gateway to (and the way front.go drives any provider.Adapter):
// UploadRoute first; Grant after verifying, not redeeming, the job token;
// ServeStaging with no token; then Route; a submission is checked against
// its token before the token is redeemed, and every upstream call is Send
// with the broker-minted credential.
type testGateway struct {
	t       *testing.T
	a       *Adapter
	sim     *sim
	devices map[string]string // catalogue name → target id
	rt      *recordingRT

	mu       sync.Mutex
	tokens   map[string]jobToken // raw job token → claims
	redeemed map[string]bool     // by jti
	brokers  map[string]string   // broker token → agent
	jobs     map[string]string   // job id → owning agent
	cred     provider.Credential
}

func newTestGateway(t *testing.T, s *sim) (*testGateway, string) {
	t.Helper()
	a := newTestAdapter(t, s.url, func(c *Config) { c.PublicURL = "" })
	g := &testGateway{t: t, a: a, sim: s, devices: map[string]string{"ionq-sim": "ionq.simulator", "forte-1": "ionq.qpu.forte-1"},
		rt: &recordingRT{}, tokens: map[string]jobToken{}, redeemed: map[string]bool{}, brokers: map[string]string{}, jobs: map[string]string{}}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return g, srv.URL
}

func (g *testGateway) issue(raw string, tok jobToken) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if tok.provider == "" {
		tok.provider = "azure"
	}
	if tok.expires.IsZero() {
		tok.expires = time.Now().Add(5 * time.Minute)
	}
	g.tokens[raw] = tok
}

func (g *testGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/azure")
	if !ok {
		http.NotFound(w, r)
		return
	}
	switch g.a.UploadRoute(r.Method, rest) {
	case UploadGrant:
		tok, status, msg := g.verify(r.Header)
		if status != 0 {
			g.a.WriteError(w, status, msg)
			return
		}
		g.a.Grant(w, r, tok.jti, tok.expires)
		return
	case UploadStaging:
		g.a.ServeStaging(w, r, rest)
		return
	}
	route := g.a.Route(r.Method, rest)
	switch route.Kind {
	case provider.Submit:
		g.submit(w, r, rest, route)
	case provider.Read, provider.Cancel:
		g.job(w, r, rest, route)
	default:
		g.a.WriteError(w, http.StatusForbidden, fmt.Sprintf("%s %s is not available through the qbroker gateway", r.Method, rest))
	}
}

// verify checks a job token's signature and times (here: that it was
// issued and has not expired) and its provider. It does not redeem.
func (g *testGateway) verify(h http.Header) (jobToken, int, string) {
	raw, ok := g.a.Token(h)
	if !ok {
		return jobToken{}, http.StatusUnauthorized, "missing job token: send it as Authorization: Bearer"
	}
	g.mu.Lock()
	tok, ok := g.tokens[raw]
	g.mu.Unlock()
	switch {
	case !ok || time.Now().After(tok.expires):
		return jobToken{}, http.StatusUnauthorized, "invalid or expired job token"
	case tok.provider != g.a.Name():
		return jobToken{}, http.StatusForbidden, fmt.Sprintf("job token is for provider %q, not azure", tok.provider)
	}
	return tok, 0, ""
}

// upstream is the broker's Upstream: a minted Entra token, cached.
func (g *testGateway) upstream() (provider.Credential, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cred.Secret != "" && g.sim.now().Add(5*time.Minute).Before(g.cred.Expires) {
		return g.cred, nil
	}
	c, _, _, err := g.sim.minter().Mint(context.Background(), testTenant+":"+testClient+":"+testSecret, "lab")
	if err != nil {
		return provider.Credential{}, err
	}
	g.cred = c
	return c, nil
}

func (g *testGateway) submit(w http.ResponseWriter, r *http.Request, rest string, route provider.Route) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		g.a.WriteError(w, http.StatusRequestEntityTooLarge, "body too large")
		return
	}
	tok, status, msg := g.verify(r.Header)
	if status != 0 {
		g.a.WriteError(w, status, msg)
		return
	}
	sub, err := g.a.ParseSubmit(body)
	if err != nil {
		g.a.WriteError(w, http.StatusBadRequest, "invalid submission: "+err.Error())
		return
	}
	if want := g.devices[tok.device]; want == "" || sub.Device != want {
		g.a.WriteError(w, http.StatusForbidden, fmt.Sprintf("job token is for device %s; request names %s", tok.device, sub.Device))
		return
	}
	if sub.Shots > tok.maxShots {
		g.a.WriteError(w, http.StatusForbidden, fmt.Sprintf("request asks for %d shots; job token allows at most %d", sub.Shots, tok.maxShots))
		return
	}
	if tok.digest != "" && sub.ProgramSHA256 != tok.digest {
		g.a.WriteError(w, http.StatusForbidden, "program does not match the program digest the job token is bound to")
		return
	}
	cred, err := g.upstream()
	if err != nil {
		g.a.WriteError(w, http.StatusServiceUnavailable, "no upstream credential for this role; job token not used")
		return
	}
	prepared, err := g.a.Prepare(body, provider.Scope{})
	if err != nil {
		g.a.WriteError(w, http.StatusBadRequest, "invalid submission: "+err.Error())
		return
	}
	g.mu.Lock()
	used := g.redeemed[tok.jti]
	g.redeemed[tok.jti] = true
	g.mu.Unlock()
	if used {
		g.a.WriteError(w, http.StatusUnauthorized, "job token already used")
		return
	}
	resp, err := g.a.Send(r.Context(), route, rest, prepared, cred, g.rt.RoundTrip)
	if err != nil {
		g.a.WriteError(w, http.StatusBadGateway, "upstream unavailable; job not submitted")
		return
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		id, err := g.a.JobID(out)
		if err != nil {
			g.a.WriteError(w, http.StatusBadGateway, "upstream accepted the job but returned no usable job id")
			return
		}
		g.mu.Lock()
		g.jobs[id] = tok.agent
		g.mu.Unlock()
	}
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(out)
}

func (g *testGateway) job(w http.ResponseWriter, r *http.Request, rest string, route provider.Route) {
	raw, _ := g.a.Token(r.Header)
	g.mu.Lock()
	agent, ok := g.brokers[raw]
	owner := g.jobs[route.JobID]
	g.mu.Unlock()
	switch {
	case !ok:
		g.a.WriteError(w, http.StatusUnauthorized, "invalid, expired or revoked broker token")
		return
	case owner != agent:
		g.a.WriteError(w, http.StatusNotFound, "job not found")
		return
	}
	cred, err := g.upstream()
	if err != nil {
		g.a.WriteError(w, http.StatusServiceUnavailable, "no upstream credential for this role")
		return
	}
	resp, err := g.a.Send(r.Context(), route, rest, nil, cred, g.rt.RoundTrip)
	if err != nil {
		g.a.WriteError(w, http.StatusBadGateway, "upstream unavailable")
		return
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// recordingRT is the gateway's transport, keeping what went upstream.
type recordingRT struct {
	mu   sync.Mutex
	reqs []sent
}

type sent struct {
	method, host, path, authz string
	header                    http.Header
}

func (rt *recordingRT) RoundTrip(req *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	rt.reqs = append(rt.reqs, sent{req.Method, req.URL.Host, req.URL.Path, req.Header.Get("Authorization"), req.Header.Clone()})
	rt.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func (rt *recordingRT) sent() []sent {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return append([]sent(nil), rt.reqs...)
}

// agentCall is one request of the agent's Azure SDK to the gateway.
func agentCall(t *testing.T, method, url, token string, h map[string]string, body []byte) (int, []byte) {
	t.Helper()
	hh := map[string]string{}
	for k, v := range h {
		hh[k] = v
	}
	if token != "" {
		hh["Authorization"] = "Bearer " + token
	}
	if body != nil && hh["Content-Type"] == "" {
		hh["Content-Type"] = "application/json"
	}
	return call(t, method, url, hh, body)
}

// agentUpload does what azure-quantum's from_input_data does before the
// job PUT: ask for a container, check it exists, upload inputData.
func agentUpload(t *testing.T, ws, token, program string) string {
	t.Helper()
	code, out := agentCall(t, http.MethodPost, ws+"/storage/sasUri?"+apiVersion, token, nil, []byte(`{"containerName":"job-`+jobID+`"}`))
	if code != http.StatusOK {
		t.Fatalf("sasUri: %d %s", code, out)
	}
	var g struct {
		SASURI string `json:"sasUri"`
	}
	if err := json.Unmarshal(out, &g); err != nil {
		t.Fatal(err)
	}
	if code, out := call(t, http.MethodGet, g.SASURI+"&restype=container", map[string]string{"x-ms-version": "2021-08-06"}, nil); code != http.StatusOK {
		t.Fatalf("container exists: %d %s", code, out)
	}
	base, query, _ := strings.Cut(g.SASURI, "?")
	code, out = call(t, http.MethodPut, base+"/"+InputBlob+"?"+query, map[string]string{
		"x-ms-blob-type": "BlockBlob", "x-ms-blob-content-type": "application/json", "If-None-Match": "*", "x-ms-version": "2021-08-06",
	}, []byte(program))
	if code != http.StatusCreated {
		t.Fatalf("upload: %d %s", code, out)
	}
	return g.SASURI
}

func newJobID(i int) string { return fmt.Sprintf("5b3a8c2e-1f4d-4e6a-9b7c-%012d", i) }

// waitJob polls GET job as the owner until the status is terminal.
func waitJob(t *testing.T, url, broker string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, out := agentCall(t, http.MethodGet, url+"?"+apiVersion, broker, nil, nil)
		if code != http.StatusOK {
			t.Fatalf("get job: %d %s", code, out)
		}
		noUpstreamSAS(t, "get job", out)
		var j map[string]any
		if err := json.Unmarshal(out, &j); err != nil {
			t.Fatal(err)
		}
		if s, _ := j["status"].(string); isTerminal(s) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job still %v", j["status"])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The whole Azure flow through the gateway for a Bell pair on
// ionq.simulator: the agent's SDK gets a container from the gateway,
// uploads the circuit to the gateway, creates the job with its job token;
// the gateway checks the uploaded circuit against the token, redeems it,
// uploads exactly those bytes to a container of its own in the
// workspace's storage and creates the job there; the owner reads the job
// and its output (~50/50 00/11) with its broker token. No SAS of the
// workspace's storage, no Entra token and no root secret reaches the agent.
func TestBellThroughTheGateway(t *testing.T) {
	s := startSim(t, nil)
	g, gw := newTestGateway(t, s)
	ws := gw + "/azure" + wsPath
	digest, _ := circuit.Digest([]byte(bellIonQ))
	g.issue("jt-bell", jobToken{jti: "jti-bell", agent: "agent-a", device: "ionq-sim", maxShots: 100, digest: digest})
	g.brokers["bt-a"] = "agent-a"

	sas := agentUpload(t, ws, "jt-bell", bellIonQ)
	if !strings.HasPrefix(sas, gw+"/azure/storage/qbroker-") {
		t.Fatalf("the container is not the gateway's: %s", sas)
	}
	id := newJobID(1)
	code, out := agentCall(t, http.MethodPut, ws+"/jobs/"+id+"?"+apiVersion, "jt-bell", nil, jobBody(id, sas, nil))
	if code != http.StatusCreated {
		t.Fatalf("create job: %d %s", code, out)
	}
	noUpstreamSAS(t, "create job", out)
	var created map[string]any
	_ = json.Unmarshal(out, &created)
	if created["id"] != id || created["status"] != "Waiting" || created["target"] != "ionq.simulator" {
		t.Fatalf("created %s", out)
	}

	job := waitJob(t, ws+"/jobs/"+id, "bt-a")
	if job["status"] != "Succeeded" {
		t.Fatalf("job %v", job)
	}
	code, out = agentCall(t, http.MethodGet, ws+"/jobs/"+id+"/output?"+apiVersion, "bt-a", nil, nil)
	if code != http.StatusOK {
		t.Fatalf("output: %d %s", code, out)
	}
	var res struct {
		Histogram map[string]float64 `json:"histogram"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.Histogram) != 2 {
		t.Fatalf("output %s: %v", out, err)
	}
	if p00, p11 := res.Histogram["0"], res.Histogram["3"]; p00 < 0.3 || p11 < 0.3 || p00+p11 < 0.999 {
		t.Fatalf("Bell histogram %v: want ~50/50 between 0 (00) and 3 (11)", res.Histogram)
	}

	// Upstream: the job names a container the gateway chose (not the
	// agent's job-<id>, not the staging one), and its input is byte for
	// byte what the agent uploaded and the gateway checked.
	cred := s.token(t)
	code, out = call(t, http.MethodGet, s.url+wsPath+"/jobs/"+id+"?"+apiVersion, map[string]string{"Authorization": "Bearer " + cred.Secret}, nil)
	var up struct{ ContainerURI, InputDataURI string }
	if code != http.StatusOK || json.Unmarshal(out, &up) != nil {
		t.Fatalf("upstream job: %d %s", code, out)
	}
	staged, _, _ := strings.Cut(strings.TrimPrefix(sas, gw+"/azure/storage/"), "?")
	if !strings.Contains(up.ContainerURI, "/qbroker-") || strings.Contains(up.ContainerURI, "job-"+jobID) || strings.Contains(up.ContainerURI, staged) {
		t.Fatalf("upstream container %s", up.ContainerURI)
	}
	if code, input := call(t, http.MethodGet, up.InputDataURI, nil, nil); code != http.StatusOK || string(input) != bellIonQ {
		t.Fatalf("upstream input: %d %s", code, input)
	}

	// The staged input is gone: it cannot be submitted again, changed, or
	// reused with the spent token.
	if code, out := agentCall(t, http.MethodPut, ws+"/jobs/"+newJobID(2)+"?"+apiVersion, "jt-bell", nil, jobBody(newJobID(2), sas, nil)); code != http.StatusBadRequest {
		t.Fatalf("resubmit of a consumed upload: %d %s", code, out)
	}
	if code, _ := putInput(g.a, strings.Replace(sas, gw, "https://gw.example", 1), ghzIonQ, nil); code != http.StatusForbidden {
		t.Fatalf("upload into a consumed container: %d", code)
	}
	sas2 := agentUpload(t, ws, "jt-bell", bellIonQ)
	if code, out := agentCall(t, http.MethodPut, ws+"/jobs/"+newJobID(3)+"?"+apiVersion, "jt-bell", nil, jobBody(newJobID(3), sas2, nil)); code != http.StatusUnauthorized || !strings.Contains(string(out), "already used") {
		t.Fatalf("replayed job token: %d %s", code, out)
	}

	// What went upstream: the Entra token only to the workspace, never to
	// storage; the agent's tokens nowhere; only the emulator's host.
	for _, r := range g.rt.sent() {
		if r.host != strings.TrimPrefix(s.url, "http://") {
			t.Fatalf("upstream request to %s", r.host)
		}
		if (r.authz != "") != strings.HasPrefix(r.path, "/subscriptions/") {
			t.Fatalf("%s %s: Authorization %q", r.method, r.path, r.authz)
		}
		for k, vs := range r.header {
			for _, v := range vs {
				if strings.Contains(v, "jt-bell") || strings.Contains(v, "bt-a") || strings.Contains(v, testSecret) {
					t.Fatalf("%s %s carries the agent's token or the root secret in %s", r.method, r.path, k)
				}
			}
		}
	}
}

func TestRefusalsThroughTheGateway(t *testing.T) {
	s := startSim(t, nil)
	g, gw := newTestGateway(t, s)
	ws := gw + "/azure" + wsPath
	digest, _ := circuit.Digest([]byte(bellIonQ))
	g.issue("jt-1", jobToken{jti: "jti-1", agent: "agent-a", device: "ionq-sim", maxShots: 100, digest: digest})
	g.issue("jt-ibm", jobToken{jti: "jti-ibm", agent: "agent-a", provider: "ibm", device: "x", maxShots: 100})
	g.brokers["bt-a"], g.brokers["bt-b"] = "agent-a", "agent-b"
	id := newJobID(10)
	put := func(body []byte) (int, string) {
		code, out := agentCall(t, http.MethodPut, ws+"/jobs/"+id+"?"+apiVersion, "jt-1", nil, body)
		noUpstreamSAS(t, "refusal", out)
		return code, string(out)
	}

	// Another program in the blob than the token is bound to.
	ghz := agentUpload(t, ws, "jt-1", ghzIonQ)
	if code, out := put(jobBody(id, ghz, nil)); code != http.StatusForbidden || !strings.Contains(out, "program digest") {
		t.Fatalf("other program: %d %s", code, out)
	}
	// The refused upload cannot be swapped for the allowed program.
	if code, out := call(t, http.MethodPut, strings.Replace(ghz, "?", "/"+InputBlob+"?", 1), map[string]string{"x-ms-blob-type": "BlockBlob"}, []byte(bellIonQ)); code != http.StatusConflict {
		t.Fatalf("overwrite: %d %s", code, out)
	}

	bell := agentUpload(t, ws, "jt-1", bellIonQ)
	// A job naming a blob the gateway never received: a SAS the agent got
	// from the workspace some other way, with the right program in it.
	cred := s.token(t)
	code, out := call(t, http.MethodPost, s.url+wsPath+"/storage/sasUri?"+apiVersion, map[string]string{"Authorization": "Bearer " + cred.Secret, "Content-Type": "application/json"}, []byte(`{"containerName":"job-direct"}`))
	var direct struct {
		SASURI string `json:"sasUri"`
	}
	if code != http.StatusOK || json.Unmarshal(out, &direct) != nil {
		t.Fatalf("direct sasUri: %d %s", code, out)
	}
	dbase, dq, _ := strings.Cut(direct.SASURI, "?")
	if code, out := call(t, http.MethodPut, dbase+"/"+InputBlob+"?"+dq, map[string]string{"x-ms-blob-type": "BlockBlob"}, []byte(bellIonQ)); code != http.StatusCreated {
		t.Fatalf("direct upload: %d %s", code, out)
	}
	bbase, _, _ := strings.Cut(bell, "?")
	for _, tc := range []struct {
		what   string
		body   []byte
		status int
		msg    string
	}{
		{"blob the gateway never saw", jobBody(id, direct.SASURI, nil), 400, "not an upload container"},
		{"made-up staging container", jobBody(id, gw+"/azure/storage/qbroker-0123456789abcdef0123456789abcdef?sig=x", nil), 400, "not an upload container"},
		{"staging container without its sig", jobBody(id, bbase, nil), 400, "not an upload container"},
		{"unknown member", jobBody(id, bell, func(m map[string]any) { m["qbrokerBypass"] = true }), 400, "unknown member"},
		{"other output location", jobBody(id, bell, func(m map[string]any) { m["outputDataUri"] = direct.SASURI }), 400, "unknown member"},
		{"extra input parameter", jobBody(id, bell, func(m map[string]any) {
			m["inputParams"] = map[string]any{"shots": 100, "error_mitigation": map[string]bool{"debias": true}}
		}), 400, "inputParams.error_mitigation"},
		{"other device", jobBody(id, bell, func(m map[string]any) { m["target"] = "ionq.qpu.forte-1" }), 403, "job token is for device ionq-sim"},
		{"more shots", jobBody(id, bell, func(m map[string]any) { m["inputParams"] = map[string]any{"shots": 101} }), 403, "at most 100"},
	} {
		if code, out := put(tc.body); code != tc.status || !strings.Contains(out, tc.msg) {
			t.Errorf("%s: %d %s, want %d %q", tc.what, code, out, tc.status, tc.msg)
		}
	}
	// Grants need a valid azure job token.
	if code, out := agentCall(t, http.MethodPost, ws+"/storage/sasUri?"+apiVersion, "", nil, []byte(`{"containerName":"job-1"}`)); code != http.StatusUnauthorized {
		t.Fatalf("grant without a token: %d %s", code, out)
	}
	if code, out := agentCall(t, http.MethodPost, ws+"/storage/sasUri?"+apiVersion, "jt-ibm", nil, []byte(`{"containerName":"job-1"}`)); code != http.StatusForbidden {
		t.Fatalf("grant with an ibm token: %d %s", code, out)
	}
	// Other endpoints are not forwarded.
	for _, p := range []string{"/jobs", "/providerStatus", "/quotas"} {
		if code, _ := agentCall(t, http.MethodGet, ws+p+"?"+apiVersion, "bt-a", nil, nil); code != http.StatusForbidden {
			t.Errorf("GET %s: %d", p, code)
		}
	}

	// Nothing was redeemed or created: the same token now submits.
	if g.redeemed["jti-1"] {
		t.Fatal("a refused submission redeemed the token")
	}
	code, out = call(t, http.MethodGet, s.url+wsPath+"/jobs?"+apiVersion, map[string]string{"Authorization": "Bearer " + cred.Secret}, nil)
	if code != http.StatusOK || strings.Contains(string(out), `"id"`) {
		t.Fatalf("upstream jobs after refusals: %d %s", code, out)
	}
	if code, out := put(jobBody(id, bell, nil)); code != http.StatusCreated {
		t.Fatalf("allowed submission: %d %s", code, out)
	}
	// Another agent cannot read, fetch output of or cancel the job.
	for _, c := range []struct{ method, path string }{{http.MethodGet, ""}, {http.MethodGet, "/output"}, {http.MethodPost, ":cancel"}} {
		if code, _ := agentCall(t, c.method, ws+"/jobs/"+id+c.path+"?"+apiVersion, "bt-b", nil, nil); code != http.StatusNotFound {
			t.Errorf("agent-b %s %s: %d", c.method, c.path, code)
		}
	}
}

func TestCancelThroughTheGateway(t *testing.T) {
	s := startSim(t, func(c *azuresim.Config) { c.StepDelay = 300 * time.Millisecond })
	g, gw := newTestGateway(t, s)
	ws := gw + "/azure" + wsPath
	g.issue("jt-1", jobToken{jti: "jti-1", agent: "agent-a", device: "ionq-sim", maxShots: 100})
	g.issue("jt-2", jobToken{jti: "jti-2", agent: "agent-a", device: "ionq-sim", maxShots: 100})
	g.brokers["bt-a"] = "agent-a"

	id := newJobID(20)
	if code, out := agentCall(t, http.MethodPut, ws+"/jobs/"+id+"?"+apiVersion, "jt-1", nil, jobBody(id, agentUpload(t, ws, "jt-1", bellIonQ), nil)); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, out)
	}
	code, out := agentCall(t, http.MethodPost, ws+"/jobs/"+id+":cancel?"+apiVersion, "bt-a", nil, nil)
	if code != http.StatusOK || !strings.Contains(string(out), `"status":"CancellationRequested"`) {
		t.Fatalf("cancel: %d %s", code, out)
	}
	noUpstreamSAS(t, "cancel", out)
	if j := waitJob(t, ws+"/jobs/"+id, "bt-a"); j["status"] != "Cancelled" {
		t.Fatalf("after cancel: %v", j["status"])
	}
	if code, out := agentCall(t, http.MethodGet, ws+"/jobs/"+id+"/output?"+apiVersion, "bt-a", nil, nil); code != http.StatusConflict || !strings.Contains(string(out), "Cancelled") {
		t.Fatalf("output of a cancelled job: %d %s", code, out)
	}

	// The gateway's own cancel (a job it could not record) needs no path.
	id2 := newJobID(21)
	if code, out := agentCall(t, http.MethodPut, ws+"/jobs/"+id2+"?"+apiVersion, "jt-2", nil, jobBody(id2, agentUpload(t, ws, "jt-2", bellIonQ), nil)); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, out)
	}
	cred, _ := g.upstream()
	resp, err := g.a.Send(context.Background(), provider.Route{Kind: provider.Cancel, JobID: id2}, "", nil, cred, http.DefaultTransport.RoundTrip)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("gateway cancel: %v %v", resp, err)
	}
	resp.Body.Close()

	// A reused job id: the upstream refusal comes back, scrubbed (the token is spent).
	g.issue("jt-3", jobToken{jti: "jti-3", agent: "agent-a", device: "ionq-sim", maxShots: 100})
	code, out = agentCall(t, http.MethodPut, ws+"/jobs/"+id+"?"+apiVersion, "jt-3", nil, jobBody(id, agentUpload(t, ws, "jt-3", bellIonQ), nil))
	if code != http.StatusConflict {
		t.Fatalf("reused job id: %d %s", code, out)
	}
	noUpstreamSAS(t, "reused job id", out)
}

func TestScrubRemovesEverySAS(t *testing.T) {
	in := `{"id":"x","containerUri":"https://a.blob.core.windows.net/c?sv=2019-02-02&sr=c&sp=rcw&sig=AbC%2Bd%3D",` +
		`"inputDataUri":"https://a.blob.core.windows.net/c/inputData?sig=zz","outputDataUri":"https://a/c/o?se=x&sig=q#f",` +
		`"errorData":{"code":"E","message":"could not read https://a/c/inputData?sp=r\u0026sig=SECRET1 or sig=SECRET2&x"},` +
		`"value":[{"containerUri":"https://a/c?sig=SECRET3"}]}`
	out := string(scrub([]byte(in)))
	for _, leak := range []string{"AbC", "zz", "sig=q", "SECRET1", "SECRET2", "SECRET3", "sv=2019"} {
		if strings.Contains(out, leak) {
			t.Fatalf("%q left in %s", leak, out)
		}
	}
	if !strings.Contains(out, `"containerUri":"https://a.blob.core.windows.net/c"`) || !strings.Contains(out, `"outputDataUri":"https://a/c/o"`) {
		t.Fatalf("URIs not kept without their SAS: %s", out)
	}
	if got := string(scrub([]byte("not json sig=abc&x"))); got != "not json sig=REDACTED&x" {
		t.Fatalf("text scrub: %q", got)
	}
}
