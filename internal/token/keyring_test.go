package token

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestGenerateKeyID(t *testing.T) {
	k, err := GenerateKey(t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(k.ID) != 16 || k.ID != KeyID(k.Public()) || !k.NotAfter.IsZero() || !k.Created.Equal(t0) {
		t.Fatalf("bad key %q", k.ID)
	}
}

func TestNewKeyRingValidation(t *testing.T) {
	a, _ := GenerateKey(t0)
	b, _ := GenerateKey(t0)
	retiredB := b
	retiredB.NotAfter = t0.Add(time.Hour)
	wrongID := a
	wrongID.ID = b.ID
	short := a
	short.Private = short.Private[:10]
	for name, keys := range map[string][]Key{
		"empty":      nil,
		"two active": {a, b},
		"no active":  {retiredB},
		"wrong id":   {wrongID},
		"short key":  {short},
		"duplicate":  {a, a},
	} {
		if _, err := NewKeyRing(keys); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	r, err := NewKeyRing([]Key{retiredB, a})
	if err != nil {
		t.Fatal(err)
	}
	if r.ActiveKeyID() != a.ID || len(r.Keys()) != 2 {
		t.Fatal("ring contents wrong")
	}
}

func TestRotationOverlapAndPrune(t *testing.T) {
	wall := &clock{t0}
	r := newRing(t, t0)
	r.now = wall.Now
	oldID := r.ActiveKeyID()
	raw, _ := r.Sign(goodClaims(t0))
	v := newVerifier(t, r, wall)

	if _, _, err := r.Rotate(t0, 0); err == nil {
		t.Fatal("zero overlap accepted")
	}
	newKey, retired, err := r.Rotate(t0.Add(time.Minute), 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if retired.ID != oldID || !retired.NotAfter.Equal(t0.Add(11*time.Minute)) || newKey.ID == oldID || r.ActiveKeyID() != newKey.ID {
		t.Fatalf("rotate returned new=%s retired=%s notAfter=%s", newKey.ID, retired.ID, retired.NotAfter)
	}

	// The old token still verifies within its own lifetime.
	wall.t = t0.Add(90 * time.Second)
	if _, err := v.Verify(context.Background(), raw); err != nil {
		t.Fatalf("pre-rotation token refused during overlap: %v", err)
	}
	// New tokens are signed by the new key and verify.
	c := goodClaims(wall.t)
	raw2, _ := r.Sign(c)
	if !strings.Contains(string(mustHeader(t, raw2)), newKey.ID) {
		t.Fatal("new token not signed with the new key")
	}
	if _, err := v.Verify(context.Background(), raw2); err != nil {
		t.Fatal(err)
	}

	// A token signed by the retired key with a long exp (as if the key leaked)
	// stops verifying at NotAfter even before Prune.
	w := goodClaims(t0.Add(9 * time.Minute)).wire()
	leaked := signWith(t, retired.Private, retired.ID, w)
	wall.t = t0.Add(10 * time.Minute)
	if _, err := v.Verify(context.Background(), leaked); err != nil {
		t.Fatalf("before NotAfter: %v", err)
	}
	wall.t = t0.Add(11 * time.Minute)
	if _, err := v.Verify(context.Background(), leaked); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("at NotAfter before prune: got %v, want ErrUnknownKey", err)
	}

	// Prune before NotAfter drops nothing; after, drops the old key.
	if ids := r.Prune(t0.Add(10 * time.Minute)); len(ids) != 0 {
		t.Fatalf("pruned early: %v", ids)
	}
	if !strings.Contains(string(r.JWKS()), oldID) {
		t.Fatal("retired key missing from JWKS during overlap")
	}
	ids := r.Prune(t0.Add(11 * time.Minute))
	if len(ids) != 1 || ids[0] != oldID {
		t.Fatalf("pruned %v", ids)
	}
	wall.t = t0.Add(2 * time.Minute) // even with a clock inside the token's life
	if _, err := v.Verify(context.Background(), raw); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("after prune: got %v, want ErrUnknownKey", err)
	}
	if strings.Contains(string(r.JWKS()), oldID) || len(r.Keys()) != 1 {
		t.Fatal("pruned key still published")
	}
}

func mustHeader(t *testing.T, raw string) []byte {
	t.Helper()
	var hdr map[string]any
	b, _ := jsonSegment(raw, 0)
	if err := json.Unmarshal(b, &hdr); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestKeysAreCopies(t *testing.T) {
	r := newRing(t, t0)
	ks := r.Keys()
	clear(ks[0].Private)
	if _, err := r.Sign(goodClaims(t0)); err != nil {
		t.Fatal(err)
	}
	raw, _ := r.Sign(goodClaims(t0))
	if _, err := newVerifier(t, r, &clock{t0}).Verify(context.Background(), raw); err != nil {
		t.Fatalf("mutating Keys() result broke the ring: %v", err)
	}
	j := r.JWKS()
	j[0] = 'X'
	if r.JWKS()[0] != '{' {
		t.Fatal("JWKS returns shared bytes")
	}
}

func TestJWKSHasNoPrivateMaterial(t *testing.T) {
	r := newRing(t, t0)
	if _, _, err := r.Rotate(t0, time.Hour); err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(r.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 {
		t.Fatalf("%d keys", len(set.Keys))
	}
	for _, k := range set.Keys {
		if _, ok := k["d"]; ok {
			t.Fatal("JWKS contains d")
		}
		if k["kty"] != "OKP" || k["crv"] != "Ed25519" || k["alg"] != "EdDSA" || k["use"] != "sig" || k["kid"] == "" {
			t.Fatalf("bad jwk %v", k)
		}
		if len(k) != 6 {
			t.Fatalf("unexpected members in jwk: %v", k)
		}
	}
	for _, key := range r.Keys() {
		seed := key.Private.Seed()
		for _, enc := range []string{b64raw(seed), b64raw(key.Private)} {
			if strings.Contains(string(r.JWKS()), enc[:20]) {
				t.Fatal("private key bytes in JWKS")
			}
		}
	}
}

func TestKeyRingConcurrent(t *testing.T) {
	r := newRing(t, t0)
	v := newVerifier(t, r, &clock{t0})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 20 {
				if i == 0 && j%5 == 0 {
					if _, _, err := r.Rotate(t0, time.Hour); err != nil {
						errs <- err
					}
					r.Prune(t0)
					_ = r.JWKS()
					continue
				}
				raw, err := r.Sign(goodClaims(t0))
				if err != nil {
					errs <- err
					continue
				}
				if _, err := v.Verify(context.Background(), raw); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
