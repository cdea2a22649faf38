package ibmsim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const (
	testKey   = "ibm-cloud-api-key-0123456789abcdefghijklmnop"
	crnA      = "crn:v1:bluemix:public:quantum-computing:us-east:a/abcdef0123456789abcdef0123456789:11111111-1111-4111-8111-111111111111::"
	crnB      = "crn:v1:bluemix:public:quantum-computing:us-east:a/abcdef0123456789abcdef0123456789:22222222-2222-4222-8222-222222222222::"
	apiVer    = "2026-03-15"
	kingston  = "ibm_kingston"
	oneMinute = time.Minute
)

// Circuits in the Heron basis: h is rz(pi/2) sx rz(pi/2) up to a global
// phase, and cx a,b is h b; cz a,b; h b.
const (
	hQ0 = "rz(pi/2) q[0];\nsx q[0];\nrz(pi/2) q[0];\n"
	hQ1 = "rz(pi/2) q[1];\nsx q[1];\nrz(pi/2) q[1];\n"
	hQ2 = "rz(pi/2) q[2];\nsx q[2];\nrz(pi/2) q[2];\n"

	bellISA = "OPENQASM 3.0;\ninclude \"stdgates.inc\";\nqubit[2] q;\nbit[2] c;\n" +
		hQ0 + hQ1 + "cz q[0], q[1];\n" + hQ1 + "c = measure q;\n"
	ghz3ISA = "OPENQASM 3.0;\ninclude \"stdgates.inc\";\nqubit[3] q;\nbit[3] meas;\n" +
		hQ0 + hQ1 + "cz q[0], q[1];\n" + hQ1 + hQ2 + "cz q[1], q[2];\n" + hQ2 + "meas = measure q;\n"
	// bellNonISA uses h and cx, which Heron backends do not run.
	bellNonISA = "OPENQASM 3.0;\ninclude \"stdgates.inc\";\nqubit[2] q;\nbit[2] c;\nh q[0];\ncx q[0], q[1];\nc = measure q;\n"
)

// harness runs an emulator on a loopback listener with a clock the test can
// move forward.
type harness struct {
	t      *testing.T
	e      *Emulator
	srv    *httptest.Server
	offset atomic.Int64 // added to time.Now, in nanoseconds
	token  string
}

func newHarness(t *testing.T, mutate func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t}
	cfg := Config{
		APIKey:            testKey,
		InstanceCRN:       crnA,
		OtherInstanceCRNs: []string{crnB},
		StepDelay:         2 * time.Millisecond,
		Seed:              42,
		JobsPerMinute:     -1,
		Now:               h.now,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.e = e
	h.srv = httptest.NewServer(e)
	t.Cleanup(func() {
		h.srv.Close()
		e.Close()
	})
	return h
}

func (h *harness) now() time.Time          { return time.Now().Add(time.Duration(h.offset.Load())) }
func (h *harness) advance(d time.Duration) { h.offset.Add(int64(d)) }

type response struct {
	status int
	header http.Header
	body   []byte
}

// errCode returns errors[0].code of an ErrorContainer (0 if none).
func (r response) errCode() int {
	var ec struct {
		Errors []struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
		Trace string `json:"trace"`
	}
	if json.Unmarshal(r.body, &ec) != nil || len(ec.Errors) == 0 || ec.Trace == "" {
		return 0
	}
	return ec.Errors[0].Code
}

// iamCode returns errorCode of an IAM error.
func (r response) iamCode() string {
	var e iamError
	_ = json.Unmarshal(r.body, &e)
	return e.ErrorCode
}

func (h *harness) send(req *http.Request) response {
	h.t.Helper()
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// exchange posts a token request with the given form.
func (h *harness) exchange(form url.Values) response {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.srv.URL+"/identity/token", strings.NewReader(form.Encode()))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	return h.send(req)
}

// login exchanges the API key for a token, remembers it and returns it.
func (h *harness) login() TokenResponse {
	h.t.Helper()
	res := h.exchange(url.Values{"grant_type": {GrantTypeAPIKey}, "apikey": {testKey}})
	if res.status != http.StatusOK {
		h.t.Fatalf("token exchange: %d %s", res.status, res.body)
	}
	var tr TokenResponse
	if err := json.Unmarshal(res.body, &tr); err != nil {
		h.t.Fatal(err)
	}
	h.token = tr.AccessToken
	return tr
}

// hdr is the set of runtime headers a request carries; empty fields are
// left out.
type hdr struct {
	auth, crn, version string
}

func (h *harness) bearer(crn string) hdr {
	return hdr{auth: "Bearer " + h.token, crn: crn, version: apiVer}
}

