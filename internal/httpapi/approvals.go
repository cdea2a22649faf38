package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/broker"
	"github.com/qbroker/qbroker/internal/core"
)

// maxWait bounds ?wait= on GET /v1/sys/approvals/<id>.
const maxWait = 50 * time.Second

func (s *Server) listApprovals(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	_, t, err := s.caller(r.Context(), r)
	if err != nil {
		return nil, 0, err
	}
	limit := 0
	if v := r.URL.Query().Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 500 {
			return nil, 0, core.Errorf(core.KindBadRequest, "limit must be an integer from 1 to 500")
		}
	}
	as, err := s.b.ListApprovals(r.Context(), t, r.URL.Query().Get("state"), limit)
	if err != nil {
		return nil, 0, err
	}
	if as == nil {
		as = []api.Approval{}
	}
	return data(api.ApprovalList{Approvals: as}), 0, nil
}

// getApproval answers GET /v1/sys/approvals/<id>[?wait=30s]: with wait,
// a pending request is long-polled until it is decided or wait passes.
func (s *Server) getApproval(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	_, t, err := s.caller(r.Context(), r)
	if err != nil {
		return nil, 0, err
	}
	var wait time.Duration
	if v := r.URL.Query().Get("wait"); v != "" {
		if wait, err = time.ParseDuration(v); err != nil {
			if n, nerr := strconv.Atoi(v); nerr == nil {
				wait, err = time.Duration(n)*time.Second, nil
			}
		}
		if err != nil || wait < 0 || wait > maxWait {
			return nil, 0, core.Errorf(core.KindBadRequest, "wait must be a duration from 0s to %s, like 30s", maxWait)
		}
	}
	a, err := s.b.WaitApproval(r.Context(), t, r.PathValue("id"), wait)
	if err != nil {
		return nil, 0, err
	}
	return data(a), 0, nil
}

func (s *Server) decideApproval(approve bool) handler {
	return func(r *http.Request, c broker.Caller) (*api.Response, int, error) {
		_, t, err := s.caller(r.Context(), r)
		if err != nil {
			return nil, 0, err
		}
		var in api.DecisionRequest
		if err := s.decode(r, &in, true); err != nil {
			return nil, 0, err
		}
		a, err := s.b.DecideApproval(r.Context(), c, broker.Voter{Token: &t, Via: "api"}, r.PathValue("id"), approve, in.Reason)
		if err != nil {
			return nil, 0, err
		}
		return data(a), 0, nil
	}
}

// budgets answers GET /v1/sys/budgets[?agent=ID]: usage against every
// limit that applies (root may ask about any agent; others see their own).
func (s *Server) budgets(r *http.Request, c broker.Caller) (*api.Response, int, error) {
	_, t, err := s.caller(r.Context(), r)
	if err != nil {
		return nil, 0, err
	}
	us, err := s.b.BudgetStatus(r.Context(), t, r.URL.Query().Get("agent"))
	if err != nil {
		return nil, 0, err
	}
	if us == nil {
		us = []api.BudgetUsage{}
	}
	return data(map[string]any{"budgets": us}), 0, nil
}
