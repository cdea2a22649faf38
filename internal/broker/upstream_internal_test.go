package broker

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/policy"
	"github.com/qbroker/qbroker/internal/provider"
	"github.com/qbroker/qbroker/internal/seal"
	"github.com/qbroker/qbroker/internal/store/sqlstore"
)

// rotatingMinter stands for a provider whose refresh token rotates on
// every use (Rigetti QCS): each Mint needs the current root and returns
// the next one.
type rotatingMinter struct {
	mints atomic.Int32
	mu    sync.Mutex
	want  string
	ttl   time.Duration
	now   func() time.Time
}

func (m *rotatingMinter) Mint(_ context.Context, root, role string) (provider.Credential, provider.Scope, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if root != m.want {
		return provider.Credential{}, provider.Scope{}, "", errInvalidGrant
	}
	m.mints.Add(1)
	m.want = root + "+"
	return provider.Credential{Secret: "access-" + role, Expires: m.now().Add(m.ttl)}, provider.Scope{Prefix: role}, m.want, nil
}

var errInvalidGrant = core.Errorf(core.KindUnavailable, "invalid_grant")

// The broker caches upstream credentials until shortly before expiry
// (concurrent callers share one mint), and stores a rotated root, sealed,
// so that the next mint — even after a restart — uses it.
func TestUpstreamCacheAndRotation(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlstore.OpenSQLite(ctx, filepath.Join(dir, "q.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sealer, _ := seal.New(ctx, zeroKEK{})
	pol, _ := policy.New(policy.DefaultFiles())
	sink, _ := audit.OpenFile(filepath.Join(dir, "audit.log"), audit.FileOptions{})
	defer sink.Close()
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	m := &rotatingMinter{want: "refresh-1", ttl: time.Hour, now: now}
	cfg := Config{Store: st, Sealer: sealer, Policy: pol, Audit: sink, Issuer: "http://b", Audience: "g", Now: now,
		Minters: map[string]provider.Minter{"rigetti": m}}
	b, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	root := core.Token{AgentID: "root", Policies: []string{PolicyRoot}}
	if err := b.SetProviderCredential(ctx, Caller{}, root, "rigetti", "refresh-1"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			c, s, err := b.Upstream(ctx, "rigetti", "lab")
			if err != nil || c.Secret != "access-lab" || s.Prefix != "lab" {
				t.Errorf("Upstream: %+v %+v %v", c, s, err)
			}
		})
	}
	wg.Wait()
	if n := m.mints.Load(); n != 1 {
		t.Fatalf("16 concurrent callers minted %d times, want 1", n)
	}
	if got, _ := b.Credential(ctx, "rigetti"); got != "refresh-1+" {
		t.Fatalf("root after rotation = %q, want the rotated refresh-1+", got)
	}
	// Shortly before expiry the credential is replaced with the rotated root.
	offset.Store(int64(56 * time.Minute))
	if _, _, err := b.Upstream(ctx, "rigetti", "lab"); err != nil || m.mints.Load() != 2 {
		t.Fatalf("refresh before expiry: %v after %d mints", err, m.mints.Load())
	}
	// A restart reads the latest rotation from the store.
	b2, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b2.Upstream(ctx, "rigetti", "other"); err != nil {
		t.Fatalf("after restart: %v (the rotated root was not persisted)", err)
	}
	if _, _, err := b2.Upstream(ctx, "nobody", "lab"); err == nil {
		t.Fatal("a provider without a minter gave a credential")
	}
}
