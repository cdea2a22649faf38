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

// ---- budgets ----

type budgets struct{ h handle }

var _ store.Budgets = budgets{}

// budgetLockKey serialises reservations across processes on PostgreSQL
// (SQLite's writer is serial anyway): the ASCII of "qbudget1".
const budgetLockKey int64 = 0x71627564676574_31

const reservationCols = `jti, agent_id, role, team, class, shots, estimated_usd, actual_usd, state, created_at, expires_at, estimated_qpu_seconds, actual_qpu_seconds`

// scopeColumn maps a check's scope to its column (never user input).
func scopeColumn(kind string) (string, error) {
	switch kind {
	case "agent":
		return "agent_id", nil
	case "role":
		return "role", nil
	case "team":
		return "team", nil
	}
	return "", fmt.Errorf("budget check: unknown scope %q", kind)
}

// used sums what matching reservations hold, inside q.
func (b budgets) used(ctx context.Context, q querier, c store.BudgetCheck) (float64, error) {
	col, err := scopeColumn(c.ScopeKind)
	if err != nil {
		return 0, err
	}
	var expr, cond string
	args := []any{c.ScopeID, c.Class, c.Class}
	switch c.Metric {
	case "jobs":
		expr, cond = "COUNT(*)", "state <> 'released' AND created_at >= ?"
		args = append(args, toNanos(c.Since))
	case "shots":
		expr, cond = "COALESCE(SUM(shots), 0)", "state <> 'released' AND created_at >= ?"
		args = append(args, toNanos(c.Since))
	case "usd":
		expr = "COALESCE(SUM(CASE WHEN state = 'settled' THEN actual_usd ELSE estimated_usd END), 0)"
		cond = "state <> 'released' AND created_at >= ?"
		args = append(args, toNanos(c.Since))
	case "qpu_seconds":
		// Settled: what the provider reported, else the estimate.
		expr = "COALESCE(SUM(CASE WHEN state = 'settled' AND actual_qpu_seconds >= 0 THEN actual_qpu_seconds ELSE estimated_qpu_seconds END), 0)"
		cond = "state <> 'released' AND created_at >= ?"
		args = append(args, toNanos(c.Since))
	case "in_flight":
		expr, cond = "COUNT(*)", "state IN ('reserved', 'confirmed')"
	default:
		return 0, fmt.Errorf("budget check: unknown metric %q", c.Metric)
	}
	var v float64
	err = q.QueryRowContext(ctx, `SELECT `+expr+` FROM reservations WHERE `+col+` = ? AND (? = '' OR class = ?) AND `+cond, args...).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("budget %s: %w", c.Name, err)
	}
	return v, nil
}

// add is how much r adds to a check's metric.
func add(r core.Reservation, metric string) float64 {
	switch metric {
	case "shots":
		return float64(r.Shots)
	case "usd":
		return r.EstimatedUSD
	case "qpu_seconds":
		return r.EstimatedQPUSeconds
	}
	return 1 // jobs, in_flight
}

func (b budgets) Reserve(ctx context.Context, r core.Reservation, checks []store.BudgetCheck) error {
	what := "reservation " + r.JTI
	if r.JTI == "" || r.State == "" {
		return fmt.Errorf("%s: empty jti or state", what)
	}
	return b.h.atomic(ctx, func(q querier) error {
		if err := b.h.dialect().lockKey(ctx, q, budgetLockKey); err != nil {
			return fmt.Errorf("%s: lock: %w", what, err)
		}
		for _, c := range checks {
			if c.ScopeID == "" || (c.Class != "" && c.Class != r.Class) {
				continue // a role without a team; a limit on the other class
			}
			used, err := b.used(ctx, q, c)
			if err != nil {
				return err
			}
			a := add(r, c.Metric)
			if c.Metric == "qpu_seconds" && a == 0 {
				a = 1e-6 // no estimate: the job still takes QPU time, so a spent budget admits nothing
			}
			if used+a > c.Limit+1e-9 {
				return &store.BudgetExceeded{Check: c, Used: used}
			}
		}
		_, err := q.ExecContext(ctx, `INSERT INTO reservations (`+reservationCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.JTI, r.AgentID, r.Role, r.Team, r.Class, r.Shots, r.EstimatedUSD, r.ActualUSD, r.State, toNanos(r.CreatedAt), toNanos(r.ExpiresAt),
			r.EstimatedQPUSeconds, r.ActualQPUSeconds)
		return b.h.writeErr(err, what)
	})
}

