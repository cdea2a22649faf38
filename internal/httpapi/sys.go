package httpapi

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/broker"
	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/policy"
)

func (s *Server) listRoles(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	_, t, err := s.caller(r.Context(), r)
	if err != nil {
		return nil, 0, err
	}
	names, err := s.b.ListRoles(r.Context(), t)
	if err != nil {
		return nil, 0, err
	}
	if names == nil {
		names = []string{}
	}
	return data(api.ListData{Keys: names}), 0, nil
}

func (s *Server) getRole(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	_, t, err := s.caller(r.Context(), r)
	if err != nil {
		return nil, 0, err
	}
	role, err := s.b.GetRole(r.Context(), t, r.PathValue("name"))
	if err != nil {
		return nil, 0, err
	}
	return data(role), 0, nil
}

func (s *Server) putRole(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	_, t, err := s.caller(r.Context(), r)
	if err != nil {
		return nil, 0, err
	}
	var in api.Role
	if err := s.decode(r, &in, false); err != nil {
		return nil, 0, err
	}
	role, err := s.b.PutRole(r.Context(), c, t, r.PathValue("name"), in)
	if err != nil {
		return nil, 0, err
	}
	return data(role), 0, nil
}

func (s *Server) deleteRole(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	_, t, err := s.caller(r.Context(), r)
	if err != nil {
		return nil, 0, err
	}
	return nil, 0, s.b.DeleteRole(r.Context(), c, t, r.PathValue("name"))
}

func (s *Server) rotateKeys(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	_, t, err := s.caller(r.Context(), r)
	if err != nil {
		return nil, 0, err
	}
	if err := s.decode(r, &struct{}{}, true); err != nil {
		return nil, 0, err
	}
	nk, old, until, err := s.b.RotateKeys(r.Context(), c, t)
	if err != nil {
		return nil, 0, err
	}
	return data(api.KeyRotateData{ActiveKID: nk, RetiredKID: old, RetiredAt: until}), 0, nil
}

type credentialRequest struct {
	APIKey string `json:"api_key"`
}

func (s *Server) setCredential(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	_, t, err := s.caller(r.Context(), r)
	if err != nil {
		return nil, 0, err
	}
	var req credentialRequest
	if err := s.decode(r, &req, false); err != nil {
		return nil, 0, err
	}
	return nil, 0, s.b.SetProviderCredential(r.Context(), c, t, r.PathValue("provider"), req.APIKey)
}

// explainPolicy evaluates one request (the policy test-case format without
// name and expect, as JSON) against the policies in force and returns the
// decision, the determining policies and each policy's result. Root only:
// it reveals the whole policy set.
func (s *Server) explainPolicy(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	_, t, err := s.caller(r.Context(), r)
	if err != nil {
		return nil, 0, err
	}
	if !t.HasPolicy(broker.PolicyRoot) {
		return nil, 0, core.Errorf(core.KindPermissionDenied, "permission denied: explaining policy needs the root policy")
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, s.maxBody))
	if err != nil {
		return nil, 0, core.Wrap(core.KindTooLarge, err, fmt.Sprintf("request body larger than %d bytes", s.maxBody))
	}
	req, err := policy.ParseRequest(body)
	if err != nil {
		return nil, 0, core.Errorf(core.KindBadRequest, "invalid request: %s", err)
	}
	return data(s.b.Policy().Explain(req)), 0, nil
}

// auditPublicKey publishes the audit checkpoint key (public information:
// anyone holding the trail may verify it).
func (s *Server) auditPublicKey(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	pub, seq, head := s.b.AuditPublicKey()
	if len(pub) == 0 {
		return nil, 0, core.Errorf(core.KindNotFound, "the audit trail is not signed")
	}
	return data(api.AuditPublicKeyData{KeyID: audit.KeyID(pub), PublicKey: base64.StdEncoding.EncodeToString(pub), Seq: seq, ChainHead: head}), 0, nil
}

