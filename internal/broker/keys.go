package broker

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/seal"
	"github.com/qbroker/qbroker/internal/store"
	"github.com/qbroker/qbroker/internal/token"
)

// storedKey is a signing key as sealed into the store.
type storedKey struct {
	ID       string    `json:"kid"`
	Seed     []byte    `json:"seed"`
	Created  time.Time `json:"created"`
	NotAfter time.Time `json:"not_after,omitzero"`
}

// loadOrCreateSecret returns the unsealed secret name, creating n random
// bytes sealed into the store when it does not exist yet.
func (b *Broker) loadOrCreateSecret(ctx context.Context, name string, n int) ([]byte, error) {
	return loadOrCreateSealed(ctx, b.cfg.Store, b.cfg.Sealer, name, n, b.now())
}

func loadOrCreateSealed(ctx context.Context, st store.Store, sealer *seal.Sealer, name string, n int, now time.Time) ([]byte, error) {
	s, err := st.Secrets().Get(ctx, name)
	if err == nil {
		return sealer.Open(s.Blob, []byte(name))
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	v := make([]byte, n)
	if _, err := rand.Read(v); err != nil {
		return nil, err
	}
	blob, err := sealer.Seal(v, []byte(name))
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", name, err)
	}
	if err := st.Secrets().Put(ctx, core.SealedSecret{Name: name, Blob: blob, CreatedAt: now.UTC()}); err != nil {
		return nil, err
	}
	return v, nil
}

// secretAuditSigningKey is the Ed25519 seed that signs audit checkpoints.
const secretAuditSigningKey = "audit-signing-key"

// LoadAuditSigningKey returns the key that signs the audit trail's
// checkpoints, creating it (sealed) on first start. The server needs it
// before the broker exists, to open the audit sink.
func LoadAuditSigningKey(ctx context.Context, st store.Store, sealer *seal.Sealer) (ed25519.PrivateKey, error) {
	seed, err := loadOrCreateSealed(ctx, st, sealer, secretAuditSigningKey, ed25519.SeedSize, time.Now())
	if err != nil {
		return nil, fmt.Errorf("audit signing key: %w", err)
	}
	defer clear(seed)
	return ed25519.NewKeyFromSeed(seed), nil
}

func (b *Broker) putSealed(ctx context.Context, agg store.Aggregates, name string, v []byte) error {
	blob, err := b.cfg.Sealer.Seal(v, []byte(name))
	if err != nil {
		return fmt.Errorf("seal %s: %w", name, err)
	}
	return agg.Secrets().Put(ctx, core.SealedSecret{Name: name, Blob: blob, CreatedAt: b.now().UTC()})
}

func (b *Broker) loadKeyRing(ctx context.Context) (*token.KeyRing, error) {
	keys, err := b.storedKeys(ctx, b.cfg.Store)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		k, err := token.GenerateKey(b.now())
		if err != nil {
			return nil, err
		}
		if err := b.storeKey(ctx, b.cfg.Store, k); err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return token.NewKeyRing(keys)
}

// keyOverlap is how long a retired signing key stays verifiable: the
// longest job-token life plus clock leeway.
const keyOverlap = core.MaxJobTokenTTL + 30*time.Second

// storedKeys reads the signing keys in agg that can still verify a token.
// Two replicas rotating at once can each store an active key: the newest
// stays active and the others are retired from its creation, the same on
// every replica, so every token either signed stays verifiable.
func (b *Broker) storedKeys(ctx context.Context, agg store.Aggregates) ([]token.Key, error) {
	stored, err := agg.Secrets().List(ctx, secretSigningPrefix)
	if err != nil {
		return nil, err
	}
	now := b.now()
	var keys []token.Key
	for _, s := range stored {
		plain, err := b.cfg.Sealer.Open(s.Blob, []byte(s.Name))
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", s.Name, err)
		}
		var sk storedKey
		err = json.Unmarshal(plain, &sk)
		clear(plain)
		if err != nil {
			return nil, fmt.Errorf("decode %s: %w", s.Name, err)
		}
		if !sk.NotAfter.IsZero() && !now.Before(sk.NotAfter) {
			continue // retired and past its overlap: pruned below
		}
		keys = append(keys, token.Key{ID: sk.ID, Private: ed25519.NewKeyFromSeed(sk.Seed), Created: sk.Created, NotAfter: sk.NotAfter})
	}
	newest := -1
	for i, k := range keys {
		if k.NotAfter.IsZero() && (newest < 0 || k.Created.After(keys[newest].Created) ||
			(k.Created.Equal(keys[newest].Created) && k.ID > keys[newest].ID)) {
			newest = i
		}
	}
	for i := range keys {
		if i != newest && keys[i].NotAfter.IsZero() {
			keys[i].NotAfter = keys[newest].Created.Add(keyOverlap)
		}
	}
	return keys, nil
}

