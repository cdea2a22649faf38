package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/sim/ionqsim"
	"github.com/qbroker/qbroker/internal/token"
)

const (
	realKey      = "ionq-real-key-6b1f0c9e2d"
	testIssuer   = "https://broker.test"
	testAudience = "qbroker-gateway"
	aliceToken   = "qbt_alice_broker_token"
	bobToken     = "qbt_bob_broker_token"
	aliceID      = "agent-alice"
	bobID        = "agent-bob"
	testDevice   = "simulator"

	bellInput = `{"qubits":2,"gateset":"qis","circuit":[{"gate":"h","target":0},{"gate":"cnot","control":0,"target":1}]}`
)

func bellBody(shots int, backend string) string {
	return `{"type":"ionq.circuit.v1","name":"bell","shots":` + itoa(shots) + `,"backend":"` + backend + `","input":` + bellInput + `}`
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// seenRequest is one request an upstream received.
type seenRequest struct {
	Method, Path, Host string
	Header             http.Header
	Body               []byte
}

// recorder wraps a handler and remembers every request it serves.
type recorder struct {
	next  http.Handler
	quiet atomic.Bool // benchmarks: pass through without recording
	mu    sync.Mutex
	seen  []seenRequest
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rc.quiet.Load() {
		rc.next.ServeHTTP(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.seen = append(rc.seen, seenRequest{Method: r.Method, Path: r.URL.Path, Host: r.Host, Header: r.Header.Clone(), Body: body})
	rc.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(body))
	rc.next.ServeHTTP(w, r)
}

func (rc *recorder) requests() []seenRequest {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]seenRequest(nil), rc.seen...)
}

func (rc *recorder) count(method, path string) int {
	n := 0
	for _, s := range rc.requests() {
		if s.Method == method && s.Path == path {
			n++
		}
	}
	return n
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

type harness struct {
	t        testing.TB
	broker   *memBroker
	ring     *token.KeyRing
	emu      http.Handler
	upstream *recorder
	upSrv    *httptest.Server
	gw       *Gateway
	srv      *httptest.Server
	client   *http.Client
	logs     *syncBuffer
}

// harnessSettings are what a harnessOpt may change.
type harnessSettings struct {
	gw        Config
	stepDelay time.Duration // emulator status step
}

type harnessOpt func(*harnessSettings)

// slowJobs keeps jobs queued long enough to be canceled.
func slowJobs(s *harnessSettings) { s.stepDelay = 10 * time.Second }

func newHarness(t testing.TB, opts ...harnessOpt) *harness {
	t.Helper()
	h := &harness{t: t, broker: newMemBroker(realKey), logs: &syncBuffer{}}
	set := harnessSettings{stepDelay: time.Millisecond}
	for _, o := range opts {
		o(&set)
	}
	emu := ionqsim.New(ionqsim.Config{APIKey: realKey, StepDelay: set.stepDelay})
	t.Cleanup(emu.Close)
	h.emu = emu
	h.upstream = &recorder{next: h.emu}
	h.upSrv = httptest.NewServer(h.upstream)
	t.Cleanup(h.upSrv.Close)

	key, err := token.GenerateKey(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	h.ring, err = token.NewKeyRing([]token.Key{key})
	if err != nil {
		t.Fatal(err)
	}
	v, err := token.NewVerifier(token.VerifierConfig{Issuer: testIssuer, Audience: testAudience, Keys: h.ring})
	if err != nil {
		t.Fatal(err)
	}
	up, _ := url.Parse(h.upSrv.URL)
	cfg := Config{
		Broker:       h.broker,
		Verifier:     v,
		IonQUpstream: up,
		MaxBody:      16 << 10,
		Logger:       slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if set.gw.Logger != nil {
		cfg.Logger = set.gw.Logger
	}
	h.gw, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = httptest.NewServer(h.gw)
	t.Cleanup(h.srv.Close)
	h.client = h.srv.Client()
	h.broker.addAgentToken(aliceToken, aliceID)
	h.broker.addAgentToken(bobToken, bobID)
	return h
}

// claims returns default claims for alice: ionq/simulator, 100 shots.
func (h *harness) claims() token.Claims {
	now := time.Now()
	var id [12]byte
	_, _ = rand.Read(id[:])
	return token.Claims{
		Issuer: testIssuer, Subject: aliceID, Audience: testAudience,
		IssuedAt: now, Expiry: now.Add(2 * time.Minute), ID: "jti-" + hex.EncodeToString(id[:]),
		Role: "demo", Provider: "ionq", Device: testDevice, MaxShots: 100,
	}
}

// mint signs c with the harness ring and registers its jti with the broker.
func (h *harness) mint(c token.Claims) string {
	h.t.Helper()
	return h.mintWith(h.ring, c)
}

func (h *harness) mintWith(ring *token.KeyRing, c token.Claims) string {
	h.t.Helper()
	raw, err := ring.Sign(c)
	if err != nil {
		h.t.Fatal(err)
	}
	h.broker.issue(c.ID, c.Expiry)
	return raw
}

type answer struct {
	Status int
	Header http.Header
	Body   []byte
}

func (a answer) message() string {
	var e struct {
		StatusCode int    `json:"statusCode"`
		Error      string `json:"error"`
		Message    string `json:"message"`
	}
	_ = json.Unmarshal(a.Body, &e)
	return e.Message
}

func (h *harness) do(method, path, apiKey, body string) answer {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if apiKey != "" {
		req.Header.Set("Authorization", "apiKey "+apiKey)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return h.send(req)
}

func (h *harness) send(req *http.Request) answer {
	h.t.Helper()
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return answer{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

func (h *harness) submit(jobToken, body string) answer {
	h.t.Helper()
	return h.do(http.MethodPost, "/ionq/v0.4/jobs", jobToken, body)
}

// expect fails unless a has the status and its IonQ-shaped message contains
// want.
func expect(t testing.TB, a answer, status int, want string) {
	t.Helper()
	if a.Status != status {
		t.Fatalf("status %d, want %d; body %s", a.Status, status, a.Body)
	}
	if want != "" && !strings.Contains(a.message(), want) {
		t.Fatalf("message %q does not contain %q (body %s)", a.message(), want, a.Body)
	}
}

// jobID extracts the id from a 201 answer.
func jobID(t testing.TB, a answer) string {
	t.Helper()
	var j struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(a.Body, &j); err != nil || j.ID == "" {
		t.Fatalf("no job id in %s (%v)", a.Body, err)
	}
	return j.ID
}
