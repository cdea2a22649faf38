package token

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// jwksServer serves a KeyRing's JWKS (or an override body) and counts fetches.
type jwksServer struct {
	*httptest.Server
	ring    *KeyRing
	fetches atomic.Int32
	mu      sync.Mutex
	body    []byte // when non-nil, served instead of the ring's JWKS
	status  int
}

func newJWKSServer(t *testing.T, r *KeyRing) *jwksServer {
	s := &jwksServer{ring: r, status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		body, status := s.body, s.status
		s.mu.Unlock()
		if body == nil {
			body = s.ring.JWKS()
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(status int, body []byte) {
	s.mu.Lock()
	s.status, s.body = status, body
	s.mu.Unlock()
}

func newCache(s *jwksServer, minRefresh time.Duration, wall *clock) *JWKSCache {
	c := NewJWKSCache(s.URL, s.Client(), minRefresh)
	c.now = wall.Now
	return c
}

func TestJWKSCacheVerifiesAndCaches(t *testing.T) {
	r := newRing(t, t0)
	srv := newJWKSServer(t, r)
	wall := &clock{t0}
	c := newCache(srv, time.Minute, wall)
	v := newVerifier(t, c, wall)

	raw, _ := r.Sign(goodClaims(t0))
	for range 5 {
		if _, err := v.Verify(context.Background(), raw); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for one kid, want 1", n)
	}
	// A forged token under the real kid still fails through the cache.
	_, evil, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := v.Verify(context.Background(), signWith(t, evil, r.ActiveKeyID(), goodClaims(t0).wire())); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged: got %v", err)
	}
}

func TestJWKSCacheRotationAndRateLimit(t *testing.T) {
	r := newRing(t, t0)
	srv := newJWKSServer(t, r)
	wall := &clock{t0}
	c := newCache(srv, time.Minute, wall)
	v := newVerifier(t, c, wall)
	ctx := context.Background()

	raw, _ := r.Sign(goodClaims(t0))
	if _, err := v.Verify(ctx, raw); err != nil {
		t.Fatal(err)
	}

	// Unknown kids right after a fetch: refused without refetching.
	_, evil, _ := ed25519.GenerateKey(rand.Reader)
	for range 50 {
		bogus := signWith(t, evil, KeyID(evil.Public().(ed25519.PublicKey)), goodClaims(t0).wire())
		if _, err := v.Verify(ctx, bogus); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("bogus kid: got %v", err)
		}
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches after a flood of unknown kids, want 1 (rate limit)", n)
	}

	// Rotation: the new kid appears at the server; once minRefresh has
	// passed, the first token under it triggers one fetch.
	wall.t = t0.Add(61 * time.Second)
	if _, _, err := r.Rotate(wall.t, 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	raw2, _ := r.Sign(goodClaims(wall.t))
	if _, err := v.Verify(ctx, raw2); err != nil {
		t.Fatalf("token under rotated key: %v", err)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
	// The pre-rotation key is still in the set during the overlap.
	wall.t = t0.Add(62 * time.Second)
	if _, err := v.Verify(ctx, raw); err != nil {
		t.Fatalf("old token during overlap: %v", err)
	}

	// Rotation within minRefresh of the last fetch: the new kid is refused
	// until the rate limit allows a refetch.
	if _, _, err := r.Rotate(wall.t, 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	raw3, _ := r.Sign(goodClaims(wall.t))
	if _, err := v.Verify(ctx, raw3); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("within rate limit: got %v, want ErrUnknownKey", err)
	}
	wall.t = t0.Add(122 * time.Second)
	if _, err := v.Verify(ctx, raw3); err != nil && !errors.Is(err, ErrExpired) {
		t.Fatalf("after rate limit: %v", err)
	}
	if n := srv.fetches.Load(); n != 3 {
		t.Fatalf("%d fetches, want 3", n)
	}
}

func TestJWKSCacheDropsPrunedKeysAfterMaxAge(t *testing.T) {
	r := newRing(t, t0)
	srv := newJWKSServer(t, r)
	wall := &clock{t0}
	c := newCache(srv, time.Minute, wall)
	ctx := context.Background()
	oldID := r.ActiveKeyID()
	if _, err := c.Key(ctx, oldID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Rotate(t0, time.Minute); err != nil {
		t.Fatal(err)
	}
	r.Prune(t0.Add(time.Hour))
	wall.t = t0.Add(jwksMaxAge - time.Second)
	if _, err := c.Key(ctx, oldID); err != nil {
		t.Fatalf("cached key within max age: %v", err)
	}
	wall.t = t0.Add(jwksMaxAge)
	if _, err := c.Key(ctx, oldID); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("pruned key after max age: got %v, want ErrUnknownKey", err)
	}
}

func TestJWKSCacheFetchFailures(t *testing.T) {
	r := newRing(t, t0)
	srv := newJWKSServer(t, r)
	wall := &clock{t0}
	c := newCache(srv, time.Minute, wall)
	ctx := context.Background()
	kid := r.ActiveKeyID()

	srv.serve(http.StatusInternalServerError, []byte("oops"))
	if _, err := c.Key(ctx, kid); err == nil || errors.Is(err, ErrUnknownKey) {
		t.Fatalf("server error: got %v, want a fetch error", err)
	}
	// Recovered server, but the failed attempt still counts for the rate limit.
	srv.serve(http.StatusOK, nil)
	if _, err := c.Key(ctx, kid); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("retry inside rate limit: got %v", err)
	}
	wall.t = t0.Add(time.Minute)
	if _, err := c.Key(ctx, kid); err != nil {
		t.Fatal(err)
	}
	// A later failed refresh keeps serving the known key.
	srv.serve(http.StatusOK, []byte("{not json"))
	wall.t = t0.Add(jwksMaxAge + 2*time.Minute)
	if _, err := c.Key(ctx, kid); err != nil {
		t.Fatalf("known key through failed refresh: %v", err)
	}
}

func TestJWKSCacheAcceptsOnlyEd25519PublicKeys(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	x := b64raw(pub)
	body := `{"keys":[
		{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"good","alg":"EdDSA","use":"sig"},
		{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"private","d":"` + b64raw(priv.Seed()) + `"},
		{"kty":"OKP","crv":"X25519","x":"` + x + `","kid":"x25519"},
		{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"rsa"},
		{"kty":"oct","k":"` + x + `","kid":"oct"},
		{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"enc","use":"enc"},
		{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"hs","alg":"HS256"},
		{"kty":"OKP","crv":"Ed25519","x":"AAAA","kid":"short"},
		{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"dup"},
		{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"dup"}
	]}`
	keys, err := parseJWKS([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || !keys["good"].Equal(pub) {
		t.Fatalf("accepted keys %v", keys)
	}
	if _, err := parseJWKS([]byte("[]")); err == nil {
		t.Fatal("non-object JWKS accepted")
	}
}

func TestJWKSCacheBodyLimit(t *testing.T) {
	r := newRing(t, t0)
	srv := newJWKSServer(t, r)
	big := make([]byte, maxJWKSBody+10)
	for i := range big {
		big[i] = ' '
	}
	copy(big, r.JWKS())
	srv.serve(http.StatusOK, big)
	c := newCache(srv, time.Minute, &clock{t0})
	if _, err := c.Key(context.Background(), r.ActiveKeyID()); err == nil {
		t.Fatal("oversized JWKS accepted")
	}
}

func TestJWKSCacheConcurrentSingleFetch(t *testing.T) {
	r := newRing(t, t0)
	srv := newJWKSServer(t, r)
	c := newCache(srv, time.Minute, &clock{t0})
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Key(context.Background(), r.ActiveKeyID()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d concurrent fetches, want 1", n)
	}
}
