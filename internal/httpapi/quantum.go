package httpapi

import (
	"net/http"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/broker"
)

func (s *Server) jobToken(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	_, t, err := s.caller(r.Context(), r)
	if err != nil {
		return nil, 0, err
	}
	var req api.JobTokenRequest
	if err := s.decode(r, &req, false); err != nil {
		return nil, 0, err
	}
	d, err := s.b.IssueJobToken(r.Context(), c, t, r.PathValue("role"), req)
	if err != nil { // a *broker.PendingError becomes 202 in wrap
		return nil, 0, err
	}
	return data(d), 0, nil
}

func (s *Server) devices(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	if _, _, err := s.caller(r.Context(), r); err != nil {
		return nil, 0, err
	}
	var out []api.DeviceInfo
	for _, d := range s.b.Devices() {
		out = append(out, api.DeviceInfo{Provider: d.Provider, Name: d.Name, Kind: d.Kind, ARN: d.ARN, Qubits: d.Qubits, MaxShots: d.MaxShots,
			Price: api.DevicePrice{PerTaskUSD: d.Price.PerTaskUSD, PerShotUSD: d.Price.PerShotUSD, PerMinuteUSD: d.Price.PerMinuteUSD, MinMinutes: d.Price.MinMinutes,
				PerSecondUSD: d.Price.PerSecondUSD}})
	}
	return data(map[string]any{"devices": out}), 0, nil
}

// providerToken answers GET /v1/<prov>/token/<role>: a fresh bearer token
// for the provider's own API, with the lease duration in the envelope.
func (s *Server) providerToken(prov string) handler {
	return func(r *http.Request, c broker.Caller) (*api.Response, int, error) {
		_, t, err := s.caller(r.Context(), r)
		if err != nil {
			return nil, 0, err
		}
		d, err := s.b.IssueProviderToken(r.Context(), c, t, prov, r.PathValue("role"))
		if err != nil {
			return nil, 0, err
		}
		resp := data(d)
		resp.LeaseDuration = d.ExpiresIn
		return resp, 0, nil
	}
}

// awsCreds answers GET (or POST) /v1/aws/creds/<role> in Vault's shape:
// lease_id and lease_duration in the envelope, the keys in data.
func (s *Server) awsCreds(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	_, t, err := s.caller(r.Context(), r)
	if err != nil {
		return nil, 0, err
	}
	l, err := s.b.IssueAWSCredentials(r.Context(), c, t, r.PathValue("role"))
	if err != nil {
		return nil, 0, err
	}
	resp := data(l.Data)
	resp.LeaseID, resp.LeaseDuration = l.LeaseID, l.LeaseDuration
	return resp, 0, nil
}
