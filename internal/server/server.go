// Package server is qbroker's composition root: it builds the store, seal,
// audit sink, policy engine, broker, HTTP API, gateway and (for dev) the
// emulators, binds their listeners and runs them under one context. Only
// cmd/qbroker (through internal/cli) imports it.
package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qbroker/qbroker/internal/anomaly"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/broker"
	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/console"
	"github.com/qbroker/qbroker/internal/gateway"
	"github.com/qbroker/qbroker/internal/httpapi"
	"github.com/qbroker/qbroker/internal/metrics"
	"github.com/qbroker/qbroker/internal/notify"
	"github.com/qbroker/qbroker/internal/policy"
	"github.com/qbroker/qbroker/internal/seal"
	"github.com/qbroker/qbroker/internal/store/sqlstore"
	"github.com/qbroker/qbroker/internal/token"
)

// Version is reported by /v1/sys/health.
const Version = "0.1.0-dev"

// Audience is the job tokens' audience: every qbroker gateway accepts it.
const Audience = "qbroker-gateway"

// Options configures a server.
type Options struct {
	Config *config.Config
	Logger *slog.Logger
	// IonQUpstream overrides Config.Providers.IonQ.BaseURL (dev points it at
	// the in-process emulator).
	IonQUpstream string
	// ConfigPath is the file Config came from, re-read by Reload for the
	// device catalogue and the policy list. Empty: Reload re-reads only the
	// policy files.
	ConfigPath string
	// Watch reloads automatically when the config or a policy file changes.
	Watch bool
	// DiscardAudit writes audit events to /dev/null: only for measuring
	// what durable audit costs. Never in production.
	DiscardAudit bool
	// DevConsoleLogin allows one-time console login links (qbroker dev).
	DevConsoleLogin bool
	// SweepInterval overrides how often expired state is swept (tests).
	SweepInterval time.Duration
}

// Server is a running broker (and optional in-process gateway).
type Server struct {
	BrokerURL  string
	GatewayURL string
	Broker     *broker.Broker
	Console    *console.Console // the approval console at /ui/

	notifier *notify.Notifier // approval webhook; nil when not configured

	log     *slog.Logger
	store   *sqlstore.Store
	sink    *audit.FileSink
	servers []*http.Server
	lns     []net.Listener
	errc    chan error
	stop    context.CancelFunc
	swept   chan struct{}
	// stopListen ends the broker's subscription to other replicas' changes.
	stopListen context.CancelFunc
	leading    atomic.Bool // holds the sweeper lease

	stopWatch   context.CancelFunc
	jwt         *jwtMethod
	metrics     *metrics.Metrics
	secondaries []*audit.Secondary
	spiffe      *spiffeMethod
	reloadMu    sync.Mutex
	configPath  string
	policyFiles []string
	devices     []config.Device
}

// sweepInterval is how often expired tokens, grants and keys are removed.
const sweepInterval = 30 * time.Second

