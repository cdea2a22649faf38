package jwtauth

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func rotationSetup(t *testing.T, old testKey) (*fakeClock, *testIdP, *Authenticator) {
	t.Helper()
	clk := newClock()
	idp := newIdP(t, old)
	a := newAuth(t, []IssuerConfig{{Name: "corp", Issuer: idp.srv.URL, DiscoveryURL: idp.srv.URL,
		MinRefreshInterval: 30 * time.Second}},
		[]RoleConfig{{Name: "r", Issuer: "corp", BoundAudiences: []string{"qbroker"}}}, clk)
	return clk, idp, a
}

// TestKeyRotation: the IdP rotates its signing key; the same Authenticator
// accepts the new key once a refresh is allowed, and refuses the retired one.
func TestKeyRotation(t *testing.T) {
	oldKey, newKeyV := newKey(t, "2026-10", jose.RS256), newKey(t, "2026-11", jose.ES256)
	clk, idp, a := rotationSetup(t, oldKey)
	ctx := context.Background()
	if _, err := a.Login(ctx, "r", sign(t, oldKey, claimsAt(idp.srv.URL, clk.Now()))); err != nil {
		t.Fatal(err)
	}
	idp.publish(newKeyV)
	clk.Advance(10 * time.Second)
	// Inside MinRefreshInterval the new kid is unknown and no fetch is made.
	_, err := a.Login(ctx, "r", sign(t, newKeyV, claimsAt(idp.srv.URL, clk.Now())))
	wantRefused(t, err, ReasonUnknownKey)
	if n := idp.fetches.Load(); n != 1 {
		t.Fatalf("fetches = %d, want 1 (rate limited)", n)
	}
	clk.Advance(20 * time.Second)
	if _, err := a.Login(ctx, "r", sign(t, newKeyV, claimsAt(idp.srv.URL, clk.Now()))); err != nil {
		t.Fatalf("new key after rotation: %v", err)
	}
	if n := idp.fetches.Load(); n != 2 {
		t.Fatalf("fetches = %d, want 2", n)
	}
	// The retired key is gone from the JWKS, so its tokens are refused.
	_, err = a.Login(ctx, "r", sign(t, oldKey, claimsAt(idp.srv.URL, clk.Now())))
	wantRefused(t, err, ReasonUnknownKey)
}

// TestUnknownKidFloodIsRateLimited: 100 concurrent logins with unknown kids make
// at most one JWKS fetch per MinRefreshInterval; concurrent callers share it.
func TestUnknownKidFloodIsRateLimited(t *testing.T) {
	known := newKey(t, "known", jose.ES256)
	clk, idp, a := rotationSetup(t, known)
	idp.delay = 50 * time.Millisecond // keep the fetch in flight while the flood arrives
	ctx := context.Background()
	if _, err := a.Login(ctx, "r", sign(t, known, claimsAt(idp.srv.URL, clk.Now()))); err != nil {
		t.Fatal(err)
	}
	forger := newKey(t, "", jose.ES256)
	flood := func(mk func(i int) string) []error {
		errs := make([]error, 100)
		var wg sync.WaitGroup
		for i := range errs {
			raw := mk(i)
			wg.Go(func() { _, errs[i] = a.Login(ctx, "r", raw) })
		}
		wg.Wait()
		return errs
	}
	forged := func(i int) string {
		forger.kid = fmt.Sprintf("forged-%d", i)
		return sign(t, forger, claimsAt(idp.srv.URL, clk.Now()))
	}

	// Within MinRefreshInterval of the first fetch: no fetch at all.
	for _, err := range flood(forged) {
		wantRefused(t, err, ReasonUnknownKey)
	}
	if n := idp.fetches.Load(); n != 1 {
		t.Fatalf("fetches = %d after a flood inside the interval, want 1", n)
	}
	// Past the interval: exactly one more fetch for the whole flood.
	clk.Advance(31 * time.Second)
	for _, err := range flood(forged) {
		wantRefused(t, err, ReasonUnknownKey)
	}
	if n := idp.fetches.Load(); n != 2 {
		t.Fatalf("fetches = %d after a flood past the interval, want 2", n)
	}
	// A real rotation under load: 100 concurrent logins with the new kid, one
	// fetch, and every login succeeds (the waiters share the fetch's result).
	rotated := newKey(t, "rotated", jose.EdDSA)
	idp.publish(known, rotated)
	clk.Advance(31 * time.Second)
	for _, err := range flood(func(int) string { return sign(t, rotated, claimsAt(idp.srv.URL, clk.Now())) }) {
		if err != nil {
			t.Fatalf("login with the rotated key: %v", err)
		}
	}
	if n := idp.fetches.Load(); n != 3 {
		t.Fatalf("fetches = %d after the rotation flood, want 3", n)
	}
}

// TestScheduledRefresh: with on-demand refresh rate-limited away, the scheduled
// refresh alone picks up a rotated key.
func TestScheduledRefresh(t *testing.T) {
	clk := newClock()
	oldKey, next := newKey(t, "a", jose.RS256), newKey(t, "b", jose.RS256)
	idp := newIdP(t, oldKey)
	a := newAuth(t, []IssuerConfig{{Name: "corp", Issuer: idp.srv.URL, JWKSURL: idp.srv.URL + "/jwks",
		RefreshInterval: 20 * time.Millisecond, MinRefreshInterval: time.Hour}},
		[]RoleConfig{{Name: "r", Issuer: "corp", BoundAudiences: []string{"qbroker"}}}, clk)
	ctx := context.Background()
	if _, err := a.Login(ctx, "r", sign(t, oldKey, claimsAt(idp.srv.URL, clk.Now()))); err != nil {
		t.Fatal(err)
	}
	idp.publish(next)
	before := idp.fetches.Load()
	deadline := time.Now().Add(3 * time.Second)
	for idp.fetches.Load() < before+2 { // one complete refresh after publish
		if time.Now().After(deadline) {
			t.Fatal("no scheduled refresh")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := a.Login(ctx, "r", sign(t, next, claimsAt(idp.srv.URL, clk.Now()))); err != nil {
		t.Fatalf("rotated key after scheduled refresh: %v", err)
	}
	a.Close()
	a.Close() // idempotent
	stopped := idp.fetches.Load()
	time.Sleep(80 * time.Millisecond)
	if n := idp.fetches.Load(); n != stopped {
		t.Fatalf("refreshes continued after Close: %d → %d", stopped, n)
	}
}
