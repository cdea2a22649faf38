package azuresim

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Well-known values of Azure Quantum and Microsoft Entra ID (reference §4).
const (
	// QuantumResource is the Azure Quantum data-plane resource; its tokens
	// carry it as aud.
	QuantumResource = "https://quantum.microsoft.com"
	// QuantumScope is the scope a client asks Entra for.
	QuantumScope = QuantumResource + "/.default"
	// ManagementResource is Azure Resource Manager. The emulator issues
	// tokens for it too (the same service principal can get them), and the
	// workspace API refuses them as being for the wrong audience.
	ManagementResource = "https://management.azure.com"
	// ManagementScope is the ARM scope.
	ManagementScope = ManagementResource + "/.default"
	// DefaultFederatedAudience is the aud Entra expects in a federated
	// credential's external token unless the credential names another.
	DefaultFederatedAudience = "api://AzureADTokenExchange"
	// ClientAssertionType is the only client_assertion_type accepted.
	ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	// APIKeyHeader carries a workspace API key, the alternative to a bearer
	// token.
	APIKeyHeader = "x-ms-quantum-api-key"
	// DefaultAPIVersion is the api-version of the current SDK.
	DefaultAPIVersion = "2026-01-15-preview"
	// DeleteIsDeleteSince is the first api-version in which DELETE on a job
	// deletes it; before it, DELETE cancelled the job (spec text of
	// Jobs_Delete in 2026-01-15-preview).
	DeleteIsDeleteSince = "2025-12-01-preview"
)

// Defaults and limits.
const (
	DefaultStorageAccount = "qbrokersim"
	DefaultTokenTTL       = time.Hour
	// DefaultClockSkew is the leeway on token and assertion times
	// (Microsoft.IdentityModel's default; the exact Azure value is
	// UNCERTAIN).
	DefaultClockSkew = 5 * time.Minute
	// DefaultSASTTL is the lifetime of the SAS URIs the emulator hands out
	// (12 hours, as in the spec's Jobs_Create example).
	DefaultSASTTL    = 12 * time.Hour
	DefaultStepDelay = 20 * time.Millisecond
	DefaultMaxJobs   = 10_000
	DefaultMaxShots  = 10_000
	// DefaultShots is used when inputParams has no shot count (IonQ's
	// documented default; for other providers UNCERTAIN).
	DefaultShots = 100
	// MaxBodyBytes bounds every request body and every blob.
	MaxBodyBytes = 1 << 20
	// MaxStorageBytes bounds all blobs held at once.
	MaxStorageBytes = 256 << 20
	// MaxWork bounds gates × 2^qubits per job.
	MaxWork = 1 << 30
)

// DefaultAPIVersions are the api-version values accepted by default: the
// versions of the published data-plane spec (Azure/azure-rest-api-specs
// specification/quantum), including 2025-12-01-preview, which the
// 2026-01-15-preview spec text names (its own spec file was not seen).
func DefaultAPIVersions() []string {
	return []string{
		"2022-09-12-preview", "2023-11-13-preview", "2024-03-01-preview",
		"2024-10-01-preview", DeleteIsDeleteSince, DefaultAPIVersion,
	}
}

// Input and output data formats (reference §4.2; azure-quantum-python
// target/ionq.py and target/quantinuum.py).
const (
	FormatIonQCircuit     = "ionq.circuit.v1"
	FormatIonQResults     = "ionq.quantum-results.v1"
	FormatHoneywellQASM   = "honeywell.openqasm.v1"
	FormatHoneywellResult = "honeywell.quantum-results.v1"
)

// Target is one execution target of the workspace.
type Target struct {
	// ID is the target id, e.g. "ionq.simulator".
	ID string
	// ProviderID is the provider, e.g. "ionq" (compared case-insensitively:
	// older SDKs send "IonQ").
	ProviderID string
	// Qubits is the register size the target offers.
	Qubits int
	// InputFormat is the only inputDataFormat the emulator runs for it.
	InputFormat string
	// OutputFormat is the outputDataFormat of its results.
	OutputFormat string
	// ShotsParams are the inputParams keys read as the shot count, in
	// order of preference (IonQ: "shots"; Quantinuum: "shots" or the older
	// "count").
	ShotsParams []string
	// MaxShots bounds the shot count (default 10,000; the providers' real
	// caps vary by machine and are not in the reference).
	MaxShots int
	// SyntaxChecker makes the target validate and return all-zero results,
	// as Quantinuum's *sc targets do.
	SyntaxChecker bool
}

