package sqlstore

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/qbroker/qbroker/internal/store"
)

var _ store.Leaser = (*Store)(nil)

// TryLead implements store.Leaser. On SQLite, which one process owns, the
// lease is always granted. On PostgreSQL it is pg_try_advisory_lock on a
// connection taken out of the pool for as long as the lease is held.
func (s *Store) TryLead(ctx context.Context, name string) (alive func(context.Context) bool, release func(), ok bool, err error) {
	if s.pg == nil {
		return func(context.Context) bool { return true }, func() {}, true, nil
	}
	sum := sha256.Sum256([]byte(s.pg.channel + "\x00lease\x00" + name))
	key := int64(binary.BigEndian.Uint64(sum[:8]))
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return nil, nil, false, fmt.Errorf("lease %s: %w", name, err)
	}
	var got bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got); err != nil {
		conn.Close()
		return nil, nil, false, fmt.Errorf("lease %s: %w", name, err)
	}
	if !got {
		conn.Close()
		return nil, nil, false, nil
	}
	alive = func(ctx context.Context) bool {
		var one int
		return conn.QueryRowContext(ctx, `SELECT 1`).Scan(&one) == nil
	}
	release = func() {
		_, _ = conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, key)
		conn.Close()
	}
	return alive, release, true, nil
}