// reloadKeys takes up the stored keys (another replica rotated).
func (b *Broker) reloadKeys(ctx context.Context) error {
	keys, err := b.storedKeys(ctx, b.cfg.Store)
	if err != nil {
		return err
	}
	if err := b.keys.Replace(keys); err != nil {
		return fmt.Errorf("reload signing keys: %w", err)
	}
	return nil
}

// rotateKeys makes a new signing key active and retires the active one,
// in one store transaction over what is stored (not what this replica
// last saw), then tells the other replicas.
func (b *Broker) rotateKeys(ctx context.Context) (nk, old token.Key, err error) {
	now := b.now()
	if nk, err = token.GenerateKey(now); err != nil {
		return token.Key{}, token.Key{}, err
	}
	err = b.cfg.Store.Update(ctx, func(tx store.Aggregates) error {
		keys, err := b.storedKeys(ctx, tx)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if k.NotAfter.IsZero() {
				old = k
			}
		}
		if err := b.storeKey(ctx, tx, nk); err != nil {
			return err
		}
		if old.ID == "" {
			return nil
		}
		old.NotAfter = now.Add(keyOverlap)
		return b.storeKey(ctx, tx, old)
	})
	if err != nil {
		return token.Key{}, token.Key{}, fmt.Errorf("persist rotated keys: %w", err)
	}
	if err := b.reloadKeys(ctx); err != nil {
		return token.Key{}, token.Key{}, err
	}
	b.tell(ctx, "keys:")
	return nk, old, nil
}

// rotateIfDue rotates the signing key when the active one is older than
// KeyRotateEvery (the sweeper's leader calls it).
func (b *Broker) rotateIfDue(ctx context.Context) error {
	every := b.cfg.KeyRotateEvery
	if every <= 0 {
		return nil
	}
	if err := b.reloadKeys(ctx); err != nil {
		return err
	}
	active := b.keys.Keys()[0]
	if b.now().Sub(active.Created) < every {
		return nil
	}
	nk, old, err := b.rotateKeys(ctx)
	if err != nil {
		return err
	}
	return b.record(ctx, Caller{}, &audit.Event{Type: "admin", Action: "RotateKeys", Agent: "scheduler", Decision: audit.DecisionAllow,
		Reason: fmt.Sprintf("scheduled (signing_keys.rotate_every %s): active key %s, retired %s", every, nk.ID, old.ID)})
}

func (b *Broker) storeKey(ctx context.Context, agg store.Aggregates, k token.Key) error {
	v, err := json.Marshal(storedKey{ID: k.ID, Seed: k.Private.Seed(), Created: k.Created, NotAfter: k.NotAfter})
	if err != nil {
		return err
	}
	defer clear(v)
	return b.putSealed(ctx, agg, secretSigningPrefix+k.ID, v)
}

// RotateKeys makes a new signing key active. The old one stays verifiable
// until every token it signed has expired.
func (b *Broker) RotateKeys(ctx context.Context, c Caller, caller core.Token) (newKID, oldKID string, until time.Time, err error) {
	if err := requireRoot(caller); err != nil {
		return "", "", time.Time{}, err
	}
	ev := &audit.Event{Type: "admin", Action: "RotateKeys", Agent: caller.AgentID, Accessor: caller.Accessor}
	if err := b.gateAdmin(ctx, c, caller, adminOp{Action: "AdminKeys", Op: "RotateKeys", Summary: "rotate the job-token signing key"}, ev); err != nil {
		return "", "", time.Time{}, b.refuseUnlessPending(ctx, c, ev, err)
	}
	now := b.now()
	nk, old, err := b.rotateKeys(ctx)
	if err != nil {
		return "", "", time.Time{}, err
	}
	for _, kid := range b.keys.Prune(now) {
		_ = b.cfg.Store.Secrets().Delete(ctx, secretSigningPrefix+kid)
	}
	if err := b.record(ctx, c, &audit.Event{Type: "admin", Action: "RotateKeys", Agent: caller.AgentID, Accessor: caller.Accessor, Decision: "allow", Reason: "active key " + nk.ID + ", retired " + old.ID}); err != nil {
		return "", "", time.Time{}, err
	}
	return nk.ID, old.ID, old.NotAfter, nil
}

