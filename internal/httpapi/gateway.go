package httpapi

import (
	"errors"
	"math"
	"net/http"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/broker"
	"github.com/qbroker/qbroker/internal/core"
)

// gatewayCaller authenticates a gateway token. Only gateways — not even
// root — call these endpoints: one of them returns provider root
// credentials (invariant 1), and the others act on a gateway's behalf.
func (s *Server) gatewayCaller(r *http.Request) (core.Token, error) {
	_, t, err := s.caller(r.Context(), r)
	if err != nil {
		return core.Token{}, err
	}
	if !t.HasPolicy(broker.PolicyGateway) {
		return core.Token{}, core.Errorf(core.KindPermissionDenied, "permission denied: gateway endpoints need a gateway token")
	}
	return t, nil
}

// redeemStatus maps redemption failures to the statuses RemoteBroker reads.
func redeemStatus(err error) int {
	switch {
	case errors.Is(err, broker.ErrTokenUsed):
		return http.StatusConflict
	case errors.Is(err, broker.ErrTokenExpired):
		return http.StatusGone
	case errors.Is(err, broker.ErrTokenRevoked):
		return http.StatusForbidden
	case errors.Is(err, broker.ErrTokenUnknown):
		return http.StatusNotFound
	}
	return statusOf(err)
}

func (s *Server) redeem(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	if _, err := s.gatewayCaller(r); err != nil {
		return nil, 0, err
	}
	var req api.RedeemRequest
	if err := s.decode(r, &req, false); err != nil {
		return nil, 0, err
	}
	if err := s.b.Redeem(r.Context(), c, req.JTI); err != nil {
		return nil, 0, statusError{err, redeemStatus(err)}
	}
	return nil, 0, nil
}

func (s *Server) recordJob(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	if _, err := s.gatewayCaller(r); err != nil {
		return nil, 0, err
	}
	var j api.JobRecord
	if err := s.decode(r, &j, false); err != nil {
		return nil, 0, err
	}
	return nil, 0, s.b.RecordJob(r.Context(), c, j)
}

func (s *Server) getJob(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	if _, err := s.gatewayCaller(r); err != nil {
		return nil, 0, err
	}
	j, err := s.b.Job(r.Context(), r.PathValue("provider"), r.PathValue("id"))
	if err != nil {
		return nil, 0, err
	}
	return data(j), 0, nil
}

func (s *Server) credential(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	t, err := s.gatewayCaller(r)
	if err != nil {
		return nil, 0, err
	}
	p := r.PathValue("provider")
	key, err := s.b.Credential(r.Context(), p)
	if err != nil {
		return nil, 0, err
	}
	if err := s.b.Audit(r.Context(), c, &audit.Event{Type: "credential", Action: "ReadProviderCredential", Provider: p, Agent: t.AgentID, Accessor: t.Accessor, Decision: "allow"}); err != nil {
		return nil, 0, err
	}
	return data(api.ProviderCredential{Provider: p, APIKey: key}), 0, nil
}

func (s *Server) gatewayAudit(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	t, err := s.gatewayCaller(r)
	if err != nil {
		return nil, 0, err
	}
	var e audit.Event
	if err := s.decode(r, &e, false); err != nil {
		return nil, 0, err
	}
	e.Path = "gateway:" + e.Path
	if e.Accessor == "" {
		e.Accessor = t.Accessor
	}
	return nil, 0, s.b.Audit(r.Context(), c, &e)
}

// statusError carries an explicit status for endpoints whose contract
// differs from the general mapping.
type statusError struct {
	err    error
	status int
}

func (e statusError) Error() string { return e.err.Error() }
func (e statusError) Unwrap() error { return e.err }

func (s *Server) gatewayAuthorize(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	if _, err := s.gatewayCaller(r); err != nil {
		return nil, 0, err
	}
	var req api.AuthorizeRequest
	if err := s.decode(r, &req, false); err != nil {
		return nil, 0, err
	}
	if err := s.b.AuthorizeJob(r.Context(), c, req.Token, req.Action, req.Job); err != nil {
		return nil, 0, err
	}
	return nil, 0, nil
}

// upstream answers GET /v1/sys/gateway/upstream/{provider}?role=R for a
// standalone gateway's provider fronts (gateway tokens only; audited).
func (s *Server) upstream(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	t, err := s.gatewayCaller(r)
	if err != nil {
		return nil, 0, err
	}
	p, role := r.PathValue("provider"), r.URL.Query().Get("role")
	if role == "" {
		return nil, 0, core.Errorf(core.KindBadRequest, "role is required")
	}
	if d := r.URL.Query().Get("rejected"); d != "" { // the last one we gave was refused by the provider
		s.b.ForgetUpstream(p, role, d)
	}
	cred, scope, err := s.b.Upstream(r.Context(), p, role)
	if err != nil {
		return nil, 0, core.Wrap(core.KindUnavailable, err, "no upstream credential for provider "+p+" and role "+role)
	}
	if err := s.b.Audit(r.Context(), c, &audit.Event{Type: "credential", Action: "ReadUpstreamCredential", Provider: p, Role: role, Agent: t.AgentID, Accessor: t.Accessor, Decision: "allow"}); err != nil {
		return nil, 0, err
	}
	return data(api.UpstreamData{AccessKeyID: cred.AccessKeyID, Secret: cred.Secret, SessionToken: cred.SessionToken, Expires: cred.Expires.UTC(),
		Bucket: scope.Bucket, Prefix: scope.Prefix}), 0, nil
}

// settle answers POST /v1/sys/gateway/settle (gateway tokens only).
func (s *Server) settle(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	if _, err := s.gatewayCaller(r); err != nil {
		return nil, 0, err
	}
	var in api.SettleRequest
	if err := s.decode(r, &in, false); err != nil {
		return nil, 0, err
	}
	if in.JTI == "" {
		return nil, 0, core.Errorf(core.KindBadRequest, "jti is required")
	}
	if in.QPUSeconds != nil && (*in.QPUSeconds < 0 || math.IsNaN(*in.QPUSeconds) || math.IsInf(*in.QPUSeconds, 0)) {
		return nil, 0, core.Errorf(core.KindBadRequest, "qpu_seconds must be a finite, non-negative number")
	}
	return nil, 0, s.b.SettleJob(r.Context(), c, in)
}
