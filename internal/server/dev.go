package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/broker"
	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/console"
	"github.com/qbroker/qbroker/internal/sim/ionqsim"
)

// DevOptions configures `qbroker dev`.
type DevOptions struct {
	Addr        string // broker API; default 127.0.0.1:8200
	GatewayAddr string // default 127.0.0.1:8300
	SimAddr     string // IonQ emulator; default 127.0.0.1:8400
	DataDir     string // default: a new temporary directory
	// IonQKey is the emulator's API key. Default: random, known only to
	// this process. Set it only to benchmark against the emulator directly.
	IonQKey string
	// PolicyFiles replace the built-in demo policies; they are watched and
	// reloaded on change.
	PolicyFiles []string
	// Auth configures extra auth methods (JWT/OIDC) and login limits.
	Auth config.Auth
	// DiscardAudit sends audit events to /dev/null (benchmark baseline only).
	DiscardAudit bool
	// TLS serves the broker API over TLS (needed for auth/cert).
	TLS config.TLS
	// SimStepDelay is the emulator's time per job state (default 20 ms).
	SimStepDelay time.Duration
	// Audit configures rotation and SIEM sinks.
	Audit config.Audit
	// Approvals replaces DevApprovals (tests of other consent setups).
	Approvals *config.Approvals
	// AWS configures dynamic AWS credentials (tests point it at braketsim).
	AWS config.AWS
	// Budgets are the spend and rate limits (qbroker dev: DevBudgets; nil:
	// none, for tests).
	Budgets *config.Budgets
	// APILimits are the API request rate limits (qbroker dev:
	// DevAPILimits; nil: none, for tests).
	APILimits *config.APILimits
	// TrustedProxies are load balancers whose X-Forwarded-For is believed
	// (tests of deployments behind one).
	TrustedProxies []string
	// Store chooses the database (default: SQLite in DataDir).
	Store config.Store
	// IBM configures IBM Quantum (tests point it at ibmsim).
	IBM config.IBM
	// Quantinuum configures Quantinuum (tests point it at quantinuumsim).
	Quantinuum config.Quantinuum
	// Azure configures Azure Quantum (tests point it at azuresim).
	Azure config.Azure
	// Rigetti configures Rigetti QCS token custody (tests: rigettisim).
	Rigetti config.Rigetti
	Logger  *slog.Logger
}

// Dev is a running all-in-one: broker, gateway and IonQ emulator, with a
// demo role and agent.
type Dev struct {
	*Server
	SimURL    string
	DataDir   string
	RootToken string // admin token (root policy)
	// ConsoleLogin is a one-time link that signs the dev admin in to the
	// approval console.
	ConsoleLogin string
	RoleID       string // demo agent's AppRole role_id
	SecretID     string // demo agent's AppRole secret_id

	sim    *ionqsim.Emulator
	simSrv *http.Server
}

// DevLoginTTL is how long the dev console login link works (once).
const DevLoginTTL = 8 * time.Hour

// DevAdmin is the person the dev root token and the console's one-time
// login link approve as.
const DevAdmin = "dev-admin"

// DevApprovals is the dev approval setup: any QPU job needs one approval
// from the dev admin (the root token printed at start, or the console).
func DevApprovals() config.Approvals {
	return config.Approvals{
		RootPerson: DevAdmin,
		Groups:     []config.ApproverGroup{{Name: "admins", People: []string{DevAdmin}, RootTokens: true}},
		Rules: []config.ApprovalRule{{
			Name: "hardware", DeviceKind: "qpu",
			ApprovalConsent: config.ApprovalConsent{Approvals: 1, Group: "admins"},
		}},
	}
}

// DevBudgets are the demo role's limits in qbroker dev: a runaway loop is
// stopped within its first minute.
func DevBudgets() config.Budgets {
	return config.Budgets{Limits: []config.BudgetLimit{
		{Name: "demo-rate", Scope: "role", Match: DemoRole, JobsPerMinute: 60},
		{Name: "demo-simulator", Scope: "role", Match: DemoRole, Class: "simulator", ShotsPerDay: 1_000_000},
		{Name: "demo-hardware", Scope: "role", Match: DemoRole, Class: "hardware", USDPerDay: 100},
	}}
}

// Demo role limits.
const (
	DemoRole     = "demo"
	DemoAgent    = "demo-agent"
	DemoMaxShots = 10_000
)