// Start builds everything and starts serving. Close stops it.
func Start(ctx context.Context, o Options) (_ *Server, err error) {
	cfg := o.Config
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{log: log, errc: make(chan error, 4), configPath: o.ConfigPath, policyFiles: cfg.Policies, devices: cfg.Devices}
	defer func() {
		if err != nil {
			s.Close(context.Background())
		}
	}()

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	apiLn, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	s.lns = append(s.lns, apiLn)
	s.BrokerURL = publicURL(cfg.PublicURL, apiLn)
	if cfg.TLS.CertFile != "" {
		s.BrokerURL = strings.Replace(s.BrokerURL, "http://", "https://", 1)
	}
	var gwLn net.Listener
	if cfg.Gateway.Listen != "" {
		if gwLn, err = net.Listen("tcp", cfg.Gateway.Listen); err != nil {
			return nil, fmt.Errorf("listen %s: %w", cfg.Gateway.Listen, err)
		}
		s.lns = append(s.lns, gwLn)
		s.GatewayURL = publicURL(cfg.Gateway.PublicURL, gwLn)
	}

	var kek seal.KEKProvider = seal.FileKEK{Path: cfg.Seal.Path, Create: true}
	if cfg.Seal.Type == "env" {
		kek = seal.EnvKEK{Var: cfg.Seal.Env}
	}
	sealer, err := seal.New(ctx, kek)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	if s.store, err = openStore(ctx, cfg, log); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	auditKey, err := broker.LoadAuditSigningKey(ctx, s.store, sealer)
	if err != nil {
		return nil, err
	}
	if s.secondaries, err = auditSecondaries(cfg, log, os.Getenv); err != nil {
		return nil, err
	}
	auditPath, auditOpts := filepath.Join(cfg.DataDir, "audit.log"), audit.FileOptions{Logger: log, Signer: auditKey, MaxBytes: cfg.Audit.MaxBytes, Secondaries: s.secondaries}
	if o.DiscardAudit { // benchmarks only: the baseline without durable audit
		auditPath, auditOpts.AllowNonRegular = os.DevNull, true
		log.Warn("audit events are discarded (--audit-discard): for benchmarking only")
	}
	if s.sink, err = audit.OpenFile(auditPath, auditOpts); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	pol, err := loadPolicy(cfg.Policies)
	if err != nil {
		return nil, err
	}
	logLint(log, pol)
	if s.jwt, err = newJWTMethod(ctx, cfg.Auth.JWT, log); err != nil {
		return nil, fmt.Errorf("auth.jwt: %w", err)
	}
	rules, err := anomalyEngine(cfg)
	if err != nil {
		return nil, err
	}
	var jwtAuth broker.JWTAuthenticator
	if s.jwt != nil {
		jwtAuth = s.jwt
	}
	if s.spiffe, err = newSPIFFEMethod(ctx, cfg.Auth.SPIFFE); err != nil {
		return nil, err
	}
	var spiffeAuth broker.SPIFFEAuthenticator
	if s.spiffe != nil {
		spiffeAuth = s.spiffe
	}
	var deviceFlow broker.DeviceFlow
	if df, err := newDeviceFlow(ctx, cfg.Auth.Device, os.Getenv); err != nil {
		return nil, err
	} else if df != nil {
		if s.jwt == nil {
			return nil, errors.New("auth.device needs auth.jwt: a JWT role verifies the person's ID token")
		}
		deviceFlow = df
	}
	if s.notifier, err = newNotifier(cfg.Approvals.Webhook, o); err != nil {
		return nil, err
	}
	instance, err := instanceID(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	s.metrics = metrics.New()
	s.metrics.GaugeFunc("qbroker_audit_fsyncs", "fsyncs of the audit file since start (group commit: far fewer than events)", func() float64 {
		_, syncs := s.sink.Stats()
		return float64(syncs)
	})
	s.Broker, err = broker.New(ctx, broker.Config{
		Store: s.store, Sealer: sealer, Policy: pol, Audit: s.sink,
		Issuer: s.BrokerURL, Audience: Audience, GatewayAddr: s.GatewayURL, Devices: catalogue(cfg.Devices),
		Location: cfg.Location(), Logger: log,
		Instance: instance, ExclusiveStore: cfg.Store.Type != "postgres", KeyRotateEvery: cfg.SigningKeys.RotateEvery,
		AuditKey: auditKey.Public().(ed25519.PublicKey), AuditHead: s.sink.Head, JWT: jwtAuth, Device: deviceFlow, SPIFFE: spiffeAuth, Anomaly: rules, AlertWebhook: cfg.Anomaly.WebhookURL, Metrics: s.metrics, AuditPath: auditPath,
		Approvals: cfg.Approvals, Budgets: cfg.Budgets, OnApproval: s.onApproval, OnFinding: s.onFinding, OnBudgetAlert: s.onBudgetAlert, AWS: awsCredentials(cfg.Providers.AWS), Minters: providerMinters(cfg),
		LoginLimits: broker.LoginLimits{
			FailuresPerMinute: cfg.Auth.LoginLimits.FailuresPerMinute,
			PerSource:         cfg.Auth.LoginLimits.PerSourcePerSecond,
			PerRole:           cfg.Auth.LoginLimits.PerRolePerSecond,
		},
	})
	if err != nil {
		return nil, err
	}
	// Before serving: put right what a crash left half done.
	if _, err := s.Broker.Recover(ctx); err != nil {
		return nil, fmt.Errorf("crash recovery: %w", err)
	}
	if cfg.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if s.spiffe != nil {
			tc = s.spiffe.a.ServerTLSConfig(tc) // asks for (and verifies) SVIDs; token clients need none
		}
		apiLn = tls.NewListener(apiLn, tc)
	}
	apiMux := http.NewServeMux()
	apiSrv := httpapi.New(httpapi.Config{Broker: s.Broker, Logger: log, Version: Version, Metrics: s.metrics.Handler(), Limits: apiGuard(s.Broker, cfg.APILimits)})
	apiMux.Handle("/", apiSrv)
	if s.Console, err = newConsole(ctx, s.Broker, s.BrokerURL, cfg.Approvals.Console, o.DevConsoleLogin, o); err != nil {
		return nil, err
	}
	apiMux.Handle("/ui/", apiSrv.LimitSource(s.Console.Handler()))
	trusted := cfg.TrustedPrefixes()
	s.serve(apiLn, httpapi.ClientAddress(trusted, s.metrics.Middleware("unmatched", apiMux)))

	upstream := cfg.Providers.IonQ.BaseURL
	if o.IonQUpstream != "" {
		upstream = o.IonQUpstream
	}
	if uu, err := url.Parse(upstream); err == nil {
		canceller, err := gateway.NewCanceller(uu, nil, s.Broker.Credential)
		if err != nil {
			return nil, fmt.Errorf("ionq upstream: %w", err)
		}
		s.Broker.SetCanceller(canceller)
	}
	if gwLn != nil {
		fronts, err := GatewayFronts(cfg)
		if err != nil {
			return nil, err
		}
		grpcFronts, err := GatewayGRPCFronts(cfg)
		if err != nil {
			return nil, err
		}
		gw, err := newInProcessGateway(s.Broker, upstream, log, s.metrics.Upstream, grpcFronts, fronts...)
		if err != nil {
			return nil, err
		}
		// gRPC fronts (Rigetti QCS) need HTTP/2; without TLS that is h2c
		// with prior knowledge, next to HTTP/1.1 on the same listener.
		s.serveWith(gwLn, httpapi.ClientAddress(trusted, s.metrics.Middleware("gateway", gw)), gatewayProtocols())
	}
	s.startSweeper(o.SweepInterval)
	lctx, stopListen := context.WithCancel(context.Background())
	s.stopListen = stopListen
	go s.Broker.Listen(lctx) //nolint:errcheck // returns only when stopped; failures are logged and retried inside
	if o.Watch {
		wctx, cancel := context.WithCancel(context.Background())
		s.stopWatch = cancel
		if err := s.watchFiles(wctx); err != nil {
			return nil, err
		}
	}
	log.Info("qbroker started", "broker", s.BrokerURL, "gateway", s.GatewayURL, "data_dir", cfg.DataDir)
	return s, nil
}