// SetProviderCredential stores a provider's root credential, sealed.
func (b *Broker) SetProviderCredential(ctx context.Context, c Caller, caller core.Token, provider, key string) error {
	if err := requireRoot(caller); err != nil {
		return err
	}
	if provider == "" || strings.ContainsAny(provider, "/ ") || key == "" {
		return core.Errorf(core.KindBadRequest, "provider name and api_key are required")
	}
	// The approver sees the key only as its audit HMAC; the same key must
	// come back with the approval.
	keyHash := b.hasher.HMAC(key)
	gev := &audit.Event{Type: "admin", Action: "SetProviderCredential", Provider: provider, Agent: caller.AgentID, Accessor: caller.Accessor}
	if err := b.gateAdmin(ctx, c, caller, adminOp{Action: "AdminProviders", Op: "SetProviderCredential", Target: provider,
		Summary: "replace the root credential of provider " + provider + " (new key " + keyHash + ")",
		Params:  map[string]string{"api_key_hmac": keyHash}}, gev); err != nil {
		return b.refuseUnlessPending(ctx, c, gev, err)
	}
	if err := b.storeCredential(ctx, provider, key); err != nil {
		return err
	}
	e := &audit.Event{Type: "admin", Action: "SetProviderCredential", Provider: provider, Agent: caller.AgentID, Accessor: caller.Accessor, Decision: "allow"}
	b.hasher.Add(e, "api_key", key)
	return b.record(ctx, c, e)
}

// Credential returns a provider's root credential (gateway use only).
func (b *Broker) Credential(ctx context.Context, provider string) (string, error) {
	b.credMu.RLock()
	k, ok := b.creds[provider]
	b.credMu.RUnlock()
	if ok {
		return k, nil
	}
	name := fmt.Sprintf(secretProviderFmt, provider)
	s, err := b.cfg.Store.Secrets().Get(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return "", core.Errorf(core.KindNotFound, "no credential configured for provider %q", provider)
	}
	if err != nil {
		return "", err
	}
	plain, err := b.cfg.Sealer.Open(s.Blob, []byte(name))
	if err != nil {
		return "", fmt.Errorf("open provider credential: %w", err)
	}
	k = string(plain)
	clear(plain)
	b.credMu.Lock()
	b.creds[provider] = k
	b.credMu.Unlock()
	return k, nil
}

// Sweep deletes what has expired — broker tokens, secret IDs, job grants
// (an hour after expiry) — and drops retired signing keys whose tokens can
// no longer be valid. Run it periodically; it is idempotent.
func (b *Broker) Sweep(ctx context.Context) error {
	now := b.now()
	var errs []error
	if _, err := b.cfg.Store.Tokens().DeleteExpired(ctx, now); err != nil {
		errs = append(errs, fmt.Errorf("sweep tokens: %w", err))
	}
	if _, err := b.cfg.Store.SecretIDs().DeleteExpired(ctx, now); err != nil {
		errs = append(errs, fmt.Errorf("sweep secret ids: %w", err))
	}
	if _, err := b.cfg.Store.Grants().DeleteExpired(ctx, now.Add(-time.Hour)); err != nil {
		errs = append(errs, fmt.Errorf("sweep grants: %w", err))
	}
	if _, err := b.ExpireApprovals(ctx); err != nil {
		errs = append(errs, fmt.Errorf("sweep approvals: %w", err))
	}
	if _, err := b.ReleaseExpiredReservations(ctx); err != nil {
		errs = append(errs, fmt.Errorf("sweep reservations: %w", err))
	}
	if _, err := b.ExpireApprovals(ctx); err != nil {
		errs = append(errs, fmt.Errorf("sweep approvals: %w", err))
	}
	if err := b.rotateIfDue(ctx); err != nil {
		errs = append(errs, fmt.Errorf("scheduled key rotation: %w", err))
	}
	for _, kid := range b.keys.Prune(now) {
		if err := b.cfg.Store.Secrets().Delete(ctx, secretSigningPrefix+kid); err != nil && !errors.Is(err, store.ErrNotFound) {
			errs = append(errs, fmt.Errorf("sweep signing key %s: %w", kid, err))
		}
	}
	return errors.Join(errs...)
}

// storeCredential seals and stores a provider root credential and makes it
// the one in use.
func (b *Broker) storeCredential(ctx context.Context, provider, key string) error {
	if err := b.storeRoot(ctx, provider, key); err != nil {
		return err
	}
	b.upstreams.mu.Lock()
	for k := range b.upstreams.entries {
		if strings.HasPrefix(k, provider+"/") {
			delete(b.upstreams.entries, k) // minted from the old root
		}
	}
	b.upstreams.mu.Unlock()
	return nil
}

// storeRoot seals and stores a provider root credential and puts it in use
// (without touching the upstream cache: Upstream calls it under its lock
// when a provider rotates the root).
func (b *Broker) storeRoot(ctx context.Context, provider, key string) error {
	if err := b.putSealed(ctx, b.cfg.Store, fmt.Sprintf(secretProviderFmt, provider), []byte(key)); err != nil {
		return err
	}
	b.credMu.Lock()
	b.creds[provider] = key
	b.credMu.Unlock()
	b.tell(ctx, "cred:"+provider)
	return nil
}
