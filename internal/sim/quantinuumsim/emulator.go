package quantinuumsim

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Defaults and limits.
const (
	// DefaultIDTokenTTL is how long an id-token is accepted. pytket caches
	// id-tokens for 55 minutes, which suggests about an hour on the
	// service; UNCERTAIN: a client cache setting, not a server-stated TTL.
	DefaultIDTokenTTL = time.Hour
	// DefaultRefreshTokenTTL is how long a refresh token is accepted,
	// counted from the password login that issued it. pytket caches it for
	// 29 days; UNCERTAIN for the same reason.
	DefaultRefreshTokenTTL = 30 * 24 * time.Hour
	DefaultStepDelay       = 20 * time.Millisecond
	DefaultMaxJobs         = 10_000
	// DefaultMaxTokens bounds the live tokens kept in memory.
	DefaultMaxTokens = 10_000
	// DefaultMaxShots is a machine's n_shots when not configured (the value
	// pytket's offline machine list uses).
	DefaultMaxShots = 10_000
	// MaxBodyBytes bounds every request body.
	MaxBodyBytes = 1 << 20
	// MaxWork bounds gates × 2^qubits per job; beyond it a job is refused
	// rather than tying up a CPU for minutes.
	MaxWork = 1 << 30
)

// System types, as pytket reads the machine list's system_type.
const (
	SystemHardware      = "hardware"
	SystemEmulator      = "emulator" // UNCERTAIN: only "hardware" and "syntax checker" appear in the reference's source
	SystemSyntaxChecker = "syntax checker"
)

// Machine states, as GET /v1/machine/{name} reports them in "state".
const (
	StateOnline      = "online"
	StateOffline     = "offline"
	StateMaintenance = "in maintenance" // UNCERTAIN: only "online" appears in the reference's source
)

// Machine is one machine the emulator offers.
type Machine struct {
	// Name is the machine name used in job bodies, e.g. "H1-1E".
	Name string
	// Qubits is n_qubits.
	Qubits int
	// MaxShots is n_shots, the per-job shot cap (default 10,000).
	MaxShots int
	// SystemType is SystemHardware, SystemEmulator or SystemSyntaxChecker.
	SystemType string
	// State is StateOnline (default), StateOffline or StateMaintenance.
	// Jobs on a machine that is not online stay queued.
	State string
	// Emulator and SyntaxChecker name the companion machines of a
	// hardware machine (informational, as in the machine list).
	Emulator, SyntaxChecker string
}

// DefaultMachines returns H1-1 and H2-1 with their emulators (…E) and
// syntax checkers (…SC), all online. Qubit counts follow pytket's offline
// machine list (20 and 32); the emulator simulates at most sim.MaxQubits.
func DefaultMachines() []Machine {
	var ms []Machine
	for _, m := range []struct {
		name   string
		qubits int
	}{{"H1-1", 20}, {"H2-1", 32}} {
		ms = append(ms,
			Machine{Name: m.name, Qubits: m.qubits, SystemType: SystemHardware, Emulator: m.name + "E", SyntaxChecker: m.name + "SC"},
			Machine{Name: m.name + "E", Qubits: m.qubits, SystemType: SystemEmulator},
			Machine{Name: m.name + "SC", Qubits: m.qubits, SystemType: SystemSyntaxChecker},
		)
	}
	for i := range ms {
		ms[i].MaxShots, ms[i].State = DefaultMaxShots, StateOnline
	}
	return ms
}

// Config configures an Emulator.
type Config struct {
	// Email and Password are the one account's credentials. Empty means
	// every password login is refused.
	Email, Password string
	// MFACode, when set, turns on MFA for the account: a password login
	// without "code" is refused with error code 73, and with a wrong code
	// like a wrong password.
	MFACode string
	// IDTokenTTL is the id-token lifetime (default 1h).
	IDTokenTTL time.Duration
	// RefreshTokenTTL is the refresh-token lifetime from the password login
	// (default 30 days).
	RefreshTokenTTL time.Duration
	// Machines are the machines offered (default DefaultMachines()).
	Machines []Machine
	// Now is the clock for token expiry and job timestamps (default
	// time.Now).
	Now func() time.Time
	// StepDelay is the real time between job status transitions (default
	// 20ms).
	StepDelay time.Duration
	// Logger receives debug logs (default: discard). Secrets never reach it.
	Logger *slog.Logger
	// Seed makes sampling reproducible; 0 picks a random seed.
	Seed uint64
	// MaxJobs bounds the jobs kept in memory (default 10,000).
	MaxJobs int
	// MaxTokens bounds the live tokens kept in memory (default 10,000);
	// beyond it the oldest are forgotten.
	MaxTokens int
}

// Emulator is the Quantinuum API emulator. Create it with New, serve it
// with any http.Server, and stop its background work with Close.
type Emulator struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	mux      *http.ServeMux
	passHash [32]byte
	seed     uint64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sem    chan struct{} // bounds concurrent simulations

	mu       sync.Mutex
	closed   bool
	machines []Machine
	tokens   tokenStore
	seq      uint64
	jobs     map[string]*job
	order    []string // job ids, oldest first
}

var _ http.Handler = (*Emulator)(nil)

