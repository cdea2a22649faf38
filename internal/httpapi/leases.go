package httpapi

import (
	"net/http"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/broker"
	"github.com/qbroker/qbroker/internal/core"
)

// revokeLease answers PUT/POST /v1/sys/leases/revoke {"lease_id": …}, as
// Vault's: the lease's AWS STS session is cut off.
func (s *Server) revokeLease(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	_, t, err := s.caller(r.Context(), r)
	if err != nil {
		return nil, 0, err
	}
	var req api.RevokeLeaseRequest
	if err := s.decode(r, &req, false); err != nil {
		return nil, 0, err
	}
	if req.LeaseID == "" {
		return nil, 0, core.Errorf(core.KindBadRequest, "lease_id is required")
	}
	out, err := s.b.RevokeLease(r.Context(), c, t, req.LeaseID)
	if err != nil {
		return nil, 0, err
	}
	return data(out), 0, nil
}

// revokeLeasePrefix answers PUT/POST /v1/sys/leases/revoke-prefix/<prefix>:
// aws/creds/<role> cuts off every session of that AWS role.
func (s *Server) revokeLeasePrefix(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	_, t, err := s.caller(r.Context(), r)
	if err != nil {
		return nil, 0, err
	}
	if err := s.decode(r, &struct{}{}, true); err != nil {
		return nil, 0, err
	}
	out, err := s.b.RevokeLeasePrefix(r.Context(), c, t, r.PathValue("prefix"))
	if err != nil {
		return nil, 0, err
	}
	return data(out), 0, nil
}
