package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/store"
)

// Consume: uses are counted and exhausted, expiry is enforced, and a
// secret ID is only good for its own role.
func testConsume(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.Roles().Put(c, sampleRole("demo")), "Put role")
	must(t, s.Roles().Put(c, sampleRole("other")), "Put role")
	ids := s.SecretIDs()

	_, err := ids.Consume(c, "demo", "missing", now())
	wantErr(t, err, store.ErrNotFound, "Consume unknown hash")

	// Two uses: two logins, then nothing.
	must(t, ids.Create(c, sampleSecretID("demo", "two", 2, time.Time{})), "Create two-use")
	// The wrong role is refused and takes no use.
	_, err = ids.Consume(c, "other", "two", now())
	wantErr(t, err, store.ErrNotFound, "Consume with the wrong role")
	got, err := ids.Consume(c, "demo", "two", now())
	must(t, err, "first use")
	if got.UsesLeft != 2 {
		t.Fatalf("first use: UsesLeft %d, want 2 (as before this use)", got.UsesLeft)
	}
	got, err = ids.Consume(c, "demo", "two", now())
	must(t, err, "second use")
	if got.UsesLeft != 1 {
		t.Fatalf("second use: UsesLeft %d, want 1", got.UsesLeft)
	}
	_, err = ids.Consume(c, "demo", "two", now())
	if !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrExhausted) {
		t.Fatalf("third use of a two-use secret ID: got %v, want ErrNotFound or ErrExhausted", err)
	}
	// Its last use deleted it: its accessor is gone too.
	wantErr(t, ids.DeleteByAccessor(c, "demo", "acc-two"), store.ErrNotFound, "DeleteByAccessor after exhaustion")

	// Unlimited (0) stays unlimited.
	must(t, ids.Create(c, sampleSecretID("demo", "unlimited", 0, time.Time{})), "Create unlimited")
	for i := range 10 {
		got, err := ids.Consume(c, "demo", "unlimited", now())
		must(t, err, fmt.Sprintf("unlimited use %d", i))
		if got.UsesLeft != 0 {
			t.Fatalf("unlimited use %d: UsesLeft %d", i, got.UsesLeft)
		}
	}

	// Expiry: valid strictly before ExpiresAt, refused at and after it,
	// and a refused attempt takes no use.
	must(t, ids.Create(c, sampleSecretID("demo", "ttl", 2, now().Add(time.Minute))), "Create with TTL")
	_, err = ids.Consume(c, "demo", "ttl", now().Add(time.Minute))
	wantErr(t, err, store.ErrExpired, "Consume at expiry")
	_, err = ids.Consume(c, "demo", "ttl", now().Add(time.Hour))
	wantErr(t, err, store.ErrExpired, "Consume after expiry")
	got, err = ids.Consume(c, "demo", "ttl", now().Add(time.Minute-time.Nanosecond))
	must(t, err, "Consume just before expiry")
	if got.UsesLeft != 2 {
		t.Fatalf("refused attempts took uses: UsesLeft %d, want 2", got.UsesLeft)
	}
}

// A 3-use secret ID consumed by 20 goroutines at once logs in exactly 3.
func testConsumeConcurrent(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.Roles().Put(c, sampleRole("demo")), "Put role")
	must(t, s.SecretIDs().Create(c, sampleSecretID("demo", "h", 3, now().Add(time.Hour))), "Create")

	const n = 20
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		successes int
		others    []error
	)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			_, err := s.SecretIDs().Consume(c, "demo", "h", now())
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				successes++
			case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrExhausted):
			default:
				others = append(others, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if len(others) > 0 {
		t.Fatalf("unexpected errors: %v", others)
	}
	if successes != 3 {
		t.Fatalf("%d successful uses of a 3-use secret ID, want exactly 3", successes)
	}
}

// Many uses, many consumers, all in flight together: every use is taken
// exactly once and none is refused while uses remain. Each goroutine
// first makes a read and waits for the others, so a store with a
// connection pool has its connections open and the consumes truly
// overlap (a store that checks uses_left with a plain read and a guarded
// write would refuse some of them as exhausted).
func testConsumeConcurrentMany(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.Roles().Put(c, sampleRole("demo")), "Put role")
	const uses, n = 10, 24
	must(t, s.SecretIDs().Create(c, sampleSecretID("demo", "h", uses, now().Add(time.Hour))), "Create")

	var (
		wg        sync.WaitGroup
		ready     sync.WaitGroup
		mu        sync.Mutex
		successes int
		others    []error
	)
	ready.Add(n)
	for range n {
		wg.Go(func() {
			_, err := s.Roles().Get(c, "demo")
			ready.Done()
			if err != nil {
				mu.Lock()
				others = append(others, err)
				mu.Unlock()
				return
			}
			ready.Wait()
			_, err = s.SecretIDs().Consume(c, "demo", "h", now())
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				successes++
			case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrExhausted):
			default:
				others = append(others, err)
			}
		})
	}
	wg.Wait()
	if len(others) > 0 {
		t.Fatalf("unexpected errors: %v", others)
	}
	if successes != uses {
		t.Fatalf("%d successful uses of a %d-use secret ID by %d consumers, want exactly %d", successes, uses, n, uses)
	}
	_, err := s.SecretIDs().Consume(c, "demo", "h", now())
	wantErr(t, err, store.ErrNotFound, "Consume after the last use")
}

