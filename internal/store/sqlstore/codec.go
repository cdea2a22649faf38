package sqlstore

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/qbroker/qbroker/internal/store"
)

// toNanos encodes a time as int64 unix nanoseconds in UTC. The zero
// time.Time is 0 and reads back as the zero time.Time. A real time that
// would also encode as 0 (the epoch instant) is stored as -1 instead, one
// nanosecond earlier, so that it can never read back as "zero" — which for
// an expiry would mean "never". Int64 nanoseconds span the years 1678 to
// 2262; times beyond are clamped to those ends, which keeps "far future" far
// in the future and "long ago" long ago.
func toNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	if lo := time.Unix(0, math.MinInt64+1); t.Before(lo) {
		return math.MinInt64 + 1
	}
	if hi := time.Unix(0, math.MaxInt64); t.After(hi) {
		return math.MaxInt64
	}
	if n := t.UnixNano(); n != 0 {
		return n
	}
	return -1
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// toJSON encodes v for a TEXT column. nil slices and maps encode as null and
// decode back to nil, so values round-trip exactly.
func toJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode: %w", err)
	}
	return string(b), nil
}

func fromJSON(s string, v any) error {
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// ref shortens a hash for error messages: enough to correlate with logs,
// not the whole value.
func ref(hash string) string {
	const n = 8
	if len(hash) <= n {
		return hash
	}
	return hash[:n] + "…"
}

// notFound turns sql.ErrNoRows into store.ErrNotFound, naming what was
// looked for; other errors are wrapped as they are.
func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// writeErr maps constraint violations to store sentinels.
func (h handle) writeErr(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case h.dialect().isUniqueViolation(err):
		return fmt.Errorf("%s: %w", what, store.ErrConflict)
	default:
		return fmt.Errorf("%s: %w", what, err)
	}
}

// mustAffect checks that a write touched a row, else ErrNotFound.
func mustAffect(res sql.Result, what string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}
