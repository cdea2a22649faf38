package broker

import (
	"context"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/core"
)

// RecordToolCall writes a tool server's record of one tool call (type
// "tool_call", action = the tool) before the server acts on it: the agent
// and role come from the caller's token, the client name as declared. An
// error means nothing was recorded and the tool call must be refused.
func (b *Broker) RecordToolCall(ctx context.Context, c Caller, t core.Token, req api.ToolCallRequest) error {
	client := core.CleanClientName(req.Client)
	switch {
	case client == "":
		return core.Errorf(core.KindBadRequest, "client is required: the MCP client's name")
	case !validToolName(req.Tool):
		return core.Errorf(core.KindBadRequest, "tool %q is not a tool name (1-64 of a-z, 0-9, _ and -)", core.CleanClientName(req.Tool))
	case len(req.Provider) > 64 || len(req.Device) > 128 || len(req.JobID) > 128 || len(req.ApprovalID) > 128:
		return core.Errorf(core.KindBadRequest, "provider, device, job_id or approval_id too long")
	case req.Shots < 0:
		return core.Errorf(core.KindBadRequest, "shots must not be negative")
	}
	ev := &audit.Event{
		Type: "tool_call", Action: req.Tool, Client: client,
		Agent: t.AgentID, Role: t.Role, Accessor: t.Accessor, AuthMethod: t.AuthMethod, ActingFor: t.ActingFor,
		Provider: core.CleanClientName(req.Provider), Device: core.CleanClientName(req.Device), Shots: req.Shots,
		JobID: core.CleanClientName(req.JobID), ApprovalID: core.CleanClientName(req.ApprovalID),
		Decision: audit.DecisionAllow,
	}
	return b.record(ctx, c, ev)
}

func validToolName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' && r != '-' {
			return false
		}
	}
	return true
}