// DefaultTargets returns the IonQ simulator and Forte-1 and the Quantinuum
// H2-1 syntax checker, emulator and QPU. Qubit counts are the emulator's
// (IonQ's from its backend list; Quantinuum's 56 for H2-1).
func DefaultTargets() []Target {
	ionq := func(id string, qubits int) Target {
		return Target{ID: id, ProviderID: "ionq", Qubits: qubits, InputFormat: FormatIonQCircuit,
			OutputFormat: FormatIonQResults, ShotsParams: []string{"shots"}}
	}
	qtum := func(id string, sc bool) Target {
		return Target{ID: id, ProviderID: "quantinuum", Qubits: 56, InputFormat: FormatHoneywellQASM,
			OutputFormat: FormatHoneywellResult, ShotsParams: []string{"shots", "count"}, SyntaxChecker: sc}
	}
	return []Target{
		ionq("ionq.simulator", 29), ionq("ionq.qpu.forte-1", 36),
		qtum("quantinuum.sim.h2-1sc", true), qtum("quantinuum.sim.h2-1e", false), qtum("quantinuum.qpu.h2-1", false),
	}
}

// Config configures an Emulator.
type Config struct {
	// TenantID is the Entra tenant (a GUID). Token requests for any other
	// tenant fail with AADSTS90002.
	TenantID string
	// ClientID is the application (client) id of the one service principal
	// the emulator knows; it holds the workspace's data-contributor role.
	ClientID string
	// ClientSecret is the application's client secret. Empty means no
	// secret is accepted.
	ClientSecret string
	// ObjectID is the service principal's object id (oid); default random.
	ObjectID string
	// FederatedIssuer and FederatedSubject identify the application's one
	// federated identity credential; FederatedKeys verifies the external
	// tokens (client assertions) it presents (public keys, each with a kid).
	// All three are set together, or none (no federated credential).
	FederatedIssuer  string
	FederatedSubject string
	FederatedKeys    *jose.JSONWebKeySet
	// FederatedAudiences are the aud values the credential accepts
	// (default [api://AzureADTokenExchange]).
	FederatedAudiences []string
	// APIKey, when set, is accepted in the x-ms-quantum-api-key header.
	APIKey string
	// SubscriptionID (a lower-case GUID), ResourceGroup and Workspace name
	// the one workspace served.
	SubscriptionID string
	ResourceGroup  string
	Workspace      string
	// StorageAccount names the workspace's emulated storage account
	// (default "qbrokersim"); blobs live under /<account>/<container>/<blob>.
	StorageAccount string
	// StorageURL, when set, is the base (scheme://host[:port]) of the SAS
	// URIs handed out; otherwise it is taken from each request.
	StorageURL string
	// APIVersions are the accepted api-version values
	// (default DefaultAPIVersions()).
	APIVersions []string
	// Targets are the workspace's targets (default DefaultTargets()).
	Targets []Target
	// TokenTTL is the lifetime of issued access tokens (default 1h).
	TokenTTL time.Duration
	// ClockSkew is the leeway on token and assertion times (default 5m).
	ClockSkew time.Duration
	// Now is the clock for tokens, SAS expiry and timestamps
	// (default time.Now).
	Now func() time.Time
	// StepDelay is the time between job status transitions (default 20ms).
	StepDelay time.Duration
	// Seed makes sampling reproducible; 0 picks a random seed.
	Seed uint64
	// Logger receives debug logs (default: discard). Secrets never reach it.
	Logger *slog.Logger
	// MaxJobs bounds the jobs kept in memory (default 10,000).
	MaxJobs int
}

