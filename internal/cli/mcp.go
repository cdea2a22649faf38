package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/qbroker/qbroker/client"
	"github.com/qbroker/qbroker/internal/localagent"
	"github.com/qbroker/qbroker/internal/mcp"
)

// mcpCmd is `qbroker mcp`: quantum tools for LLM agents over MCP, every
// call brokered. stdio (desktop hosts) by default; --http for cloud agents.
func mcpCmd(env Env) *cobra.Command {
	var httpAddr, publicURL, authServer, role, logLevel, tlsCert, tlsKey, socket string
	var useAgent bool
	cmd := &cobra.Command{
		Use:   "mcp",
		Short: "MCP server: quantum tools for LLM agents, every call brokered (stdio, or --http)",
		Long: "Serves the Model Context Protocol with the tools list_devices, estimate_cost, submit_circuit,\n" +
			"job_status, get_result, cancel_job and wait_for_approval, and the resources qbroker://devices\n" +
			"and qbroker://budget. It holds no provider key and never returns a credential.\n\n" +
			"stdio (default, for desktop MCP hosts): acts with the broker token in QBROKER_TOKEN; without it,\n" +
			"through the local broker (`qbroker agent`) when its socket exists (or with --local-agent): then this\n" +
			"process holds no token at all, and job tokens come after the daemon's consent rules.\n" +
			"--http ADDR (streamable HTTP at /mcp, for cloud agents): an OAuth protected resource; every\n" +
			"request carries a broker token as \"Authorization: Bearer\"; QBROKER_TOKEN is not used.\n" +
			"Reads QBROKER_ADDR (the broker), QBROKER_GATEWAY_ADDR (the gateway; otherwise learned from\n" +
			"the first job token) and QBROKER_CACERT. See docs/mcp.md.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if httpAddr == "" {
				sock, ok, err := mcpLocalAgent(env, useAgent, socket)
				if err != nil {
					return err
				}
				if ok {
					return runMCPLocalAgent(cmd.Context(), env, sock, role, logLevel)
				}
			} else if useAgent {
				return errors.New("--local-agent is for the stdio transport: over --http every request carries its own broker token")
			}
			addr := env.Getenv(EnvAddr)
			if addr == "" {
				return fmt.Errorf("%s is not set: the broker's URL", EnvAddr)
			}
			hc, err := httpClient(env)
			if err != nil {
				return err
			}
			hc.Timeout = 70 * time.Second // wait_for_approval long-polls for up to 55 s
			log := newLogger(env.Stderr, logLevel)
			o := mcp.Options{Broker: client.New(addr, hc), GatewayURL: env.Getenv(EnvGatewayAddr), Role: role, HTTPClient: hc, Logger: log, Version: "dev"}
			if httpAddr == "" {
				if o.Token = env.Getenv(EnvToken); o.Token == "" {
					return fmt.Errorf("%s is not set: the agent's broker token (qbroker login --method ... --print)", EnvToken)
				}
				s, err := mcp.New(o)
				if err != nil {
					return err
				}
				return s.RunStdio(cmd.Context())
			}
			s, err := mcp.New(o)
			if err != nil {
				return err
			}
			return serveMCPHTTP(cmd.Context(), env, s, httpAddr, publicURL, authServer, tlsCert, tlsKey)
		},
	}
	f := cmd.Flags()
	f.StringVar(&httpAddr, "http", "", "serve streamable HTTP on this address (e.g. 127.0.0.1:8500) instead of stdio")
	f.StringVar(&publicURL, "public-url", "", "the URL clients reach the HTTP server at (default: http(s)://<--http address>)")
	f.StringVar(&authServer, "authorization-server", "", "the authorization server named in the resource metadata (default: QBROKER_ADDR)")
	f.StringVar(&role, "role", "", "role to request job tokens under (default: the token's own role)")
	f.StringVar(&tlsCert, "tls-cert", "", "serve HTTPS with this certificate (PEM)")
	f.StringVar(&tlsKey, "tls-key", "", "and this key (PEM)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error (logs go to stderr, never a token)")
	f.BoolVar(&useAgent, "local-agent", false, "act through the local broker (`qbroker agent`) on its Unix socket, holding no token (default when QBROKER_TOKEN is unset and the socket exists)")
	f.StringVar(&socket, "socket", "", "the local agent's socket (default $"+EnvAgentSocket+", else $XDG_RUNTIME_DIR/qbroker/agent.sock)")
	return cmd
}