// StartDev starts everything in one process on loopback.
func StartDev(ctx context.Context, o DevOptions) (_ *Dev, err error) {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:8200"
	}
	if o.GatewayAddr == "" {
		o.GatewayAddr = "127.0.0.1:8300"
	}
	if o.SimAddr == "" {
		o.SimAddr = "127.0.0.1:8400"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if o.DataDir == "" {
		if o.DataDir, err = os.MkdirTemp("", "qbroker-dev-"); err != nil {
			return nil, err
		}
	}
	d := &Dev{DataDir: o.DataDir}
	defer func() {
		if err != nil {
			d.Close(context.Background())
		}
	}()

	// The emulator's API key stands in for a real IonQ key: the broker
	// keeps it sealed and only the gateway ever sends it.
	ionqKey := o.IonQKey
	if ionqKey == "" {
		var kb [32]byte
		if _, err := rand.Read(kb[:]); err != nil {
			return nil, err
		}
		ionqKey = "ionq-dev-" + base64.RawURLEncoding.EncodeToString(kb[:])
	}
	simLn, err := net.Listen("tcp", o.SimAddr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", o.SimAddr, err)
	}
	d.SimURL = "http://" + simLn.Addr().String()
	d.sim = ionqsim.New(ionqsim.Config{APIKey: ionqKey, Logger: o.Logger, StepDelay: o.SimStepDelay})
	d.simSrv = &http.Server{Handler: d.sim, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = d.simSrv.Serve(simLn) }()

	approvals := DevApprovals()
	if o.Approvals != nil {
		approvals = *o.Approvals
	}
	cfg := &config.Config{Listen: o.Addr, DataDir: o.DataDir, Gateway: config.Gateway{Listen: o.GatewayAddr}, Policies: o.PolicyFiles, Auth: o.Auth, TLS: o.TLS, Audit: o.Audit, Approvals: approvals, Providers: config.Providers{AWS: o.AWS, IBM: o.IBM, Rigetti: o.Rigetti, Azure: o.Azure, Quantinuum: o.Quantinuum}, Store: o.Store}
	if o.Budgets != nil {
		cfg.Budgets = *o.Budgets
	}
	if o.APILimits != nil {
		cfg.APILimits = *o.APILimits
	}
	cfg.TrustedProxies = o.TrustedProxies
	cfg.ApplyDefaults()
	cfg.PublicURL, cfg.Gateway.PublicURL = "", "" // derive from the bound listeners
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Server, err = Start(ctx, Options{Config: cfg, Logger: o.Logger, IonQUpstream: d.SimURL, Watch: len(o.PolicyFiles) > 0, DiscardAudit: o.DiscardAudit, DevConsoleLogin: true}); err != nil {
		return nil, err
	}
	if d.ConsoleLogin, err = d.Console.LoginLink(console.Person{ID: DevAdmin, Name: "Dev admin", Issuer: "dev"}, DevLoginTTL); err != nil {
		return nil, err
	}
	if err := d.bootstrap(ctx, ionqKey); err != nil {
		return nil, fmt.Errorf("dev bootstrap: %w", err)
	}
	return d, nil
}

func (d *Dev) bootstrap(ctx context.Context, ionqKey string) error {
	c := broker.Caller{RequestID: "dev-bootstrap", Path: "dev"}
	b := d.Broker
	if err := b.MarkInitialized(ctx); err != nil {
		return err
	}
	var err error
	if d.RootToken, err = b.CreateRootToken(ctx, c, "dev-admin"); err != nil {
		return err
	}
	root, err := b.Authenticate(ctx, d.RootToken)
	if err != nil {
		return err
	}
	if err := b.SetProviderCredential(ctx, c, root, "ionq", ionqKey); err != nil {
		return err
	}
	// The role lists the QPU too, so that its refusal comes from policy
	// (demo-no-qpu) and can be seen.
	if _, err := b.PutRole(ctx, c, root, DemoRole, api.Role{
		Provider: "ionq", Devices: []string{"simulator", "qpu.forte-1"}, MaxShots: DemoMaxShots,
		TokenTTL: api.Duration(time.Hour), TokenMaxTTL: api.Duration(24 * time.Hour), JobTokenTTL: api.Duration(5 * time.Minute),
		Owner: "dev", Team: "dev",
	}); err != nil {
		return err
	}
	if d.RoleID, err = b.RoleID(ctx, root, DemoRole); err != nil {
		return err
	}
	sid, err := b.NewSecretID(ctx, c, root, DemoRole, api.SecretIDRequest{Agent: DemoAgent})
	if err != nil {
		return err
	}
	d.SecretID = sid.SecretID
	return nil
}

// Close stops the server and the emulator.
func (d *Dev) Close(ctx context.Context) error {
	var errs []error
	if d.Server != nil {
		errs = append(errs, d.Server.Close(ctx))
	}
	if d.simSrv != nil {
		errs = append(errs, d.simSrv.Shutdown(ctx))
	}
	if d.sim != nil {
		d.sim.Close()
	}
	return errors.Join(errs...)
}