func (s *Server) auditHash(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	_, t, err := s.caller(r.Context(), r)
	if err != nil {
		return nil, 0, err
	}
	var req api.AuditHashRequest
	if err := s.decode(r, &req, false); err != nil {
		return nil, 0, err
	}
	h, err := s.b.AuditHash(r.Context(), c, t, req.Value)
	if err != nil {
		return nil, 0, err
	}
	return data(api.AuditHashData{Hash: h}), 0, nil
}

func (s *Server) revokeAgent(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	_, t, err := s.caller(r.Context(), r)
	if err != nil {
		return nil, 0, err
	}
	var req api.RevokeAgentRequest
	if err := s.decode(r, &req, true); err != nil {
		return nil, 0, err
	}
	out, err := s.b.RevokeAgent(r.Context(), c, t, r.PathValue("id"), req)
	if err != nil {
		return nil, 0, err
	}
	return data(out), 0, nil
}

func (s *Server) resumeAgent(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	_, t, err := s.caller(r.Context(), r)
	if err != nil {
		return nil, 0, err
	}
	if err := s.decode(r, &struct{}{}, true); err != nil {
		return nil, 0, err
	}
	return nil, 0, s.b.ResumeAgent(r.Context(), c, t, r.PathValue("id"))
}

// auditEvents is GET /v1/sys/audit/events?agent=&type=&after_seq=&limit=
// (root): the most recent matching events, oldest first.
func (s *Server) auditEvents(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	_, t, err := s.caller(r.Context(), r)
	if err != nil {
		return nil, 0, err
	}
	q := r.URL.Query()
	f := audit.Filter{Agent: q.Get("agent"), Type: q.Get("type")}
	if v := q.Get("after_seq"); v != "" {
		if f.AfterSeq, err = strconv.ParseUint(v, 10, 64); err != nil {
			return nil, 0, core.Errorf(core.KindBadRequest, "after_seq must be a whole number")
		}
	}
	if v := q.Get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 1 {
			return nil, 0, core.Errorf(core.KindBadRequest, "limit must be a positive whole number (at most 1000)")
		}
	}
	events, err := s.b.AuditEvents(r.Context(), c, t, f)
	if err != nil {
		return nil, 0, err
	}
	if events == nil {
		events = []audit.Event{}
	}
	return data(map[string]any{"events": events}), 0, nil
}

func (s *Server) setFreeze(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	_, t, err := s.caller(r.Context(), r)
	if err != nil {
		return nil, 0, err
	}
	var req api.FreezeRequest
	if err := s.decode(r, &req, false); err != nil {
		return nil, 0, err
	}
	if err := s.b.SetHardwareFreeze(r.Context(), c, t, req.Hardware, req.Reason); err != nil {
		return nil, 0, err
	}
	return s.getFreeze(r, c)
}

func (s *Server) getFreeze(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	if _, _, err := s.caller(r.Context(), r); err != nil {
		return nil, 0, err
	}
	on, reason := s.b.HardwareFreeze()
	return data(api.FreezeData{HardwareFrozen: on, Reason: reason}), 0, nil
}

func (s *Server) revokeRole(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	_, t, err := s.caller(r.Context(), r)
	if err != nil {
		return nil, 0, err
	}
	var req api.RevokeAgentRequest
	if err := s.decode(r, &req, true); err != nil {
		return nil, 0, err
	}
	if req.Suspend || req.CancelJobs {
		return nil, 0, core.Errorf(core.KindBadRequest, "a role revocation takes only a reason (suspend and cancel_jobs are per agent)")
	}
	n, err := s.b.RevokeRole(r.Context(), c, t, r.PathValue("name"), req.Reason)
	if err != nil {
		return nil, 0, err
	}
	out := map[string]any{"role": r.PathValue("name"), "revoked_tokens": n}
	// The role's agents' AWS STS sessions too (failures are in the answer).
	aws, err := s.b.RevokeRoleAWSSessions(r.Context(), c, t, r.PathValue("name"))
	if err != nil {
		return nil, 0, err
	}
	if len(aws) > 0 {
		out["aws_sessions"] = aws
	}
	return data(out), 0, nil
}