// mcpLocalAgent decides whether the stdio server acts through the local
// agent: asked for (--local-agent, --socket), or QBROKER_TOKEN unset and
// the daemon's socket present. A socket that another user owns is never
// used.
func mcpLocalAgent(env Env, asked bool, socket string) (string, bool, error) {
	asked = asked || socket != ""
	if env.Getenv(EnvToken) != "" {
		if asked {
			return "", false, fmt.Errorf("--local-agent and %s are exclusive: through the local agent this process holds no token (unset %s)", EnvToken, EnvToken)
		}
		return "", false, nil
	}
	if socket == "" {
		socket = localagent.DefaultSocketPath(env.Getenv)
	}
	st, err := os.Lstat(socket)
	switch {
	case err != nil && asked:
		// Serve anyway: each tool call tells the model to ask the person
		// to start `qbroker agent`.
		return socket, true, nil
	case err != nil:
		return "", false, fmt.Errorf("%s is not set, and no local agent runs at %s: start `qbroker agent` (docs/desktop.md), or give the agent's broker token (qbroker login --method ... --print)", EnvToken, socket)
	case st.Mode()&os.ModeSocket == 0:
		return "", false, fmt.Errorf("%s is not a socket", socket)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Getuid() {
		return "", false, fmt.Errorf("the local agent socket %s belongs to uid %d, not to you (uid %d): refused", socket, sys.Uid, os.Getuid())
	}
	// Nobody else may be able to swap it: its directory is ours, and only
	// ours to write (as the daemon requires when it creates it).
	dst, err := os.Lstat(filepath.Dir(socket))
	if err != nil {
		return "", false, fmt.Errorf("local agent socket directory: %w", err)
	}
	if sys, ok := dst.Sys().(*syscall.Stat_t); !dst.IsDir() || dst.Mode().Perm()&0o022 != 0 || (ok && int(sys.Uid) != os.Getuid()) {
		return "", false, fmt.Errorf("the local agent socket's directory %s must be yours and writable only by you: refused", filepath.Dir(socket))
	}
	return socket, true, nil
}

// runMCPLocalAgent serves stdio through the local agent: no broker token
// in this process, its environment or its configuration.
func runMCPLocalAgent(ctx context.Context, env Env, socket, role, logLevel string) error {
	hc, err := httpClient(env) // the gateway's TLS roots (QBROKER_CACERT)
	if err != nil {
		return err
	}
	o := mcp.Options{LocalAgent: socket, GatewayURL: env.Getenv(EnvGatewayAddr), Role: role, HTTPClient: hc, Logger: newLogger(env.Stderr, logLevel), Version: "dev"}
	if addr := env.Getenv(EnvAddr); addr != "" {
		o.Broker = client.New(addr, hc)
	}
	s, err := mcp.New(o)
	if err != nil {
		return err
	}
	return s.RunStdio(ctx)
}

func serveMCPHTTP(ctx context.Context, env Env, s *mcp.Server, addr, publicURL, authServer, cert, key string) error {
	if (cert == "") != (key == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	if publicURL == "" {
		scheme := "http"
		if cert != "" {
			scheme = "https"
		}
		publicURL = scheme + "://" + ln.Addr().String()
	}
	h, err := s.HTTPHandler(mcp.HTTPOptions{PublicURL: publicURL, AuthorizationServer: authServer})
	if err != nil {
		ln.Close()
		return err
	}
	if cert == "" && !strings.HasPrefix(publicURL, "https://") && !isLoopback(ln.Addr()) {
		fmt.Fprintln(env.Stderr, "qbroker mcp: warning: serving bearer tokens over plain HTTP on a non-loopback address; use --tls-cert/--tls-key or a TLS proxy (and --public-url https://...)")
	}
	// Requests run under base, so that shutdown can end the event streams
	// (GET /mcp) that never go idle by themselves.
	base, endStreams := context.WithCancel(context.WithoutCancel(ctx))
	defer endStreams()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return base }}
	fmt.Fprintf(env.Stdout, "qbroker mcp listening on %s%s (resource metadata at %s%s)\n", publicURL, mcp.EndpointPath, publicURL, mcp.MetadataPath)
	errc := make(chan error, 1)
	go func() {
		if cert != "" {
			errc <- srv.ServeTLS(ln, cert, key)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return shutdownMCPHTTP(context.WithoutCancel(ctx), srv, endStreams)
	}
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// shutdownMCPHTTP lets calls in flight finish for a moment, then ends the
// open event streams and waits for the rest, then closes what remains.
func shutdownMCPHTTP(ctx context.Context, srv *http.Server, endStreams context.CancelFunc) error {
	grace, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(grace); err == nil || !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	endStreams()
	rest, cancel2 := context.WithTimeout(ctx, 3*time.Second)
	defer cancel2()
	if err := srv.Shutdown(rest); errors.Is(err, context.DeadlineExceeded) {
		return srv.Close()
	} else if err != nil {
		return err
	}
	return nil
}
