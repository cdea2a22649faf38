package httpapi

import (
	"net/http"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/broker"
)

// toolCall answers POST /v1/sys/audit/tool-call: a tool server (qbroker
// mcp) records a tool call, under the caller's own token, before acting.
func (s *Server) toolCall(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	_, t, err := s.caller(r.Context(), r)
	if err != nil {
		return nil, 0, err
	}
	var req api.ToolCallRequest
	if err := s.decode(r, &req, false); err != nil {
		return nil, 0, err
	}
	return nil, 0, s.b.RecordToolCall(r.Context(), c, t, req)
}