// New validates cfg and returns a running emulator.
func New(cfg Config) (*Emulator, error) {
	if cfg.IDTokenTTL <= 0 {
		cfg.IDTokenTTL = DefaultIDTokenTTL
	}
	if cfg.RefreshTokenTTL <= 0 {
		cfg.RefreshTokenTTL = DefaultRefreshTokenTTL
	}
	if cfg.Machines == nil {
		cfg.Machines = DefaultMachines()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.StepDelay <= 0 {
		cfg.StepDelay = DefaultStepDelay
	}
	if cfg.MaxJobs <= 0 {
		cfg.MaxJobs = DefaultMaxJobs
	}
	if cfg.MaxTokens <= 0 {
		cfg.MaxTokens = DefaultMaxTokens
	}
	var problems []error
	if (cfg.Email == "") != (cfg.Password == "") {
		problems = append(problems, errors.New("email and password must be set together"))
	}
	if cfg.MFACode != "" && cfg.Email == "" {
		problems = append(problems, errors.New("an MFA code needs an account (email and password)"))
	}
	if cfg.RefreshTokenTTL < cfg.IDTokenTTL {
		problems = append(problems, fmt.Errorf("refresh-token TTL %s is shorter than the id-token TTL %s", cfg.RefreshTokenTTL, cfg.IDTokenTTL))
	}
	machines := make([]Machine, 0, len(cfg.Machines))
	seen := map[string]bool{}
	for i, m := range cfg.Machines {
		if m.MaxShots <= 0 {
			m.MaxShots = DefaultMaxShots
		}
		if m.State == "" {
			m.State = StateOnline
		}
		switch {
		case m.Name == "":
			problems = append(problems, fmt.Errorf("machines[%d]: name is required", i))
		case seen[m.Name]:
			problems = append(problems, fmt.Errorf("machines[%d]: duplicate name %q", i, m.Name))
		case m.Qubits < 1:
			problems = append(problems, fmt.Errorf("machines[%d]: qubits must be at least 1", i))
		case !slices.Contains([]string{SystemHardware, SystemEmulator, SystemSyntaxChecker}, m.SystemType):
			problems = append(problems, fmt.Errorf("machines[%d]: system type %q is not %q, %q or %q", i, m.SystemType, SystemHardware, SystemEmulator, SystemSyntaxChecker))
		case !validState(m.State):
			problems = append(problems, fmt.Errorf("machines[%d]: state %q is not %q, %q or %q", i, m.State, StateOnline, StateOffline, StateMaintenance))
		}
		seen[m.Name] = true
		machines = append(machines, m)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("quantinuumsim: invalid config: %w", errors.Join(problems...))
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
	e := &Emulator{
		cfg:      cfg,
		log:      log,
		now:      cfg.Now,
		mux:      http.NewServeMux(),
		passHash: sha256.Sum256([]byte(cfg.Password)),
		seed:     seed,
		ctx:      ctx,
		cancel:   cancel,
		sem:      make(chan struct{}, 2),
		machines: machines,
		tokens:   newTokenStore(cfg.MaxTokens),
		jobs:     map[string]*job{},
	}
	e.routes()
	return e, nil
}

func validState(s string) bool {
	return s == StateOnline || s == StateOffline || s == StateMaintenance
}

func (e *Emulator) routes() {
	e.mux.HandleFunc("POST /v1/login", e.handleLogin)
	e.mux.Handle("GET /v1/machine", e.auth(e.handleMachines))
	e.mux.Handle("GET /v1/machine/{$}", e.auth(e.handleMachines))
	e.mux.Handle("GET /v1/machine/{name}", e.auth(e.handleMachine))
	e.mux.Handle("POST /v1/job", e.auth(e.handleSubmit))
	e.mux.Handle("GET /v1/job/{id}", e.auth(e.handleGet))
	e.mux.Handle("POST /v1/job/{id}/cancel", e.auth(e.handleCancel))
}

// ServeHTTP implements http.Handler. Unknown paths are 404 and known paths
// with the wrong method 405, both in the emulator's error shape.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := e.mux.Handler(r); pattern == "" {
		rec := &headerRecorder{header: http.Header{}}
		h, _ := e.mux.Handler(r)
		h.ServeHTTP(rec, r)
		if rec.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", rec.header.Get("Allow"))
			writeError(w, http.StatusMethodNotAllowed, 0, fmt.Sprintf("method %s not allowed on this route", r.Method))
			return
		}
		writeError(w, http.StatusNotFound, 0, "route not found")
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

// Machines returns a copy of the machine list.
func (e *Emulator) Machines() []Machine {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.machines)
}

// SetMachineState changes a machine's state. Queued jobs on a machine that
// is not online wait until it is.
func (e *Emulator) SetMachineState(name, state string) error {
	if !validState(state) {
		return fmt.Errorf("quantinuumsim: unknown machine state %q", state)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range e.machines {
		if e.machines[i].Name == name {
			e.machines[i].State = state
			return nil
		}
	}
	return fmt.Errorf("quantinuumsim: unknown machine %q", name)
}

// machine returns the named machine; call with e.mu held.
func (e *Emulator) machine(name string) (Machine, bool) {
	for _, m := range e.machines {
		if m.Name == name {
			return m, true
		}
	}
	return Machine{}, false
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

var errShuttingDown = errors.New("emulator is shutting down")
