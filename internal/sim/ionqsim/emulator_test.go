package ionqsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/provider/ionq"
)

const testKey = "test-key-0123456789abcdef"

const bellJob = `{"type":"ionq.circuit.v1","name":"bell","shots":1000,"backend":"simulator",
 "input":{"qubits":2,"gateset":"qis","circuit":[{"gate":"h","target":0},{"gate":"cnot","control":0,"target":1}]}}`

type harness struct {
	t   *testing.T
	e   *Emulator
	srv *httptest.Server
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	if cfg.APIKey == "" {
		cfg.APIKey = testKey
	}
	if cfg.StepDelay == 0 {
		cfg.StepDelay = 5 * time.Millisecond
	}
	e := New(cfg)
	srv := httptest.NewServer(e)
	t.Cleanup(func() { srv.Close(); e.Close() })
	return &harness{t: t, e: e, srv: srv}
}

// do sends a request; auth is the full Authorization value ("" for none).
func (h *harness) do(method, path, auth, body string) (int, []byte) {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (h *harness) submit(body string) string {
	h.t.Helper()
	code, b := h.do("POST", "/v0.4/jobs", "apiKey "+testKey, body)
	if code != http.StatusCreated {
		h.t.Fatalf("submit: %d %s", code, b)
	}
	var sr map[string]any
	if err := json.Unmarshal(b, &sr); err != nil {
		h.t.Fatal(err)
	}
	if sr["status"] != "submitted" || sr["session_id"] != nil || len(sr) != 3 {
		h.t.Fatalf("submit response %s", b)
	}
	id, _ := sr["id"].(string)
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(id) {
		h.t.Fatalf("id %q is not a UUID v4", id)
	}
	return id
}

func (h *harness) job(id string) ionq.Job {
	h.t.Helper()
	code, b := h.do("GET", "/v0.4/jobs/"+id, "apiKey "+testKey, "")
	if code != http.StatusOK {
		h.t.Fatalf("get job: %d %s", code, b)
	}
	var j ionq.Job
	if err := json.Unmarshal(b, &j); err != nil {
		h.t.Fatal(err)
	}
	return j
}

// wait polls until the job is terminal and returns every distinct status seen.
func (h *harness) wait(id string) (ionq.Job, []string) {
	h.t.Helper()
	var seen []string
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		j := h.job(id)
		if len(seen) == 0 || seen[len(seen)-1] != j.Status {
			seen = append(seen, j.Status)
		}
		if ionq.IsTerminal(j.Status) {
			return j, seen
		}
		time.Sleep(time.Millisecond)
	}
	h.t.Fatalf("job %s did not finish; saw %v", id, seen)
	return ionq.Job{}, nil
}

func TestBellThroughHTTP(t *testing.T) {
	h := newHarness(t, Config{Seed: 42})
	id := h.submit(bellJob)
	j, _ := h.wait(id)
	if j.Status != ionq.StatusCompleted || j.Failure != nil {
		t.Fatalf("job %+v", j)
	}
	if j.Results == nil || j.Results.Probabilities == nil || j.Results.Probabilities.URL != "/v0.4/jobs/"+id+"/results/probabilities" {
		t.Fatalf("results %+v", j.Results)
	}
	if j.Stats == nil || j.Stats.Qubits != 2 || j.Stats.GateCounts.OneQ != 1 || j.Stats.GateCounts.TwoQ != 1 {
		t.Fatalf("stats %+v", j.Stats)
	}
	if j.Shots != 1000 || j.Name == nil || *j.Name != "bell" || j.StartedAt == nil || j.CompletedAt == nil {
		t.Fatalf("job fields %+v", j)
	}
	code, b := h.do("GET", j.Results.Probabilities.URL, "apiKey "+testKey, "")
	if code != http.StatusOK {
		t.Fatalf("probabilities: %d %s", code, b)
	}
	var p map[string]float64
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	if len(p) != 2 || math.Abs(p["0"]+p["3"]-1) > 1e-9 {
		t.Fatalf("probabilities %v: only 0 and 3 may occur", p)
	}
	// 1000 shots of a fair coin: σ of the frequency is sqrt(.25/1000) ≈ 0.0158.
	if d := math.Abs(p["0"] - 0.5); d > 5*math.Sqrt(0.25/1000) {
		t.Fatalf("P(0)=%v deviates more than 5σ from 0.5", p["0"])
	}
}

