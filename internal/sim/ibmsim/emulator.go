package ibmsim

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"sync"
	"time"
)

// Defaults and limits.
const (
	// DefaultInstanceCRN is the instance used when Config.InstanceCRN is
	// empty: a us-east Qiskit Runtime instance of a made-up account.
	DefaultInstanceCRN = "crn:v1:bluemix:public:quantum-computing:us-east:a/0123456789abcdef0123456789abcdef:7f3c2a10-5b6e-4c1d-9e8f-0a1b2c3d4e5f::"
	// DefaultTokenTTL is IAM's access-token lifetime ("expires after 1
	// hour"); it is also the longest Config.TokenTTL accepted.
	DefaultTokenTTL = time.Hour
	// DefaultJobsPerMinute is Qiskit Runtime's documented submission rate
	// limit ("rate limited to 5 jobs per minute per user").
	DefaultJobsPerMinute = 5
	DefaultStepDelay     = 20 * time.Millisecond
	DefaultMaxJobs       = 10_000
	// DefaultMaxTokens bounds the live IAM tokens remembered; the oldest is
	// forgotten beyond it.
	DefaultMaxTokens = 10_000
	// MaxBodyBytes bounds every request body.
	MaxBodyBytes = 8 << 20
	// MaxWork bounds gates × 2^qubits per PUB; beyond it a job is refused
	// rather than tying up a CPU for minutes.
	MaxWork = 1 << 30
	// MaxTotalShots bounds the shots of all PUBs of one job, so that the
	// result document stays a reasonable size. It is an emulator limit.
	MaxTotalShots = 1_000_000
)

// HeronBasis returns the default basis gates of a backend, the instruction
// set of IBM's Heron processors as reported by a third-party client checked
// against the live service: cz, id, rx, rz, rzz, sx and x. The emulator's
// OpenQASM parser has no rzz, so rzz circuits are refused as unparseable even
// though the backend lists it.
func HeronBasis() []string { return []string{"cz", "id", "rx", "rz", "rzz", "sx", "x"} }

// Backend is one backend the emulator offers. Every backend is an online QPU:
// IBM retired its cloud simulators, and the reference lists none.
type Backend struct {
	// Name is the backend name, e.g. "ibm_kingston".
	Name string
	// Qubits is the processor size (n_qubits).
	Qubits int
	// MaxShots is the largest shot count of one PUB (default 100,000, the
	// max_shots of IBM's Heron fake backends).
	MaxShots int
	// MaxExperiments is the largest number of PUBs in one job (default 300,
	// the max_experiments of the same backends).
	MaxExperiments int
	// BasisGates is the instruction set circuits must use (default
	// HeronBasis()); measure and barrier are always allowed.
	BasisGates []string
	// Family and Revision describe the processor (default "Heron", "2").
	Family, Revision string
}

// DefaultBackends returns two Heron QPUs named after real IBM systems:
// ibm_kingston (156 qubits, Heron r2) and ibm_torino (133 qubits, Heron r1).
func DefaultBackends() []Backend {
	return []Backend{
		{Name: "ibm_kingston", Qubits: 156, Family: "Heron", Revision: "2"},
		{Name: "ibm_torino", Qubits: 133, Family: "Heron", Revision: "1"},
	}
}

// Config configures an Emulator.
type Config struct {
	// APIKey is the one IBM Cloud API key IAM accepts. Empty means every
	// exchange is refused.
	APIKey string
	// InstanceCRN is the Qiskit Runtime instance the key may use (default
	// DefaultInstanceCRN). Its region is the emulated endpoint's region.
	InstanceCRN string
	// OtherInstanceCRNs are further instances of the same account and
	// region that the key may also use; jobs never cross instances.
	OtherInstanceCRNs []string
	// Backends are the backends every instance sees (default
	// DefaultBackends()).
	Backends []Backend
	// TokenTTL is the lifetime of IAM access tokens (default and maximum one
	// hour, as IAM).
	TokenTTL time.Duration
	// JobsPerMinute is the submission limit per user (default 5, as IBM);
	// negative disables it.
	JobsPerMinute int
	// Now is the clock for token expiry, the rate limit and timestamps
	// (default time.Now).
	Now func() time.Time
	// StepDelay is the time between job status transitions (default 20ms).
	StepDelay time.Duration
	// Seed makes sampling reproducible; 0 picks a random seed.
	Seed uint64
	// Logger receives debug logs (default: discard). Keys and tokens never
	// reach it.
	Logger *slog.Logger
	// MaxJobs bounds the jobs kept in memory (default 10,000).
	MaxJobs int
}

