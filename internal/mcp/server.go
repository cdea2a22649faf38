// Package mcp is `qbroker mcp`: a Model Context Protocol server that gives
// LLM agents quantum tools (list_devices, estimate_cost, submit_circuit,
// job_status, get_result, cancel_job, wait_for_approval) and two resources
// (the device catalogue and the agent's budget), every call brokered.
//
// The server holds no provider key and never returns a credential. It acts
// as the agent in one of three ways: through the desktop's local broker
// (`qbroker agent`, Options.LocalAgent), holding no token at all, every
// call made by the daemon and job tokens given after its consent rules;
// with the agent's broker token from the environment for the stdio
// transport (QBROKER_TOKEN); or with each HTTP request's bearer token for
// the streamable HTTP transport, where it is an OAuth protected resource
// (RFC 9728) whose access tokens are the broker's tokens. A submission asks
// the broker for a single-use job token bound to the circuit, device and
// shots, and sends IonQ's own request to the gateway with it; the job token
// lives only for that one request inside this process.
//
// Every tool call is first recorded in the broker's audit trail with the
// MCP client's name (POST /v1/sys/audit/tool-call); if that fails the call
// is refused. Refusals (policy, role limits, budgets, approvals) come back
// as tool errors that say, in words a model can act on, what was refused
// and what to do next, with anything credential-shaped removed.
//
// The package speaks to the broker only through the Broker interface
// (package client, or the local agent's socket API), and to the gateway
// only in the providers' public API shapes.
package mcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/client"
)

// Options configures a Server.
type Options struct {
	// Broker is the broker's client (address and HTTP client). Its token,
	// if any, is ignored: see Token. Not needed with LocalAgent.
	Broker *client.Client
	// Token is the agent's broker token for the stdio transport (from
	// QBROKER_TOKEN). The HTTP transport never uses it: there every request
	// carries its own.
	Token string
	// LocalAgent is the Unix socket of the desktop's local broker
	// (`qbroker agent`). When set, the stdio transport holds no broker
	// token: every broker call, and every read or cancel of a job, goes
	// through the daemon, which makes it with the token it keeps in
	// memory; job tokens come from it after its consent rules. Token must
	// then be empty.
	LocalAgent string
	// GatewayURL is the gateway's base URL (IonQ's API is at
	// GatewayURL+"/ionq"). Empty: learned from the first job token.
	GatewayURL string
	// Role is the role job tokens are requested under. Empty: the role of
	// the calling token (auth/token/lookup-self).
	Role string
	// HTTPClient makes the gateway calls. Nil: a client with a 30 s timeout.
	HTTPClient *http.Client
	// Logger gets operational logs; never a token. Nil: discarded.
	Logger *slog.Logger
	// Version is reported to MCP clients.
	Version string
	// PollInterval is how often wait tools poll (default 500 ms).
	PollInterval time.Duration
}

// Server builds MCP servers for the stdio and HTTP transports.
type Server struct {
	o   Options
	log *slog.Logger
	hc  *http.Client

	agent *agentClient // the local agent's socket (Options.LocalAgent)

	mu      sync.Mutex
	gateway string // learned from a job token when Options.GatewayURL is empty
}

// New checks o and returns a Server.
func New(o Options) (*Server, error) {
	if o.LocalAgent != "" && o.Token != "" {
		return nil, errors.New("mcp: a broker token and a local agent socket are exclusive: the local agent's point is that this process holds no token")
	}
	if o.Broker == nil && o.LocalAgent == "" {
		return nil, errors.New("mcp: no broker client")
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 500 * time.Millisecond
	}
	s := &Server{o: o, log: o.Logger, hc: o.HTTPClient, gateway: strings.TrimSuffix(o.GatewayURL, "/")}
	if o.LocalAgent != "" {
		s.agent = newAgentClient(o.LocalAgent)
	}
	return s, nil
}

// RunStdio serves one MCP session on stdin/stdout with Options.Token, or
// through Options.LocalAgent, until the client disconnects or ctx ends.
func (s *Server) RunStdio(ctx context.Context) error {
	if s.o.Token == "" && s.agent == nil {
		return errors.New("mcp: no broker token for the stdio transport (set QBROKER_TOKEN, or run `qbroker agent`)")
	}
	return s.MCPServer(false).Run(ctx, &sdk.StdioTransport{})
}

