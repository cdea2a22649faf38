package cli

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/gateway"
	"github.com/qbroker/qbroker/internal/httpapi"
	"github.com/qbroker/qbroker/internal/server"
	"github.com/qbroker/qbroker/internal/sim/ionqsim"
	"github.com/qbroker/qbroker/internal/token"
)

const drainTimeout = 10 * time.Second

func devCmd(env Env) *cobra.Command {
	var o server.DevOptions
	var logLevel, ionqKeyEnv, cpuProfile string
	var noBudgets bool
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run broker, gateway and IonQ emulator in one process with a demo role (quickstart)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Logger = newLogger(env.Stderr, logLevel)
			if ionqKeyEnv != "" {
				if o.IonQKey = env.Getenv(ionqKeyEnv); o.IonQKey == "" {
					return fmt.Errorf("%s is empty", ionqKeyEnv)
				}
			}
			if cpuProfile != "" {
				stop, err := startCPUProfile(cpuProfile)
				if err != nil {
					return err
				}
				defer stop()
			}
			if !noBudgets {
				b, l := server.DevBudgets(), server.DevAPILimits()
				o.Budgets, o.APILimits = &b, &l
			}
			d, err := server.StartDev(cmd.Context(), o)
			if err != nil {
				return err
			}
			out := env.Stdout
			fmt.Fprintf(out, "qbroker dev is running (data in %s)\n", d.DataDir)
			fmt.Fprintf(out, "  broker:   %s\n  gateway:  %s\n  emulator: %s (IonQ v0.4; its key stays inside qbroker)\n\n", d.BrokerURL, d.GatewayURL, d.SimURL)
			fmt.Fprintf(out, "In another shell, paste these lines (or eval them) and run `qbroker demo`:\n\n")
			fmt.Fprintf(out, "export %s=%s\n", EnvAddr, d.BrokerURL)
			fmt.Fprintf(out, "export %s=%s\n", EnvGatewayAddr, d.GatewayURL)
			fmt.Fprintf(out, "export %s=%s\n", EnvToken, d.RootToken)
			fmt.Fprintf(out, "export %s=%s\n", EnvRoleID, d.RoleID)
			fmt.Fprintf(out, "export %s=%s\n", EnvSecretID, d.SecretID)
			fmt.Fprintf(out, "\n# QBROKER_TOKEN is an admin token for this dev instance only; the demo agent uses the AppRole pair.\n")
			fmt.Fprintf(out, "\nReal hardware needs a person's approval: `qbroker demo --device qpu.forte-1` waits for it.\n")
			fmt.Fprintf(out, "Approve in the console (this link signs you in once, as %s):\n  %s\n", server.DevAdmin, d.ConsoleLogin)
			fmt.Fprintf(out, "or with the admin token: qbroker approvals list; qbroker approvals approve <id>\n")
			return wait(cmd.Context(), d.Err(), d.Close)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Addr, "addr", "127.0.0.1:8200", "broker API listen address")
	f.StringVar(&o.GatewayAddr, "gateway-addr", "127.0.0.1:8300", "gateway listen address")
	f.StringVar(&o.SimAddr, "sim-addr", "127.0.0.1:8400", "IonQ emulator listen address")
	f.StringVar(&o.DataDir, "data", "", "data directory (default: a new temporary directory)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&ionqKeyEnv, "ionq-key-env", "", "take the emulator's API key from this env var (for direct-to-emulator benchmarks)")
	f.StringSliceVar(&o.PolicyFiles, "policy", nil, "Cedar policy file(s) to use instead of the built-in demo policies (reloaded on change)")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile to this file until shutdown")
	_ = f.MarkHidden("cpuprofile")
	f.BoolVar(&noBudgets, "no-budgets", false, "run without the demo role's limits and the API rate limits (for load benchmarks)")
	_ = f.MarkHidden("no-budgets")
	f.BoolVar(&o.DiscardAudit, "audit-discard", false, "send audit events to /dev/null (benchmark baseline only)")
	_ = f.MarkHidden("audit-discard")
	return cmd
}

func wait(ctx context.Context, errc <-chan error, closeFn func(context.Context) error) error {
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	dctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	if cerr := closeFn(dctx); err == nil {
		err = cerr
	}
	return err
}