func TestStateTransitionsInOrder(t *testing.T) {
	h := newHarness(t, Config{StepDelay: 40 * time.Millisecond})
	id := h.submit(bellJob)
	j, seen := h.wait(id)
	want := []string{"submitted", "ready", "started", "completed"}
	// The emulator's own record must be exactly the IonQ sequence...
	if got := h.e.history(id); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("history %v, want %v", got, want)
	}
	// ...and what a polling client saw must be that sequence in order
	// (a heavily loaded machine may make it miss an intermediate state).
	if seen[0] != "submitted" || seen[len(seen)-1] != "completed" || !isSubsequence(seen, want) {
		t.Fatalf("polled %v, not an in-order subsequence of %v", seen, want)
	}
	sub, _ := time.Parse(ionq.TimeFormat, j.SubmittedAt)
	st, _ := time.Parse(ionq.TimeFormat, *j.StartedAt)
	done, _ := time.Parse(ionq.TimeFormat, *j.CompletedAt)
	if st.Sub(sub) < 70*time.Millisecond || done.Sub(st) < 35*time.Millisecond {
		t.Fatalf("transitions too fast: submitted %v started %v completed %v", sub, st, done)
	}
}

func isSubsequence(got, want []string) bool {
	i := 0
	for _, s := range got {
		for i < len(want) && want[i] != s {
			i++
		}
		if i == len(want) {
			return false
		}
		i++
	}
	return true
}

func TestCancelRecordedOnce(t *testing.T) {
	h := newHarness(t, Config{StepDelay: time.Second})
	id := h.submit(bellJob)
	h.do("PUT", "/v0.4/jobs/"+id+"/status/cancel", "apiKey "+testKey, "")
	h.do("PUT", "/v0.4/jobs/"+id+"/status/cancel", "apiKey "+testKey, "")
	if got := h.e.history(id); strings.Join(got, ",") != "submitted,canceled" {
		t.Fatalf("history %v", got)
	}
}

func TestAuthRefused(t *testing.T) {
	h := newHarness(t, Config{})
	id := h.submit(bellJob)
	paths := []struct{ method, path, body string }{
		{"POST", "/v0.4/jobs", bellJob},
		{"GET", "/v0.4/jobs/" + id, ""},
		{"GET", "/v0.4/jobs/" + id + "/results/probabilities", ""},
		{"PUT", "/v0.4/jobs/" + id + "/status/cancel", ""},
		{"GET", "/v0.4/whoami", ""},
	}
	auths := map[string]string{
		"missing":          "",
		"wrong key":        "apiKey wrong-key",
		"key prefix":       "apiKey " + testKey[:10],
		"key with suffix":  "apiKey " + testKey + "x",
		"bearer wrong key": "Bearer wrong-key",
		"bearer right key": "Bearer " + testKey,
		"basic":            "Basic " + testKey,
		"no scheme":        testKey,
		"two spaces":       "apiKey  " + testKey,
		"empty key":        "apiKey ",
	}
	before := h.e.jobCount()
	for name, auth := range auths {
		for _, p := range paths {
			code, b := h.do(p.method, p.path, auth, p.body)
			if code != http.StatusUnauthorized {
				t.Errorf("%s %s with %s: %d %s", p.method, p.path, name, code, b)
				continue
			}
			var e ionq.Error
			if err := json.Unmarshal(b, &e); err != nil || e.StatusCode != 401 || e.Error != "Unauthorized" || e.Message == "" {
				t.Errorf("%s: error body %s", name, b)
			}
			if strings.Contains(string(b), "wrong-key") || strings.Contains(string(b), testKey[:10]) {
				t.Errorf("%s: error echoes the key: %s", name, b)
			}
		}
	}
	if h.e.jobCount() != before {
		t.Fatal("an unauthenticated request created a job")
	}
	if j := h.job(id); j.Status == ionq.StatusCanceled {
		t.Fatal("an unauthenticated cancel took effect")
	}
	// Scheme is case-insensitive.
	if code, b := h.do("GET", "/v0.4/whoami", "APIKEY "+testKey, ""); code != 200 {
		t.Fatalf("APIKEY scheme: %d %s", code, b)
	}
}

