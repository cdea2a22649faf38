package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/store"
)

// ---- approvals ----

type approvals struct{ h handle }

var _ store.Approvals = approvals{}

const approvalCols = `id, state, requester_agent, requester_accessor, acting_for, role, owner, team, source_ip,
	action, provider, device, device_kind, shots, program, format, program_sha256, estimated_cost_usd,
	reasons, rule, required, approver_group, created_at, expires_at, decided_at, reason, issued_jti`

// Create stores a new approval (its votes, if any, are ignored: votes only
// arrive through Vote).
func (a approvals) Create(ctx context.Context, ap core.Approval) error {
	what := "approval " + ap.ID
	if ap.ID == "" || ap.State == "" {
		return fmt.Errorf("%s: empty id or state", what)
	}
	reasons, err := toJSON(ap.Reasons)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	prog := ap.Program
	if prog == nil {
		prog = []byte{}
	}
	_, err = a.h.w.ExecContext(ctx, `INSERT INTO approvals (`+approvalCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ap.ID, ap.State, ap.RequesterAgent, ap.RequesterAccessor, ap.ActingFor, ap.Role, ap.Owner, ap.Team, ap.SourceIP,
		ap.Action, ap.Provider, ap.Device, ap.DeviceKind, ap.Shots, prog, ap.Format, ap.ProgramSHA256, ap.EstimatedCostUSD,
		reasons, ap.Rule, ap.Required, ap.Group, toNanos(ap.CreatedAt), toNanos(ap.ExpiresAt), toNanos(ap.DecidedAt), ap.Reason, ap.IssuedJTI)
	return a.h.writeErr(err, what)
}

func scanApproval(sc scanner) (core.Approval, error) {
	var (
		ap                        core.Approval
		reasons                   string
		created, expires, decided int64
	)
	if err := sc.Scan(&ap.ID, &ap.State, &ap.RequesterAgent, &ap.RequesterAccessor, &ap.ActingFor, &ap.Role, &ap.Owner, &ap.Team, &ap.SourceIP,
		&ap.Action, &ap.Provider, &ap.Device, &ap.DeviceKind, &ap.Shots, &ap.Program, &ap.Format, &ap.ProgramSHA256, &ap.EstimatedCostUSD,
		&reasons, &ap.Rule, &ap.Required, &ap.Group, &created, &expires, &decided, &ap.Reason, &ap.IssuedJTI); err != nil {
		return core.Approval{}, err
	}
	if err := fromJSON(reasons, &ap.Reasons); err != nil {
		return core.Approval{}, fmt.Errorf("reasons: %w", err)
	}
	ap.CreatedAt, ap.ExpiresAt, ap.DecidedAt = fromNanos(created), fromNanos(expires), fromNanos(decided)
	return ap, nil
}

func (a approvals) votes(ctx context.Context, q querier, id string) ([]core.Vote, error) {
	rows, err := q.QueryContext(ctx, `SELECT approver, decision, reason, via, at FROM approval_votes WHERE approval_id = ? ORDER BY at, approver`, id)
	if err != nil {
		return nil, fmt.Errorf("votes of approval %s: %w", id, err)
	}
	defer rows.Close()
	var out []core.Vote
	for rows.Next() {
		var v core.Vote
		var at int64
		if err := rows.Scan(&v.Approver, &v.Decision, &v.Reason, &v.Via, &at); err != nil {
			return nil, fmt.Errorf("votes of approval %s: %w", id, err)
		}
		v.At = fromNanos(at)
		out = append(out, v)
	}
	return out, rows.Err()
}

// get reads an approval and its votes; lock is the row-lock clause for the
// approval ("" for a plain read).
func (a approvals) get(ctx context.Context, q querier, id, lock string) (core.Approval, error) {
	ap, err := scanApproval(q.QueryRowContext(ctx, `SELECT `+approvalCols+` FROM approvals WHERE id = ?`+lock, id))
	if err != nil {
		return core.Approval{}, notFound(err, "approval "+id)
	}
	if ap.Votes, err = a.votes(ctx, q, id); err != nil {
		return core.Approval{}, err
	}
	return ap, nil
}

func (a approvals) Get(ctx context.Context, id string) (core.Approval, error) {
	return a.get(ctx, a.h.r, id, "")
}

