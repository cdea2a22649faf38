package broker

import (
	"context"
	"strings"

	"github.com/qbroker/qbroker/internal/store"
)

// Replicas share one database (PostgreSQL). Each keeps caches in memory —
// broker tokens, roles, the hardware freeze, anomaly holds, provider
// credentials — so a change one replica makes is announced to the others
// through the store's Broadcaster, and each drops or reloads what it
// cached. Messages carry store keys only (token hashes, names), never
// secrets:
//
//	tok:<hash>      a broker token was revoked or renewed
//	agent:<id>      every token of an agent was revoked
//	role:<name>     a role changed or was deleted
//	freeze          the hardware freeze changed
//	hold:<agent>    an anomaly hold was placed or lifted
//	cred:<provider> a provider root credential changed
//	appr            an approval changed (wakes long polls)
//
// When the subscription (re)starts, messages may have been missed, so
// everything cached is dropped and reloaded.

// tell announces msg to the other replicas (best effort: the change is
// already committed; a lost message is covered by the reset on reconnect).
func (b *Broker) tell(ctx context.Context, msg string) {
	bc, ok := b.cfg.Store.(store.Broadcaster)
	if !ok {
		return
	}
	if err := bc.Publish(context.WithoutCancel(ctx), msg); err != nil {
		b.log.Warn("replicas: could not announce a change", "kind", strings.SplitN(msg, ":", 2)[0], "err", err)
	}
}

// Listen applies the other replicas' announcements until ctx ends. The
// server runs it for the broker's lifetime; with SQLite it returns at once.
func (b *Broker) Listen(ctx context.Context) error {
	bc, ok := b.cfg.Store.(store.Broadcaster)
	if !ok {
		return nil
	}
	if b.sharing() {
		go b.flushShares(ctx)
	}
	return bc.Subscribe(ctx, func(msg string) { b.heard(ctx, msg) }, func() { b.resetShared(ctx) })
}

// heard applies one announcement.
func (b *Broker) heard(ctx context.Context, msg string) {
	kind, key, _ := strings.Cut(msg, ":")
	switch kind {
	case "tok":
		b.tokens.drop(key)
	case "agent":
		b.tokens.dropAgent(key)
	case "role":
		b.roles.drop(key)
	case "freeze":
		if err := b.reloadFreeze(ctx); err != nil {
			b.log.Warn("replicas: reload the hardware freeze", "err", err)
		}
	case "hold":
		b.holds.Delete(key)
		if err := b.loadHolds(ctx); err != nil {
			b.log.Warn("replicas: reload anomaly holds", "err", err)
		}
	case "cred":
		b.credMu.Lock()
		delete(b.creds, key)
		b.credMu.Unlock()
		b.upstreams.mu.Lock()
		for k := range b.upstreams.entries {
			if strings.HasPrefix(k, key+"/") {
				delete(b.upstreams.entries, k)
			}
		}
		b.upstreams.mu.Unlock()
	case "appr":
		b.approvals.fire()
	case "anom":
		b.heardShares(key)
	case "keys":
		if err := b.reloadKeys(ctx); err != nil {
			b.log.Warn("replicas: reload signing keys", "err", err)
		}
	}
}

// resetShared drops every cache another replica could have made stale.
func (b *Broker) resetShared(ctx context.Context) {
	b.tokens.reset()
	b.roles.reset()
	b.credMu.Lock()
	clear(b.creds)
	b.credMu.Unlock()
	b.upstreams.mu.Lock()
	clear(b.upstreams.entries)
	b.upstreams.mu.Unlock()
	b.holds.Clear()
	if err := b.loadHolds(ctx); err != nil {
		b.log.Warn("replicas: reload anomaly holds", "err", err)
	}
	if err := b.reloadFreeze(ctx); err != nil {
		b.log.Warn("replicas: reload the hardware freeze", "err", err)
	}
	if err := b.reloadKeys(ctx); err != nil {
		b.log.Warn("replicas: reload signing keys", "err", err)
	}
	b.approvals.fire()
}

// reloadFreeze reads the hardware freeze from the store.
func (b *Broker) reloadFreeze(ctx context.Context) error {
	b.freeze.Store(nil)
	return b.loadFreeze(ctx)
}
