package braketsim

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Defaults and limits.
const (
	DefaultAccountID    = "123456789012"
	DefaultRegion       = "us-east-1"
	DefaultRootUserName = "qbroker"
	// DefaultMaxClockSkew is how far X-Amz-Date may be from the emulator's
	// clock. AWS allows 15 minutes ("Signature expired: … (… - 15 min.)").
	DefaultMaxClockSkew = 15 * time.Minute
	// DefaultMaxSessionDuration is the MaxSessionDuration of a role created
	// with AWS's defaults (one hour); a role may be set up to 12 hours.
	DefaultMaxSessionDuration = time.Hour
	DefaultStepDelay          = 20 * time.Millisecond
	DefaultMaxTasks           = 10_000
	DefaultMaxSessions        = 10_000
	// MaxBodyBytes bounds every request body.
	MaxBodyBytes = 1 << 20
	// MaxWork bounds gates × 2^qubits per task; beyond it a task fails
	// rather than tying up a CPU for minutes.
	MaxWork = 1 << 30
)

// Device ARNs of the default device list (see the provider reference).
const (
	SV1ARN   = "arn:aws:braket:::device/quantum-simulator/amazon/sv1"
	ForteARN = "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1"
	AnkaaARN = "arn:aws:braket:us-west-1::device/qpu/rigetti/Ankaa-3"
	// DefaultMaxShots is the default top of a device's shotsRange.
	DefaultMaxShots = 100_000
)

// DeviceType is Braket's deviceType.
type DeviceType string

// Device types.
const (
	QPU       DeviceType = "QPU"
	Simulator DeviceType = "SIMULATOR"
)

// DeviceStatus is Braket's deviceStatus.
type DeviceStatus string

// Device statuses.
const (
	Online  DeviceStatus = "ONLINE"
	Offline DeviceStatus = "OFFLINE"
	Retired DeviceStatus = "RETIRED"
)

// Device is one device the emulator offers.
type Device struct {
	ARN      string
	Name     string
	Provider string
	Type     DeviceType
	Qubits   int
	Status   DeviceStatus
	// MaxShots is the top of the device's shotsRange (default 100,000, the
	// documented SV1 maximum).
	MaxShots int
}

// Region returns the region field of the device ARN ("" for simulators).
func (d Device) Region() string {
	parts := strings.SplitN(d.ARN, ":", 6)
	if len(parts) < 6 {
		return ""
	}
	return parts[3]
}

// DefaultDevices returns SV1, IonQ Forte-1 and Rigetti Ankaa-3, all ONLINE.
func DefaultDevices() []Device {
	return []Device{
		{ARN: SV1ARN, Name: "SV1", Provider: "Amazon Braket", Type: Simulator, Qubits: 34, Status: Online},
		{ARN: ForteARN, Name: "Forte 1", Provider: "IonQ", Type: QPU, Qubits: 36, Status: Online},
		{ARN: AnkaaARN, Name: "Ankaa-3", Provider: "Rigetti", Type: QPU, Qubits: 82, Status: Online},
	}
}

// Config configures an Emulator.
type Config struct {
	// RootAccessKeyID and RootSecretAccessKey are the long-term key of the
	// IAM user arn:aws:iam::AccountID:user/RootUserName, which may do
	// everything. Empty means no long-term key is accepted.
	RootAccessKeyID     string
	RootSecretAccessKey string
	// RootUserName names the IAM user owning the root key (default "qbroker").
	RootUserName string
	// AccountID is the 12-digit account (default 123456789012).
	AccountID string
	// Region is the emulator's home region (default us-east-1). Requests
	// may also be scoped to the region of any configured device, so one
	// listener can stand for several regional endpoints.
	Region string
	// Devices are the devices offered (default DefaultDevices()).
	Devices []Device
	// Roles, when non-empty, are the only role ARNs AssumeRole accepts;
	// otherwise any well-formed role ARN of the account is accepted.
	Roles []string
	// MaxSessionDuration is every role's MaxSessionDuration (default 1h, as
	// a role created with AWS's defaults; at most 12h).
	MaxSessionDuration time.Duration
	// Buckets, when non-empty, are the only S3 buckets tasks may write to;
	// otherwise any valid bucket name is accepted and created on demand.
	Buckets []string
	// Now is the clock used for signature skew, session expiry and
	// timestamps (default time.Now).
	Now func() time.Time
	// MaxClockSkew bounds |X-Amz-Date - Now| (default 15 min, as AWS).
	MaxClockSkew time.Duration
	// StepDelay is the time between task status transitions (default 20ms).
	StepDelay time.Duration
	// Logger receives debug logs (default: discard). Secrets never reach it.
	Logger *slog.Logger
	// Seed makes sampling reproducible; 0 picks a random seed.
	Seed uint64
	// MaxTasks bounds the tasks kept in memory (default 10,000).
	MaxTasks int
	// MaxSessions bounds the live STS sessions kept (default 10,000).
	MaxSessions int
	// RootDeniedActions are actions (with * and ? wildcards) that no
	// identity-based policy of the long-term key's user allows, e.g.
	// "iam:PutRolePolicy", to show what a caller lacking a permission
	// sees (refused "because no identity-based policy allows" it).
	RootDeniedActions []string
}

