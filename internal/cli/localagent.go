package cli

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/client"
	"github.com/qbroker/qbroker/internal/localagent"
)

// EnvAgentSocket overrides where the local agent's socket is.
const EnvAgentSocket = "QBROKER_AGENT_SOCKET"

// agentCmd is `qbroker agent`: the desktop local broker (docs/desktop.md),
// with `agent doctor` and the administrative `agent resume ID`.
func agentCmd(env Env) *cobra.Command {
	var o struct {
		method, role, jwtFile, jwtEnv, socket, gateway, consent, logLevel string
		awsListen, ptListen, pageListen                                   string
		timeout, approvalWait                                             time.Duration
		costAbove                                                         float64
		hardware, firstDevice, export                                     bool
	}
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the local broker for desktop AI agents (consent prompts, memory-only secrets, SDK credential protocols)",
		Long: "Signs you in once (device flow by default; --method approle reads QBROKER_ROLE_ID and QBROKER_SECRET_ID),\n" +
			"keeps the broker token in locked memory only and serves local agents on a Unix socket in your runtime\n" +
			"directory (only your uid is served), the AWS container-credentials endpoint and a gateway passthrough on\n" +
			"127.0.0.1. Hardware, costly jobs, a device's first use and credential exports wait for your consent: in\n" +
			"this terminal when it is one, otherwise on a one-time page on 127.0.0.1. See docs/desktop.md.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := localagent.Harden(); err != nil {
				return fmt.Errorf("refusing to hold secrets without core dumps off: %w", err)
			}
			addr := env.Getenv(EnvAddr)
			if addr == "" {
				return fmt.Errorf("%s is not set", EnvAddr)
			}
			hc, err := httpClient(env)
			if err != nil {
				return err
			}
			login, err := agentLogin(env, o.method, o.role, o.jwtFile, o.jwtEnv)
			if err != nil {
				return err
			}
			log := newLogger(env.Stderr, o.logLevel)
			var asker localagent.Asker
			mode := o.consent
			if mode == "auto" {
				mode = "page"
				if localagent.CanPrompt(os.Stdin.Fd()) {
					mode = "terminal"
				}
			}
			switch mode {
			case "terminal":
				// Sent to the background later, a read fails (and the
				// question is denied) instead of stopping the daemon.
				signal.Ignore(syscall.SIGTTIN)
				asker = localagent.NewTerminal(os.Stdin, env.Stderr)
			case "page":
				p, err := localagent.NewPage(o.pageListen, log, func(url string, r localagent.Request) {
					fmt.Fprintf(env.Stderr, "qbroker agent: consent needed (%s for role %s, pid %d): open %s\n", r.What, r.Role, r.Program.PID, url)
					localagent.NotifySend(cmd.Context(), r)
				})
				if err != nil {
					return err
				}
				defer p.Close()
				asker = p
			case "none":
			default:
				return fmt.Errorf("--consent %q: want auto, terminal, page or none", o.consent)
			}
			rules := localagent.Rules{Hardware: o.hardware, CostAboveUSD: o.costAbove, FirstDevice: o.firstDevice, CredentialExport: o.export, Timeout: o.timeout}
			gw := o.gateway
			if gw == "" {
				gw = env.Getenv(EnvGatewayAddr)
			}
			socket := o.socket
			if socket == "" {
				socket = localagent.DefaultSocketPath(env.Getenv)
			}
			d, err := localagent.New(localagent.Config{
				Broker: client.New(addr, hc), Login: login, GatewayURL: gw, GatewayClient: &http.Client{Transport: hc.Transport, Timeout: 5 * time.Minute}, SocketPath: socket,
				AWSAddr: o.awsListen, PassthroughAddr: o.ptListen,
				Consent: localagent.NewConsent(rules, asker, log), ApprovalWait: o.approvalWait, Logger: log,
			})
			if err != nil {
				return err
			}
			return d.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.method, "method", "device", "how to sign in: device (a person, RFC 8628), approle or jwt (a machine identity)")
	f.StringVar(&o.role, "role", "", "JWT role (device, jwt)")
	f.StringVar(&o.jwtFile, "jwt-file", "", "file holding the JWT (jwt)")
	f.StringVar(&o.jwtEnv, "jwt-env", "", "environment variable holding the JWT (jwt)")
	f.StringVar(&o.socket, "socket", "", "Unix socket (default $"+EnvAgentSocket+", else $XDG_RUNTIME_DIR/qbroker/agent.sock)")
	f.StringVar(&o.gateway, "gateway", "", "gateway URL for the passthrough (default $"+EnvGatewayAddr+", else learned from the broker)")
	f.StringVar(&o.consent, "consent", "auto", "how to ask: auto (terminal if stdin is one, else page), terminal, page, none (deny what needs consent)")
	f.DurationVar(&o.timeout, "consent-timeout", time.Minute, "no answer within this denies")
	f.Float64Var(&o.costAbove, "consent-cost-above", 1, "ask for jobs estimated above this many USD (negative: never)")
	f.BoolVar(&o.hardware, "consent-hardware", true, "ask for every QPU job")
	f.BoolVar(&o.firstDevice, "consent-first-device", true, "ask for the first use of each device")
	f.BoolVar(&o.export, "consent-export", true, "ask before credentials leave the daemon (exec sessions for AWS, credential_process)")
	f.DurationVar(&o.approvalWait, "approval-wait", 15*time.Minute, "how long to wait when the broker holds a job for an approver (0: answer 409 at once)")
	f.StringVar(&o.awsListen, "aws-listen", "127.0.0.1:0", "AWS container-credentials endpoint (loopback only)")
	f.StringVar(&o.ptListen, "passthrough-listen", "127.0.0.1:0", "gateway passthrough (loopback only)")
	f.StringVar(&o.pageListen, "consent-listen", "127.0.0.1:0", "consent page (loopback only)")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	cmd.AddCommand(agentResumeCmd(env), agentDoctorCmd(env))
	return cmd
}