// Emulator is the IBM Cloud IAM and Qiskit Runtime emulator. Create it with
// New, serve it with any http.Server, and stop its background work with
// Close.
type Emulator struct {
	cfg       Config
	log       *slog.Logger
	now       func() time.Time
	mux       *http.ServeMux
	keyHash   [32]byte
	hasKey    bool
	instances map[string]bool // CRN → known
	backends  []Backend
	seed      uint64
	iamID     string // the API key's identity
	accountID string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sem    chan struct{} // bounds concurrent simulations

	mu          sync.Mutex
	closed      bool
	seq         uint64
	tokens      map[[32]byte]tokenRecord // by SHA-256 of the token
	tokenOrder  [][32]byte               // oldest first
	jobs        map[string]*job
	order       []string    // job ids, oldest first
	submissions []time.Time // creation times within the last minute
}

var _ http.Handler = (*Emulator)(nil)

// crnRE matches a Qiskit Runtime instance CRN:
// crn:v1:bluemix:public:quantum-computing:<region>:a/<account>:<instance>::
var crnRE = regexp.MustCompile(`^crn:v1:bluemix:public:quantum-computing:([a-z]+(?:-[a-z]+)+):a/([0-9A-Za-z]+):([0-9A-Za-z-]+)::$`)

var backendNameRE = regexp.MustCompile(`^[a-zA-Z0-9_]{1,64}$`)