func serverCmd(env Env) *cobra.Command {
	var cfgPath, dataDir, listen string
	var drainDelay time.Duration
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the broker (and, if configured, an in-process gateway)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := &config.Config{}
			var err error
			if cfgPath != "" {
				if cfg, err = config.Load(cfgPath); err != nil {
					return err
				}
			}
			// Overrides first, so that defaults derived from them (the
			// public URL from the listen address, the seal key path from the
			// data dir) follow them.
			if dataDir != "" {
				cfg.DataDir = dataDir
			}
			if listen != "" {
				cfg.Listen = listen
			}
			if err := cfg.Finish(); err != nil {
				return fmt.Errorf("config: %w", err)
			}
			log := newLogger(env.Stderr, cfg.Log.Level)
			s, err := server.Start(cmd.Context(), server.Options{Config: cfg, Logger: log, ConfigPath: cfgPath, Watch: *cfg.WatchPolicies})
			if err != nil {
				return err
			}
			// SIGHUP reloads policies and the device catalogue.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for range hup {
					_ = s.Reload(cmd.Context()) // logged and audited inside
				}
			}()
			root, created, err := s.Initialize(cmd.Context())
			if err != nil {
				_ = s.Close(context.Background())
				return err
			}
			fmt.Fprintf(env.Stdout, "qbroker server listening on %s\n", s.BrokerURL)
			if s.GatewayURL != "" {
				fmt.Fprintf(env.Stdout, "gateway listening on %s\n", s.GatewayURL)
			}
			if created {
				fmt.Fprintf(env.Stdout, "Initial root token (shown once; store it safely): %s\n", root)
			}
			return wait(cmd.Context(), s.Err(), func(ctx context.Context) error {
				// Drain: /v1/sys/health turns 503 so load balancers send new
				// requests elsewhere; then in-flight requests finish.
				s.Broker.Drain()
				if drainDelay > 0 {
					log.Info("draining", "delay", drainDelay)
					time.Sleep(drainDelay)
				}
				return s.Close(ctx)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", "", "YAML config file (docs/config.md)")
	f.StringVar(&dataDir, "data", "", "data directory (overrides the config; default ./qbroker-data)")
	f.StringVar(&listen, "addr", "", "listen address (overrides the config)")
	f.DurationVar(&drainDelay, "drain-delay", 0, "on SIGTERM, answer health checks with 503 for this long before closing (e.g. 5s behind a load balancer); in-flight requests always finish")
	return cmd
}

func gatewayCmd(env Env) *cobra.Command {
	var brokerAddr, addr, ionqUpstream, logLevel, cfgPath string
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run a standalone gateway in front of the providers (token from QBROKER_GATEWAY_TOKEN)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			tok := env.Getenv("QBROKER_GATEWAY_TOKEN")
			if tok == "" {
				return fmt.Errorf("QBROKER_GATEWAY_TOKEN is not set (create one with `qbroker token create-gateway`)")
			}
			if brokerAddr == "" {
				brokerAddr = env.Getenv(EnvAddr)
			}
			if brokerAddr == "" {
				return fmt.Errorf("--broker or %s is required", EnvAddr)
			}
			u, err := url.Parse(ionqUpstream)
			if err != nil {
				return fmt.Errorf("--ionq-upstream: %w", err)
			}
			log := newLogger(env.Stderr, logLevel)
			hc := &http.Client{Timeout: 10 * time.Second}
			v, err := token.NewVerifier(token.VerifierConfig{
				Issuer: brokerAddr, Audience: server.Audience,
				Keys: token.NewJWKSCache(brokerAddr+"/.well-known/jwks.json", hc, 5*time.Second),
			})
			if err != nil {
				return err
			}
			var fronts []gateway.Front
			var grpcFronts []gateway.GRPCFront
			var trusted []netip.Prefix
			if cfgPath != "" { // the providers and devices sections: the fronts beyond IonQ, and trusted_proxies
				cfg, err := config.Load(cfgPath)
				if err != nil {
					return err
				}
				if err := cfg.Finish(); err != nil {
					return fmt.Errorf("config %s: %w", cfgPath, err)
				}
				if fronts, err = server.GatewayFronts(cfg); err != nil {
					return err
				}
				if grpcFronts, err = server.GatewayGRPCFronts(cfg); err != nil {
					return err
				}
				trusted = cfg.TrustedPrefixes()
			}
			gw, err := gateway.New(gateway.Config{Broker: gateway.NewRemoteBroker(brokerAddr, tok, hc), Verifier: v, IonQUpstream: u, Logger: log, Fronts: fronts, GRPCFronts: grpcFronts})
			if err != nil {
				return err
			}
			return serveUntilDone(cmd.Context(), env, addr, httpapi.ClientAddress(trusted, gw), "gateway")
		},
	}
	f := cmd.Flags()
	f.StringVar(&brokerAddr, "broker", "", "broker URL (default $QBROKER_ADDR); also the job tokens' issuer")
	f.StringVar(&addr, "addr", "127.0.0.1:8300", "listen address")
	f.StringVar(&ionqUpstream, "ionq-upstream", "https://api.ionq.co", "IonQ API base URL")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&cfgPath, "config", "", "the broker's config file: its providers and devices enable the fronts beyond IonQ (/braket, /ibm, /azure, /quantinuum, and Rigetti QCS over gRPC)")
	return cmd
}

func simCmd(env Env) *cobra.Command {
	var addr, keyEnv string
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Run the IonQ v0.4 emulator (state-vector simulator behind IonQ's API)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			key := env.Getenv(keyEnv)
			if key == "" {
				return fmt.Errorf("%s must hold the API key the emulator accepts", keyEnv)
			}
			em := ionqsim.New(ionqsim.Config{APIKey: key, Logger: newLogger(env.Stderr, "info")})
			defer em.Close()
			return serveUntilDone(cmd.Context(), env, addr, em, "ionq emulator")
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8400", "listen address")
	cmd.Flags().StringVar(&keyEnv, "api-key-env", "IONQ_API_KEY", "env var holding the API key to accept")
	return cmd
}

func serveUntilDone(ctx context.Context, env Env, addr string, h http.Handler, what string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// HTTP/1.1 and HTTP/2, h2c included: the gateway's gRPC front (Rigetti
	// QCS) needs HTTP/2, and plain-HTTP gRPC clients speak h2c.
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	protocols.SetUnencryptedHTTP2(true)
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, Protocols: protocols}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	fmt.Fprintf(env.Stdout, "%s listening on http://%s\n", what, ln.Addr())
	return wait(ctx, errc, hs.Shutdown)
}

func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