func (b budgets) Used(ctx context.Context, c store.BudgetCheck) (float64, error) {
	return b.used(ctx, b.h.r, c)
}

func (b budgets) Confirm(ctx context.Context, jti string) error {
	_, err := b.h.w.ExecContext(ctx, `UPDATE reservations SET state = 'confirmed' WHERE jti = ? AND state = 'reserved'`, jti)
	if err != nil {
		return fmt.Errorf("confirm reservation %s: %w", jti, err)
	}
	return nil
}

func (b budgets) Settle(ctx context.Context, jti string, actualUSD, qpuSeconds float64) error {
	// The first settlement wins: settling again (a retry, a replayed
	// report) changes nothing, so admissions made after it stay sound.
	_, err := b.h.w.ExecContext(ctx, `UPDATE reservations SET state = 'settled', actual_usd = ?, actual_qpu_seconds = ? WHERE jti = ? AND state IN ('reserved', 'confirmed')`,
		actualUSD, max(qpuSeconds, -1), jti)
	if err != nil {
		return fmt.Errorf("settle reservation %s: %w", jti, err)
	}
	return nil
}

func (b budgets) ReleaseExpired(ctx context.Context, now time.Time) (int, error) {
	res, err := b.h.w.ExecContext(ctx, `UPDATE reservations SET state = 'released' WHERE state = 'reserved' AND expires_at <= ?`, toNanos(now))
	if err != nil {
		return 0, fmt.Errorf("release reservations: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func (b budgets) Void(ctx context.Context, jti string) (bool, error) {
	res, err := b.h.w.ExecContext(ctx, `UPDATE reservations SET state = 'released' WHERE jti = ? AND state IN ('reserved', 'confirmed')`, jti)
	if err != nil {
		return false, fmt.Errorf("void reservation %s: %w", jti, err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

func (b budgets) ListSince(ctx context.Context, since time.Time) ([]core.Reservation, error) {
	rows, err := b.h.r.QueryContext(ctx, `SELECT `+reservationCols+` FROM reservations WHERE created_at >= ? ORDER BY created_at, jti`, toNanos(since))
	if err != nil {
		return nil, fmt.Errorf("list reservations: %w", err)
	}
	defer rows.Close()
	var out []core.Reservation
	for rows.Next() {
		var r core.Reservation
		var created, expires int64
		if err := rows.Scan(&r.JTI, &r.AgentID, &r.Role, &r.Team, &r.Class, &r.Shots, &r.EstimatedUSD, &r.ActualUSD, &r.State, &created, &expires, &r.EstimatedQPUSeconds, &r.ActualQPUSeconds); err != nil {
			return nil, fmt.Errorf("list reservations: %w", err)
		}
		r.CreatedAt, r.ExpiresAt = fromNanos(created), fromNanos(expires)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list reservations: %w", err)
	}
	return out, nil
}

func (b budgets) Get(ctx context.Context, jti string) (core.Reservation, error) {
	var r core.Reservation
	var created, expires int64
	err := b.h.r.QueryRowContext(ctx, `SELECT `+reservationCols+` FROM reservations WHERE jti = ?`, jti).Scan(
		&r.JTI, &r.AgentID, &r.Role, &r.Team, &r.Class, &r.Shots, &r.EstimatedUSD, &r.ActualUSD, &r.State, &created, &expires, &r.EstimatedQPUSeconds, &r.ActualQPUSeconds)
	if errors.Is(err, sql.ErrNoRows) {
		return core.Reservation{}, fmt.Errorf("reservation %s: %w", jti, store.ErrNotFound)
	}
	if err != nil {
		return core.Reservation{}, fmt.Errorf("reservation %s: %w", jti, err)
	}
	r.CreatedAt, r.ExpiresAt = fromNanos(created), fromNanos(expires)
	return r, nil
}
