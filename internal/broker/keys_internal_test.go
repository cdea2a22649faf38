package broker

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/policy"
	"github.com/qbroker/qbroker/internal/provider"
	"github.com/qbroker/qbroker/internal/seal"
	"github.com/qbroker/qbroker/internal/store/sqlstore"
	"github.com/qbroker/qbroker/internal/token"
)

// keyBrokers starts n brokers on one store (replicas without the
// broadcast: what each sees is what the store holds), with clock.
func keyBrokers(t *testing.T, n int, cfg func(*Config)) ([]*Broker, string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlstore.OpenSQLite(ctx, filepath.Join(dir, "q.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sealer, _ := seal.New(ctx, zeroKEK{})
	pol, _ := policy.New(policy.DefaultFiles())
	var out []*Broker
	for i := range n {
		path := filepath.Join(dir, "audit"+string(rune('a'+i))+".log")
		sink, err := audit.OpenFile(path, audit.FileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sink.Close() })
		c := Config{Store: st, Sealer: sealer, Policy: pol, Audit: sink, Issuer: "http://b", Audience: "g", AuditPath: path}
		if cfg != nil {
			cfg(&c)
		}
		b, err := New(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out, dir
}

// Scheduled rotation: the sweep rotates the signing key once it is older
// than KeyRotateEvery, not before, and audits it; the retired key stays
// in the JWKS for its overlap.
func TestScheduledKeyRotation(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	bs, dir := keyBrokers(t, 1, func(c *Config) { c.KeyRotateEvery = time.Hour; c.Now = clock })
	b := bs[0]
	ctx := context.Background()
	first := b.keys.ActiveKeyID()
	advance(59 * time.Minute)
	if err := b.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if b.keys.ActiveKeyID() != first {
		t.Fatal("rotated before the key was an hour old")
	}
	advance(2 * time.Minute)
	if err := b.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	second := b.keys.ActiveKeyID()
	if second == first {
		t.Fatal("a key older than rotate_every was not rotated")
	}
	if jwks := string(b.keys.JWKS()); !strings.Contains(jwks, first) || !strings.Contains(jwks, second) {
		t.Fatalf("the JWKS after rotation does not hold both keys: %s", jwks)
	}
	if err := b.Sweep(ctx); err != nil || b.keys.ActiveKeyID() != second {
		t.Fatalf("a second sweep rotated again: %v", err)
	}
	evs, err := audit.ReadEvents(filepath.Join(dir, "audita.log"), audit.Filter{Type: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Agent != "scheduler" || !strings.Contains(evs[0].Reason, "scheduled") || !strings.Contains(evs[0].Reason, second) {
		t.Fatalf("the scheduled rotation's audit: %+v", evs)
	}
}

// Two replicas rotate; each rotation reads what is stored, so the store
// keeps one active key, a replica that reloads signs with it, and every
// key either replica signed with stays verifiable.
func TestRotationAcrossReplicas(t *testing.T) {
	bs, _ := keyBrokers(t, 2, nil)
	a, b := bs[0], bs[1]
	ctx := context.Background()
	orig := a.keys.ActiveKeyID()
	if b.keys.ActiveKeyID() != orig {
		t.Fatal("two brokers on one store start with different keys")
	}
	ka, _, err := a.rotateKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// b has not heard (no broadcast on SQLite): it still signs with orig,
	// and its rotation retires what the store holds as active (ka).
	kb, old, err := b.rotateKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if old.ID != ka.ID {
		t.Fatalf("b's rotation retired %s, want the stored active key %s", old.ID, ka.ID)
	}
	if err := a.reloadKeys(ctx); err != nil {
		t.Fatal(err)
	}
	for name, br := range map[string]*Broker{"a": a, "b": b} {
		if br.keys.ActiveKeyID() != kb.ID {
			t.Fatalf("replica %s signs with %s, want %s", name, br.keys.ActiveKeyID(), kb.ID)
		}
		for _, kid := range []string{orig, ka.ID, kb.ID} {
			if _, err := br.keys.Key(ctx, kid); err != nil {
				t.Fatalf("replica %s cannot verify key %s: %v", name, kid, err)
			}
		}
	}
}

// Two active keys in the store (two rotations that raced): every replica
// makes the newest active and keeps the other verifiable for the overlap.
func TestTwoActiveKeysResolveTheSameEverywhere(t *testing.T) {
	bs, _ := keyBrokers(t, 2, nil)
	a, b := bs[0], bs[1]
	ctx := context.Background()
	now := time.Now()
	older, _ := token.GenerateKey(now.Add(-time.Second))
	newer, _ := token.GenerateKey(now)
	for _, k := range []token.Key{older, newer} {
		if err := a.storeKey(ctx, a.cfg.Store, k); err != nil {
			t.Fatal(err)
		}
	}
	for name, br := range map[string]*Broker{"a": a, "b": b} {
		if err := br.reloadKeys(ctx); err != nil {
			t.Fatalf("replica %s: %v", name, err)
		}
		if br.keys.ActiveKeyID() != newer.ID {
			t.Fatalf("replica %s: active %s, want the newest %s", name, br.keys.ActiveKeyID(), newer.ID)
		}
		if _, err := br.keys.Key(ctx, older.ID); err != nil {
			t.Fatalf("replica %s: the other active key is not verifiable: %v", name, err)
		}
	}
}

// A rejected upstream credential is dropped only if it is still the cached
// one (a fresh one minted meanwhile stays), and at most once per key per
// forgetEvery, so that provoked refusals cannot make the broker mint in a
// loop.
func TestForgetUpstream(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	bs, _ := keyBrokers(t, 1, func(c *Config) { c.Now = clock })
	b := bs[0]
	old := provider.Credential{AccessKeyID: "ASIAOLD", Secret: "s1", Expires: now.Add(time.Hour)}
	put := func(c provider.Credential) {
		b.upstreams.mu.Lock()
		if b.upstreams.entries == nil {
			b.upstreams.entries = map[string]provider.Credential{}
		}
		b.upstreams.entries["aws/lab"] = c
		b.upstreams.mu.Unlock()
	}
	put(old)
	if b.ForgetUpstream("aws", "lab", provider.Credential{AccessKeyID: "ASIAOTHER", Secret: "s2"}.Digest()) {
		t.Fatal("a credential that is not the cached one was dropped")
	}
	if !b.ForgetUpstream("aws", "lab", old.Digest()) {
		t.Fatal("the rejected cached credential was not dropped")
	}
	put(old) // minted again and rejected again at once
	if b.ForgetUpstream("aws", "lab", old.Digest()) {
		t.Fatal("dropped twice within forgetEvery")
	}
	mu.Lock()
	now = now.Add(forgetEvery + time.Second)
	mu.Unlock()
	if !b.ForgetUpstream("aws", "lab", old.Digest()) {
		t.Fatal("not dropped after forgetEvery")
	}
}
