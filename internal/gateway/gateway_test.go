package gateway

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/circuit"
	"github.com/qbroker/qbroker/internal/token"
)

// noSecrets fails if the real key or any of the given tokens appear in the
// answer's headers or body.
func noSecrets(t *testing.T, a answer, tokens ...string) {
	t.Helper()
	var hdr strings.Builder
	_ = a.Header.Write(&hdr)
	for _, s := range append([]string{realKey}, tokens...) {
		if strings.Contains(hdr.String(), s) || strings.Contains(string(a.Body), s) {
			t.Fatalf("a secret leaked into the answer: headers %q body %s", hdr.String(), a.Body)
		}
	}
}

func TestBellSubmissionThroughGateway(t *testing.T) {
	h := newHarness(t)
	jt := h.mint(h.claims())
	a := h.submit(jt, bellBody(100, testDevice))
	expect(t, a, http.StatusCreated, "")
	noSecrets(t, a, jt)
	id := jobID(t, a)

	// The upstream saw the real key, the original bytes, and never the job token.
	reqs := h.upstream.requests()
	if len(reqs) != 1 {
		t.Fatalf("upstream saw %d requests, want 1", len(reqs))
	}
	up := reqs[0]
	if got := up.Header.Get("Authorization"); got != "apiKey "+realKey {
		t.Fatalf("upstream Authorization = %q", got)
	}
	if string(up.Body) != bellBody(100, testDevice) {
		t.Fatalf("upstream body changed: %s", up.Body)
	}
	for k, vs := range up.Header {
		for _, v := range vs {
			if strings.Contains(v, jt) {
				t.Fatalf("job token forwarded upstream in %s", k)
			}
		}
	}

	// The broker recorded the owner and the audit trail has the submission.
	rec, err := h.broker.Job(t.Context(), "ionq", id)
	if err != nil || rec.AgentID != aliceID || rec.Shots != 100 || rec.Device != testDevice {
		t.Fatalf("job record %+v, %v", rec, err)
	}
	var submitted int
	for _, e := range h.broker.auditLog() {
		if e.Type == "submit" && e.Decision == audit.DecisionAllow && e.JobID == id && e.Agent == aliceID && e.Shots == 100 && e.Device == testDevice {
			submitted++
		}
	}
	if submitted != 1 {
		t.Fatalf("want one submit audit event for %s: %+v", id, h.broker.auditLog())
	}

	// Alice polls with her broker token until the job completes.
	var job struct {
		Status  string `json:"status"`
		Results struct {
			Probabilities struct {
				URL string `json:"url"`
			} `json:"probabilities"`
		} `json:"results"`
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		a := h.do(http.MethodGet, "/ionq/v0.4/jobs/"+id, aliceToken, "")
		expect(t, a, http.StatusOK, "")
		noSecrets(t, a, aliceToken)
		if err := json.Unmarshal(a.Body, &job); err != nil {
			t.Fatal(err)
		}
		if job.Status == "completed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job still %q", job.Status)
		}
		time.Sleep(5 * time.Millisecond)
	}
	want := "/ionq/v0.4/jobs/" + id + "/results/probabilities"
	if job.Results.Probabilities.URL != want {
		t.Fatalf("results URL %q, want %q", job.Results.Probabilities.URL, want)
	}
	a = h.do(http.MethodGet, job.Results.Probabilities.URL, aliceToken, "")
	expect(t, a, http.StatusOK, "")
	noSecrets(t, a, aliceToken)
	var probs map[string]float64
	if err := json.Unmarshal(a.Body, &probs); err != nil {
		t.Fatalf("probabilities %s: %v", a.Body, err)
	}
	if len(probs) != 2 || probs["0"]+probs["3"] < 0.999 || probs["0"] < 0.2 || probs["3"] < 0.2 {
		t.Fatalf("Bell probabilities %v, want about 50/50 on 0 and 3", probs)
	}

	// Nothing secret reached the logs.
	logs := h.logs.String()
	for _, s := range []string{realKey, jt, aliceToken} {
		if strings.Contains(logs, s) {
			t.Fatalf("secret in logs: %s", logs)
		}
	}
}

