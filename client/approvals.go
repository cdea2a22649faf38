package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/qbroker/qbroker/api"
)

// PendingError is JobToken's answer to a request held for human approval:
// nothing was issued yet.
type PendingError struct{ Approval api.Approval }

func (e *PendingError) Error() string {
	return fmt.Sprintf("qbroker: held for approval %s (%d of %d from %s; review at %s); once approved, repeat the call with approval id %s",
		e.Approval.ID, e.Approval.Approved, e.Approval.Required, e.Approval.Group, e.Approval.ConsoleURL, e.Approval.ID)
}

// Approvals lists approvals (all for approvers and root, one's own for
// agents); state filters when not empty.
func (c *Client) Approvals(ctx context.Context, state string) ([]api.Approval, error) {
	q := ""
	if state != "" {
		q = "?state=" + url.QueryEscape(state)
	}
	var out api.ApprovalList
	return out.Approvals, c.doData(ctx, http.MethodGet, "/v1/sys/approvals"+q, nil, &out)
}

// Approval reads one approval; with wait > 0 a pending one is long-polled
// for up to wait.
func (c *Client) Approval(ctx context.Context, id string, wait time.Duration) (api.Approval, error) {
	q := ""
	if wait > 0 {
		q = "?wait=" + url.QueryEscape(wait.String())
	}
	var out api.Approval
	return out, c.doData(ctx, http.MethodGet, "/v1/sys/approvals/"+url.PathEscape(id)+q, nil, &out)
}

// Approve votes to approve.
func (c *Client) Approve(ctx context.Context, id, reason string) (api.Approval, error) {
	var out api.Approval
	return out, c.doData(ctx, http.MethodPost, "/v1/sys/approvals/"+url.PathEscape(id)+"/approve", api.DecisionRequest{Reason: reason}, &out)
}

// Deny votes to deny (a reason is required).
func (c *Client) Deny(ctx context.Context, id, reason string) (api.Approval, error) {
	var out api.Approval
	return out, c.doData(ctx, http.MethodPost, "/v1/sys/approvals/"+url.PathEscape(id)+"/deny", api.DecisionRequest{Reason: reason}, &out)
}

// WaitApproval long-polls until the approval leaves pending or ctx ends,
// calling tick (when not nil) after every poll with the latest state.
func (c *Client) WaitApproval(ctx context.Context, id string, tick func(api.Approval)) (api.Approval, error) {
	for {
		a, err := c.Approval(ctx, id, 10*time.Second)
		if err != nil {
			return a, err
		}
		if tick != nil {
			tick(a)
		}
		if a.State != api.ApprovalPending {
			return a, nil
		}
		if err := ctx.Err(); err != nil {
			return a, err
		}
	}
}

// Budgets reads usage against the limits that apply to the caller (or,
// for root, to agent).
func (c *Client) Budgets(ctx context.Context, agent string) ([]api.BudgetUsage, error) {
	q := ""
	if agent != "" {
		q = "?agent=" + url.QueryEscape(agent)
	}
	var out struct {
		Budgets []api.BudgetUsage `json:"budgets"`
	}
	return out.Budgets, c.doData(ctx, http.MethodGet, "/v1/sys/budgets"+q, nil, &out)
}
