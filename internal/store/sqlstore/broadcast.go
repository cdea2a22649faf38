package sqlstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/qbroker/qbroker/internal/store"
)

var _ store.Broadcaster = (*Store)(nil)

// pgBroadcast is what a PostgreSQL store needs to LISTEN: its own
// connection settings and the channel of its schema.
type pgBroadcast struct {
	cfg     *pgx.ConnConfig
	channel string
}

// pgChannel names the notification channel of the schema a DSN's
// search_path selects, so stores in different schemas of one database do
// not hear each other.
func pgChannel(cfg *pgx.ConnConfig) string {
	sum := sha256.Sum256([]byte(cfg.Database + "\x00" + cfg.RuntimeParams["search_path"]))
	return "qbroker_events_" + hex.EncodeToString(sum[:6])
}

// Publish implements store.Broadcaster: NOTIFY on PostgreSQL, delivered to
// every subscribed process of the same database and schema; a no-op on
// SQLite, where one process owns the database.
func (s *Store) Publish(ctx context.Context, msg string) error {
	if s.pg == nil {
		return nil
	}
	if _, err := s.w.ExecContext(ctx, `SELECT pg_notify($1, $2)`, s.pg.channel, msg); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	return nil
}

// Subscribe implements store.Broadcaster. On PostgreSQL it LISTENs on a
// dedicated connection, calling reset each time the subscription starts
// (messages may have been missed while it was down) and fn for every
// message, and reconnects after a failure until ctx ends. On SQLite it
// returns at once.
func (s *Store) Subscribe(ctx context.Context, fn func(msg string), reset func()) error {
	if s.pg == nil {
		return nil
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listen(ctx, fn, reset)
		if ctx.Err() != nil {
			break
		}
		s.log.Warn("store: notification listener lost; reconnecting", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return nil
}

func (s *Store) listen(ctx context.Context, fn func(string), reset func()) error {
	conn, err := pgx.ConnectConfig(ctx, s.pg.cfg)
	if err != nil {
		return errors.New("connect for LISTEN failed") // pgx errors may name the DSN's host and user only; keep it short anyway
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.pg.channel}.Sanitize()); err != nil {
		return fmt.Errorf("LISTEN: %w", err)
	}
	reset()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn(n.Payload)
	}
}
