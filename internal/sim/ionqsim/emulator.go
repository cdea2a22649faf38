// Package ionqsim is an in-process emulator of IonQ's v0.4 REST API, backed
// by the state-vector simulator in package sim. It is an http.Handler meant
// for tests, the quickstart and `qbroker sim`.
//
// It is as strict as IonQ where IonQ's behaviour is documented:
//
//   - Routes live under /v0.4: GET /backends and GET /backends/{backend}
//     (no auth); POST /jobs, GET /jobs/{id}, GET
//     /jobs/{id}/results/probabilities, PUT /jobs/{id}/status/cancel and GET
//     /whoami (auth). Any other path is 404 and a known path with the wrong
//     method is 405, both in IonQ's error shape
//     {"statusCode","error","message"}.
//   - Auth is "Authorization: apiKey <key>" (scheme case-insensitive),
//     compared in constant time. A missing or malformed header, another
//     scheme (Bearer included, even with the right key) or a wrong key is
//     401; the message never echoes the key. An emulator configured without
//     a key refuses every authenticated request.
//   - POST /jobs takes at most 1 MiB (413 beyond) of Content-Type
//     application/json (415 otherwise), decoded and validated by package
//     ionq: any problem is 400 naming the field, and creates no job. The
//     backend must be one the emulator lists (400). session_id must be null
//     or absent: the emulator has no sessions (400). Success is 201
//     {"id":<uuid v4>,"status":"submitted","session_id":null}.
//   - A job then moves submitted → ready → started → completed, one
//     StepDelay per step; on completion the circuit runs on the simulator and
//     `shots` shots are sampled; probabilities are counts/shots, keyed by the
//     decimal basis-state index (qubit 0 = least significant bit).
//   - Jobs the emulator cannot run are accepted (201) and then fail where
//     they would complete, as IonQ fails jobs after submission: more qubits
//     than the backend lists or than sim.MaxQubits → failure code
//     NotEnoughQubits; more work than gates×2^qubits = 2^30 → TooManyGates.
//   - dry_run jobs complete without results. A noise model is accepted on
//     the simulator backend and echoed, but the simulation is always ideal.
//   - GET /jobs/{id}/results/probabilities is 404 for an unknown job and for
//     a job that is not (or not successfully) completed, as IonQ documents.
//   - PUT /jobs/{id}/status/cancel cancels a job that is not terminal and is
//     idempotent on a canceled job (200 {"id","status":"canceled"}); on a
//     completed or failed job it is 400.
//   - At most Config.MaxJobs jobs (default 10,000) are kept; the oldest
//     terminal job is evicted to make room, and if every kept job is still
//     running a new submission is refused with 429.
package ionqsim

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/qbroker/qbroker/internal/provider/ionq"
)

// Defaults and limits.
const (
	DefaultStepDelay = 20 * time.Millisecond
	DefaultMaxJobs   = 10_000
	MaxBodyBytes     = 1 << 20
	// MaxWork bounds gates × 2^qubits per job; beyond it a job fails with
	// TooManyGates rather than tying up a CPU for minutes.
	MaxWork = 1 << 30
)

// Config configures an Emulator.
type Config struct {
	// APIKey is the only key accepted. Empty means every authenticated
	// request is refused.
	APIKey string
	// StepDelay is the time between status transitions (default 20ms).
	StepDelay time.Duration
	// Logger receives debug logs of job transitions (default: discard).
	Logger *slog.Logger
	// Seed makes sampling reproducible; 0 picks a random seed.
	Seed uint64
	// MaxJobs bounds the jobs kept in memory (default 10,000).
	MaxJobs int
}

// Emulator is the IonQ API emulator. Create it with New and stop its
// background work with Close.
type Emulator struct {
	cfg       Config
	log       *slog.Logger
	mux       *http.ServeMux
	keyHash   [32]byte
	hasKey    bool
	seed      uint64
	keyID     string
	projectID string
	started   time.Time
	backends  []ionq.Backend

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sem    chan struct{} // bounds concurrent simulations

	mu     sync.Mutex
	closed bool
	seq    uint64
	jobs   map[string]*job
	order  []string // job ids, oldest first
}

var _ http.Handler = (*Emulator)(nil)