func TestReplayedTokenRefused(t *testing.T) {
	h := newHarness(t)
	jt := h.mint(h.claims())
	expect(t, h.submit(jt, bellBody(100, testDevice)), http.StatusCreated, "")
	a := h.submit(jt, bellBody(100, testDevice))
	expect(t, a, http.StatusUnauthorized, "already used")
	noSecrets(t, a, jt)
	if n := h.upstream.count(http.MethodPost, "/v0.4/jobs"); n != 1 {
		t.Fatalf("upstream saw %d submissions, want 1", n)
	}
	if h.broker.jobCount() != 1 {
		t.Fatalf("jobs recorded: %d", h.broker.jobCount())
	}
}

// TestScopeRefusalsChangeNoState: every refusal before redemption leaves the
// token redeemable and forwards nothing.
func TestScopeRefusalsChangeNoState(t *testing.T) {
	h := newHarness(t)
	c := h.claims()
	jt := h.mint(c)

	refusals := []struct {
		name   string
		body   string
		status int
		msg    string
	}{
		{"too many shots", bellBody(1000, testDevice), 403, "request asks for 1000 shots; job token allows at most 100"},
		{"wrong device", bellBody(100, "qpu.forte-1"), 403, "job token is for device simulator; request names qpu.forte-1"},
		{"unknown field", `{"type":"ionq.circuit.v1","backend":"simulator","shots":10,"input":` + bellInput + `,"evil":1}`, 400, "evil"},
		{"malformed json", `{"type":"ionq.circuit.v1",`, 400, "invalid job request"},
		{"trailing data", bellBody(100, testDevice) + `{}`, 400, "invalid job request"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			a := h.submit(jt, tc.body)
			expect(t, a, tc.status, tc.msg)
			noSecrets(t, a, jt)
		})
	}
	if h.broker.redeems.Load() != 0 {
		t.Fatalf("a refused request redeemed the token")
	}
	if n := len(h.upstream.requests()); n != 0 {
		t.Fatalf("upstream saw %d requests", n)
	}
	var denies int
	for _, e := range h.broker.auditLog() {
		if e.Type == "submit" && e.Decision == audit.DecisionDeny && e.JTI == c.ID && e.Reason != "" {
			denies++
		}
	}
	if denies != len(refusals) {
		t.Fatalf("audited %d refusals, want %d", denies, len(refusals))
	}
	// The same token still works for what it allows.
	expect(t, h.submit(jt, bellBody(100, testDevice)), http.StatusCreated, "")
}

func TestProviderMismatch(t *testing.T) {
	h := newHarness(t)
	c := h.claims()
	c.Provider = "braket"
	expect(t, h.submit(h.mint(c), bellBody(10, testDevice)), http.StatusForbidden, `job token is for provider "braket"`)
	if len(h.upstream.requests()) != 0 || h.broker.redeems.Load() != 0 {
		t.Fatal("state changed")
	}
}

func TestTokenVerificationFailures(t *testing.T) {
	h := newHarness(t)

	expired := h.claims()
	expired.IssuedAt = time.Now().Add(-10 * time.Minute)
	expired.Expiry = time.Now().Add(-6 * time.Minute)

	otherKey, _ := token.GenerateKey(time.Now())
	otherRing, err := token.NewKeyRing([]token.Key{otherKey})
	if err != nil {
		t.Fatal(err)
	}

	// Same kid as the trusted key, signature from another key.
	good := h.mint(h.claims())
	forged := h.mintWith(otherRing, h.claims())
	gp, fp := strings.Split(good, "."), strings.Split(forged, ".")
	badSig := gp[0] + "." + gp[1] + "." + fp[2]

	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"qbroker-job+jwt","kid":"` + h.ring.ActiveKeyID() + `"}`))
	algNone := hdr + "." + gp[1] + "."
	hdrHS := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"qbroker-job+jwt","kid":"` + h.ring.ActiveKeyID() + `"}`))
	algHS := hdrHS + "." + gp[1] + "." + gp[2]

	cases := []struct {
		name, tok, msg string
	}{
		{"missing", "", "missing job token"},
		{"expired", h.mint(expired), "expired"},
		{"another key", h.mintWith(otherRing, h.claims()), "unknown key"},
		{"bad signature", badSig, "bad signature"},
		{"alg none", algNone, "algorithm"},
		{"alg HS256", algHS, "algorithm"},
		{"garbage", "not-a-token", "malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := h.submit(tc.tok, bellBody(10, testDevice))
			expect(t, a, http.StatusUnauthorized, tc.msg)
			if tc.tok != "" {
				noSecrets(t, a, tc.tok)
			}
		})
	}
	// Bearer form is accepted for the job token too; its failures are the same.
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/ionq/v0.4/jobs", strings.NewReader(bellBody(10, testDevice)))
	req.Header.Set("Authorization", "Bearer "+badSig)
	expect(t, h.send(req), http.StatusUnauthorized, "bad signature")

	if len(h.upstream.requests()) != 0 || h.broker.redeems.Load() != 0 {
		t.Fatal("a refused token changed state or reached the upstream")
	}
	// The untampered token is still good.
	expect(t, h.submit(good, bellBody(10, testDevice)), http.StatusCreated, "")
}

