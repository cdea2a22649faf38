package broker

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/qbroker/qbroker/internal/core"
)

// LoginLimits protect the login endpoints. FailuresPerMinute is on by
// default (brute-force protection that never slows a legitimate agent);
// the overall per-source and per-role rates are off unless configured.
type LoginLimits struct {
	FailuresPerMinute float64 // failed logins allowed per source address per minute (burst the same); 0 = default 10, <0 = off
	PerSource         float64 // logins per second per source address; 0 = unlimited
	PerRole           float64 // logins per second per role; 0 = unlimited
}

// limiters is a bounded set of token buckets keyed by string.
type limiters struct {
	mu    sync.Mutex
	m     map[string]*rate.Limiter
	limit rate.Limit
	burst int
	max   int // keys kept (maxLimiterKeys)
	// overflow is the one bucket every new key shares while the set is
	// full of buckets that still carry state: a flood from many addresses
	// is limited together, and never resets anyone's bucket (clearing the
	// set would let an attacker with enough addresses lift its own
	// lockout).
	overflow *rate.Limiter
}

const maxLimiterKeys = 50_000

func newLimiters(perSecond float64, burst int) *limiters {
	if perSecond <= 0 {
		return nil
	}
	b := max(1, burst)
	return &limiters{m: map[string]*rate.Limiter{}, limit: rate.Limit(perSecond), burst: b, max: maxLimiterKeys,
		overflow: rate.NewLimiter(rate.Limit(perSecond), b)}
}

func (l *limiters) get(key string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.m[key]
	if !ok {
		if len(l.m) >= l.max {
			// Forget buckets that have refilled: they carry no state.
			now := time.Now()
			for k, v := range l.m {
				if v.TokensAt(now) >= float64(l.burst) {
					delete(l.m, k)
				}
			}
			if len(l.m) >= l.max {
				return l.overflow
			}
		}
		lim = rate.NewLimiter(l.limit, l.burst)
		l.m[key] = lim
	}
	return lim
}

// sourceBucket is the key a client address is limited under: an IPv4
// address (IPv4-mapped IPv6 unmapped) as itself, an IPv6 address by its
// /64, since one host commonly holds a whole /64 and could otherwise take
// a fresh bucket per address. Anything else (no address) as given.
func sourceBucket(host string) string {
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}

// loginGuard applies LoginLimits.
type loginGuard struct {
	failures, perSource, perRole *limiters
}

func newLoginGuard(l LoginLimits) *loginGuard {
	fpm := l.FailuresPerMinute
	if fpm == 0 {
		fpm = 10
	}
	g := &loginGuard{perSource: newLimiters(l.PerSource, int(math.Ceil(2*l.PerSource))), perRole: newLimiters(l.PerRole, int(math.Ceil(2*l.PerRole)))}
	if fpm > 0 {
		g.failures = newLimiters(fpm/60, int(math.Ceil(fpm)))
	}
	return g
}

func rateLimited(what string, lim *rate.Limiter, now time.Time) error {
	wait := retryAfter(lim, now)
	return core.Wrap(core.KindRateLimited, &RetryHint{After: wait}, fmt.Sprintf("too many %s; retry after %ds", what, int(wait/time.Second)))
}

// RetryHint is the cause inside a rate refusal that knows when a retry can
// succeed; the API sends it as Retry-After.
type RetryHint struct{ After time.Duration }

func (h *RetryHint) Error() string { return "retry after " + h.RetryAfterSeconds() + "s" }

// RetryAfterSeconds is the Retry-After header's value: whole seconds,
// rounded up, at least 1.
func (h *RetryHint) RetryAfterSeconds() string {
	return strconv.Itoa(max(1, int(math.Ceil(h.After.Seconds()))))
}

// retryAfter is how long until lim has a token, in whole seconds (at least 1).
func retryAfter(lim *rate.Limiter, now time.Time) time.Duration {
	wait := time.Duration((1 - lim.TokensAt(now)) / float64(lim.Limit()) * float64(time.Second))
	return time.Duration(math.Ceil(max(wait, time.Second).Seconds())) * time.Second
}

// admit is called before a login from source is processed.
func (g *loginGuard) admit(source string, now time.Time) error {
	source = sourceBucket(source)
	if g.failures != nil {
		if lim := g.failures.get(source); lim.TokensAt(now) < 1 {
			return rateLimited(fmt.Sprintf("failed logins from %s", source), lim, now)
		}
	}
	if g.perSource != nil {
		if lim := g.perSource.get(source); !lim.AllowN(now, 1) {
			return rateLimited(fmt.Sprintf("logins from %s", source), lim, now)
		}
	}
	return nil
}

// admitRole is called once the login's role is known.
func (g *loginGuard) admitRole(role string, now time.Time) error {
	if g.perRole != nil {
		if lim := g.perRole.get(role); !lim.AllowN(now, 1) {
			return rateLimited(fmt.Sprintf("logins for role %q", role), lim, now)
		}
	}
	return nil
}

// failed records a failed login from source.
func (g *loginGuard) failed(source string, now time.Time) {
	source = sourceBucket(source)
	if g.failures != nil {
		g.failures.get(source).AllowN(now, 1)
	}
}