func TestNoKeyConfiguredRefusesAll(t *testing.T) {
	e := New(Config{})
	defer e.Close()
	for _, auth := range []string{"apiKey ", "apiKey x", ""} {
		req := httptest.NewRequest("GET", "/v0.4/whoami", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		if rec.Code != 401 {
			t.Fatalf("auth %q on keyless emulator: %d", auth, rec.Code)
		}
	}
}

func TestBadBodiesCreateNoJob(t *testing.T) {
	h := newHarness(t, Config{})
	in := `"input":{"qubits":2,"circuit":[{"gate":"h","target":0}]}`
	big := `{"type":"ionq.circuit.v1","backend":"simulator","name":"` + strings.Repeat("a", MaxBodyBytes) + `",` + in + `}`
	cases := []struct {
		name, body string
		code       int
		msg        string
	}{
		{"unknown field", `{"type":"ionq.circuit.v1","backend":"simulator","bogus":1,` + in + `}`, 400, "bogus"},
		{"shots 0", `{"type":"ionq.circuit.v1","backend":"simulator","shots":0,` + in + `}`, 400, "shots"},
		{"shots 2,000,000", `{"type":"ionq.circuit.v1","backend":"simulator","shots":2000000,` + in + `}`, 400, "shots"},
		{"unknown gate", `{"type":"ionq.circuit.v1","backend":"simulator","input":{"qubits":1,"circuit":[{"gate":"foo","target":0}]}}`, 400, "unknown gate"},
		{"target out of range", `{"type":"ionq.circuit.v1","backend":"simulator","input":{"qubits":2,"circuit":[{"gate":"x","target":7}]}}`, 400, "target 7 out of range"},
		{"noise on qpu", `{"type":"ionq.circuit.v1","backend":"qpu.forte-1","noise":{"model":"ideal"},` + in + `}`, 400, "noise"},
		{"malformed JSON", `{"type":"ionq.circuit.v1",`, 400, "malformed"},
		{"duplicate key", `{"type":"ionq.circuit.v1","backend":"simulator","shots":1,"shots":9,` + in + `}`, 400, "duplicate"},
		{"unknown backend", `{"type":"ionq.circuit.v1","backend":"qpu.nowhere",` + in + `}`, 400, "backend"},
		{"session", `{"type":"ionq.circuit.v1","backend":"simulator","session_id":"s1",` + in + `}`, 400, "session"},
		{"unsupported type", `{"type":"ionq.multi-circuit.v1","backend":"simulator","input":{"circuits":[]}}`, 400, "not supported"},
		{"native gateset", `{"type":"ionq.circuit.v1","backend":"simulator","input":{"qubits":1,"gateset":"native","circuit":[]}}`, 400, "native"},
		{"over 1 MiB", big, 413, "larger"},
	}
	for _, c := range cases {
		code, b := h.do("POST", "/v0.4/jobs", "apiKey "+testKey, c.body)
		if code != c.code {
			t.Errorf("%s: status %d %s, want %d", c.name, code, b, c.code)
			continue
		}
		var e ionq.Error
		if err := json.Unmarshal(b, &e); err != nil || e.StatusCode != c.code || !strings.Contains(e.Message, c.msg) {
			t.Errorf("%s: error body %s, want message containing %q", c.name, b, c.msg)
		}
	}
	if n := h.e.jobCount(); n != 0 {
		t.Fatalf("%d jobs created by bad requests", n)
	}
	// Wrong content type.
	req, _ := http.NewRequest("POST", h.srv.URL+"/v0.4/jobs", strings.NewReader(bellJob))
	req.Header.Set("Authorization", "apiKey "+testKey)
	req.Header.Set("Content-Type", "text/plain")
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType || h.e.jobCount() != 0 {
		t.Fatalf("text/plain body: %d", resp.StatusCode)
	}
}

func TestCancel(t *testing.T) {
	h := newHarness(t, Config{StepDelay: time.Second})
	id := h.submit(bellJob)
	code, b := h.do("PUT", "/v0.4/jobs/"+id+"/status/cancel", "apiKey "+testKey, "")
	if code != 200 || !bytes.Contains(b, []byte(`"status":"canceled"`)) || !bytes.Contains(b, []byte(id)) {
		t.Fatalf("cancel: %d %s", code, b)
	}
	if j := h.job(id); j.Status != ionq.StatusCanceled || j.Results != nil {
		t.Fatalf("after cancel: %+v", j)
	}
	if code, _ := h.do("PUT", "/v0.4/jobs/"+id+"/status/cancel", "apiKey "+testKey, ""); code != 200 {
		t.Fatalf("second cancel: %d", code)
	}
	if code, _ := h.do("GET", "/v0.4/jobs/"+id+"/results/probabilities", "apiKey "+testKey, ""); code != 404 {
		t.Fatalf("results of canceled job: %d", code)
	}
	if code, _ := h.do("PUT", "/v0.4/jobs/00000000-0000-4000-8000-000000000000/status/cancel", "apiKey "+testKey, ""); code != 404 {
		t.Fatalf("cancel unknown: %d", code)
	}
}

func TestCancelCompletedRefused(t *testing.T) {
	h := newHarness(t, Config{StepDelay: time.Millisecond})
	id := h.submit(bellJob)
	h.wait(id)
	code, b := h.do("PUT", "/v0.4/jobs/"+id+"/status/cancel", "apiKey "+testKey, "")
	if code != 400 || h.job(id).Status != ionq.StatusCompleted {
		t.Fatalf("cancel completed: %d %s", code, b)
	}
}

func TestCanceledJobStaysCanceled(t *testing.T) {
	h := newHarness(t, Config{StepDelay: 200 * time.Millisecond})
	id := h.submit(bellJob)
	time.Sleep(250 * time.Millisecond) // in "ready" by now
	if code, b := h.do("PUT", "/v0.4/jobs/"+id+"/status/cancel", "apiKey "+testKey, ""); code != 200 {
		t.Fatalf("cancel mid-flight: %d %s", code, b)
	}
	time.Sleep(600 * time.Millisecond) // the lifecycle would have completed it
	if j := h.job(id); j.Status != ionq.StatusCanceled || j.Results != nil {
		t.Fatalf("canceled job moved to %s", j.Status)
	}
	hist := h.e.history(id)
	if hist[len(hist)-1] != ionq.StatusCanceled || slices.Contains(hist, ionq.StatusCompleted) {
		t.Fatalf("history %v", hist)
	}
}

func TestResultsBeforeCompletion(t *testing.T) {
	h := newHarness(t, Config{StepDelay: time.Second})
	id := h.submit(bellJob)
	code, b := h.do("GET", "/v0.4/jobs/"+id+"/results/probabilities", "apiKey "+testKey, "")
	if code != 404 || !strings.Contains(string(b), "submitted") {
		t.Fatalf("early results: %d %s", code, b)
	}
	if code, _ := h.do("GET", "/v0.4/jobs/no-such-job", "apiKey "+testKey, ""); code != 404 {
		t.Fatalf("unknown job: %d", code)
	}
}

func TestFailures(t *testing.T) {
	h := newHarness(t, Config{StepDelay: time.Millisecond})
	cases := []struct{ body, code string }{
		{`{"type":"ionq.circuit.v1","backend":"simulator","input":{"qubits":21,"circuit":[]}}`, ionq.FailureNotEnoughQubits},
		{`{"type":"ionq.circuit.v1","backend":"qpu.forte-1","input":{"qubits":40,"circuit":[]}}`, ionq.FailureNotEnoughQubits},
		{`{"type":"ionq.circuit.v1","backend":"simulator","input":{"qubits":20,"circuit":[` +
			strings.TrimSuffix(strings.Repeat(`{"gate":"h","target":0},`, 1025), ",") + `]}}`, ionq.FailureTooManyGates},
	}
	for _, c := range cases {
		id := h.submit(c.body)
		j, _ := h.wait(id)
		if j.Status != ionq.StatusFailed || j.Failure == nil || j.Failure.Code != c.code || j.Results != nil {
			t.Errorf("want failed/%s, got %s %+v", c.code, j.Status, j.Failure)
		}
	}
	id := h.submit(`{"type":"ionq.circuit.v1","backend":"simulator","dry_run":true,"input":{"qubits":1,"circuit":[]}}`)
	if j, _ := h.wait(id); j.Status != ionq.StatusCompleted || j.Results != nil || !j.DryRun {
		t.Errorf("dry run: %+v", j)
	}
}

func TestRoutingAndBackends(t *testing.T) {
	h := newHarness(t, Config{})
	code, b := h.do("GET", "/v0.4/backends", "", "")
	var bs []ionq.Backend
	if code != 200 || json.Unmarshal(b, &bs) != nil || len(bs) != 2 {
		t.Fatalf("backends: %d %s", code, b)
	}
	if bs[0].Backend != "simulator" || bs[0].Qubits != 29 || bs[1].Backend != "qpu.forte-1" || bs[1].Qubits != 36 || bs[1].Status != "available" {
		t.Fatalf("backends %+v", bs)
	}
	if code, b := h.do("GET", "/v0.4/backends/qpu.forte-1", "", ""); code != 200 || !strings.Contains(string(b), `"qubits":36`) {
		t.Fatalf("backend: %d %s", code, b)
	}
	if code, _ := h.do("GET", "/v0.4/backends/qpu.nope", "", ""); code != 404 {
		t.Fatalf("unknown backend: %d", code)
	}
	for _, c := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/v0.3/jobs", 404},
		{"GET", "/", 404},
		{"DELETE", "/v0.4/jobs", 405},
		{"POST", "/v0.4/backends", 405},
		{"DELETE", "/v0.4/jobs/x", 405},
		{"GET", "/v0.4/jobs/x/cost", 404},
	} {
		code, b := h.do(c.method, c.path, "apiKey "+testKey, "")
		var e ionq.Error
		if code != c.code || json.Unmarshal(b, &e) != nil || e.StatusCode != c.code {
			t.Errorf("%s %s: %d %s, want %d in IonQ shape", c.method, c.path, code, b, c.code)
		}
	}
	code, b = h.do("GET", "/v0.4/whoami", "apiKey "+testKey, "")
	var who map[string]string
	if code != 200 || json.Unmarshal(b, &who) != nil || who["key_id"] == "" || who["key_name"] == "" || who["project_id"] == "" {
		t.Fatalf("whoami: %d %s", code, b)
	}
	if strings.Contains(string(b), testKey) {
		t.Fatal("whoami echoes the key")
	}
}