func TestRedeemFailures(t *testing.T) {
	h := newHarness(t)
	revoked := h.claims()
	rtok := h.mint(revoked)
	h.broker.revokeJTI(revoked.ID)
	expect(t, h.submit(rtok, bellBody(10, testDevice)), http.StatusUnauthorized, "revoked")

	unknown := h.claims()
	utok, err := h.ring.Sign(unknown) // never registered with the broker
	if err != nil {
		t.Fatal(err)
	}
	expect(t, h.submit(utok, bellBody(10, testDevice)), http.StatusUnauthorized, "unknown")

	// Broker says expired although the signature clock still accepts it.
	exp := h.claims()
	etok := h.mint(exp)
	h.broker.issue(exp.ID, time.Now().Add(-time.Second))
	expect(t, h.submit(etok, bellBody(10, testDevice)), http.StatusUnauthorized, "expired")

	if len(h.upstream.requests()) != 0 {
		t.Fatal("forwarded a request whose redemption failed")
	}
}

func TestProgramDigestBinding(t *testing.T) {
	h := newHarness(t)
	digest, err := circuit.Digest([]byte(bellInput))
	if err != nil {
		t.Fatal(err)
	}
	c := h.claims()
	c.ProgramSHA256 = digest
	jt := h.mint(c)

	xInput := `{"qubits":2,"gateset":"qis","circuit":[{"gate":"x","target":0},{"gate":"cnot","control":0,"target":1}]}`
	body := `{"type":"ionq.circuit.v1","shots":10,"backend":"simulator","input":` + xInput + `}`
	expect(t, h.submit(jt, body), http.StatusForbidden, "circuit does not match the program digest the job token is bound to")
	if h.broker.redeems.Load() != 0 || len(h.upstream.requests()) != 0 {
		t.Fatal("digest mismatch changed state")
	}
	// Same circuit, keys reordered and spaced: the canonical digest matches.
	reordered := `{"circuit":[{"target":0,"gate":"h"},{"target":1,"control":0,"gate":"cnot"}], "gateset":"qis", "qubits":2}`
	body = `{"type":"ionq.circuit.v1","shots":10,"backend":"simulator","input":` + reordered + `}`
	expect(t, h.submit(jt, body), http.StatusCreated, "")
}

func TestBodyLimit(t *testing.T) {
	h := newHarness(t)
	jt := h.mint(h.claims())
	big := `{"type":"ionq.circuit.v1","name":"` + strings.Repeat("x", 20<<10) + `","backend":"simulator","input":` + bellInput + `}`
	expect(t, h.submit(jt, big), http.StatusRequestEntityTooLarge, "exceeds")

	// Without a Content-Length (chunked), the limit still bites while reading.
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte(big))
		_ = pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/ionq/v0.4/jobs", pr)
	req.ContentLength = -1
	req.Header.Set("Authorization", "apiKey "+jt)
	expect(t, h.send(req), http.StatusRequestEntityTooLarge, "exceeds")

	if h.broker.redeems.Load() != 0 || len(h.upstream.requests()) != 0 {
		t.Fatal("oversized body changed state")
	}
	expect(t, h.submit(jt, bellBody(10, testDevice)), http.StatusCreated, "")
}

