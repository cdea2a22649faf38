package httpapi

import (
	"net/http"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/broker"
	"github.com/qbroker/qbroker/internal/core"
)

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /.well-known/jwks.json", s.jwks)
	m.Handle(healthPattern, s.wrap(s.health))

	// auth/approle
	s.writes("/v1/auth/approle/login", s.approleLogin)
	m.Handle("GET /v1/auth/approle/role/{role}/role-id", s.wrap(s.roleID))
	s.writes("/v1/auth/approle/role/{role}/secret-id", s.secretID)

	// auth/jwt and auth/oidc (Vault's JWT method; the same verifier)
	s.writes("/v1/auth/jwt/login", s.jwtLogin("jwt"))
	s.writes("/v1/auth/oidc/login", s.jwtLogin("oidc"))
	s.writes("/v1/auth/cert/login", s.spiffeLogin("cert"))
	s.writes("/v1/auth/spiffe-jwt/login", s.spiffeLogin("spiffe-jwt"))
	s.writes("/v1/auth/device/start", s.deviceStart)
	s.writes("/v1/auth/device/poll", s.devicePoll)

	// auth/token
	m.Handle("GET /v1/auth/token/lookup-self", s.wrap(s.lookupSelf))
	s.writes("/v1/auth/token/renew-self", s.renewSelf)
	s.writes("/v1/auth/token/revoke-self", s.revokeSelf)
	s.writes("/v1/auth/token/revoke-accessor", s.revokeAccessor)
	s.writes("/v1/auth/token/lookup", s.lookupToken)
	s.writes("/v1/auth/token/create", s.createToken)
	s.writes("/v1/auth/token/exchange", s.exchangeToken)

	// sys: roles, keys, provider credentials
	m.Handle("LIST /v1/sys/roles", s.wrap(s.listRoles))
	m.Handle("GET /v1/sys/roles", s.wrap(s.listRoles))
	m.Handle("GET /v1/sys/roles/{name}", s.wrap(s.getRole))
	s.writes("/v1/sys/roles/{name}", s.putRole)
	m.Handle("DELETE /v1/sys/roles/{name}", s.wrap(s.deleteRole))
	s.writes("/v1/sys/roles/{name}/revoke", s.revokeRole)
	s.writes("/v1/sys/keys/rotate", s.rotateKeys)
	s.writes("/v1/sys/providers/{provider}/credential", s.setCredential)
	s.writes("/v1/sys/policy/explain", s.explainPolicy)
	s.writes("/v1/sys/agents/{id}/revoke", s.revokeAgent)
	s.writes("/v1/sys/freeze", s.setFreeze)
	m.Handle("GET /v1/sys/freeze", s.wrap(s.getFreeze))
	s.writes("/v1/sys/agents/{id}/resume", s.resumeAgent)
	m.Handle("GET /v1/sys/audit/public-key", s.wrap(s.auditPublicKey))
	m.Handle("GET /v1/sys/audit/events", s.wrap(s.auditEvents))
	s.writes("/v1/sys/audit/hash", s.auditHash)

	m.Handle("GET /v1/sys/budgets", s.wrap(s.budgets))

	// approvals
	m.Handle("GET /v1/sys/approvals", s.wrap(s.listApprovals))
	m.Handle("LIST /v1/sys/approvals", s.wrap(s.listApprovals))
	m.Handle("GET /v1/sys/approvals/{id}", s.wrap(s.getApproval))
	s.writes("/v1/sys/approvals/{id}/approve", s.decideApproval(true))
	s.writes("/v1/sys/approvals/{id}/deny", s.decideApproval(false))

	// dynamic provider credentials
	m.Handle("GET /v1/aws/creds/{role}", s.wrap(s.awsCreds))
	m.Handle("GET /v1/ibm/token/{role}", s.wrap(s.providerToken("ibm")))
	m.Handle("GET /v1/azure/token/{role}", s.wrap(s.providerToken("azure")))
	s.writes("/v1/aws/creds/{role}", s.awsCreds)
	s.writes("/v1/sys/leases/revoke", s.revokeLease)
	s.writes("/v1/sys/leases/revoke-prefix/{prefix...}", s.revokeLeasePrefix)

	// quantum
	s.writes("/v1/quantum/jobtoken/{role}", s.jobToken)
	m.Handle("GET /v1/quantum/devices", s.wrap(s.devices))
	s.writes("/v1/sys/audit/tool-call", s.toolCall)

	// gateway-facing
	s.writes("/v1/sys/gateway/redeem", s.redeem)
	s.writes("/v1/sys/gateway/jobs", s.recordJob)
	m.Handle("GET /v1/sys/gateway/jobs/{provider}/{id}", s.wrap(s.getJob))
	m.Handle("GET /v1/sys/gateway/credentials/{provider}", s.wrap(s.credential))
	m.Handle("GET /v1/sys/gateway/upstream/{provider}", s.wrap(s.upstream))
	s.writes("/v1/sys/gateway/settle", s.settle)
	s.writes("/v1/sys/gateway/audit", s.gatewayAudit)
	s.writes("/v1/sys/gateway/authorize", s.gatewayAuthorize)

	m.Handle("/", s.wrap(func(r *http.Request, c broker.Caller) (*api.Response, int, error) {
		return nil, 0, core.Errorf(core.KindNotFound, "no handler for %s %s", r.Method, r.URL.Path)
	}))
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=60")
	_, _ = w.Write(s.b.JWKS())
}

// health answers GET /v1/sys/health with Vault's status codes: 200 when
// initialized and serving, 501 when not initialized, 503 when the store
// or the audit trail is failing or the broker is draining (so a load
// balancer moves on). No token is needed; nothing secret is shown.
func (s *Server) health(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	h := s.b.Health(r.Context())
	d := api.HealthData{Initialized: h.Initialized, Sealed: !h.StoreOK, Version: s.version, ServerTime: time.Now().Unix(),
		Store: okOr(h.StoreOK), Audit: okOr(h.AuditOK), Draining: h.Draining}
	status := http.StatusOK
	switch {
	case !h.StoreOK || !h.AuditOK || h.Draining:
		status = http.StatusServiceUnavailable
	case !h.Initialized:
		status = http.StatusNotImplemented
	}
	return data(d), status, nil
}

func okOr(ok bool) string {
	if ok {
		return "ok"
	}
	return "failing"
}