// Emulator is the Entra ID + Azure Quantum emulator. Create it with New,
// serve it with any http.Server, and stop its background work with Close.
type Emulator struct {
	cfg        Config
	log        *slog.Logger
	now        func() time.Time
	targets    []Target
	versions   map[string]bool
	secretHash [32]byte
	apiKeyHash [32]byte
	signKey    *rsa.PrivateKey
	signer     jose.Signer
	kid        string
	sasKey     []byte
	seed       uint64
	entra      *http.ServeMux
	workspace  *http.ServeMux

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sem    chan struct{} // bounds concurrent simulations

	mu         sync.Mutex
	closed     bool
	seq        uint64
	jobs       map[string]*job
	order      []string // job ids, oldest first
	containers map[string]*container
	stored     int // bytes held in blobs
}

var _ http.Handler = (*Emulator)(nil)

var (
	guidRE      = regexp.MustCompile(`^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$`)
	subRE       = regexp.MustCompile(`^[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}$`)
	rgRE        = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9\-_.]{0,89}$`)
	workspaceRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9\-_]{1,49}$`)
	accountRE   = regexp.MustCompile(`^[a-z0-9]{3,24}$`)
)

// New validates cfg and returns a running emulator.
func New(cfg Config) (*Emulator, error) {
	setDefaults(&cfg)
	if err := validate(&cfg); err != nil {
		return nil, fmt.Errorf("azuresim: invalid config: %w", err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("azuresim: signing key: %w", err)
	}
	kid := randomB64(20)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid).WithHeader("x5t", kid))
	if err != nil {
		return nil, fmt.Errorf("azuresim: signer: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = mrand.Uint64()
	}
	sasKey := make([]byte, 32)
	_, _ = rand.Read(sasKey) // crypto/rand.Read never fails
	ctx, cancel := context.WithCancel(context.Background())
	e := &Emulator{
		cfg:        cfg,
		log:        log,
		now:        cfg.Now,
		targets:    slices.Clone(cfg.Targets),
		versions:   map[string]bool{},
		secretHash: sha256.Sum256([]byte(cfg.ClientSecret)),
		apiKeyHash: sha256.Sum256([]byte(cfg.APIKey)),
		signKey:    key,
		signer:     signer,
		kid:        kid,
		sasKey:     sasKey,
		seed:       seed,
		entra:      http.NewServeMux(),
		workspace:  http.NewServeMux(),
		ctx:        ctx,
		cancel:     cancel,
		sem:        make(chan struct{}, 2),
		jobs:       map[string]*job{},
		containers: map[string]*container{},
	}
	for _, v := range cfg.APIVersions {
		e.versions[v] = true
	}
	e.entraRoutes()
	e.workspaceRoutes()
	return e, nil
}

