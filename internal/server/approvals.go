package server

import (
	"github.com/qbroker/qbroker/api"
)

// onApproval tells people about new, decided and expired approvals.
func (s *Server) onApproval(event string, a api.Approval) {
	s.log.Info("approval", "event", event, "approval_id", a.ID, "requester", a.Requester, "device", a.Provider+"/"+a.Device, "state", a.State)
}