// do sends a Qiskit Runtime request to /api/v1+path.
func (h *harness) do(hd hdr, method, path, body string) response {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.srv.URL+"/api/v1"+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if hd.auth != "" {
		req.Header.Set("Authorization", hd.auth)
	}
	if hd.crn != "" {
		req.Header.Set("Service-CRN", hd.crn)
	}
	if hd.version != "" {
		req.Header.Set("IBM-API-Version", hd.version)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return h.send(req)
}

// samplerJob returns a job body with one PUB per circuit at shots each.
func samplerJob(backend string, shots int, circuits ...string) string {
	pubs := make([]any, len(circuits))
	for i, c := range circuits {
		pubs[i] = []any{c, nil, shots}
	}
	b, _ := json.Marshal(map[string]any{
		"program_id": "sampler",
		"backend":    backend,
		"params":     map[string]any{"pubs": pubs, "version": 2},
	})
	return string(b)
}

// submit creates a job under crn and returns its id.
func (h *harness) submit(crn, body string) string {
	h.t.Helper()
	res := h.do(h.bearer(crn), http.MethodPost, "/jobs", body)
	if res.status != http.StatusOK {
		h.t.Fatalf("create job: %d %s", res.status, res.body)
	}
	var cr struct {
		ID      string `json:"id"`
		Backend string `json:"backend"`
	}
	if err := json.Unmarshal(res.body, &cr); err != nil {
		h.t.Fatal(err)
	}
	return cr.ID
}

// jobJSON is the subset of JobResponseV3 the tests read.
type jobJSON struct {
	ID    string `json:"id"`
	State struct {
		Status     string `json:"status"`
		Reason     string `json:"reason"`
		ReasonCode int    `json:"reason_code"`
	} `json:"state"`
	Status  string            `json:"status"`
	Backend string            `json:"backend"`
	Params  json.RawMessage   `json:"params"`
	Program map[string]string `json:"program"`
	Created string            `json:"created"`
	Cost    int               `json:"cost"`
	Tags    []string          `json:"tags"`
	UserID  string            `json:"user_id"`
	Usage   *struct {
		Seconds float64 `json:"qpu_charge_time_seconds"`
		Status  string  `json:"status"`
	} `json:"usage"`
	Private bool `json:"private"`
}

func (h *harness) job(crn, id string) jobJSON {
	h.t.Helper()
	res := h.do(h.bearer(crn), http.MethodGet, "/jobs/"+id, "")
	if res.status != http.StatusOK {
		h.t.Fatalf("get job: %d %s", res.status, res.body)
	}
	var j jobJSON
	if err := json.Unmarshal(res.body, &j); err != nil {
		h.t.Fatal(err)
	}
	return j
}

// wait polls until the job is terminal.
func (h *harness) wait(crn, id string) jobJSON {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		j := h.job(crn, id)
		if isTerminal(j.Status) {
			return j
		}
		time.Sleep(time.Millisecond)
	}
	h.t.Fatalf("job %s did not finish", id)
	return jobJSON{}
}

func (h *harness) results(crn, id string) Result {
	h.t.Helper()
	res := h.do(h.bearer(crn), http.MethodGet, "/jobs/"+id+"/results", "")
	if res.status != http.StatusOK {
		h.t.Fatalf("results: %d %s", res.status, res.body)
	}
	var r Result
	if err := json.Unmarshal(res.body, &r); err != nil {
		h.t.Fatal(err)
	}
	return r
}

// counts runs a job of one PUB to completion and returns its counts per
// register.
func (h *harness) counts(circuit string, shots int) map[string]map[string]int {
	h.t.Helper()
	id := h.submit(crnA, samplerJob(kingston, shots, circuit))
	if j := h.wait(crnA, id); j.Status != StatusCompleted {
		h.t.Fatalf("job %s: %s (%s)", id, j.Status, j.State.Reason)
	}
	r := h.results(crnA, id)
	if len(r.Results) != 1 {
		h.t.Fatalf("%d PUB results", len(r.Results))
	}
	out := map[string]map[string]int{}
	for name, d := range r.Results[0].Data {
		if len(d.Samples) != shots {
			h.t.Fatalf("register %s has %d samples for %d shots", name, len(d.Samples), shots)
		}
		c, err := Counts(d)
		if err != nil {
			h.t.Fatal(err)
		}
		out[name] = c
	}
	return out
}

func expectError(t *testing.T, what string, res response, status, code int) {
	t.Helper()
	if res.status != status || res.errCode() != code {
		t.Errorf("%s: got %d code %d (%s), want %d code %d", what, res.status, res.errCode(), res.body, status, code)
	}
}