// New validates cfg and returns a running emulator.
func New(cfg Config) (*Emulator, error) {
	if cfg.InstanceCRN == "" {
		cfg.InstanceCRN = DefaultInstanceCRN
	}
	if cfg.Backends == nil {
		cfg.Backends = DefaultBackends()
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.JobsPerMinute == 0 {
		cfg.JobsPerMinute = DefaultJobsPerMinute
	}
	if cfg.StepDelay <= 0 {
		cfg.StepDelay = DefaultStepDelay
	}
	if cfg.MaxJobs <= 0 {
		cfg.MaxJobs = DefaultMaxJobs
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var problems []error
	if cfg.TokenTTL < 0 || cfg.TokenTTL > DefaultTokenTTL {
		problems = append(problems, fmt.Errorf("token TTL %s is outside IAM's (0, 1h]", cfg.TokenTTL))
	}
	m := crnRE.FindStringSubmatch(cfg.InstanceCRN)
	if m == nil {
		problems = append(problems, fmt.Errorf("instance CRN %q is not a quantum-computing instance CRN", cfg.InstanceCRN))
		m = []string{"", "", "", ""}
	}
	region, account := m[1], m[2]
	instances := map[string]bool{cfg.InstanceCRN: true}
	for i, crn := range cfg.OtherInstanceCRNs {
		om := crnRE.FindStringSubmatch(crn)
		switch {
		case om == nil:
			problems = append(problems, fmt.Errorf("other instance CRNs[%d]: %q is not a quantum-computing instance CRN", i, crn))
		case om[1] != region || om[2] != account:
			problems = append(problems, fmt.Errorf("other instance CRNs[%d]: %q is not in region %s of account %s", i, crn, region, account))
		case instances[crn]:
			problems = append(problems, fmt.Errorf("other instance CRNs[%d]: duplicate %q", i, crn))
		}
		instances[crn] = true
	}
	backends := make([]Backend, 0, len(cfg.Backends))
	seen := map[string]bool{}
	for i, b := range cfg.Backends {
		if b.MaxShots <= 0 {
			b.MaxShots = 100_000
		}
		if b.MaxExperiments <= 0 {
			b.MaxExperiments = 300
		}
		if b.BasisGates == nil {
			b.BasisGates = HeronBasis()
		}
		b.BasisGates = slices.Clone(b.BasisGates)
		if b.Family == "" {
			b.Family, b.Revision = "Heron", "2"
		}
		switch {
		case !backendNameRE.MatchString(b.Name):
			problems = append(problems, fmt.Errorf("backends[%d]: name %q is not 1-64 of [a-zA-Z0-9_]", i, b.Name))
		case seen[b.Name]:
			problems = append(problems, fmt.Errorf("backends[%d]: duplicate name %q", i, b.Name))
		case b.Qubits < 1:
			problems = append(problems, fmt.Errorf("backends[%d]: qubits must be at least 1", i))
		}
		seen[b.Name] = true
		backends = append(backends, b)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("ibmsim: invalid config: %w", errors.Join(problems...))
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
		cfg:       cfg,
		log:       log,
		now:       cfg.Now,
		mux:       http.NewServeMux(),
		keyHash:   sha256.Sum256([]byte(cfg.APIKey)),
		hasKey:    cfg.APIKey != "",
		instances: instances,
		backends:  backends,
		seed:      seed,
		iamID:     "iam-ServiceId-" + newUUID(),
		accountID: account,
		ctx:       ctx,
		cancel:    cancel,
		sem:       make(chan struct{}, 2),
		tokens:    map[[32]byte]tokenRecord{},
		jobs:      map[string]*job{},
	}
	e.routes()
	return e, nil
}

func (e *Emulator) routes() {
	e.mux.HandleFunc("POST /identity/token", e.handleToken)
	e.mux.HandleFunc("GET /api/v1/versions", e.handleVersions)
	e.mux.Handle("GET /api/v1/backends", e.runtime(e.listBackends))
	e.mux.Handle("GET /api/v1/backends/{id}/configuration", e.runtime(e.backendConfiguration))
	e.mux.Handle("GET /api/v1/backends/{id}/status", e.runtime(e.backendStatus))
	e.mux.Handle("POST /api/v1/jobs", e.runtime(e.createJob))
	e.mux.Handle("GET /api/v1/jobs", e.runtime(e.listJobs))
	e.mux.Handle("GET /api/v1/jobs/{id}", e.runtime(e.getJob))
	e.mux.Handle("DELETE /api/v1/jobs/{id}", e.runtime(e.deleteJob))
	e.mux.Handle("GET /api/v1/jobs/{id}/results", e.runtime(e.jobResults))
	e.mux.Handle("POST /api/v1/jobs/{id}/cancel", e.runtime(e.cancelJob))
}

// InstanceCRN returns the primary instance CRN.
func (e *Emulator) InstanceCRN() string { return e.cfg.InstanceCRN }

// Backends returns a copy of the backend list.
func (e *Emulator) Backends() []Backend {
	out := make([]Backend, len(e.backends))
	for i, b := range e.backends {
		b.BasisGates = slices.Clone(b.BasisGates)
		out[i] = b
	}
	return out
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
	if _, pattern := e.mux.Handler(r); pattern != "" {
		e.mux.ServeHTTP(w, r)
		return
	}
	// Not found, or a known path with the wrong method: answer in the
	// service's own error shape instead of ServeMux's plain text.
	rec := &headerRecorder{header: http.Header{}}
	h, _ := e.mux.Handler(r)
	h.ServeHTTP(rec, r)
	status, msg := http.StatusNotFound, "Route not found."
	if rec.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", rec.header.Get("Allow"))
		status, msg = http.StatusMethodNotAllowed, fmt.Sprintf("Method %s is not allowed on this route.", r.Method)
	}
	if r.URL.Path == "/identity/token" {
		// IAM answers a wrong method with BXNIM0060E and the JAX-RS detail.
		writeIAMError(w, e.now(), status, "BXNIM0060E",
			"Web application exception 'javax.ws.rs.ClientErrorException' during request processing.",
			fmt.Sprintf("HTTP %d %s", status, http.StatusText(status)))
		return
	}
	writeError(w, &apiError{status: status, code: codeNotFound, msg: msg})
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

func (e *Emulator) backend(name string) (Backend, bool) {
	for _, b := range e.backends {
		if b.Name == name {
			return b, true
		}
	}
	return Backend{}, false
}

// newUUID returns a random RFC 4122 version-4 UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// jobIDEncoding is base32hex in lower case: IBM job ids look like
// "c5dge2d3rn7breq27i9g", 20 characters of [0-9a-v].
var jobIDEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// newJobID returns a random 20-character job id.
func newJobID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return jobIDEncoding.EncodeToString(b[:])
}

var errShuttingDown = errors.New("emulator is shutting down")
