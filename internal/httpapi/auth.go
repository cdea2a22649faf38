package httpapi

import (
	"net/http"
	"slices"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/broker"
	"github.com/qbroker/qbroker/internal/core"
)

func (s *Server) approleLogin(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	var req api.AppRoleLoginRequest
	if err := s.decode(r, &req, false); err != nil {
		return nil, 0, err
	}
	auth, err := s.b.LoginAppRole(r.Context(), c, req)
	if err != nil {
		return nil, 0, err
	}
	return &api.Response{Auth: auth}, 0, nil
}

func (s *Server) jwtLogin(method string) handler {
	return func(r *http.Request, c broker.Caller) (*api.Response, int, error) {
		var req api.JWTLoginRequest
		if err := s.decode(r, &req, false); err != nil {
			return nil, 0, err
		}
		auth, err := s.b.LoginJWT(r.Context(), c, method, req)
		if err != nil {
			return nil, 0, err
		}
		return &api.Response{Auth: auth}, 0, nil
	}
}

func (s *Server) roleID(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	_, t, err := s.caller(r.Context(), r)
	if err != nil {
		return nil, 0, err
	}
	id, err := s.b.RoleID(r.Context(), t, r.PathValue("role"))
	if err != nil {
		return nil, 0, err
	}
	return data(api.RoleIDData{RoleID: id}), 0, nil
}

func (s *Server) secretID(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	_, t, err := s.caller(r.Context(), r)
	if err != nil {
		return nil, 0, err
	}
	var req api.SecretIDRequest
	if err := s.decode(r, &req, true); err != nil {
		return nil, 0, err
	}
	d, err := s.b.NewSecretID(r.Context(), c, t, r.PathValue("role"), req)
	if err != nil {
		return nil, 0, err
	}
	return data(d), 0, nil
}

func (s *Server) lookupSelf(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	raw, t, err := s.caller(r.Context(), r)
	if err != nil {
		return nil, 0, err
	}
	info, err := s.b.LookupSelf(r.Context(), c, raw, t)
	if err != nil {
		return nil, 0, err
	}
	return data(info), 0, nil
}

func (s *Server) renewSelf(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	raw, t, err := s.caller(r.Context(), r)
	if err != nil {
		return nil, 0, err
	}
	var req api.RenewRequest
	if err := s.decode(r, &req, true); err != nil {
		return nil, 0, err
	}
	auth, err := s.b.RenewSelf(r.Context(), c, raw, t, req.Increment.D())
	if err != nil {
		return nil, 0, err
	}
	return &api.Response{Auth: auth}, 0, nil
}

func (s *Server) revokeSelf(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	_, t, err := s.caller(r.Context(), r)
	if err != nil {
		return nil, 0, err
	}
	if err := s.decode(r, &struct{}{}, true); err != nil {
		return nil, 0, err
	}
	return nil, 0, s.b.RevokeSelf(r.Context(), c, t)
}

func (s *Server) revokeAccessor(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	_, t, err := s.caller(r.Context(), r)
	if err != nil {
		return nil, 0, err
	}
	var req api.AccessorRequest
	if err := s.decode(r, &req, false); err != nil {
		return nil, 0, err
	}
	return nil, 0, s.b.RevokeAccessor(r.Context(), c, t, req.Accessor)
}

func (s *Server) lookupToken(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	_, t, err := s.caller(r.Context(), r)
	if err != nil {
		return nil, 0, err
	}
	var req api.TokenRequest
	if err := s.decode(r, &req, false); err != nil {
		return nil, 0, err
	}
	info, err := s.b.LookupToken(r.Context(), c, t, req.Token)
	if err != nil {
		return nil, 0, err
	}
	return data(info), 0, nil
}

// createTokenRequest is POST /v1/auth/token/create. Only gateway tokens can
// be created this way (agents log in through an auth method).
type createTokenRequest struct {
	Policies []string     `json:"policies"`
	TTL      api.Duration `json:"ttl,omitempty"`
}

func (s *Server) createToken(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	_, t, err := s.caller(r.Context(), r)
	if err != nil {
		return nil, 0, err
	}
	var req createTokenRequest
	if err := s.decode(r, &req, false); err != nil {
		return nil, 0, err
	}
	if !slices.Equal(req.Policies, []string{broker.PolicyGateway}) {
		return nil, 0, core.Errorf(core.KindBadRequest, `policies must be ["gateway"]: agents get tokens by logging in`)
	}
	raw, err := s.b.CreateGatewayToken(r.Context(), c, t, req.TTL.D())
	if err != nil {
		return nil, 0, err
	}
	return &api.Response{Auth: &api.Auth{ClientToken: raw, Policies: req.Policies, TokenPolicies: req.Policies, TokenType: "service", Orphan: true, LeaseDuration: int(req.TTL.D().Seconds())}}, 0, nil
}

func (s *Server) exchangeToken(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	var req api.TokenExchangeRequest
	if err := s.decode(r, &req, false); err != nil {
		return nil, 0, err
	}
	auth, err := s.b.ExchangeToken(r.Context(), c, req)
	if err != nil {
		return nil, 0, err
	}
	return &api.Response{Auth: auth, Data: map[string]string{"issued_token_type": broker.TokenTypeAccessToken}}, 0, nil
}

func (s *Server) deviceStart(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	var req api.DeviceStartRequest
	if err := s.decode(r, &req, false); err != nil {
		return nil, 0, err
	}
	d, err := s.b.DeviceStart(r.Context(), c, req.Role)
	if err != nil {
		return nil, 0, err
	}
	return data(d), 0, nil
}

func (s *Server) devicePoll(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	var req api.DevicePollRequest
	if err := s.decode(r, &req, false); err != nil {
		return nil, 0, err
	}
	auth, err := s.b.DevicePoll(r.Context(), c, req.Handle)
	if err != nil {
		return nil, 0, err
	}
	return &api.Response{Auth: auth}, 0, nil
}

// spiffeLoginRequest is the body of auth/cert (role optional: the first role
// whose patterns match) and auth/spiffe-jwt ({"role","jwt"}).
type spiffeLoginRequest struct {
	Role string `json:"role,omitempty"`
	JWT  string `json:"jwt,omitempty"`
}

func (s *Server) spiffeLogin(method string) handler {
	return func(r *http.Request, c broker.Caller) (*api.Response, int, error) {
		var req spiffeLoginRequest
		if err := s.decode(r, &req, method == "cert"); err != nil {
			return nil, 0, err
		}
		if method == "cert" && req.JWT != "" {
			return nil, 0, core.Errorf(core.KindBadRequest, "auth/cert takes the client certificate of the TLS connection, not a jwt")
		}
		auth, err := s.b.LoginSPIFFE(r.Context(), c, method, req.Role, req.JWT, r.TLS)
		if err != nil {
			return nil, 0, err
		}
		return &api.Response{Auth: auth}, 0, nil
	}
}
