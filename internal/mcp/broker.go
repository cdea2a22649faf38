package mcp

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/client"
)

// Broker is what the tools ask of the broker, and of the gateway with the
// owner's credential, for one caller. Every call acts as the agent; none
// returns its broker token. Two implementations: tokenBroker holds the
// token (QBROKER_TOKEN, or the bearer token of an HTTP request), and
// agentBroker holds none and asks the desktop's local broker (`qbroker
// agent`) over its Unix socket, which makes the call with its own token.
//
// Refusals are *client.Error (the broker's status and reasons) and
// *client.PendingError (held for an approver), or a refusal with words for
// the model.
type Broker interface {
	Devices(ctx context.Context) ([]api.DeviceInfo, error)
	Budgets(ctx context.Context) ([]api.BudgetUsage, error)
	// Approval reads one of the agent's approvals, long-polling a pending
	// one for up to wait.
	Approval(ctx context.Context, id string, wait time.Duration) (api.Approval, error)
	RecordToolCall(ctx context.Context, req api.ToolCallRequest) error
	// Role is the role of the agent's token.
	Role(ctx context.Context) (string, error)
	// JobToken asks for a job token; a request held for approval is a
	// *client.PendingError, returned at once.
	JobToken(ctx context.Context, role string, req api.JobTokenRequest) (api.JobTokenData, error)
	// OwnerCall sends a read or cancel of one of the agent's jobs to the
	// gateway (path: the front's path, e.g. /ionq/v0.4/jobs/<id>) with the
	// owner's credential, and returns the gateway's answer.
	OwnerCall(ctx context.Context, method, path string) (*http.Response, error)
}

// tokenBroker acts with a broker token this process holds.
type tokenBroker struct {
	s     *Server
	c     *client.Client // bound to the token and the client name
	token string         // for the gateway's owner calls; never logged or returned
	name  string
}

func (b tokenBroker) Devices(ctx context.Context) ([]api.DeviceInfo, error) { return b.c.Devices(ctx) }

func (b tokenBroker) Budgets(ctx context.Context) ([]api.BudgetUsage, error) {
	return b.c.Budgets(ctx, "")
}

func (b tokenBroker) Approval(ctx context.Context, id string, wait time.Duration) (api.Approval, error) {
	return b.c.Approval(ctx, id, wait)
}

func (b tokenBroker) RecordToolCall(ctx context.Context, req api.ToolCallRequest) error {
	return b.c.RecordToolCall(ctx, req)
}

func (b tokenBroker) Role(ctx context.Context) (string, error) {
	info, err := b.c.LookupSelf(ctx)
	return info.Role, err
}

func (b tokenBroker) JobToken(ctx context.Context, role string, req api.JobTokenRequest) (api.JobTokenData, error) {
	return b.c.JobToken(ctx, role, req)
}

func (b tokenBroker) OwnerCall(ctx context.Context, method, path string) (*http.Response, error) {
	gw := b.s.gatewayURL()
	if gw == "" {
		return nil, errGatewayUnknown
	}
	var body []byte
	if method == http.MethodPut && strings.HasPrefix(path, "/braket/") {
		var err error
		if body, err = braketCancelBody(); err != nil {
			return nil, err
		}
	}
	return b.s.gatewayDo(ctx, b.name, method, gw+path, frontScheme(path)+b.token, body)
}

// frontScheme is how a provider front takes a credential in Authorization.
func frontScheme(path string) string {
	if strings.HasPrefix(path, "/braket/") {
		return "Bearer "
	}
	return "apiKey "
}

// gatewayDo sends one request to the gateway.
func (s *Server) gatewayDo(ctx context.Context, clientName, method, u, authorization string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, &refusal{msg: "qbroker mcp could not build the gateway request; nothing was done", cause: err}
	}
	req.Header.Set("Authorization", authorization)
	req.Header.Set(api.ClientHeader, clientName)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		s.log.WarnContext(ctx, "gateway unreachable", "method", method, "path", req.URL.Path, "err", redact(err.Error()))
		return nil, &refusal{msg: "the qbroker gateway could not be reached; nothing was done. Try again later.", cause: err}
	}
	return resp, nil
}

var _ Broker = tokenBroker{}
