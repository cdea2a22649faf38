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

// ---- broker tokens ----

type tokens struct{ h handle }

var _ store.Tokens = tokens{}

const tokenCols = `hash, accessor, agent_id, role, policies, display_name, auth_method,
	meta, issued_at, expires_at, max_expires_at, creation_ttl, renewable, acting_for, parent_accessor`

// Create stores a token; a duplicate hash or accessor is ErrConflict.
func (t tokens) Create(ctx context.Context, tok core.Token) error {
	what := "token " + tok.Accessor
	if tok.Hash == "" || tok.Accessor == "" {
		return fmt.Errorf("%s: empty hash or accessor", what)
	}
	policies, err := toJSON(tok.Policies)
	if err != nil {
		return fmt.Errorf("%s: policies: %w", what, err)
	}
	meta, err := toJSON(tok.Meta)
	if err != nil {
		return fmt.Errorf("%s: meta: %w", what, err)
	}
	_, err = t.h.w.ExecContext(ctx, `INSERT INTO tokens (`+tokenCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		tok.Hash, tok.Accessor, tok.AgentID, tok.Role, policies, tok.DisplayName, tok.AuthMethod,
		meta, toNanos(tok.IssuedAt), toNanos(tok.ExpiresAt), toNanos(tok.MaxExpiresAt),
		int64(tok.CreationTTL), boolInt(tok.Renewable), tok.ActingFor, tok.ParentAccessor)
	return t.h.writeErr(err, what)
}

func scanToken(sc scanner) (core.Token, error) {
	var (
		tok                     core.Token
		policies, meta          string
		issued, expires, maxExp int64
		ttl, renewable          int64
	)
	if err := sc.Scan(&tok.Hash, &tok.Accessor, &tok.AgentID, &tok.Role, &policies, &tok.DisplayName,
		&tok.AuthMethod, &meta, &issued, &expires, &maxExp, &ttl, &renewable, &tok.ActingFor, &tok.ParentAccessor); err != nil {
		return core.Token{}, err
	}
	if err := fromJSON(policies, &tok.Policies); err != nil {
		return core.Token{}, fmt.Errorf("policies: %w", err)
	}
	if err := fromJSON(meta, &tok.Meta); err != nil {
		return core.Token{}, fmt.Errorf("meta: %w", err)
	}
	tok.IssuedAt, tok.ExpiresAt, tok.MaxExpiresAt = fromNanos(issued), fromNanos(expires), fromNanos(maxExp)
	tok.CreationTTL, tok.Renewable = time.Duration(ttl), renewable != 0
	return tok, nil
}

func (t tokens) Get(ctx context.Context, hash string) (core.Token, error) {
	tok, err := scanToken(t.h.r.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM tokens WHERE hash = ?`, hash))
	if err != nil {
		return core.Token{}, notFound(err, "token "+ref(hash))
	}
	return tok, nil
}

func (t tokens) GetByAccessor(ctx context.Context, accessor string) (core.Token, error) {
	tok, err := scanToken(t.h.r.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM tokens WHERE accessor = ?`, accessor))
	if err != nil {
		return core.Token{}, notFound(err, "token "+accessor)
	}
	return tok, nil
}

func (t tokens) SetExpiry(ctx context.Context, hash string, expiresAt time.Time) error {
	what := "token " + ref(hash)
	res, err := t.h.w.ExecContext(ctx, `UPDATE tokens SET expires_at = ? WHERE hash = ?`, toNanos(expiresAt), hash)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return mustAffect(res, what)
}

// Delete and DeleteByAccessor are one DELETE ... RETURNING statement each,
// atomic on their own: the token returned is exactly the row removed.
func (t tokens) Delete(ctx context.Context, hash string) (core.Token, error) {
	var tok core.Token
	err := t.h.atomic(ctx, func(q querier) (err error) {
		tok, err = scanToken(q.QueryRowContext(ctx, `DELETE FROM tokens WHERE hash = ? RETURNING `+tokenCols, hash))
		return err
	})
	if err != nil {
		return core.Token{}, notFound(err, "token "+ref(hash))
	}
	return tok, nil
}

func (t tokens) DeleteByAccessor(ctx context.Context, accessor string) (core.Token, error) {
	var tok core.Token
	err := t.h.atomic(ctx, func(q querier) (err error) {
		tok, err = scanToken(q.QueryRowContext(ctx, `DELETE FROM tokens WHERE accessor = ? RETURNING `+tokenCols, accessor))
		return err
	})
	if err != nil {
		return core.Token{}, notFound(err, "token "+accessor)
	}
	return tok, nil
}

// DeleteExpired deletes tokens whose expiry is at or before now; tokens
// that never expire (expires_at 0) stay.
// DeleteByAgent is one DELETE ... RETURNING: atomic on its own.
func (t tokens) DeleteByAgent(ctx context.Context, agentID string) ([]core.Token, error) {
	return t.deleteWhere(ctx, "agent_id", agentID)
}

// DeleteByRole revokes every token of a role.
func (t tokens) DeleteByRole(ctx context.Context, role string) ([]core.Token, error) {
	if role == "" {
		return nil, nil
	}
	return t.deleteWhere(ctx, "role", role)
}

// DeleteByParent revokes the tokens delegated under the token with the
// given accessor.
func (t tokens) DeleteByParent(ctx context.Context, accessor string) ([]core.Token, error) {
	if accessor == "" {
		return nil, nil
	}
	return t.deleteWhere(ctx, "parent_accessor", accessor)
}