// NewInProcessGateway builds a gateway that talks to b directly.
// fronts serve other providers' own API shapes (gateway.Front).
func NewInProcessGateway(b *broker.Broker, ionqUpstream string, log *slog.Logger, fronts ...gateway.Front) (*gateway.Gateway, error) {
	return newInProcessGateway(b, ionqUpstream, log, nil, nil, fronts...)
}

func newInProcessGateway(b *broker.Broker, ionqUpstream string, log *slog.Logger, observe func(string, time.Duration), grpcFronts []gateway.GRPCFront, fronts ...gateway.Front) (*gateway.Gateway, error) {
	u, err := url.Parse(ionqUpstream)
	if err != nil {
		return nil, fmt.Errorf("ionq upstream: %w", err)
	}
	v, err := token.NewVerifier(token.VerifierConfig{Issuer: b.Issuer(), Audience: b.Audience(), Keys: b.KeyRing()})
	if err != nil {
		return nil, err
	}
	return gateway.New(gateway.Config{Broker: inProcess{b}, Verifier: v, IonQUpstream: u, Logger: log, Fronts: fronts, GRPCFronts: grpcFronts, Observe: observe})
}

func catalogue(in []config.Device) []broker.Device {
	out := make([]broker.Device, 0, len(in))
	for _, d := range in {
		out = append(out, broker.Device{
			Provider: d.Provider, Name: d.Name, Kind: d.Kind, Vendor: d.Vendor, ARN: d.ARN, Qubits: d.Qubits, MaxShots: d.MaxShots,
			Price: broker.Price{PerTaskUSD: d.Price.PerTaskUSD, PerShotUSD: d.Price.PerShotUSD, PerMinuteUSD: d.Price.PerMinuteUSD, MinMinutes: d.Price.MinMinutes,
				PerSecondUSD: d.Price.PerSecondUSD},
			QPUSecondsPerTask: d.QPUSecondsPerTask, QPUSecondsPerShot: d.QPUSecondsPerShot,
		})
	}
	return out
}

