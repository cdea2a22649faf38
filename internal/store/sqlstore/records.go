package sqlstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/store"
)

// ---- jobs ----

type jobs struct{ h handle }

var _ store.Jobs = jobs{}

const jobCols = `provider, id, agent_id, role, jti, device, shots, created_at`

// Create records a job; the same (provider, id) twice is ErrConflict, so a
// job can never change owner.
func (j jobs) Create(ctx context.Context, job core.Job) error {
	what := "job " + job.Provider + "/" + job.ID
	if job.Provider == "" || job.ID == "" {
		return fmt.Errorf("%s: empty provider or id", what)
	}
	_, err := j.h.w.ExecContext(ctx, `INSERT INTO jobs (`+jobCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		job.Provider, job.ID, job.AgentID, job.Role, job.JTI, job.Device, job.Shots, toNanos(job.CreatedAt))
	return j.h.writeErr(err, what)
}

func (j jobs) Get(ctx context.Context, provider, id string) (core.Job, error) {
	var (
		job     core.Job
		created int64
	)
	err := j.h.r.QueryRowContext(ctx, `SELECT `+jobCols+` FROM jobs WHERE provider = ? AND id = ?`, provider, id).Scan(
		&job.Provider, &job.ID, &job.AgentID, &job.Role, &job.JTI, &job.Device, &job.Shots, &created)
	if err != nil {
		return core.Job{}, notFound(err, "job "+provider+"/"+id)
	}
	job.CreatedAt = fromNanos(created)
	return job, nil
}

func (j jobs) ListByAgent(ctx context.Context, agentID string, limit int) ([]core.Job, error) {
	rows, err := j.h.r.QueryContext(ctx, `SELECT `+jobCols+` FROM jobs WHERE agent_id = ? ORDER BY created_at DESC LIMIT ?`, agentID, limit)
	if err != nil {
		return nil, fmt.Errorf("jobs of agent %s: %w", agentID, err)
	}
	defer rows.Close()
	var out []core.Job
	for rows.Next() {
		var job core.Job
		var created int64
		if err := rows.Scan(&job.Provider, &job.ID, &job.AgentID, &job.Role, &job.JTI, &job.Device, &job.Shots, &created); err != nil {
			return nil, fmt.Errorf("jobs of agent %s: %w", agentID, err)
		}
		job.CreatedAt = fromNanos(created)
		out = append(out, job)
	}
	return out, rows.Err()
}

// ---- sealed secrets ----

type secrets struct{ h handle }

var _ store.Secrets = secrets{}

func (s secrets) Put(ctx context.Context, sec core.SealedSecret) error {
	what := "secret " + sec.Name
	if sec.Name == "" {
		return fmt.Errorf("secret: empty name")
	}
	blob := sec.Blob
	if blob == nil {
		blob = []byte{}
	}
	_, err := s.h.w.ExecContext(ctx, `INSERT INTO secrets (name, blob, created_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET blob = excluded.blob, created_at = excluded.created_at`,
		sec.Name, blob, toNanos(sec.CreatedAt))
	return s.h.writeErr(err, what)
}

func scanSecret(sc scanner) (core.SealedSecret, error) {
	var (
		sec     core.SealedSecret
		created int64
	)
	if err := sc.Scan(&sec.Name, &sec.Blob, &created); err != nil {
		return core.SealedSecret{}, err
	}
	if sec.Blob == nil {
		sec.Blob = []byte{}
	}
	sec.CreatedAt = fromNanos(created)
	return sec, nil
}

func (s secrets) Get(ctx context.Context, name string) (core.SealedSecret, error) {
	sec, err := scanSecret(s.h.r.QueryRowContext(ctx, `SELECT name, blob, created_at FROM secrets WHERE name = ?`, name))
	if err != nil {
		return core.SealedSecret{}, notFound(err, "secret "+name)
	}
	return sec, nil
}

// List returns the secrets whose names start with prefix (byte-wise,
// case-sensitive; "" lists all), ordered by name.
func (s secrets) List(ctx context.Context, prefix string) ([]core.SealedSecret, error) {
	// substr/length rather than LIKE: no wildcards to escape, case-sensitive
	// on every database, and the same on SQLite and PostgreSQL.
	rows, err := s.h.r.QueryContext(ctx, `SELECT name, blob, created_at FROM secrets
		WHERE substr(name, 1, length(?)) = ? ORDER BY name`, prefix, prefix)
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	defer rows.Close()
	var out []core.SealedSecret
	for rows.Next() {
		sec, err := scanSecret(rows)
		if err != nil {
			return nil, fmt.Errorf("list secrets: %w", err)
		}
		if !strings.HasPrefix(sec.Name, prefix) { // belt and braces
			continue
		}
		out = append(out, sec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	return out, nil
}

func (s secrets) Delete(ctx context.Context, name string) error {
	res, err := s.h.w.ExecContext(ctx, `DELETE FROM secrets WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("secret %s: %w", name, err)
	}
	return mustAffect(res, "secret "+name)
}
