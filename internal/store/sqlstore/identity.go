package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/store"
)

// ---- roles ----

type roles struct{ h handle }

var _ store.Roles = roles{}

const roleCols = `name, provider, devices, max_shots, token_ttl, token_max_ttl,
	job_token_ttl, secret_id_ttl, secret_id_num_uses, owner, team, role_id,
	created_at, updated_at`

// Put inserts or updates in place. It never deletes and re-inserts, which
// would cascade to the role's secret IDs.
func (r roles) Put(ctx context.Context, role core.Role) error {
	what := "role " + role.Name
	if role.Name == "" {
		return errors.New("role: empty name")
	}
	devices, err := toJSON(role.Devices)
	if err != nil {
		return fmt.Errorf("%s: devices: %w", what, err)
	}
	_, err = r.h.w.ExecContext(ctx, `INSERT INTO roles (`+roleCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET
			provider = excluded.provider, devices = excluded.devices,
			max_shots = excluded.max_shots, token_ttl = excluded.token_ttl,
			token_max_ttl = excluded.token_max_ttl, job_token_ttl = excluded.job_token_ttl,
			secret_id_ttl = excluded.secret_id_ttl, secret_id_num_uses = excluded.secret_id_num_uses,
			owner = excluded.owner, team = excluded.team, role_id = excluded.role_id,
			created_at = excluded.created_at, updated_at = excluded.updated_at`,
		role.Name, role.Provider, devices, role.MaxShots,
		int64(role.TokenTTL), int64(role.TokenMaxTTL), int64(role.JobTokenTTL),
		int64(role.SecretIDTTL), role.SecretIDNumUses, role.Owner, role.Team, role.RoleID,
		toNanos(role.CreatedAt), toNanos(role.UpdatedAt))
	return r.h.writeErr(err, what)
}

func scanRole(sc scanner) (core.Role, error) {
	var (
		r                              core.Role
		devices                        string
		ttl, maxTTL, jobTTL, secretTTL int64
		created, updated               int64
	)
	if err := sc.Scan(&r.Name, &r.Provider, &devices, &r.MaxShots, &ttl, &maxTTL, &jobTTL,
		&secretTTL, &r.SecretIDNumUses, &r.Owner, &r.Team, &r.RoleID, &created, &updated); err != nil {
		return core.Role{}, err
	}
	if err := fromJSON(devices, &r.Devices); err != nil {
		return core.Role{}, fmt.Errorf("devices: %w", err)
	}
	r.TokenTTL, r.TokenMaxTTL, r.JobTokenTTL = time.Duration(ttl), time.Duration(maxTTL), time.Duration(jobTTL)
	r.SecretIDTTL = time.Duration(secretTTL)
	r.CreatedAt, r.UpdatedAt = fromNanos(created), fromNanos(updated)
	return r, nil
}

func (r roles) Get(ctx context.Context, name string) (core.Role, error) {
	role, err := scanRole(r.h.r.QueryRowContext(ctx, `SELECT `+roleCols+` FROM roles WHERE name = ?`, name))
	if err != nil {
		return core.Role{}, notFound(err, "role "+name)
	}
	return role, nil
}

func (r roles) GetByRoleID(ctx context.Context, roleID string) (core.Role, error) {
	role, err := scanRole(r.h.r.QueryRowContext(ctx,
		`SELECT `+roleCols+` FROM roles WHERE role_id = ? AND role_id <> ''`, roleID))
	if err != nil {
		return core.Role{}, notFound(err, "role with role_id "+roleID)
	}
	return role, nil
}

func (r roles) List(ctx context.Context) ([]string, error) {
	rows, err := r.h.r.QueryContext(ctx, `SELECT name FROM roles ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list roles: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("list roles: %w", err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list roles: %w", err)
	}
	return names, nil
}

// Delete removes the role and, by cascade, its secret IDs.
func (r roles) Delete(ctx context.Context, name string) error {
	res, err := r.h.w.ExecContext(ctx, `DELETE FROM roles WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("role %s: %w", name, err)
	}
	return mustAffect(res, "role "+name)
}

// ---- secret IDs ----

type secretIDs struct{ h handle }

var _ store.SecretIDs = secretIDs{}

const secretIDCols = `hash, accessor, role, agent, meta, created_at, expires_at, uses_left`

// Create stores a new secret ID. Its role must exist (else ErrNotFound);
// a duplicate hash or accessor is ErrConflict.
func (s secretIDs) Create(ctx context.Context, sid core.SecretID) error {
	what := "secret id " + sid.Accessor
	if sid.UsesLeft < 0 {
		return fmt.Errorf("%s: negative uses %d", what, sid.UsesLeft)
	}
	meta, err := toJSON(sid.Meta)
	if err != nil {
		return fmt.Errorf("%s: meta: %w", what, err)
	}
	_, err = s.h.w.ExecContext(ctx, `INSERT INTO secret_ids (`+secretIDCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		sid.Hash, sid.Accessor, sid.Role, sid.Agent, meta,
		toNanos(sid.CreatedAt), toNanos(sid.ExpiresAt), sid.UsesLeft)
	if err != nil && s.h.dialect().isForeignKeyViolation(err) {
		return fmt.Errorf("%s: role %s: %w", what, sid.Role, store.ErrNotFound)
	}
	return s.h.writeErr(err, what)
}

func scanSecretID(sc scanner) (core.SecretID, error) {
	var (
		s                core.SecretID
		meta             string
		created, expires int64
	)
	if err := sc.Scan(&s.Hash, &s.Accessor, &s.Role, &s.Agent, &meta, &created, &expires, &s.UsesLeft); err != nil {
		return core.SecretID{}, err
	}
	if err := fromJSON(meta, &s.Meta); err != nil {
		return core.SecretID{}, fmt.Errorf("meta: %w", err)
	}
	s.CreatedAt, s.ExpiresAt = fromNanos(created), fromNanos(expires)
	return s, nil
}

// Consume takes one use of the role's secret ID with this hash. It returns
// the secret ID as it was before this use (UsesLeft counts this use; 0 is
// unlimited). The last use deletes the row, so later attempts get
// ErrNotFound. A secret ID of another role is ErrNotFound too: a caller
// learns nothing about other roles' secret IDs.
//
// The row is read FOR UPDATE (PostgreSQL): concurrent consumers of one
// secret ID take turns, each seeing the uses the previous one left. The
// guarded UPDATE/DELETE (uses_left = what was read) and the rows-affected
// check hold even without that lock.
func (s secretIDs) Consume(ctx context.Context, role, hash string, now time.Time) (core.SecretID, error) {
	what := "secret id " + ref(hash) + " for role " + role
	var out core.SecretID
	err := s.h.atomic(ctx, func(q querier) error {
		sid, err := scanSecretID(q.QueryRowContext(ctx,
			`SELECT `+secretIDCols+` FROM secret_ids WHERE hash = ? AND role = ?`+s.h.dialect().rowLock(lockUpdate), hash, role))
		if err != nil {
			return notFound(err, what)
		}
		if exp := toNanos(sid.ExpiresAt); exp != 0 && exp <= toNanos(now) {
			return fmt.Errorf("%s: %w", what, store.ErrExpired)
		}
		var stmt string
		switch {
		case sid.UsesLeft < 0:
			return fmt.Errorf("%s: %w", what, store.ErrExhausted)
		case sid.UsesLeft == 0: // unlimited
			out = sid
			return nil
		case sid.UsesLeft == 1:
			stmt = `DELETE FROM secret_ids WHERE hash = ? AND uses_left = ?`
		default:
			stmt = `UPDATE secret_ids SET uses_left = uses_left - 1 WHERE hash = ? AND uses_left = ?`
		}
		res, err := q.ExecContext(ctx, stmt, hash, sid.UsesLeft)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		} else if n != 1 {
			return fmt.Errorf("%s: %w", what, store.ErrExhausted)
		}
		out = sid
		return nil
	})
	if err != nil {
		return core.SecretID{}, err
	}
	return out, nil
}

func (s secretIDs) DeleteByAccessor(ctx context.Context, role, accessor string) error {
	what := "secret id " + accessor + " for role " + role
	res, err := s.h.w.ExecContext(ctx, `DELETE FROM secret_ids WHERE role = ? AND accessor = ?`, role, accessor)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return mustAffect(res, what)
}

// DeleteExpired deletes secret IDs whose expiry is at or before now.
func (s secretIDs) DeleteExpired(ctx context.Context, now time.Time) (int, error) {
	return deleteCount(ctx, s.h.w, "expired secret ids",
		`DELETE FROM secret_ids WHERE expires_at <> 0 AND expires_at <= ?`, toNanos(now))
}

func deleteCount(ctx context.Context, q querier, what, stmt string, args ...any) (int, error) {
	res, err := q.ExecContext(ctx, stmt, args...)
	if err != nil {
		return 0, fmt.Errorf("delete %s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete %s: %w", what, err)
	}
	return int(n), nil
}

// ---- agents ----

type agents struct{ h handle }

var _ store.Agents = agents{}

const agentCols = `id, name, role, owner, team, auth_method, labels, created_at, suspended`

func (a agents) Upsert(ctx context.Context, ag core.Agent) error {
	what := "agent " + ag.ID
	if ag.ID == "" {
		return errors.New("agent: empty id")
	}
	labels, err := toJSON(ag.Labels)
	if err != nil {
		return fmt.Errorf("%s: labels: %w", what, err)
	}
	_, err = a.h.w.ExecContext(ctx, `INSERT INTO agents (`+agentCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET
			name = excluded.name, role = excluded.role, owner = excluded.owner,
			team = excluded.team, auth_method = excluded.auth_method, labels = excluded.labels,
			created_at = excluded.created_at, suspended = excluded.suspended`,
		ag.ID, ag.Name, ag.Role, ag.Owner, ag.Team, ag.AuthMethod, labels,
		toNanos(ag.CreatedAt), boolInt(ag.Suspended))
	return a.h.writeErr(err, what)
}

func (a agents) Get(ctx context.Context, id string) (core.Agent, error) {
	var (
		ag        core.Agent
		labels    string
		created   int64
		suspended int64
	)
	err := a.h.r.QueryRowContext(ctx, `SELECT `+agentCols+` FROM agents WHERE id = ?`, id).Scan(
		&ag.ID, &ag.Name, &ag.Role, &ag.Owner, &ag.Team, &ag.AuthMethod, &labels, &created, &suspended)
	if err != nil {
		return core.Agent{}, notFound(err, "agent "+id)
	}
	if err := fromJSON(labels, &ag.Labels); err != nil {
		return core.Agent{}, fmt.Errorf("agent %s: labels: %w", id, err)
	}
	ag.CreatedAt, ag.Suspended = fromNanos(created), suspended != 0
	return ag, nil
}
