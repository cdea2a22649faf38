package quantinuumsim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testEmail    = "alice@example.com"
	testPassword = "correct horse battery staple"
)

const bellQASM = `OPENQASM 3;
include "stdgates.inc";
qreg q[2];
creg c[2];
h q[0];
cx q[0], q[1];
measure q -> c;
`

// clock is a settable Config.Now.
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

type harness struct {
	t     *testing.T
	e     *Emulator
	srv   *httptest.Server
	clock *clock
}

func newHarness(t *testing.T, mutate func(*Config)) *harness {
	t.Helper()
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	cfg := Config{Email: testEmail, Password: testPassword, Now: clk.Now, StepDelay: 2 * time.Millisecond, Seed: 7}
	if mutate != nil {
		mutate(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e)
	t.Cleanup(func() { srv.Close(); e.Close() })
	return &harness{t: t, e: e, srv: srv, clock: clk}
}

// do sends a request; auth is the whole Authorization value ("" for none).
// Like pytket, it sends JSON bodies without a Content-Type.
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
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// login performs a password login and returns the two tokens.
func (h *harness) login() (id, refresh string) {
	h.t.Helper()
	code, b := h.do("POST", "/v1/login", "", mustJSON(h.t, map[string]string{"email": testEmail, "password": testPassword}))
	if code != http.StatusOK {
		h.t.Fatalf("login: %d %s", code, b)
	}
	var lr map[string]string
	if err := json.Unmarshal(b, &lr); err != nil {
		h.t.Fatal(err)
	}
	if lr["id-token"] == "" || lr["refresh-token"] == "" || len(lr) != 2 {
		h.t.Fatalf("login answer %s", b)
	}
	return lr["id-token"], lr["refresh-token"]
}

// refresh exchanges a refresh token; it returns the status and the answer.
func (h *harness) refresh(tok string) (int, map[string]string, []byte) {
	h.t.Helper()
	code, b := h.do("POST", "/v1/login", "", mustJSON(h.t, map[string]string{"refresh-token": tok}))
	var lr map[string]string
	_ = json.Unmarshal(b, &lr)
	return code, lr, b
}

// errOf decodes an error answer.
func errOf(t *testing.T, b []byte) errorDetail {
	t.Helper()
	var eb struct {
		Error *errorDetail `json:"error"`
	}
	if err := json.Unmarshal(b, &eb); err != nil || eb.Error == nil {
		t.Fatalf("not an error answer: %s", b)
	}
	return *eb.Error
}

// jobBody returns a POST /v1/job body; extra fields override.
func jobBody(t *testing.T, machine string, count int, program string, extra map[string]any) string {
	t.Helper()
	m := map[string]any{
		"name": "bell", "count": count, "machine": machine, "language": "OPENQASM 2.0",
		"program": program, "priority": "normal",
		"options": map[string]any{"simulator": "state-vector", "no-opt": true, "error-model": false, "tket": map[string]any{}},
	}
	for k, v := range extra {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return mustJSON(t, m)
}

func (h *harness) submit(id, body string) string {
	h.t.Helper()
	code, b := h.do("POST", "/v1/job", id, body)
	if code != http.StatusOK {
		h.t.Fatalf("submit: %d %s", code, b)
	}
	var sr map[string]string
	if err := json.Unmarshal(b, &sr); err != nil {
		h.t.Fatal(err)
	}
	if sr["job"] == "" || sr["status"] != StatusQueued {
		h.t.Fatalf("submit answer %s", b)
	}
	return sr["job"]
}

type testJob struct {
	Job           string              `json:"job"`
	Name          string              `json:"name"`
	Status        string              `json:"status"`
	Machine       string              `json:"machine"`
	Count         int                 `json:"count"`
	SubmitDate    string              `json:"submit-date"`
	ResultDate    *string             `json:"result-date"`
	QueuePosition *int                `json:"queue-position"`
	Cost          float64             `json:"cost"`
	Error         *errorDetail        `json:"error"`
	Results       map[string][]string `json:"results"`
	Websocket     any                 `json:"websocket"`
}

func (h *harness) job(id, jobID string) testJob {
	h.t.Helper()
	code, b := h.do("GET", "/v1/job/"+jobID+"?websocket=true", id, "")
	if code != http.StatusOK {
		h.t.Fatalf("get job: %d %s", code, b)
	}
	var j testJob
	if err := json.Unmarshal(b, &j); err != nil {
		h.t.Fatal(err)
	}
	return j
}

// wait polls until the job is terminal and returns every status seen.
func (h *harness) wait(id, jobID string) (testJob, []string) {
	h.t.Helper()
	var seen []string
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		j := h.job(id, jobID)
		if len(seen) == 0 || seen[len(seen)-1] != j.Status {
			seen = append(seen, j.Status)
		}
		if isTerminal(j.Status) {
			return j, seen
		}
		time.Sleep(time.Millisecond)
	}
	h.t.Fatalf("job %s did not finish; saw %v", jobID, seen)
	return testJob{}, nil
}

func (e *Emulator) jobCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.jobs)
}

func mustDecode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}
