// Package cli is qbroker's command line (cobra). Commands that talk to a
// running broker use package client only; commands that run services build
// them through internal/server. Output streams and the environment are
// injected so commands can be tested.
package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/qbroker/qbroker/client"
)

// Env is the process environment a command sees.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

// Environment variables the CLI reads.
const (
	EnvAddr        = "QBROKER_ADDR"
	EnvToken       = "QBROKER_TOKEN"
	EnvGatewayAddr = "QBROKER_GATEWAY_ADDR"
	EnvRoleID      = "QBROKER_ROLE_ID"
	EnvSecretID    = "QBROKER_SECRET_ID"
)

// Main runs the command line and returns the exit code.
func Main(ctx context.Context, args []string, env Env) int {
	root := newRoot(env)
	root.SetArgs(args)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		var ce *childExit
		if errors.As(err, &ce) { // qbroker exec: the child's own status
			return ce.code
		}
		if !errors.Is(err, errFailed) { // errFailed: the command printed its own report
			fmt.Fprintln(env.Stderr, "error:", err)
		}
		return 1
	}
	return 0
}

func newRoot(env Env) *cobra.Command {
	root := &cobra.Command{
		Use:           "qbroker",
		Short:         "Quantum cloud credential broker for AI agents",
		Long:          "qbroker lets AI agents use quantum clouds without holding long-lived API keys.\nRun `qbroker dev` for the all-in-one quickstart.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		devCmd(env), serverCmd(env), gatewayCmd(env), simCmd(env),
		demoCmd(env), benchCmd(env),
		roleCmd(env), approleCmd(env), keysCmd(env), providerCmd(env), tokenCmd(env),
		auditCmd(env), policyCmd(env), anomalyCmd(env), revokeCmd(env), agentCmd(env), loginCmd(env), freezeCmd(env), approvalsCmd(env), budgetCmd(env), mcpCmd(env),
		execCmd(env), credsCmd(env), leaseCmd(env),
	)
	return root
}

// apiClient builds a client from QBROKER_ADDR and QBROKER_TOKEN.
func apiClient(env Env) (*client.Client, error) {
	addr := env.Getenv(EnvAddr)
	if addr == "" {
		return nil, fmt.Errorf("%s is not set (run `qbroker dev` and eval its exports)", EnvAddr)
	}
	hc, err := httpClient(env)
	if err != nil {
		return nil, err
	}
	c := client.New(addr, hc)
	if t := env.Getenv(EnvToken); t != "" {
		c = c.WithToken(t)
	}
	if id := env.Getenv(EnvApproval); id != "" {
		c = c.WithApproval(id)
	}
	return c, nil
}

// EnvApproval releases an administrative command that an approval rule
// held: run the same command again with QBROKER_APPROVAL=<approval id>.
const EnvApproval = "QBROKER_APPROVAL"

// EnvCACert names a PEM file of CAs to trust for an https broker (as
// VAULT_CACERT does for Vault), in addition to the system roots.
const EnvCACert = "QBROKER_CACERT"

// httpClient is the CLI's HTTP client: QBROKER_CACERT adds trusted CAs.
func httpClient(env Env) (*http.Client, error) {
	path := env.Getenv(EnvCACert)
	if path == "" {
		return &http.Client{Timeout: 30 * time.Second}, nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvCACert, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: %s holds no PEM certificate", EnvCACert, path)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Timeout: 30 * time.Second, Transport: tr}, nil
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	switch strings.ToLower(level) {
	case "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}
