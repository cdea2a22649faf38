package ibm

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/provider"
	"github.com/qbroker/qbroker/internal/sim/ibmsim"
)

const (
	rootKey  = "ibm-root-api-key-Zq8vN3xK7pL2mR5tW9yB4cD6fH1jS0aE"
	otherCRN = "crn:v1:bluemix:public:quantum-computing:us-east:a/0123456789abcdef0123456789abcdef:99999999-9999-4999-8999-999999999999::"
	kingston = "ibm_kingston"

	// The Bell circuit in the Heron basis ibmsim enforces by default (cz id
	// rx rz rzz sx x): h is rz(pi/2); sx; rz(pi/2) up to a global phase,
	// and cx q0,q1 is h q1; cz q0,q1; h q1.
	bellISA = "OPENQASM 3.0;\ninclude \"stdgates.inc\";\nqubit[2] q;\nbit[2] c;\n" +
		"rz(pi/2) q[0];\nsx q[0];\nrz(pi/2) q[0];\n" +
		"rz(pi/2) q[1];\nsx q[1];\nrz(pi/2) q[1];\n" +
		"cz q[0], q[1];\n" +
		"rz(pi/2) q[1];\nsx q[1];\nrz(pi/2) q[1];\n" +
		"c = measure q;\n"
	// bellNonISA is valid OpenQASM 3 that Heron backends do not run.
	bellNonISA = "OPENQASM 3.0;\ninclude \"stdgates.inc\";\nqubit[2] q;\nbit[2] c;\nh q[0];\ncx q[0], q[1];\nc = measure q;\n"
)

// seen is one request the emulator received.
type seen struct {
	method, path string
	header       http.Header
	body         []byte
}

// emu runs ibmsim on loopback behind a recorder of every request, with a
// clock the test can move forward.
type emu struct {
	e      *ibmsim.Emulator
	url    string
	offset atomic.Int64

	mu   sync.Mutex
	reqs []seen
}

func newEmu(t *testing.T, mutate func(*ibmsim.Config)) *emu {
	t.Helper()
	s := &emu{}
	cfg := ibmsim.Config{APIKey: rootKey, JobsPerMinute: -1, StepDelay: 2 * time.Millisecond, Now: s.now}
	if mutate != nil {
		mutate(&cfg)
	}
	e, err := ibmsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.reqs = append(s.reqs, seen{method: r.Method, path: r.URL.Path, header: r.Header.Clone(), body: body})
		s.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		e.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { srv.Close(); e.Close() })
	s.e, s.url = e, srv.URL
	return s
}

func (s *emu) now() time.Time          { return time.Now().Add(time.Duration(s.offset.Load())) }
func (s *emu) advance(d time.Duration) { s.offset.Add(int64(d)) }

func (s *emu) requests() []seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seen(nil), s.reqs...)
}

func (s *emu) minter() *Minter { return &Minter{IAMURL: s.url, Now: s.now} }

func (s *emu) adapter() Adapter { return Adapter{InstanceCRN: s.e.InstanceCRN()} }

func (s *emu) mint(t *testing.T) provider.Credential {
	t.Helper()
	c, _, rotated, err := s.minter().Mint(context.Background(), rootKey, "demo")
	if err != nil {
		t.Fatal(err)
	}
	if rotated != "" {
		t.Fatalf("IBM root key reported as rotated")
	}
	return c
}

type answer struct {
	status int
	body   []byte
}

// forward sends a client's request upstream as the gateway's frontSend
// does (path as received, body as prepared, the client's Accept and
// Content-Type, then Authenticate), except that it copies every client
// header first: Authenticate alone must leave none of the client's
// credentials.
func (s *emu) forward(t *testing.T, a Adapter, method, rest string, client http.Header, body []byte, cred provider.Credential) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, s.url+rest, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(body))
	req.Header = client.Clone()
	if len(body) > 0 && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "qbroker-gateway")
	if err := a.Authenticate(context.Background(), req, body, cred); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, body: b}
}

// clientHeader is what an agent's client sends: its qbroker token as
// Qiskit sends its IAM token, plus whatever else it likes.
func clientHeader(token string, extra ...string) http.Header {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	h.Set("Accept", "application/json")
	h.Set("IBM-API-Version", "2026-03-15")
	for i := 0; i+1 < len(extra); i += 2 {
		h.Add(extra[i], extra[i+1])
	}
	return h
}

// samplerJob is the Bell-shaped submission an agent sends.
func samplerJob(backend, circuit string, shots int) []byte {
	b, _ := json.Marshal(map[string]any{
		"program_id": "sampler",
		"backend":    backend,
		"params":     map[string]any{"pubs": []any{[]any{circuit, nil, shots}}, "version": 2},
	})
	return b
}

// errCode reads errors[0].code of an ErrorContainer.
func errCode(body []byte) int {
	var ec struct {
		Errors []struct {
			Code int `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &ec) != nil || len(ec.Errors) == 0 {
		return 0
	}
	return ec.Errors[0].Code
}

func mustContainNot(t *testing.T, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s contains a secret: %s", what, text)
		}
	}
}