// Emulator is the AWS emulator. Create it with New, serve it with any
// http.Server, and stop its background work with Close.
type Emulator struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	regions  map[string]bool
	devices  []Device
	rootHash [32]byte
	rootID   string // AIDA… user id of the root key's user
	seed     uint64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sem    chan struct{} // bounds concurrent simulations

	mu       sync.Mutex
	closed   bool
	seq      uint64
	sessions map[string]*session // by access key id
	roleIDs  map[string]string   // role ARN → AROA… unique id
	// rolePolicies are the roles' inline policies (PutRolePolicy): role
	// name → policy name → document.
	rolePolicies map[string]map[string]*policyDoc
	tasks        map[string]*task  // by task id
	order        []string          // task ids, oldest first
	tokens       map[string]string // clientToken → task id
	buckets      map[string]map[string]*object
}

var _ http.Handler = (*Emulator)(nil)

var (
	accountRE  = regexp.MustCompile(`^[0-9]{12}$`)
	deviceARNe = regexp.MustCompile(`^arn:aws:braket:[a-z0-9-]*::device/(qpu|quantum-simulator)/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$`)
	regionRE   = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]$`)
)

// New validates cfg and returns a running emulator.
func New(cfg Config) (*Emulator, error) {
	if cfg.AccountID == "" {
		cfg.AccountID = DefaultAccountID
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	if cfg.RootUserName == "" {
		cfg.RootUserName = DefaultRootUserName
	}
	if cfg.Devices == nil {
		cfg.Devices = DefaultDevices()
	}
	if cfg.MaxSessionDuration <= 0 {
		cfg.MaxSessionDuration = DefaultMaxSessionDuration
	}
	if cfg.MaxClockSkew <= 0 {
		cfg.MaxClockSkew = DefaultMaxClockSkew
	}
	if cfg.StepDelay <= 0 {
		cfg.StepDelay = DefaultStepDelay
	}
	if cfg.MaxTasks <= 0 {
		cfg.MaxTasks = DefaultMaxTasks
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var problems []error
	if !accountRE.MatchString(cfg.AccountID) {
		problems = append(problems, fmt.Errorf("account id %q is not 12 digits", cfg.AccountID))
	}
	if !regionRE.MatchString(cfg.Region) {
		problems = append(problems, fmt.Errorf("region %q is not a region name", cfg.Region))
	}
	if cfg.MaxSessionDuration > 12*time.Hour {
		problems = append(problems, fmt.Errorf("max session duration %s exceeds AWS's 12h", cfg.MaxSessionDuration))
	}
	if (cfg.RootAccessKeyID == "") != (cfg.RootSecretAccessKey == "") {
		problems = append(problems, errors.New("root access key id and secret must be set together"))
	}
	if strings.HasPrefix(cfg.RootAccessKeyID, sessionKeyPrefix) {
		problems = append(problems, errors.New("root access key id must not start with ASIA (reserved for session keys)"))
	}
	regions := map[string]bool{cfg.Region: true}
	devices := make([]Device, 0, len(cfg.Devices))
	seen := map[string]bool{}
	for i, d := range cfg.Devices {
		if d.MaxShots <= 0 {
			d.MaxShots = DefaultMaxShots
		}
		if d.Status == "" {
			d.Status = Online
		}
		switch {
		case !deviceARNe.MatchString(d.ARN):
			problems = append(problems, fmt.Errorf("devices[%d]: %q is not a Braket device ARN", i, d.ARN))
		case seen[d.ARN]:
			problems = append(problems, fmt.Errorf("devices[%d]: duplicate ARN %q", i, d.ARN))
		case d.Type != QPU && d.Type != Simulator:
			problems = append(problems, fmt.Errorf("devices[%d]: type %q is not QPU or SIMULATOR", i, d.Type))
		case d.Status != Online && d.Status != Offline && d.Status != Retired:
			problems = append(problems, fmt.Errorf("devices[%d]: status %q is not ONLINE, OFFLINE or RETIRED", i, d.Status))
		case d.Qubits < 1:
			problems = append(problems, fmt.Errorf("devices[%d]: qubits must be at least 1", i))
		case d.Name == "" || d.Provider == "":
			problems = append(problems, fmt.Errorf("devices[%d]: name and provider are required", i))
		}
		seen[d.ARN] = true
		if r := d.Region(); r != "" {
			regions[r] = true
		}
		devices = append(devices, d)
	}
	for i, b := range cfg.Buckets {
		if !validBucket(b) {
			problems = append(problems, fmt.Errorf("buckets[%d]: %q is not a valid S3 bucket name", i, b))
		}
	}
	for i, role := range cfg.Roles {
		if _, ok := parseRoleARN(role, cfg.AccountID); !ok {
			problems = append(problems, fmt.Errorf("roles[%d]: %q is not a role ARN of account %s", i, role, cfg.AccountID))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("braketsim: invalid config: %w", errors.Join(problems...))
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
		cfg:          cfg,
		log:          log,
		now:          cfg.Now,
		regions:      regions,
		devices:      devices,
		rootHash:     sha256.Sum256([]byte(cfg.RootSecretAccessKey)),
		rootID:       "AIDA" + randomID(17),
		seed:         seed,
		ctx:          ctx,
		cancel:       cancel,
		sem:          make(chan struct{}, 2),
		sessions:     map[string]*session{},
		roleIDs:      map[string]string{},
		rolePolicies: map[string]map[string]*policyDoc{},
		tasks:        map[string]*task{},
		tokens:       map[string]string{},
		buckets:      map[string]map[string]*object{},
	}
	for _, b := range cfg.Buckets {
		e.buckets[b] = map[string]*object{}
	}
	return e, nil
}

// AccountID returns the emulated account.
func (e *Emulator) AccountID() string { return e.cfg.AccountID }

// Region returns the emulator's home region.
func (e *Emulator) Region() string { return e.cfg.Region }

// Devices returns a copy of the device list.
func (e *Emulator) Devices() []Device {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Device(nil), e.devices...)
}

// SetDeviceStatus changes a device's status, e.g. to take it OFFLINE.
func (e *Emulator) SetDeviceStatus(arn string, s DeviceStatus) error {
	if s != Online && s != Offline && s != Retired {
		return fmt.Errorf("braketsim: unknown device status %q", s)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range e.devices {
		if e.devices[i].ARN == arn {
			e.devices[i].Status = s
			return nil
		}
	}
	return fmt.Errorf("braketsim: unknown device %q", arn)
}

// Close stops the background task goroutines and waits for them. Tasks that
// had not finished stay in their current status.
func (e *Emulator) Close() {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.cancel()
	e.wg.Wait()
}

// call is one authenticated request on its way through a handler.
type call struct {
	w      http.ResponseWriter
	r      *http.Request
	body   []byte
	e      *Emulator
	svc    string // svcSTS, svcIAM, svcBraket or svcS3
	region string
	p      *principal
	reqID  string
}

// Service names as they appear in the SigV4 credential scope.
const (
	svcSTS    = "sts"
	svcBraket = "braket"
	svcS3     = "s3"
	svcIAM    = "iam"
)

// ServeHTTP implements http.Handler: it authenticates the request with
// SigV4, then dispatches it by the credential scope's service.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{e: e, w: w, r: r, svc: guessService(r), reqID: newUUID()}
	// AWS's Date is AWS's clock (clients read it to correct skew; the
	// broker dates its session cutoffs by it).
	w.Header().Set("Date", e.now().UTC().Format(http.TimeFormat))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			c.fail(&apiError{status: http.StatusRequestEntityTooLarge, code: tooLargeCode(c.svc),
				msg: fmt.Sprintf("request body larger than %d bytes", MaxBodyBytes)})
			return
		}
		c.fail(&apiError{status: http.StatusBadRequest, code: badRequestCode(c.svc), msg: "could not read request body"})
		return
	}
	c.body = body
	p, scope, aerr := e.authenticate(r, body)
	if scope.service != "" {
		c.svc = scope.service
	}
	if aerr != nil {
		e.log.Debug("braketsim: request refused", "service", c.svc, "code", aerr.code, "method", r.Method, "path", r.URL.EscapedPath())
		c.fail(aerr)
		return
	}
	c.p, c.region = p, scope.region
	switch c.svc {
	case svcSTS:
		e.serveSTS(c)
	case svcIAM:
		e.serveIAM(c)
	case svcBraket:
		e.serveBraket(c)
	default:
		e.serveS3(c)
	}
}

// guessService picks the service whose error shape answers a request that
// carries no usable credential scope.
func guessService(r *http.Request) string {
	p := r.URL.EscapedPath()
	switch {
	case p == "/" && (r.Method == http.MethodPost || r.URL.Query().Has("Action")):
		return svcSTS
	case p == "/quantum-task" || strings.HasPrefix(p, "/quantum-task/") || p == "/quantum-tasks" ||
		p == "/devices" || strings.HasPrefix(p, "/device/") || strings.HasPrefix(p, "/job") ||
		strings.HasPrefix(p, "/spending-limit") || strings.HasPrefix(p, "/tags/"):
		return svcBraket
	default:
		return svcS3
	}
}

// newUUID returns a random RFC 4122 version-4 UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// randomID returns n random characters of [A-Z2-7], the alphabet of AWS
// access key and unique ids.
func randomID(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

var errShuttingDown = errors.New("emulator is shutting down")