// New returns a running emulator.
func New(cfg Config) *Emulator {
	if cfg.StepDelay <= 0 {
		cfg.StepDelay = DefaultStepDelay
	}
	if cfg.MaxJobs <= 0 {
		cfg.MaxJobs = DefaultMaxJobs
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = mrand.Uint64()
	}
	ctx, cancel := context.WithCancel(context.Background())
	now := time.Now()
	e := &Emulator{
		cfg:       cfg,
		log:       log,
		mux:       http.NewServeMux(),
		keyHash:   sha256.Sum256([]byte(cfg.APIKey)),
		hasKey:    cfg.APIKey != "",
		seed:      seed,
		keyID:     newUUID(),
		projectID: newUUID(),
		started:   now,
		ctx:       ctx,
		cancel:    cancel,
		sem:       make(chan struct{}, 2),
		jobs:      make(map[string]*job),
	}
	e.backends = []ionq.Backend{
		{Backend: "simulator", Status: ionq.BackendAvailable, Qubits: 29, LastUpdated: ionq.FormatTime(now)},
		{Backend: "qpu.forte-1", Status: ionq.BackendAvailable, Qubits: 36, LastUpdated: ionq.FormatTime(now)},
	}
	e.routes()
	return e
}

func (e *Emulator) routes() {
	e.mux.HandleFunc("GET /v0.4/backends", e.handleBackends)
	e.mux.HandleFunc("GET /v0.4/backends/{backend}", e.handleBackend)
	e.mux.Handle("POST /v0.4/jobs", e.auth(e.handleCreate))
	e.mux.Handle("GET /v0.4/jobs/{id}", e.auth(e.handleGet))
	e.mux.Handle("GET /v0.4/jobs/{id}/results/probabilities", e.auth(e.handleProbabilities))
	e.mux.Handle("PUT /v0.4/jobs/{id}/status/cancel", e.auth(e.handleCancel))
	e.mux.Handle("GET /v0.4/whoami", e.auth(e.handleWhoAmI))
}

// Close stops the background job goroutines and waits for them. Jobs that
// had not finished stay in their current status.
func (e *Emulator) Close() {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.cancel()
	e.wg.Wait()
}

// ServeHTTP implements http.Handler.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := e.mux.Handler(r); pattern == "" {
		// Not found, or known path with the wrong method: answer in IonQ's
		// error shape instead of ServeMux's plain text.
		rec := &headerRecorder{header: http.Header{}}
		h, _ := e.mux.Handler(r)
		h.ServeHTTP(rec, r)
		if rec.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", rec.header.Get("Allow"))
			ionq.WriteError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on this route", r.Method))
			return
		}
		ionq.WriteError(w, http.StatusNotFound, "route not found")
		return
	}
	e.mux.ServeHTTP(w, r)
}

// headerRecorder captures the status and headers of ServeMux's built-in
// error handlers.
type headerRecorder struct {
	header http.Header
	status int
}

func (h *headerRecorder) Header() http.Header         { return h.header }
func (h *headerRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (h *headerRecorder) WriteHeader(status int)      { h.status = status }

// auth wraps an authenticated route.
func (e *Emulator) auth(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.Header.Values("Authorization")) == 0 {
			ionq.WriteError(w, http.StatusUnauthorized, "missing Authorization header; expected 'apiKey <key>'")
			return
		}
		scheme, key, ok := ionq.ParseAuthorization(r.Header)
		if !ok || !strings.EqualFold(scheme, ionq.SchemeAPIKey) {
			ionq.WriteError(w, http.StatusUnauthorized, "malformed Authorization header; expected 'apiKey <key>'")
			return
		}
		got := sha256.Sum256([]byte(key))
		if subtle.ConstantTimeCompare(got[:], e.keyHash[:]) != 1 || !e.hasKey {
			ionq.WriteError(w, http.StatusUnauthorized, "invalid API key")
			return
		}
		next(w, r)
	})
}

func (e *Emulator) backend(name string) (ionq.Backend, bool) {
	for _, b := range e.backends {
		if b.Backend == name {
			return b, true
		}
	}
	return ionq.Backend{}, false
}

func (e *Emulator) handleBackends(w http.ResponseWriter, _ *http.Request) {
	ionq.WriteJSON(w, http.StatusOK, e.backends)
}

func (e *Emulator) handleBackend(w http.ResponseWriter, r *http.Request) {
	b, ok := e.backend(r.PathValue("backend"))
	if !ok {
		ionq.WriteError(w, http.StatusNotFound, "backend not found")
		return
	}
	ionq.WriteJSON(w, http.StatusOK, b)
}

func (e *Emulator) handleWhoAmI(w http.ResponseWriter, _ *http.Request) {
	ionq.WriteJSON(w, http.StatusOK, ionq.WhoAmI{KeyID: e.keyID, KeyName: "qbroker-emulator", ProjectID: e.projectID})
}

// newUUID returns a random RFC 4122 version-4 UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

var errShuttingDown = errors.New("emulator is shutting down")
