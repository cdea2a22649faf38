package broker

import (
	"context"
	"errors"
	"time"

	"github.com/qbroker/qbroker/internal/store"
)

// Health is the broker's state for /v1/sys/health.
type Health struct {
	Initialized bool
	StoreOK     bool
	AuditOK     bool
	Draining    bool
}

// Ready reports whether the broker should take traffic.
func (h Health) Ready() bool { return h.Initialized && h.StoreOK && h.AuditOK && !h.Draining }

// Health checks the store with one bounded read, and reports whether the
// last audit write failed and whether the broker is draining.
// The store's answer is reused for a second, so frequent load-balancer
// probes cost one read a second.
func (b *Broker) Health(ctx context.Context) Health {
	h := Health{AuditOK: !b.auditDown.Load(), Draining: b.draining.Load()}
	if c := b.healthCache.Load(); c != nil && b.now().Sub(c.at) < time.Second {
		h.Initialized, h.StoreOK = c.initialized, c.storeOK
		return h
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := b.cfg.Store.Secrets().Get(ctx, secretInitialized)
	switch {
	case err == nil:
		h.Initialized, h.StoreOK = true, true
	case errors.Is(err, store.ErrNotFound):
		h.StoreOK = true
	}
	b.healthCache.Store(&storeHealth{at: b.now(), initialized: h.Initialized, storeOK: h.StoreOK})
	return h
}

type storeHealth struct {
	at                   time.Time
	initialized, storeOK bool
}

// Drain marks the broker as going away: health answers 503 from now on,
// while requests in flight (and those still routed here) are served.
func (b *Broker) Drain() { b.draining.Store(true) }
