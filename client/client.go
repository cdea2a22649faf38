// Package client is the typed Go client for qbroker's /v1 API (package api).
// The CLI, the demo agent and the load generator speak to the broker only
// through it. A Client is safe for concurrent use; WithToken returns a copy
// bound to another token.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/qbroker/qbroker/api"
)

// Client talks to one broker.
type Client struct {
	addr       string
	token      string
	approval   string // X-Qbroker-Approval on every call (WithApproval)
	clientName string // X-Qbroker-Client on every call (WithClientName)
	hc         *http.Client
}

// New returns a client for the broker at addr (e.g. http://127.0.0.1:8200).
// A nil hc uses a client with a 30 s timeout.
func New(addr string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{addr: strings.TrimSuffix(addr, "/"), hc: hc}
}

// WithApproval returns a copy of c that repeats administrative calls with
// an approved request's id (X-Qbroker-Approval), after a 202.
func (c *Client) WithApproval(id string) *Client {
	cp := *c
	cp.approval = id
	return &cp
}

// WithToken returns a copy of c that sends token.
func (c *Client) WithToken(token string) *Client {
	cp := *c
	cp.token = token
	return &cp
}

// Addr returns the broker address.
func (c *Client) Addr() string { return c.addr }

// Error is a refusal from the broker.
type Error struct {
	Status int
	Errors []string
}

func (e *Error) Error() string {
	return fmt.Sprintf("qbroker: %d %s: %s", e.Status, http.StatusText(e.Status), strings.Join(e.Errors, "; "))
}

// Do sends one request and decodes a Vault-shaped response. A nil out
// accepts an empty (204) answer.
func (c *Client) Do(ctx context.Context, method, path string, in any, out *api.Response) error {
	_, err := c.do(ctx, method, path, in, out)
	return err
}

// do is Do that also returns the HTTP status.
func (c *Client) do(ctx context.Context, method, path string, in any, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.addr+path, body)
	if err != nil {
		return 0, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set(api.TokenHeader, c.token)
	}
	if c.approval != "" {
		req.Header.Set(api.ApprovalHeader, c.approval)
	}
	if c.clientName != "" {
		req.Header.Set(api.ClientHeader, c.clientName)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode == http.StatusAccepted {
		// Held for human approval: nothing was done.
		var held struct {
			Data api.Approval `json:"data"`
		}
		if err := json.Unmarshal(b, &held); err != nil || held.Data.ID == "" {
			return resp.StatusCode, fmt.Errorf("qbroker: 202 without a held request: %s", strings.TrimSpace(string(b)))
		}
		return resp.StatusCode, &PendingError{Approval: held.Data}
	}
	if resp.StatusCode >= 300 {
		var er api.ErrorResponse
		_ = json.Unmarshal(b, &er)
		if len(er.Errors) == 0 {
			er.Errors = []string{strings.TrimSpace(string(b))}
		}
		return resp.StatusCode, &Error{Status: resp.StatusCode, Errors: er.Errors}
	}
	if out == nil || len(b) == 0 {
		return resp.StatusCode, nil
	}
	return resp.StatusCode, json.Unmarshal(b, out)
}

// doData sends a request and decodes its data into v.
func (c *Client) doData(ctx context.Context, method, path string, in, v any) error {
	resp := api.Response{Data: v}
	return c.Do(ctx, method, path, in, &resp)
}

func (c *Client) doAuth(ctx context.Context, method, path string, in any) (*api.Auth, error) {
	var resp api.Response
	if err := c.Do(ctx, method, path, in, &resp); err != nil {
		return nil, err
	}
	if resp.Auth == nil {
		return nil, fmt.Errorf("qbroker: %s returned no auth block", path)
	}
	return resp.Auth, nil
}

// AppRoleLogin logs in with AppRole credentials.
func (c *Client) AppRoleLogin(ctx context.Context, roleID, secretID string) (*api.Auth, error) {
	return c.doAuth(ctx, http.MethodPost, "/v1/auth/approle/login", api.AppRoleLoginRequest{RoleID: roleID, SecretID: secretID})
}

// JWTLogin logs in with a JWT at auth/<method>/login (method "jwt" or "oidc").
func (c *Client) JWTLogin(ctx context.Context, method, role, jwt string) (*api.Auth, error) {
	return c.doAuth(ctx, http.MethodPost, "/v1/auth/"+method+"/login", api.JWTLoginRequest{Role: role, JWT: jwt})
}

// LookupSelf describes the client's token.
func (c *Client) LookupSelf(ctx context.Context) (api.TokenInfo, error) {
	var info api.TokenInfo
	return info, c.doData(ctx, http.MethodGet, "/v1/auth/token/lookup-self", nil, &info)
}

// RenewSelf renews the client's token.
func (c *Client) RenewSelf(ctx context.Context, increment time.Duration) (*api.Auth, error) {
	return c.doAuth(ctx, http.MethodPost, "/v1/auth/token/renew-self", api.RenewRequest{Increment: api.Duration(increment)})
}

// RevokeSelf revokes the client's token.
func (c *Client) RevokeSelf(ctx context.Context) error {
	return c.Do(ctx, http.MethodPost, "/v1/auth/token/revoke-self", nil, nil)
}