func TestEviction(t *testing.T) {
	h := newHarness(t, Config{StepDelay: time.Millisecond, MaxJobs: 3})
	var ids []string
	for range 3 {
		id := h.submit(bellJob)
		h.wait(id)
		ids = append(ids, id)
	}
	newest := h.submit(bellJob)
	if code, _ := h.do("GET", "/v0.4/jobs/"+ids[0], "apiKey "+testKey, ""); code != 404 {
		t.Fatalf("oldest job not evicted: %d", code)
	}
	for _, id := range append(ids[1:], newest) {
		if code, _ := h.do("GET", "/v0.4/jobs/"+id, "apiKey "+testKey, ""); code != 200 {
			t.Fatalf("job %s evicted wrongly: %d", id, code)
		}
	}

	slow := newHarness(t, Config{StepDelay: time.Second, MaxJobs: 2})
	slow.submit(bellJob)
	slow.submit(bellJob)
	if code, b := slow.do("POST", "/v0.4/jobs", "apiKey "+testKey, bellJob); code != http.StatusTooManyRequests {
		t.Fatalf("full of running jobs: %d %s", code, b)
	}
}

func TestSeededResultsReproducible(t *testing.T) {
	run := func() string {
		h := newHarness(t, Config{StepDelay: time.Millisecond, Seed: 7})
		id := h.submit(bellJob)
		h.wait(id)
		_, b := h.do("GET", "/v0.4/jobs/"+id+"/results/probabilities", "apiKey "+testKey, "")
		return string(b)
	}
	if a, b := run(), run(); a != b {
		t.Fatalf("same seed, different results: %s vs %s", a, b)
	}
}

