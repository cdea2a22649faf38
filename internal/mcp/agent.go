package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/client"
)

// agentClient speaks to the desktop's local broker (`qbroker agent`) over
// its Unix socket: the agent API of docs/desktop.md. The daemon holds the
// broker token and makes every call with it; this process never sees it.
type agentClient struct {
	socket string
	hc     *http.Client
}

func newAgentClient(socket string) *agentClient {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}
	// A job-token request can wait for the person's consent; the daemon
	// times the question out (--consent-timeout).
	return &agentClient{socket: socket, hc: &http.Client{Transport: tr, Timeout: 10 * time.Minute}}
}

// as is the Broker of one MCP client (named in the audit trail).
func (a *agentClient) as(clientName string) agentBroker { return agentBroker{a: a, name: clientName} }

// agentBroker is a Broker through the local agent.
type agentBroker struct {
	a    *agentClient
	name string
}

// agentError is the daemon's refusal: {"errors": [...], "code": ...}.
type agentError struct {
	Errors []string `json:"errors"`
	Code   string   `json:"code"`
}

// send makes one call on the socket and returns the answer unread.
func (b agentBroker) send(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		j, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://local-agent"+path, body)
	if err != nil {
		return nil, fmt.Errorf("local agent request: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set(api.ClientHeader, b.name)
	resp, err := b.a.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, &refusal{msg: "stopped: the call was canceled", cause: err}
		}
		return nil, &refusal{msg: fmt.Sprintf("qbroker mcp acts through the local broker (`qbroker agent`), and it does not answer at %s; nothing was done. Ask the person at this computer to start `qbroker agent`.", b.a.socket), cause: err}
	}
	return resp, nil
}

// do makes one call and decodes a 2xx answer into out (nil: ignored).
// A 202 is a request held for approval ({"data": api.Approval}).
func (b agentBroker) do(ctx context.Context, method, path string, in, out any) error {
	resp, err := b.send(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return &refusal{msg: "the local broker's answer was cut off; try again", cause: err}
	}
	switch {
	case resp.StatusCode == http.StatusAccepted:
		var held api.Response
		var a api.Approval
		held.Data = &a
		if err := json.Unmarshal(raw, &held); err != nil || a.ID == "" {
			return &refusal{msg: "the local broker answered something qbroker mcp cannot read; try again later", cause: errors.New("202 without an approval")}
		}
		return &client.PendingError{Approval: a}
	case resp.StatusCode/100 == 2:
		if out == nil || len(raw) == 0 {
			return nil
		}
		if err := json.Unmarshal(raw, out); err != nil {
			return &refusal{msg: "the local broker answered something qbroker mcp cannot read; try again later", cause: err}
		}
		return nil
	}
	var e agentError
	_ = json.Unmarshal(raw, &e)
	reason := strings.Join(e.Errors, "; ")
	if reason == "" {
		reason = strings.TrimSpace(string(raw))
	}
	switch e.Code {
	case "consent_denied":
		return &refusal{msg: "refused by the person at this computer: " + redact(reason) +
			" (qbroker agent asked for their consent first). Nothing was issued or charged. Do not repeat this request unless they ask you to; tell them what you wanted to run and why.", cause: errors.New(reason)}
	case "broker":
		// The broker's own refusal, with its status: the same words as
		// when this process holds the token.
		return &client.Error{Status: resp.StatusCode, Errors: []string{strings.TrimPrefix(reason, "broker: ")}}
	case "broker_unavailable":
		return &refusal{msg: "the local broker (qbroker agent) cannot reach qbroker right now (" + redact(reason) + "); nothing was done. Try again later.", cause: errors.New(reason)}
	}
	return &client.Error{Status: resp.StatusCode, Errors: []string{"local agent: " + reason}}
}

func (b agentBroker) Devices(ctx context.Context) ([]api.DeviceInfo, error) {
	var out struct {
		Devices []api.DeviceInfo `json:"devices"`
	}
	return out.Devices, b.do(ctx, http.MethodGet, "/v1/quantum/devices", nil, &out)
}

func (b agentBroker) Budgets(ctx context.Context) ([]api.BudgetUsage, error) {
	var out struct {
		Budgets []api.BudgetUsage `json:"budgets"`
	}
	return out.Budgets, b.do(ctx, http.MethodGet, "/v1/sys/budgets", nil, &out)
}

func (b agentBroker) Approval(ctx context.Context, id string, wait time.Duration) (api.Approval, error) {
	q := ""
	if wait > 0 {
		q = "?wait=" + url.QueryEscape(wait.String())
	}
	var out api.Approval
	return out, b.do(ctx, http.MethodGet, "/v1/sys/approvals/"+url.PathEscape(id)+q, nil, &out)
}

func (b agentBroker) RecordToolCall(ctx context.Context, req api.ToolCallRequest) error {
	return b.do(ctx, http.MethodPost, "/v1/sys/audit/tool-call", req, nil)
}

func (b agentBroker) Role(ctx context.Context) (string, error) {
	var out struct {
		Role string `json:"role"`
	}
	return out.Role, b.do(ctx, http.MethodGet, "/v1/whoami", nil, &out)
}

// JobToken asks the daemon, which applies its consent rules (hardware,
// cost, a device's first use) and may wait for the person's answer. A
// request the broker holds for an approver comes back at once
// (?approval=return): the model waits with wait_for_approval.
func (b agentBroker) JobToken(ctx context.Context, role string, req api.JobTokenRequest) (api.JobTokenData, error) {
	var out api.JobTokenData
	return out, b.do(ctx, http.MethodPost, "/v1/jobtoken/"+url.PathEscape(role)+"?approval=return", req, &out)
}

// OwnerCall goes through the daemon's gateway routes, which add the
// owner's broker token.
func (b agentBroker) OwnerCall(ctx context.Context, method, path string) (*http.Response, error) {
	return b.send(ctx, method, "/v1/gateway"+path, nil)
}

var _ Broker = agentBroker{}
