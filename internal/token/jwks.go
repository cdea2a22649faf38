package token

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

const (
	// DefaultJWKSMinRefresh is the minimum interval between JWKS fetches when
	// NewJWKSCache is given none.
	DefaultJWKSMinRefresh = 30 * time.Second
	// jwksMaxAge is how long a fetched set is trusted before a lookup of a
	// known kid also triggers a refresh, so keys dropped by the issuer (pruned
	// or withdrawn) stop verifying here too.
	jwksMaxAge  = 15 * time.Minute
	maxJWKSBody = 1 << 20
)

// JWKSCache is a [KeySource] backed by a remote JWKS (the broker's
// /.well-known/jwks.json). It caches the set; a lookup of an unknown kid
// refetches it, but at most once per minRefresh, so a flood of tokens with
// made-up kids cannot turn into a flood of fetches. Only OKP/Ed25519 signing
// keys without private material are taken from the set. Safe for concurrent use.
type JWKSCache struct {
	url        string
	client     *http.Client
	minRefresh time.Duration
	now        func() time.Time // replaced only by this package's tests

	fetchMu sync.Mutex // serialises fetches

	mu          sync.RWMutex
	keys        map[string]ed25519.PublicKey
	lastAttempt time.Time // zero before the first fetch
	lastSuccess time.Time
}

// NewJWKSCache returns a cache for the JWKS at url. A nil client gets a
// client with a 10 s timeout; minRefresh ≤ 0 gets DefaultJWKSMinRefresh.
// Nothing is fetched until the first lookup.
func NewJWKSCache(url string, client *http.Client, minRefresh time.Duration) *JWKSCache {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	if minRefresh <= 0 {
		minRefresh = DefaultJWKSMinRefresh
	}
	return &JWKSCache{url: url, client: client, minRefresh: minRefresh, now: time.Now}
}

// Key implements [KeySource].
func (c *JWKSCache) Key(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	if pub, stale, _ := c.lookup(kid); pub != nil && !stale {
		return pub, nil
	}
	// Slow path: take the fetch lock so that callers arriving while a fetch
	// is in flight wait for its result rather than see the rate limit.
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	pub, stale, mayFetch := c.lookup(kid)
	if pub != nil && !stale {
		return pub, nil
	}
	if !mayFetch {
		if pub != nil {
			return pub, nil // stale but rate-limited: keep using it
		}
		return nil, fmt.Errorf("%w (refresh rate-limited)", ErrUnknownKey)
	}
	if err := c.refresh(ctx); err != nil {
		if pub != nil {
			return pub, nil // keep serving a known key through a failed refresh
		}
		return nil, err
	}
	pub, _, _ = c.lookup(kid)
	if pub == nil {
		return nil, ErrUnknownKey
	}
	return pub, nil
}

// lookup reports the cached key for kid (nil if none), whether the set is
// older than jwksMaxAge, and whether the rate limit allows a fetch now.
func (c *JWKSCache) lookup(kid string) (pub ed25519.PublicKey, stale, mayFetch bool) {
	now := c.now()
	c.mu.RLock()
	defer c.mu.RUnlock()
	pub = c.keys[kid]
	stale = c.lastSuccess.IsZero() || now.Sub(c.lastSuccess) >= jwksMaxAge
	mayFetch = c.lastAttempt.IsZero() || now.Sub(c.lastAttempt) >= c.minRefresh
	return pub, stale, mayFetch
}

// refresh fetches the set and replaces the cache on success. Called with
// fetchMu held.
func (c *JWKSCache) refresh(ctx context.Context) error {
	c.mu.Lock()
	c.lastAttempt = c.now()
	c.mu.Unlock()

	keys, err := c.fetch(ctx)
	if err != nil {
		return fmt.Errorf("token: fetch JWKS: %w", err)
	}
	c.mu.Lock()
	c.keys = keys
	c.lastSuccess = c.now()
	c.mu.Unlock()
	return nil
}

// rawJWK has every field a JWKS entry might carry that matters here,
// including private parts, so entries that carry them can be refused.
type rawJWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	D   string `json:"d"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

func (c *JWKSCache) fetch(ctx context.Context) (map[string]ed25519.PublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBody+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxJWKSBody {
		return nil, errors.New("response larger than 1 MiB")
	}
	return parseJWKS(body)
}

// parseJWKS keeps the usable Ed25519 signing keys of a JWKS and silently skips
// entries of other types (a set may legitimately hold RSA keys for other
// uses). Entries carrying private material are skipped too.
func parseJWKS(body []byte) (map[string]ed25519.PublicKey, error) {
	var set struct {
		Keys []rawJWK `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	keys := make(map[string]ed25519.PublicKey, len(set.Keys))
	for _, k := range set.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" || k.Kid == "" || k.D != "" {
			continue
		}
		if k.Alg != "" && k.Alg != "EdDSA" {
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			continue
		}
		if _, dup := keys[k.Kid]; dup {
			// Two keys under one kid is ambiguous: trust neither.
			keys[k.Kid] = nil
			continue
		}
		keys[k.Kid] = ed25519.PublicKey(x)
	}
	for kid, k := range keys {
		if k == nil {
			delete(keys, kid)
		}
	}
	return keys, nil
}

var _ KeySource = (*JWKSCache)(nil)