func TestCloseStopsLifecycle(t *testing.T) {
	e := New(Config{APIKey: testKey, StepDelay: time.Hour})
	req := httptest.NewRequest("POST", "/v0.4/jobs", strings.NewReader(bellJob))
	req.Header.Set("Authorization", "apiKey "+testKey)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	if rec.Code != 201 {
		t.Fatalf("submit: %d", rec.Code)
	}
	done := make(chan struct{})
	go func() { e.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not stop the job goroutines")
	}
	rec = httptest.NewRecorder()
	req = httptest.NewRequest("POST", "/v0.4/jobs", strings.NewReader(bellJob))
	req.Header.Set("Authorization", "apiKey "+testKey)
	req.Header.Set("Content-Type", "application/json")
	e.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("submit after Close: %d", rec.Code)
	}
}

func BenchmarkGetJob(b *testing.B) {
	e := New(Config{APIKey: testKey, StepDelay: time.Millisecond})
	defer e.Close()
	req := httptest.NewRequest("POST", "/v0.4/jobs", strings.NewReader(bellJob))
	req.Header.Set("Authorization", "apiKey "+testKey)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	var sr ionq.SubmitResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &sr); err != nil {
		b.Fatal(err)
	}
	get := httptest.NewRequest("GET", fmt.Sprintf("/v0.4/jobs/%s", sr.ID), nil)
	get.Header.Set("Authorization", "apiKey "+testKey)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			e.ServeHTTP(w, get)
			if w.Code != 200 {
				b.Fatalf("status %d", w.Code)
			}
		}
	})
}