// deleteWhere deletes the tokens whose column (a constant of this file)
// equals value, returning them.
func (t tokens) deleteWhere(ctx context.Context, column, value string) ([]core.Token, error) {
	var out []core.Token
	err := t.h.atomic(ctx, func(q querier) error {
		out = out[:0]
		rows, err := q.QueryContext(ctx, `DELETE FROM tokens WHERE `+column+` = ? RETURNING `+tokenCols, value)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			tok, err := scanToken(rows)
			if err != nil {
				return err
			}
			out = append(out, tok)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("delete tokens by %s %s: %w", column, value, err)
	}
	return out, nil
}

func (t tokens) DeleteExpired(ctx context.Context, now time.Time) (int, error) {
	return deleteCount(ctx, t.h.w, "expired tokens",
		`DELETE FROM tokens WHERE expires_at <> 0 AND expires_at <= ?`, toNanos(now))
}

// ---- job grants ----

type grants struct{ h handle }

var _ store.Grants = grants{}

const grantCols = `jti, accessor, agent_id, role, provider, device, max_shots,
	program_sha256, issued_at, expires_at, redeemed_at`

// Create stores a grant; a duplicate jti is ErrConflict.
func (g grants) Create(ctx context.Context, gr core.JobGrant) error {
	what := "grant " + gr.JTI
	if gr.JTI == "" {
		return errors.New("grant: empty jti")
	}
	_, err := g.h.w.ExecContext(ctx, `INSERT INTO job_grants (`+grantCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		gr.JTI, gr.Accessor, gr.AgentID, gr.Role, gr.Provider, gr.Device, gr.MaxShots,
		gr.ProgramSHA256, toNanos(gr.IssuedAt), toNanos(gr.ExpiresAt), toNanos(gr.RedeemedAt))
	return g.h.writeErr(err, what)
}

func scanGrant(sc scanner) (core.JobGrant, error) {
	var (
		gr                        core.JobGrant
		issued, expires, redeemed int64
	)
	if err := sc.Scan(&gr.JTI, &gr.Accessor, &gr.AgentID, &gr.Role, &gr.Provider, &gr.Device,
		&gr.MaxShots, &gr.ProgramSHA256, &issued, &expires, &redeemed); err != nil {
		return core.JobGrant{}, err
	}
	gr.IssuedAt, gr.ExpiresAt, gr.RedeemedAt = fromNanos(issued), fromNanos(expires), fromNanos(redeemed)
	return gr, nil
}

func (g grants) Get(ctx context.Context, jti string) (core.JobGrant, error) {
	gr, err := scanGrant(g.h.r.QueryRowContext(ctx, `SELECT `+grantCols+` FROM job_grants WHERE jti = ?`, jti))
	if err != nil {
		return core.JobGrant{}, notFound(err, "grant "+jti)
	}
	return gr, nil
}

// Redeem marks the grant redeemed at now, once. Checks, in order: exists
// (ErrNotFound), not yet redeemed (ErrRedeemed), unexpired — expires_at
// after now, so a grant without expiry never redeems (ErrExpired) — and its
// broker token still stored and live at now (ErrRevoked).
//
// The grant is read FOR UPDATE and its token FOR SHARE (PostgreSQL): two
// redeemers take turns, and a revocation of the token waits for a
// redemption in flight or is seen by it, never slips between its check
// and its commit. The UPDATE is guarded by redeemed_at = 0 and its row
// count checked besides, so two redeemers can never both succeed.
func (g grants) Redeem(ctx context.Context, jti string, now time.Time) (core.JobGrant, error) {
	what := "grant " + jti
	at := toNanos(now)
	var out core.JobGrant
	err := g.h.atomic(ctx, func(q querier) error {
		gr, err := scanGrant(q.QueryRowContext(ctx, `SELECT `+grantCols+` FROM job_grants WHERE jti = ?`+g.h.dialect().rowLock(lockUpdate), jti))
		if err != nil {
			return notFound(err, what)
		}
		if !gr.RedeemedAt.IsZero() {
			return fmt.Errorf("%s: %w", what, store.ErrRedeemed)
		}
		if toNanos(gr.ExpiresAt) <= at {
			return fmt.Errorf("%s: %w", what, store.ErrExpired)
		}
		var tokExp int64
		err = q.QueryRowContext(ctx, `SELECT expires_at FROM tokens WHERE accessor = ?`+g.h.dialect().rowLock(lockShare), gr.Accessor).Scan(&tokExp)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("%s: token %s gone: %w", what, gr.Accessor, store.ErrRevoked)
		case err != nil:
			return fmt.Errorf("%s: token %s: %w", what, gr.Accessor, err)
		case tokExp != 0 && tokExp <= at:
			return fmt.Errorf("%s: token %s expired: %w", what, gr.Accessor, store.ErrRevoked)
		}
		redeemed := max(at, 1) // 0 would read back as "not redeemed"
		res, err := q.ExecContext(ctx, `UPDATE job_grants SET redeemed_at = ? WHERE jti = ? AND redeemed_at = 0`, redeemed, jti)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		} else if n != 1 {
			return fmt.Errorf("%s: %w", what, store.ErrRedeemed)
		}
		gr.RedeemedAt = fromNanos(redeemed)
		out = gr
		return nil
	})
	if err != nil {
		return core.JobGrant{}, err
	}
	return out, nil
}

// DeleteExpired deletes grants whose expiry is strictly before before.
func (g grants) DeleteExpired(ctx context.Context, before time.Time) (int, error) {
	return deleteCount(ctx, g.h.w, "expired grants",
		`DELETE FROM job_grants WHERE expires_at < ?`, toNanos(before))
}