// agentLogin is the daemon's sign-in: it runs at start and again whenever
// the broker no longer accepts the token.
func agentLogin(env Env, method, role, jwtFile, jwtEnv string) (func(context.Context, *client.Client) (*api.Auth, error), error) {
	switch method {
	case "device":
		if role == "" {
			return nil, fmt.Errorf("--role is required for device (the JWT role that verifies your identity)")
		}
		return func(ctx context.Context, c *client.Client) (*api.Auth, error) { return deviceLogin(ctx, env, c, role) }, nil
	case "approle":
		if env.Getenv(EnvRoleID) == "" || env.Getenv(EnvSecretID) == "" {
			return nil, fmt.Errorf("%s and %s must be set for approle", EnvRoleID, EnvSecretID)
		}
		return func(ctx context.Context, c *client.Client) (*api.Auth, error) {
			return c.AppRoleLogin(ctx, env.Getenv(EnvRoleID), env.Getenv(EnvSecretID))
		}, nil
	case "jwt":
		if role == "" {
			return nil, fmt.Errorf("--role is required for jwt")
		}
		return func(ctx context.Context, c *client.Client) (*api.Auth, error) {
			raw, err := readJWT(env, jwtFile, jwtEnv)
			if err != nil {
				return nil, err
			}
			return c.JWTLogin(ctx, "jwt", role, raw)
		}, nil
	}
	return nil, fmt.Errorf("--method %q: want device, approle or jwt", method)
}

func agentResumeCmd(env Env) *cobra.Command {
	return &cobra.Command{
		Use: "resume ID", Short: "Lift an agent's suspension (administration; QBROKER_TOKEN)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient(env)
			if err != nil {
				return err
			}
			return c.ResumeAgent(cmd.Context(), args[0])
		},
	}
}

// ProviderHosts are the provider API endpoints `agent doctor` tries to
// reach directly. A desktop agent's egress should allow only the local
// broker and the gateway (docs/desktop.md).
var providerHosts = []string{
	"api.ionq.co:443",
	"quantum.cloud.ibm.com:443",
	"iam.cloud.ibm.com:443",
	"braket.us-east-1.amazonaws.com:443",
	"sts.amazonaws.com:443",
	"eastus.quantum.azure.com:443",
	"login.microsoftonline.com:443",
	"qapi.quantinuum.com:443",
	"api.qcs.rigetti.com:443",
}

func agentDoctorCmd(env Env) *cobra.Command {
	var socket string
	var hosts []string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the local agent and report which provider hosts this machine can reach directly",
		Long: "Exits 1 when the local agent is not running or a provider host is reachable without going through\n" +
			"the gateway (egress is not restricted; see docs/desktop.md for an nftables example).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if socket == "" {
				socket = localagent.DefaultSocketPath(env.Getenv)
			}
			out := env.Stdout
			bad := false
			in, err := localagent.NewSocketClient(socket).Status(cmd.Context())
			switch {
			case err != nil:
				bad = true
				fmt.Fprintf(out, "local agent   NOT RUNNING at %s: %v\n", socket, err)
			default:
				state := "signed in as " + in.Entity + " until " + in.ExpiresAt.Format(time.RFC3339)
				if !in.SignedIn {
					state = "not signed in (the next request signs in again)"
				}
				fmt.Fprintf(out, "local agent   running at %s, %s\n", socket, state)
				fmt.Fprintf(out, "core dumps    %s\n", map[bool]string{true: "off (not dumpable, RLIMIT_CORE 0)", false: "ON: the daemon could leak its token in a core file"}[in.Hardened])
				fmt.Fprintf(out, "aws endpoint  %s   passthrough %s   open exec sessions %d\n", in.AWSEndpoint, in.Passthrough, in.Sessions)
				if !in.Hardened {
					bad = true
				}
			}
			if st, err := os.Stat(socket); err == nil && st.Mode().Perm()&0o077 != 0 {
				bad = true
				fmt.Fprintf(out, "socket        mode %v: other users can connect (they are still refused by uid)\n", st.Mode().Perm())
			}
			var direct []string
			for _, h := range hosts {
				d := net.Dialer{Timeout: timeout}
				c, err := d.DialContext(cmd.Context(), "tcp", h)
				if err == nil {
					c.Close()
					direct = append(direct, h)
					fmt.Fprintf(out, "egress        %-40s REACHABLE directly\n", h)
					continue
				}
				fmt.Fprintf(out, "egress        %-40s blocked (%s)\n", h, shortNetErr(err))
			}
			if len(direct) > 0 {
				bad = true
				fmt.Fprintf(out, "\n%d provider host(s) are reachable without the gateway: a compromised agent could use a leaked key directly.\n"+
					"Restrict the agent's egress to the local broker and the gateway (docs/desktop.md, \"Network allow-list\").\n", len(direct))
			}
			if bad {
				return errFailed
			}
			fmt.Fprintln(out, "\nall checks passed")
			return nil
		},
	}
	cmd.Flags().StringVar(&socket, "socket", "", "the local agent's socket")
	cmd.Flags().StringSliceVar(&hosts, "hosts", providerHosts, "provider host:port pairs to try")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "per-host connect timeout")
	return cmd
}

func shortNetErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}