// Redeem: once; not expired; not under a revoked or expired broker token;
// a refused redemption changes nothing.
func testRedeem(t *testing.T, s store.Store) {
	c := ctx(t)
	g := s.Grants()
	must(t, s.Tokens().Create(c, sampleToken("th", "tacc", now().Add(time.Hour))), "Create token")

	_, err := g.Redeem(c, "missing", now())
	wantErr(t, err, store.ErrNotFound, "Redeem unknown jti")

	// Once.
	gr := sampleGrant("j1", "tacc", now().Add(time.Minute))
	must(t, g.Create(c, gr), "Create grant")
	got, err := g.Redeem(c, "j1", now())
	must(t, err, "Redeem")
	want := gr
	want.RedeemedAt = now()
	equal(t, got, want, "Redeem result")
	stored, err := g.Get(c, "j1")
	must(t, err, "Get after Redeem")
	equal(t, stored, want, "stored after Redeem")
	_, err = g.Redeem(c, "j1", now())
	wantErr(t, err, store.ErrRedeemed, "second Redeem")

	// Expired: at and after ExpiresAt.
	must(t, g.Create(c, sampleGrant("j-exp", "tacc", now())), "Create expiring grant")
	_, err = g.Redeem(c, "j-exp", now())
	wantErr(t, err, store.ErrExpired, "Redeem at expiry")
	_, err = g.Redeem(c, "j-exp", now().Add(time.Second))
	wantErr(t, err, store.ErrExpired, "Redeem after expiry")
	// A grant with no expiry never redeems.
	must(t, g.Create(c, sampleGrant("j-noexp", "tacc", time.Time{})), "Create grant without expiry")
	_, err = g.Redeem(c, "j-noexp", now())
	wantErr(t, err, store.ErrExpired, "Redeem grant without expiry")

	// Revoked parent token.
	must(t, s.Tokens().Create(c, sampleToken("th2", "tacc2", now().Add(time.Hour))), "Create token 2")
	must(t, g.Create(c, sampleGrant("j-rev", "tacc2", now().Add(time.Minute))), "Create grant 2")
	_, err = s.Tokens().DeleteByAccessor(c, "tacc2")
	must(t, err, "revoke token 2")
	_, err = g.Redeem(c, "j-rev", now())
	wantErr(t, err, store.ErrRevoked, "Redeem under revoked token")
	stored, err = g.Get(c, "j-rev")
	must(t, err, "Get refused grant")
	if !stored.RedeemedAt.IsZero() {
		t.Fatalf("refused Redeem marked the grant redeemed at %v", stored.RedeemedAt)
	}

	// Expired parent token (at its expiry instant, it is no longer live).
	must(t, s.Tokens().Create(c, sampleToken("th3", "tacc3", now())), "Create token 3")
	must(t, g.Create(c, sampleGrant("j-texp", "tacc3", now().Add(time.Minute))), "Create grant 3")
	_, err = g.Redeem(c, "j-texp", now())
	wantErr(t, err, store.ErrRevoked, "Redeem under expired token")
	// ...while the same token is still live a nanosecond earlier.
	_, err = g.Redeem(c, "j-texp", now().Add(-time.Nanosecond))
	must(t, err, "Redeem under token just before its expiry")

	// A token that never expires (root) keeps its grants redeemable.
	must(t, s.Tokens().Create(c, sampleToken("th4", "tacc4", time.Time{})), "Create token 4")
	must(t, g.Create(c, sampleGrant("j-root", "tacc4", now().Add(time.Minute))), "Create grant 4")
	_, err = g.Redeem(c, "j-root", now())
	must(t, err, "Redeem under never-expiring token")

	// A grant naming an accessor that never existed.
	must(t, g.Create(c, sampleGrant("j-orphan", "nobody", now().Add(time.Minute))), "Create orphan grant")
	_, err = g.Redeem(c, "j-orphan", now())
	wantErr(t, err, store.ErrRevoked, "Redeem orphan grant")
}

// 50 goroutines redeeming one jti: exactly one wins, the rest see
// ErrRedeemed.
func testRedeemConcurrent(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.Tokens().Create(c, sampleToken("th", "tacc", now().Add(time.Hour))), "Create token")
	must(t, s.Grants().Create(c, sampleGrant("j", "tacc", now().Add(time.Minute))), "Create grant")

	const n = 50
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		successes int
		others    []error
	)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			_, err := s.Grants().Redeem(c, "j", now())
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				successes++
			case errors.Is(err, store.ErrRedeemed):
			default:
				others = append(others, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if len(others) > 0 {
		t.Fatalf("unexpected errors: %v", others)
	}
	if successes != 1 {
		t.Fatalf("%d successful redemptions of one jti, want exactly 1", successes)
	}
}
