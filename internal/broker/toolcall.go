package broker

import (
	"context"
	"strings"
	"unicode"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/core"
)

// maxClientName bounds a self-declared client name in the audit trail.
const maxClientName = 128

// CleanClientName makes a self-declared client name (X-Qbroker-Client, an
// MCP client's name) safe to record: control and format characters become
// '?', and it is cut to 128 bytes on a rune boundary.
func CleanClientName(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == unicode.ReplacementChar {
			return '?'
		}
		return r
	}, strings.TrimSpace(s))
	if len(s) <= maxClientName {
		return s
	}
	cut := maxClientName
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// RecordToolCall writes a tool server's record of one tool call (type
// "tool_call", action = the tool) before the server acts on it: the agent
// and role come from the caller's token, the client name as declared. An
// error means nothing was recorded and the tool call must be refused.
func (b *Broker) RecordToolCall(ctx context.Context, c Caller, t core.Token, req api.ToolCallRequest) error {
	client := CleanClientName(req.Client)
	switch {
	case client == "":
		return core.Errorf(core.KindBadRequest, "client is required: the MCP client's name")
	case !validToolName(req.Tool):
		return core.Errorf(core.KindBadRequest, "tool %q is not a tool name (1-64 of a-z, 0-9, _ and -)", CleanClientName(req.Tool))
	case len(req.Provider) > 64 || len(req.Device) > 128 || len(req.JobID) > 128 || len(req.ApprovalID) > 128:
		return core.Errorf(core.KindBadRequest, "provider, device, job_id or approval_id too long")
	case req.Shots < 0:
		return core.Errorf(core.KindBadRequest, "shots must not be negative")
	}
	ev := &audit.Event{
		Type: "tool_call", Action: req.Tool, Client: client,
		Agent: t.AgentID, Role: t.Role, Accessor: t.Accessor, AuthMethod: t.AuthMethod, ActingFor: t.ActingFor,
		Provider: CleanClientName(req.Provider), Device: CleanClientName(req.Device), Shots: req.Shots,
		JobID: CleanClientName(req.JobID), ApprovalID: CleanClientName(req.ApprovalID),
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