// anomalyEngine builds the anomaly rules from the config (nil if disabled).
func anomalyEngine(cfg *config.Config) (*anomaly.Engine, error) {
	if cfg.Anomaly.Disabled {
		return nil, nil
	}
	ac := anomaly.DefaultConfig()
	if cfg.Anomaly.RulesFile != "" {
		b, err := os.ReadFile(cfg.Anomaly.RulesFile)
		if err != nil {
			return nil, fmt.Errorf("anomaly rules: %w", err)
		}
		if ac, err = anomaly.ParseConfig(b); err != nil {
			return nil, fmt.Errorf("anomaly rules %s: %w", cfg.Anomaly.RulesFile, err)
		}
	}
	if ac.TimeZone == "" || ac.TimeZone == "UTC" {
		ac.TimeZone = cfg.TimeZone
	}
	e, err := anomaly.New(ac)
	if err != nil {
		return nil, fmt.Errorf("anomaly rules: %w", err)
	}
	return e, nil
}

// logLint reports overbroad policies (warnings: they still load).
func logLint(log *slog.Logger, e *policy.Engine) {
	for _, w := range e.Warnings() {
		log.Warn("policy lint", "warning", w.String())
	}
}

func loadPolicy(files []string) (*policy.Engine, error) {
	if len(files) == 0 {
		return policy.New(policy.DefaultFiles())
	}
	e, err := policy.LoadFiles(files)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return e, nil
}

// publicURL is the configured URL, or one derived from the bound listener
// (so port 0 works).
func publicURL(configured string, ln net.Listener) string {
	if configured != "" && !strings.HasSuffix(configured, ":0") {
		return strings.TrimSuffix(configured, "/")
	}
	return "http://" + ln.Addr().String()
}

func (s *Server) serve(ln net.Listener, h http.Handler) { s.serveWith(ln, h, nil) }

// gatewayProtocols are the gateway listener's protocols: HTTP/1.1 and
// HTTP/2, over TLS when the listener has it and as prior-knowledge h2c
// otherwise (gRPC clients such as QCS's speak HTTP/2 only).
func gatewayProtocols() *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	return p
}

// serveWith serves h on ln; protocols nil means the http.Server default.
func (s *Server) serveWith(ln net.Listener, h http.Handler, protocols *http.Protocols) {
	hs := &http.Server{
		Protocols:         protocols,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.servers = append(s.servers, hs)
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.errc <- err
		}
	}()
}