func (a approvals) List(ctx context.Context, f store.ApprovalFilter) ([]core.Approval, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	q := `SELECT ` + approvalCols + ` FROM approvals WHERE (? = '' OR state = ?) AND (? = '' OR requester_agent = ?) ORDER BY created_at DESC, id LIMIT ?`
	rows, err := a.h.r.QueryContext(ctx, q, f.State, f.State, f.Agent, f.Agent, limit)
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	var out []core.Approval
	for rows.Next() {
		ap, err := scanApproval(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("list approvals: %w", err)
		}
		out = append(out, ap)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	for i := range out {
		if out[i].Votes, err = a.votes(ctx, a.h.r, out[i].ID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Vote locks the approval FOR UPDATE (PostgreSQL) before reading its
// votes, so concurrent voters take turns and each counts the votes before
// it: the Required-th approve closes it and later voters find it closed.
func (a approvals) Vote(ctx context.Context, id string, v core.Vote, now time.Time) (core.Approval, error) {
	what := "approval " + id
	if v.Approver == "" || (v.Decision != core.VoteApprove && v.Decision != core.VoteDeny) {
		return core.Approval{}, fmt.Errorf("%s: vote needs an approver and approve or deny", what)
	}
	var out core.Approval
	err := a.h.atomic(ctx, func(q querier) error {
		ap, err := a.get(ctx, q, id, a.h.dialect().rowLock(lockUpdate))
		if err != nil {
			return err
		}
		if ap.State != core.ApprovalPending {
			return fmt.Errorf("%s is %s: %w", what, ap.State, store.ErrClosed)
		}
		if !now.Before(ap.ExpiresAt) {
			return fmt.Errorf("%s: %w", what, store.ErrExpired)
		}
		for _, prev := range ap.Votes {
			if prev.Approver == v.Approver {
				return fmt.Errorf("%s: %s already voted: %w", what, v.Approver, store.ErrConflict)
			}
		}
		if _, err := q.ExecContext(ctx, `INSERT INTO approval_votes (approval_id, approver, decision, reason, via, at) VALUES (?, ?, ?, ?, ?, ?)`,
			id, v.Approver, v.Decision, v.Reason, v.Via, toNanos(v.At)); err != nil {
			return a.h.writeErr(err, what)
		}
		ap.Votes = append(ap.Votes, v)
		switch {
		case v.Decision == core.VoteDeny:
			ap.State, ap.Reason = core.ApprovalDenied, v.Reason
		case ap.Approvals() >= ap.Required:
			ap.State = core.ApprovalApproved
		}
		if ap.State != core.ApprovalPending {
			ap.DecidedAt = now
			res, err := q.ExecContext(ctx, `UPDATE approvals SET state = ?, decided_at = ?, reason = ? WHERE id = ? AND state = ?`,
				ap.State, toNanos(now), ap.Reason, id, core.ApprovalPending)
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			if err := mustAffect(res, what); err != nil {
				return err
			}
		}
		out = ap
		return nil
	})
	if err != nil {
		return core.Approval{}, err
	}
	return out, nil
}

func (a approvals) MarkIssued(ctx context.Context, id, jti string) error {
	what := "approval " + id
	res, err := a.h.w.ExecContext(ctx, `UPDATE approvals SET state = ?, issued_jti = ? WHERE id = ? AND state = ?`,
		core.ApprovalIssued, jti, id, core.ApprovalApproved)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n != 1 {
		var state string
		if err := a.h.r.QueryRowContext(ctx, `SELECT state FROM approvals WHERE id = ?`, id).Scan(&state); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%s: %w", what, store.ErrNotFound)
		}
		return fmt.Errorf("%s is not approved: %w", what, store.ErrClosed)
	}
	return nil
}

// ExpirePending locks the expired pending approvals FOR UPDATE (PostgreSQL),
// in a fixed order, before closing them: a vote in flight finishes first
// and an approval it closed is skipped, and two sweepers (two replicas)
// never both report the same approval. At most 1000 per call.
func (a approvals) ExpirePending(ctx context.Context, now time.Time) ([]core.Approval, error) {
	var out []core.Approval
	err := a.h.atomic(ctx, func(q querier) error {
		rows, err := q.QueryContext(ctx, `SELECT `+approvalCols+` FROM approvals WHERE state = ? AND expires_at <= ? ORDER BY expires_at, id LIMIT 1000`+
			a.h.dialect().rowLock(lockUpdate), core.ApprovalPending, toNanos(now))
		if err != nil {
			return fmt.Errorf("expire approvals: %w", err)
		}
		out = out[:0]
		for rows.Next() {
			ap, err := scanApproval(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("expire approvals: %w", err)
			}
			out = append(out, ap)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return fmt.Errorf("expire approvals: %w", err)
		}
		expired := out[:0]
		for _, ap := range out {
			ap.State, ap.DecidedAt, ap.Reason = core.ApprovalExpired, now, "expired: no decision before "+ap.ExpiresAt.UTC().Format(time.RFC3339)
			res, err := q.ExecContext(ctx, `UPDATE approvals SET state = ?, decided_at = ?, reason = ? WHERE id = ? AND state = ?`,
				ap.State, toNanos(now), ap.Reason, ap.ID, core.ApprovalPending)
			if err != nil {
				return fmt.Errorf("expire approval %s: %w", ap.ID, err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("expire approval %s: %w", ap.ID, err)
			} else if n != 1 {
				continue // decided meanwhile: not ours to report
			}
			if ap.Votes, err = a.votes(ctx, q, ap.ID); err != nil {
				return err
			}
			expired = append(expired, ap)
		}
		out = expired
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UsedDevice reports whether the agent has a recorded job on the device.
func (j jobs) UsedDevice(ctx context.Context, agentID, provider, device string) (bool, error) {
	var one int
	err := j.h.r.QueryRowContext(ctx, `SELECT 1 FROM jobs WHERE agent_id = ? AND provider = ? AND device = ? LIMIT 1`, agentID, provider, device).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("jobs of agent %s on %s/%s: %w", agentID, provider, device, err)
	}
	return true, nil
}