// MCPServer returns an MCP server with qbroker's tools and resources. With
// perRequest, every call uses the bearer token of the HTTP request that
// carried it (verified by the HTTP handler) and never Options.Token;
// otherwise every call uses Options.Token.
func (s *Server) MCPServer(perRequest bool) *sdk.Server {
	srv := sdk.NewServer(&sdk.Implementation{Name: "qbroker", Title: "qbroker quantum tools", Version: s.o.Version}, &sdk.ServerOptions{
		Instructions: instructions,
		Logger:       s.log,
	})
	t := &tools{s: s, perRequest: perRequest}
	t.register(srv)
	return srv
}

// instructions are sent to the client at initialization.
const instructions = `qbroker runs quantum circuits for you on the devices your role allows, without giving you any API key.
Start with list_devices (or the qbroker://devices resource), estimate_cost, then submit_circuit.
Poll job_status until the job is completed, then get_result.
Real hardware (kind "qpu") usually needs a person's approval: submit_circuit then answers status "approval_pending" with an approval_id;
call wait_for_approval, and once it is approved call submit_circuit again with the same circuit, device and shots plus approval_id.
Refusals explain why (policy, role limits, budget, approval); do not retry a refused request unchanged.`

// gatewayURL is the gateway base URL, if known.
func (s *Server) gatewayURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gateway
}

// learnGateway remembers the gateway a job token names, when none was
// configured.
func (s *Server) learnGateway(addr string) {
	if addr == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gateway == "" {
		s.gateway = strings.TrimSuffix(addr, "/")
	}
}

// caller is the identity of one tool call: the broker as the agent, and
// the MCP client's name. No token is ever returned from here.
type caller struct {
	broker Broker
	client string
}

// callerFor resolves the agent of a request: the local agent, or
// Options.Token (stdio), or the verified bearer token of the HTTP request
// (per request).
func (t *tools) callerFor(extra *sdk.RequestExtra, info *sdk.Implementation) (*caller, error) {
	name := clientName(info)
	if !t.perRequest && t.s.agent != nil {
		return &caller{broker: t.s.agent.as(name), client: name}, nil
	}
	var tok string
	if t.perRequest {
		if extra == nil || extra.TokenInfo == nil {
			return nil, errNotAuthenticated
		}
		tok = bearer(extra.Header.Get("Authorization"))
	} else {
		tok = t.s.o.Token
	}
	if tok == "" {
		return nil, errNotAuthenticated
	}
	return &caller{broker: tokenBroker{s: t.s, c: t.s.o.Broker.WithToken(tok).WithClientName(name), token: tok, name: name}, client: name}, nil
}

// errNotAuthenticated is the refusal for a call without a token.
var errNotAuthenticated = &refusal{msg: "not authenticated: qbroker mcp has no broker token for this call. The person running the agent must configure one (QBROKER_TOKEN, or an Authorization: Bearer header over HTTP)."}

// clientName is the MCP client's self-declared name and version.
func clientName(info *sdk.Implementation) string {
	if info == nil || strings.TrimSpace(info.Name) == "" {
		return "unnamed MCP client"
	}
	n := strings.TrimSpace(info.Name)
	if v := strings.TrimSpace(info.Version); v != "" {
		n += " " + v
	}
	if len(n) > 120 {
		n = n[:120]
	}
	return n
}

// bearer returns the token of an "Authorization: Bearer <token>" value.
func bearer(h string) string {
	f := strings.Fields(h)
	if len(f) != 2 || !strings.EqualFold(f[0], "bearer") {
		return ""
	}
	return f[1]
}

// audit records the tool call before it acts. A failure refuses the call.
func (s *Server) audit(ctx context.Context, c *caller, req api.ToolCallRequest) error {
	req.Client = c.client
	if err := c.broker.RecordToolCall(ctx, req); err != nil {
		s.log.WarnContext(ctx, "tool call not recorded; refused", "tool", req.Tool, "client", c.client, "err", redact(err.Error()))
		var ce *client.Error
		if errors.As(err, &ce) && (ce.Status == http.StatusForbidden || ce.Status == http.StatusUnauthorized) {
			return refuseBroker(err)
		}
		var r *refusal
		if errors.As(err, &r) {
			return r // the local agent's words (not running, cannot reach the broker)
		}
		return &refusal{msg: "qbroker could not record this call in its audit trail, so it refused it; nothing was done. Try again later.", cause: err}
	}
	return nil
}

// fmtUSD formats a dollar amount for a summary.
func fmtUSD(v float64) string { return fmt.Sprintf("$%.2f", v) }