func (s *Server) startSweeper(interval time.Duration) {
	if interval <= 0 {
		interval = sweepInterval
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stop, s.swept = cancel, make(chan struct{})
	go func() {
		defer close(s.swept)
		t := time.NewTicker(interval)
		defer t.Stop()
		// One replica at a time sweeps (a store lease; always granted on
		// SQLite); when it dies, another takes over at its next tick.
		var alive func(context.Context) bool
		var release func()
		defer func() {
			if release != nil {
				release()
			}
		}()
		// The first attempt is at once, so that a replica that is alone
		// leads (and acts on anomaly findings) from the start.
		for first := true; ; first = false {
			if !first {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
			if alive == nil || !alive(ctx) {
				if release != nil {
					release()
					release, alive = nil, nil
					s.leading.Store(false)
					s.Broker.SetLeader(false)
					s.log.Warn("sweeper: lost the lease")
				}
				a, r, ok, err := s.store.TryLead(ctx, "sweeper")
				if err != nil && ctx.Err() == nil {
					s.log.Warn("sweeper: lease", "err", err)
				}
				if !ok {
					continue
				}
				alive, release = a, r
				s.leading.Store(true)
				s.Broker.SetLeader(true)
				s.log.Info("sweeper: this replica runs the background sweeps")
			}
			if err := s.Broker.Sweep(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("sweep failed", "err", err)
			}
		}
	}()
}

// Leading reports whether this replica holds the sweeper lease.
func (s *Server) Leading() bool { return s.leading.Load() }

// Err reports a listener that stopped unexpectedly.
func (s *Server) Err() <-chan error { return s.errc }

// Close drains in-flight requests (until ctx ends) and releases everything.
func (s *Server) Close(ctx context.Context) error {
	var errs []error
	for _, hs := range s.servers {
		errs = append(errs, hs.Shutdown(ctx))
	}
	if s.stop != nil {
		s.stop()
		<-s.swept
	}
	if s.stopListen != nil {
		s.stopListen()
	}
	if s.stopWatch != nil {
		s.stopWatch()
	}
	s.jwt.close()
	s.spiffe.close()
	if s.notifier != nil {
		// Delivers what is queued, for a few seconds at most: a dead
		// receiver must not hold up shutdown either.
		nctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		if err := s.notifier.Close(nctx); err != nil {
			s.log.Warn("approval webhook: undelivered events at shutdown", "err", err)
		}
		cancel()
	}
	if len(s.servers) == 0 {
		for _, ln := range s.lns {
			_ = ln.Close()
		}
	}
	if s.sink != nil {
		errs = append(errs, s.sink.Close()) // first: its final checkpoint reaches the secondaries
	}
	errs = append(errs, closeSecondaries(ctx, s.secondaries))
	if s.store != nil {
		errs = append(errs, s.store.Close())
	}
	return errors.Join(errs...)
}

// Initialize creates the initial root token on first start.
func (s *Server) Initialize(ctx context.Context) (root string, created bool, err error) {
	return s.Broker.Initialize(ctx, broker.Caller{RequestID: "init", Path: "init"})
}

// openStore opens the configured store: SQLite in the data dir (the
// default), or PostgreSQL from the DSN in store.dsn_env.
// instanceID names this process across restarts: a random name kept in
// its data dir (not a secret), which prefixes its job tokens' ids so that
// crash recovery on a shared store touches only its own grants.
func instanceID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "instance-id")
	if b, err := os.ReadFile(path); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("instance id: %w", err)
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("instance id: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(b[:])
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("instance id: %w", err)
	}
	return id, nil
}

func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (*sqlstore.Store, error) {
	if cfg.Store.Type != "postgres" {
		return sqlstore.OpenSQLite(ctx, filepath.Join(cfg.DataDir, "qbroker.db"), sqlstore.Options{Logger: log})
	}
	dsn := os.Getenv(cfg.Store.DSNEnv)
	if dsn == "" {
		return nil, fmt.Errorf("store: %s (store.dsn_env) is empty", cfg.Store.DSNEnv)
	}
	return sqlstore.OpenPostgres(ctx, dsn, sqlstore.Options{Logger: log,
		MaxOpenConns: cfg.Store.MaxOpenConns, StatementTimeout: cfg.Store.StatementTimeout})
}