func setDefaults(cfg *Config) {
	if cfg.ObjectID == "" {
		cfg.ObjectID = newUUID()
	}
	if cfg.FederatedAudiences == nil {
		cfg.FederatedAudiences = []string{DefaultFederatedAudience}
	}
	if cfg.StorageAccount == "" {
		cfg.StorageAccount = DefaultStorageAccount
	}
	if cfg.APIVersions == nil {
		cfg.APIVersions = DefaultAPIVersions()
	}
	if cfg.Targets == nil {
		cfg.Targets = DefaultTargets()
	}
	for i := range cfg.Targets {
		if cfg.Targets[i].MaxShots <= 0 {
			cfg.Targets[i].MaxShots = DefaultMaxShots
		}
		if len(cfg.Targets[i].ShotsParams) == 0 {
			cfg.Targets[i].ShotsParams = []string{"shots"}
		}
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.ClockSkew <= 0 {
		cfg.ClockSkew = DefaultClockSkew
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
}

// validate reports every problem of cfg at once.
func validate(cfg *Config) error {
	var problems []error
	bad := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }
	if !guidRE.MatchString(cfg.TenantID) {
		bad("tenant id %q is not a GUID", cfg.TenantID)
	}
	if !guidRE.MatchString(cfg.ClientID) {
		bad("client id %q is not a GUID", cfg.ClientID)
	}
	if !guidRE.MatchString(cfg.ObjectID) {
		bad("object id %q is not a GUID", cfg.ObjectID)
	}
	fed := []bool{cfg.FederatedIssuer != "", cfg.FederatedSubject != "", cfg.FederatedKeys != nil}
	if slices.Contains(fed, true) && slices.Contains(fed, false) {
		bad("federated issuer, subject and keys must be set together")
	}
	if cfg.FederatedKeys != nil {
		if len(cfg.FederatedKeys.Keys) == 0 {
			bad("federated keys: the key set is empty")
		}
		for i, k := range cfg.FederatedKeys.Keys {
			if !k.IsPublic() || k.KeyID == "" {
				bad("federated keys[%d]: must be a public key with a kid", i)
			}
		}
	}
	if len(cfg.FederatedAudiences) == 0 || slices.Contains(cfg.FederatedAudiences, "") {
		bad("federated audiences must be non-empty strings")
	}
	if !subRE.MatchString(cfg.SubscriptionID) {
		bad("subscription id %q is not a lower-case GUID", cfg.SubscriptionID)
	}
	if !rgRE.MatchString(cfg.ResourceGroup) {
		bad("resource group %q is not a valid name", cfg.ResourceGroup)
	}
	if !workspaceRE.MatchString(cfg.Workspace) {
		bad("workspace %q is not a valid name", cfg.Workspace)
	}
	if !accountRE.MatchString(cfg.StorageAccount) {
		bad("storage account %q is not 3-24 lower-case letters and digits", cfg.StorageAccount)
	}
	if cfg.StorageURL != "" && !strings.HasPrefix(cfg.StorageURL, "http://") && !strings.HasPrefix(cfg.StorageURL, "https://") {
		bad("storage URL %q must start with http:// or https://", cfg.StorageURL)
	}
	if len(cfg.APIVersions) == 0 {
		bad("at least one api-version is required")
	}
	seen := map[string]bool{}
	for i, t := range cfg.Targets {
		switch {
		case t.ID == "" || t.ProviderID == "":
			bad("targets[%d]: id and provider id are required", i)
		case seen[strings.ToLower(t.ID)]:
			bad("targets[%d]: duplicate id %q", i, t.ID)
		case t.Qubits < 1:
			bad("targets[%d]: qubits must be at least 1", i)
		case t.InputFormat != FormatIonQCircuit && t.InputFormat != FormatHoneywellQASM:
			bad("targets[%d]: input format %q is not one the emulator runs", i, t.InputFormat)
		case t.OutputFormat != FormatIonQResults && t.OutputFormat != FormatHoneywellResult:
			bad("targets[%d]: output format %q is not one the emulator writes", i, t.OutputFormat)
		}
		seen[strings.ToLower(t.ID)] = true
	}
	return errors.Join(problems...)
}

// TenantID returns the emulated tenant.
func (e *Emulator) TenantID() string { return e.cfg.TenantID }

// ObjectID returns the service principal's object id (the oid of its tokens).
func (e *Emulator) ObjectID() string { return e.cfg.ObjectID }

// Issuer returns the iss of the access tokens the emulator issues
// (v1.0 tokens: https://sts.windows.net/<tenant>/).
func (e *Emulator) Issuer() string { return issuerFor(e.cfg.TenantID) }

// WorkspacePath returns the path prefix of the workspace's REST API.
func (e *Emulator) WorkspacePath() string {
	return "/subscriptions/" + e.cfg.SubscriptionID + "/resourceGroups/" + e.cfg.ResourceGroup +
		"/providers/Microsoft.Quantum/workspaces/" + e.cfg.Workspace
}

// JWKS returns the public key set that verifies the emulator's access
// tokens; it is also served at /<tenant>/discovery/v2.0/keys.
func (e *Emulator) JWKS() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &e.signKey.PublicKey, KeyID: e.kid, Algorithm: string(jose.RS256), Use: "sig"}}}
}

// Targets returns a copy of the target list.
func (e *Emulator) Targets() []Target { return slices.Clone(e.targets) }

// Close stops the background job goroutines and waits for them. Jobs that
// had not finished stay in their current status.
func (e *Emulator) Close() {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.cancel()
	e.wg.Wait()
}

// ServeHTTP implements http.Handler. Paths under /subscriptions/ are the
// workspace API, paths under /<StorageAccount>/ are blob storage, and the
// rest belongs to Entra ID.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/subscriptions/"):
		e.serveWorkspace(w, r)
	case strings.HasPrefix(p, "/"+e.cfg.StorageAccount+"/"):
		e.serveBlob(w, r)
	default:
		e.serveEntra(w, r)
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

var errShuttingDown = errors.New("emulator is shutting down")
