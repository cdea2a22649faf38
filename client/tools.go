package client

import (
	"context"
	"net/http"

	"github.com/qbroker/qbroker/api"
)

// WithClientName returns a copy of c that names the client software it
// serves (X-Qbroker-Client) on every call, for the audit trail.
func (c *Client) WithClientName(name string) *Client {
	cp := *c
	cp.clientName = name
	return &cp
}

// Devices reads the device catalogue.
func (c *Client) Devices(ctx context.Context) ([]api.DeviceInfo, error) {
	var out struct {
		Devices []api.DeviceInfo `json:"devices"`
	}
	return out.Devices, c.doData(ctx, http.MethodGet, "/v1/quantum/devices", nil, &out)
}

// RecordToolCall records a tool call in the audit trail before the tool
// server acts on it (POST /v1/sys/audit/tool-call).
func (c *Client) RecordToolCall(ctx context.Context, req api.ToolCallRequest) error {
	return c.Do(ctx, http.MethodPost, "/v1/sys/audit/tool-call", req, nil)
}
