package mcp

import (
	"context"
	"encoding/json"
	"fmt"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/qbroker/qbroker/api"
)

// Resource URIs.
const (
	DevicesURI = "qbroker://devices"
	BudgetURI  = "qbroker://budget"
)

func (t *tools) registerResources(srv *sdk.Server) {
	srv.AddResource(&sdk.Resource{URI: DevicesURI, Name: "devices", Title: "Quantum device catalogue", MIMEType: "application/json",
		Description: "Every device qbroker knows, with kind (simulator or qpu), qubits, max shots and list price; the same as list_devices."},
		t.readDevices)
	srv.AddResource(&sdk.Resource{URI: BudgetURI, Name: "budget", Title: "Your budget status", MIMEType: "application/json",
		Description: "Each spend and rate limit that applies to you: metric (jobs, shots, usd, in_flight), the maximum, what is used, and when it resets."},
		t.readBudget)
}

// BudgetStatus is the qbroker://budget resource.
type BudgetStatus struct {
	Limits []api.BudgetUsage `json:"limits"`
	Note   string            `json:"note"`
}

func (t *tools) readDevices(ctx context.Context, req *sdk.ReadResourceRequest) (*sdk.ReadResourceResult, error) {
	c, err := t.resourceCaller(ctx, req, "read_resource_devices")
	if err != nil {
		return nil, err
	}
	list, err := devices(ctx, c)
	if err != nil {
		return nil, err
	}
	return jsonResource(DevicesURI, list)
}

func (t *tools) readBudget(ctx context.Context, req *sdk.ReadResourceRequest) (*sdk.ReadResourceResult, error) {
	c, err := t.resourceCaller(ctx, req, "read_resource_budget")
	if err != nil {
		return nil, err
	}
	us, err := c.broker.Budgets(ctx)
	if err != nil {
		return nil, refuseBroker(err)
	}
	if us == nil {
		us = []api.BudgetUsage{}
	}
	note := "no limits apply to you"
	if len(us) > 0 {
		note = "a request that would pass a limit is refused before anything is issued or charged"
	}
	return jsonResource(BudgetURI, BudgetStatus{Limits: us, Note: note})
}

// resourceCaller resolves the caller of a resource read and audits it.
func (t *tools) resourceCaller(ctx context.Context, req *sdk.ReadResourceRequest, what string) (*caller, error) {
	c, err := t.callerFor(req.Extra, req.ClientInfo())
	if err != nil {
		return nil, err
	}
	if err := t.s.audit(ctx, c, api.ToolCallRequest{Tool: what}); err != nil {
		return nil, err
	}
	return c, nil
}

func jsonResource(uri string, v any) (*sdk.ReadResourceResult, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", uri, err)
	}
	return &sdk.ReadResourceResult{Contents: []*sdk.ResourceContents{{URI: uri, MIMEType: "application/json", Text: string(b)}}}, nil
}