// RevokeAccessor revokes a token by accessor.
func (c *Client) RevokeAccessor(ctx context.Context, accessor string) error {
	return c.Do(ctx, http.MethodPost, "/v1/auth/token/revoke-accessor", api.AccessorRequest{Accessor: accessor}, nil)
}

// CreateGatewayToken mints a token for a standalone gateway (root only).
func (c *Client) CreateGatewayToken(ctx context.Context, ttl time.Duration) (string, error) {
	a, err := c.doAuth(ctx, http.MethodPost, "/v1/auth/token/create", map[string]any{"policies": []string{"gateway"}, "ttl": int(ttl / time.Second)})
	if err != nil {
		return "", err
	}
	return a.ClientToken, nil
}

// PutRole creates or replaces a role.
func (c *Client) PutRole(ctx context.Context, name string, r api.Role) (api.Role, error) {
	var out api.Role
	return out, c.doData(ctx, http.MethodPost, "/v1/sys/roles/"+name, r, &out)
}

// GetRole reads a role.
func (c *Client) GetRole(ctx context.Context, name string) (api.Role, error) {
	var out api.Role
	return out, c.doData(ctx, http.MethodGet, "/v1/sys/roles/"+name, nil, &out)
}

// ListRoles lists role names.
func (c *Client) ListRoles(ctx context.Context) ([]string, error) {
	var out api.ListData
	return out.Keys, c.doData(ctx, "LIST", "/v1/sys/roles", nil, &out)
}

// DeleteRole deletes a role.
func (c *Client) DeleteRole(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/sys/roles/"+name, nil, nil)
}

// RoleID returns a role's AppRole role_id.
func (c *Client) RoleID(ctx context.Context, role string) (string, error) {
	var out api.RoleIDData
	return out.RoleID, c.doData(ctx, http.MethodGet, "/v1/auth/approle/role/"+role+"/role-id", nil, &out)
}

// NewSecretID mints an AppRole secret ID.
func (c *Client) NewSecretID(ctx context.Context, role string, req api.SecretIDRequest) (api.SecretIDData, error) {
	var out api.SecretIDData
	return out, c.doData(ctx, http.MethodPost, "/v1/auth/approle/role/"+role+"/secret-id", req, &out)
}

// JobToken asks for a job token.
//
// A request that needs human approval returns a *PendingError holding the
// approval; WaitApproval waits for it, and the same request with
// ApprovalID set then issues the token.
func (c *Client) JobToken(ctx context.Context, role string, req api.JobTokenRequest) (api.JobTokenData, error) {
	var out api.JobTokenData
	return out, c.doData(ctx, http.MethodPost, "/v1/quantum/jobtoken/"+role, req, &out)
}

// RotateKeys rotates the job-token signing key.
func (c *Client) RotateKeys(ctx context.Context) (api.KeyRotateData, error) {
	var out api.KeyRotateData
	return out, c.doData(ctx, http.MethodPost, "/v1/sys/keys/rotate", nil, &out)
}

// SetProviderCredential stores a provider's root credential (sealed).
func (c *Client) SetProviderCredential(ctx context.Context, provider, apiKey string) error {
	return c.Do(ctx, http.MethodPost, "/v1/sys/providers/"+provider+"/credential", map[string]string{"api_key": apiKey}, nil)
}

// Health reads /v1/sys/health.
func (c *Client) Health(ctx context.Context) (api.HealthData, error) {
	var out api.HealthData
	return out, c.doData(ctx, http.MethodGet, "/v1/sys/health", nil, &out)
}

// RevokeAgent revokes every token of an agent (and suspends it).
func (c *Client) RevokeAgent(ctx context.Context, agentID string, req api.RevokeAgentRequest) (api.RevokeAgentData, error) {
	var out api.RevokeAgentData
	return out, c.doData(ctx, http.MethodPost, "/v1/sys/agents/"+url.PathEscape(agentID)+"/revoke", req, &out)
}

// ResumeAgent lifts an agent's suspension.
func (c *Client) ResumeAgent(ctx context.Context, agentID string) error {
	return c.Do(ctx, http.MethodPost, "/v1/sys/agents/"+url.PathEscape(agentID)+"/resume", nil, nil)
}

// DeviceStart begins a device login (RFC 8628) for a JWT role.
func (c *Client) DeviceStart(ctx context.Context, role string) (api.DeviceStartData, error) {
	var out api.DeviceStartData
	return out, c.doData(ctx, http.MethodPost, "/v1/auth/device/start", api.DeviceStartRequest{Role: role}, &out)
}

// DevicePoll polls a device login once; until the person approves it fails
// with an error whose message starts with "authorization_pending" or
// "slow_down".
func (c *Client) DevicePoll(ctx context.Context, handle string) (*api.Auth, error) {
	return c.doAuth(ctx, http.MethodPost, "/v1/auth/device/poll", api.DevicePollRequest{Handle: handle})
}

// SetHardwareFreeze turns the global QPU freeze on or off (root).
func (c *Client) SetHardwareFreeze(ctx context.Context, on bool, reason string) (api.FreezeData, error) {
	var out api.FreezeData
	return out, c.doData(ctx, http.MethodPost, "/v1/sys/freeze", api.FreezeRequest{Hardware: on, Reason: reason}, &out)
}