func TestAuditFailureRefusesAndForwardsNothing(t *testing.T) {
	h := newHarness(t, slowJobs)
	h.broker.failAudit.Store(true)
	jt := h.mint(h.claims())
	a := h.submit(jt, bellBody(10, testDevice))
	expect(t, a, http.StatusServiceUnavailable, "audit")
	// A refusal that cannot be audited is a 503 too.
	expect(t, h.submit(jt, bellBody(1000, testDevice)), http.StatusServiceUnavailable, "audit")
	if n := len(h.upstream.requests()); n != 0 {
		t.Fatalf("upstream saw %d requests with the audit sink down", n)
	}

	// Cancels are audited before they are forwarded.
	h.broker.failAudit.Store(false)
	id := jobID(t, h.submit(h.mint(h.claims()), bellBody(10, testDevice)))
	before := len(h.upstream.requests())
	h.broker.failAudit.Store(true)
	expect(t, h.do(http.MethodPut, "/ionq/v0.4/jobs/"+id+"/status/cancel", aliceToken, ""), http.StatusServiceUnavailable, "audit")
	if len(h.upstream.requests()) != before {
		t.Fatal("cancel forwarded without an audit record")
	}
}

func TestRecordJobRetriesThenCancels(t *testing.T) {
	h := newHarness(t, slowJobs)
	// One failure is absorbed by the retry.
	h.broker.failRecord.Store(1)
	expect(t, h.submit(h.mint(h.claims()), bellBody(10, testDevice)), http.StatusCreated, "")

	// Persistent failure: 503, the job is canceled upstream, and audit says so.
	h.broker.failRecord.Store(100)
	a := h.submit(h.mint(h.claims()), bellBody(10, testDevice))
	expect(t, a, http.StatusServiceUnavailable, "canceled upstream")
	var cancels []string
	for _, r := range h.upstream.requests() {
		if r.Method == http.MethodPut && strings.HasSuffix(r.Path, "/status/cancel") {
			cancels = append(cancels, r.Path)
		}
	}
	if len(cancels) != 1 {
		t.Fatalf("upstream cancels %v, want 1", cancels)
	}
	id := strings.TrimSuffix(strings.TrimPrefix(cancels[0], "/v0.4/jobs/"), "/status/cancel")
	req, _ := http.NewRequest(http.MethodGet, h.upSrv.URL+"/v0.4/jobs/"+id, nil)
	req.Header.Set("Authorization", "apiKey "+realKey)
	resp, err := h.upSrv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Status string `json:"status"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if st.Status != "canceled" {
		t.Fatalf("unrecorded job is %q upstream, want canceled", st.Status)
	}
	var found bool
	for _, e := range h.broker.auditLog() {
		if e.Type == "submit" && e.Decision == audit.DecisionError && e.JobID == id && strings.Contains(e.Reason, "canceled upstream") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no audit event for the canceled job %s", id)
	}
}

func TestReadsRequireOwnership(t *testing.T) {
	h := newHarness(t, slowJobs)
	id := jobID(t, h.submit(h.mint(h.claims()), bellBody(10, testDevice)))
	before := len(h.upstream.requests())

	// Bob reading Alice's job gets the same answer as a job that does not exist.
	other := h.do(http.MethodGet, "/ionq/v0.4/jobs/"+id, bobToken, "")
	missing := h.do(http.MethodGet, "/ionq/v0.4/jobs/00000000-0000-0000-0000-000000000000", bobToken, "")
	expect(t, other, http.StatusNotFound, "job not found")
	if string(other.Body) != string(missing.Body) || other.Status != missing.Status {
		t.Fatalf("someone else's job answers differently from a missing one: %s vs %s", other.Body, missing.Body)
	}
	expect(t, h.do(http.MethodGet, "/ionq/v0.4/jobs/"+id+"/results/probabilities", bobToken, ""), http.StatusNotFound, "job not found")
	expect(t, h.do(http.MethodPut, "/ionq/v0.4/jobs/"+id+"/status/cancel", bobToken, ""), http.StatusNotFound, "job not found")

	// No token, a bogus token, and a job token are all refused.
	expect(t, h.do(http.MethodGet, "/ionq/v0.4/jobs/"+id, "", ""), http.StatusUnauthorized, "missing")
	expect(t, h.do(http.MethodGet, "/ionq/v0.4/jobs/"+id, "qbt_nope", ""), http.StatusUnauthorized, "broker token")
	expect(t, h.do(http.MethodGet, "/ionq/v0.4/jobs/"+id, h.mint(h.claims()), ""), http.StatusUnauthorized, "broker token")

	// A revoked broker token stops working.
	h.broker.revokeAgentToken(bobToken)
	expect(t, h.do(http.MethodGet, "/ionq/v0.4/jobs/"+id, bobToken, ""), http.StatusUnauthorized, "revoked")

	// Malformed ids are a 400 and never reach the broker or upstream.
	for _, bad := range []string{"a%2F..%2Fbackends", "a_b", strings.Repeat("a", 65), "..", "%00"} {
		a := h.do(http.MethodGet, "/ionq/v0.4/jobs/"+bad, aliceToken, "")
		if a.Status != http.StatusBadRequest && a.Status != http.StatusNotFound {
			t.Fatalf("id %q: status %d", bad, a.Status)
		}
	}
	if len(h.upstream.requests()) != before {
		t.Fatal("a refused read reached the upstream")
	}

	// The owner can cancel (Bearer form), and the cancel is audited.
	req, _ := http.NewRequest(http.MethodPut, h.srv.URL+"/ionq/v0.4/jobs/"+id+"/status/cancel", nil)
	req.Header.Set("Authorization", "Bearer "+aliceToken)
	a := h.send(req)
	if a.Status != http.StatusOK {
		t.Fatalf("cancel: %d %s", a.Status, a.Body)
	}
	var cancelAudited bool
	for _, e := range h.broker.auditLog() {
		cancelAudited = cancelAudited || (e.Type == "cancel" && e.JobID == id && e.Agent == aliceID)
	}
	if !cancelAudited {
		t.Fatal("cancel not audited")
	}
}

func TestRoutesNotForwarded(t *testing.T) {
	h := newHarness(t)
	jt := h.mint(h.claims())
	cases := []struct {
		method, path string
		status       int
	}{
		{http.MethodDelete, "/ionq/v0.4/jobs", http.StatusMethodNotAllowed},
		{http.MethodGet, "/ionq/v0.4/jobs", http.StatusMethodNotAllowed},
		{http.MethodPut, "/ionq/v0.4/jobs/status/cancel", http.StatusNotFound},
		{http.MethodDelete, "/ionq/v0.4/jobs/abc", http.StatusMethodNotAllowed},
		{http.MethodGet, "/ionq/v0.4/jobs/abc/cost", http.StatusNotFound},
		{http.MethodGet, "/ionq/v0.4/whoami", http.StatusNotFound},
		{http.MethodPost, "/ionq/v0.4/sessions", http.StatusNotFound},
		{http.MethodGet, "/ionq/v0.3/jobs/abc", http.StatusNotFound},
		{http.MethodPost, "/braket/quantum-task", http.StatusNotFound},
		{http.MethodGet, "/v0.4/backends", http.StatusNotFound},
		{http.MethodPost, "/ionq/v0.4/backends", http.StatusMethodNotAllowed},
		{http.MethodGet, "/ionq/v0.4/backends/..", http.StatusBadRequest},
	}
	for _, tc := range cases {
		a := h.do(tc.method, tc.path, jt, "")
		if a.Status != tc.status {
			t.Errorf("%s %s: %d, want %d (%s)", tc.method, tc.path, a.Status, tc.status, a.Body)
			continue
		}
		var e struct {
			StatusCode int    `json:"statusCode"`
			Message    string `json:"message"`
		}
		if err := json.Unmarshal(a.Body, &e); err != nil || e.StatusCode != tc.status || e.Message == "" {
			t.Errorf("%s %s: not IonQ-shaped: %s", tc.method, tc.path, a.Body)
		}
	}
	if n := len(h.upstream.requests()); n != 0 {
		t.Fatalf("upstream saw %d requests: %+v", n, h.upstream.requests())
	}
	if h.broker.redeems.Load() != 0 {
		t.Fatal("token redeemed on a refused route")
	}
}

func TestBackendsForwardedWithoutCredential(t *testing.T) {
	h := newHarness(t)
	a := h.do(http.MethodGet, "/ionq/v0.4/backends", "", "")
	expect(t, a, http.StatusOK, "")
	a = h.do(http.MethodGet, "/ionq/v0.4/backends/"+testDevice, aliceToken, "")
	expect(t, a, http.StatusOK, "")
	for _, r := range h.upstream.requests() {
		if r.Header.Get("Authorization") != "" {
			t.Fatalf("credential sent on %s", r.Path)
		}
	}
	if h.broker.credCalls.Load() != 0 {
		t.Fatal("credential fetched for backends")
	}
}

// TestHostCannotPickUpstream: neither the Host header nor an absolute-form
// request target moves the request off the configured upstream.
func TestHostCannotPickUpstream(t *testing.T) {
	h := newHarness(t)
	var evilHits atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		evilHits.Add(1)
	}))
	defer evil.Close()
	evilHost := strings.TrimPrefix(evil.URL, "http://")

	// Host header.
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/ionq/v0.4/jobs", strings.NewReader(bellBody(10, testDevice)))
	req.Host = evilHost
	req.Header.Set("Authorization", "apiKey "+h.mint(h.claims()))
	expect(t, h.send(req), http.StatusCreated, "")

	req, _ = http.NewRequest(http.MethodGet, h.srv.URL+"/ionq/v0.4/backends", nil)
	req.Host = evilHost
	expect(t, h.send(req), http.StatusOK, "")

	// Absolute-form request targets, written on the wire by hand.
	jt := h.mint(h.claims())
	body := bellBody(10, testDevice)
	raw := []string{
		"POST http://" + evilHost + "/ionq/v0.4/jobs HTTP/1.1\r\nHost: " + evilHost + "\r\nAuthorization: apiKey " + jt +
			"\r\nContent-Type: application/json\r\nContent-Length: " + itoa(len(body)) + "\r\nConnection: close\r\n\r\n" + body,
		"GET http://" + evilHost + "/ionq/v0.4/backends HTTP/1.1\r\nHost: " + evilHost + "\r\nConnection: close\r\n\r\n",
	}
	u, _ := url.Parse(h.srv.URL)
	for _, r := range raw {
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write([]byte(r)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		conn.Close()
		if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
			t.Fatalf("absolute-form request: %d", resp.StatusCode)
		}
	}
	if evilHits.Load() != 0 {
		t.Fatalf("evil host got %d requests", evilHits.Load())
	}
	up := h.upstream.requests()
	if len(up) != 4 {
		t.Fatalf("configured upstream got %d requests, want 4", len(up))
	}
	for _, r := range up {
		if r.Host != strings.TrimPrefix(h.upSrv.URL, "http://") {
			t.Fatalf("upstream request carried Host %q", r.Host)
		}
	}
}

func TestUpstream401RefetchesCredential(t *testing.T) {
	h := newHarness(t)
	h.broker.mu.Lock()
	h.broker.creds["ionq"] = "stale-key"
	h.broker.mu.Unlock()

	a := h.submit(h.mint(h.claims()), bellBody(10, testDevice))
	if a.Status != http.StatusUnauthorized {
		t.Fatalf("with a stale key upstream: %d %s", a.Status, a.Body)
	}
	noSecrets(t, a)
	if strings.Contains(string(a.Body), "stale-key") {
		t.Fatal("upstream error leaked the key")
	}
	calls := h.broker.credCalls.Load()
	if calls < 2 {
		t.Fatalf("credential fetched %d times; a 401 should trigger a refetch", calls)
	}

	// The broker now holds the rotated key: the next submission picks it up.
	h.broker.mu.Lock()
	h.broker.creds["ionq"] = realKey
	h.broker.mu.Unlock()
	expect(t, h.submit(h.mint(h.claims()), bellBody(10, testDevice)), http.StatusCreated, "")

	// And it stays cached: more submissions do not ask the broker again.
	calls = h.broker.credCalls.Load()
	for range 3 {
		expect(t, h.submit(h.mint(h.claims()), bellBody(10, testDevice)), http.StatusCreated, "")
	}
	if h.broker.credCalls.Load() != calls {
		t.Fatal("credential not cached")
	}
}

func TestNewValidatesConfig(t *testing.T) {
	h := newHarness(t)
	base := Config{Broker: h.broker, Verifier: h.gw.verifier}
	for _, raw := range []string{"ftp://x", "http://user:pw@x", "http://x/?a=b", "/relative"} {
		u, _ := url.Parse(raw)
		c := base
		c.IonQUpstream = u
		if _, err := New(c); err == nil {
			t.Errorf("upstream %q accepted", raw)
		}
	}
	if _, err := New(Config{Verifier: h.gw.verifier}); err == nil {
		t.Error("missing broker accepted")
	}
	u, _ := url.Parse("https://api.ionq.co/")
	c := base
	c.IonQUpstream = u
	g, err := New(c)
	if err != nil || g.upstream != "https://api.ionq.co" {
		t.Fatalf("New: %v, upstream %q", err, g.upstream)
	}
}
