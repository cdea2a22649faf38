package jwtauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/qbroker/qbroker/internal/auth/authutil"
)

const (
	maxJWKSBytes = 1 << 20
	fetchTimeout = 15 * time.Second
)

// keySet is an oidc.KeySet for one issuer. Remote sets (discovery or JWKS URL)
// are fetched lazily, refreshed on a schedule, and refreshed on an unknown kid at
// most once per MinRefreshInterval, with concurrent callers sharing one fetch.
// go-oidc's RemoteKeySet refetches on every unknown kid, which lets anyone with
// a forged kid drive traffic to the IdP; hence this type.
type keySet struct {
	iss    *issuer
	client *http.Client
	now    func() time.Time
	log    *slog.Logger
	base   context.Context // cancelled by Authenticator.Close

	keys    atomic.Pointer[[]jose.JSONWebKey] // nil until the first successful fetch
	fetches atomic.Int64                      // HTTP JWKS fetches attempted (for logs/tests)

	mu        sync.Mutex
	jwksURL   string // from config or discovery
	lastFetch time.Time
	inflight  *fetchCall
}

type fetchCall struct {
	done chan struct{}
	err  error
}

var _ oidc.KeySet = (*keySet)(nil)

// verifyState carries the JWS parsed by Login into VerifySignature and the typed
// failure back out, since go-oidc flattens KeySet errors into strings.
type verifyState struct {
	raw string
	jws *jose.JSONWebSignature
	err error
}

type verifyStateKey struct{}

func newKeySet(base context.Context, iss *issuer, client *http.Client, now func() time.Time, log *slog.Logger) *keySet {
	ks := &keySet{iss: iss, client: client, now: now, log: log, base: base, jwksURL: iss.JWKSURL}
	if len(iss.staticKeys) > 0 {
		keys := iss.staticKeys
		ks.keys.Store(&keys)
	}
	return ks
}

func (ks *keySet) static() bool { return len(ks.iss.staticKeys) > 0 }

// VerifySignature implements oidc.KeySet.
func (ks *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	st, _ := ctx.Value(verifyStateKey{}).(*verifyState)
	if st == nil {
		st = &verifyState{}
	}
	payload, err := ks.verify(ctx, st, raw)
	if err != nil {
		st.err = err
		return nil, err
	}
	return payload, nil
}

func (ks *keySet) verify(ctx context.Context, st *verifyState, raw string) ([]byte, error) {
	jws := st.jws
	if jws == nil || st.raw != raw {
		var err error
		if jws, err = jose.ParseSignedCompact(raw, ks.iss.algs); err != nil {
			return nil, refuse(ReasonMalformed)
		}
	}
	if len(jws.Signatures) != 1 {
		return nil, refuse(ReasonMalformed)
	}
	hdr := jws.Signatures[0].Header
	keys := ks.keys.Load()
	if keys == nil {
		// Never fetched (lazy start): the first login fetches, rate-limited.
		if err := ks.refresh(ctx, false); err != nil && !errors.Is(err, errRateLimited) {
			ks.log.Warn("jwt issuer keys unavailable", "issuer", ks.iss.Name, "err", err)
		}
		if keys = ks.keys.Load(); keys == nil {
			return nil, fmt.Errorf("issuer %q: %w", ks.iss.Name, ErrIssuerUnavailable)
		}
	}
	cands := candidates(*keys, hdr.KeyID, ks.static())
	if len(cands) > 0 {
		if payload, ok := tryKeys(jws, cands, hdr.Algorithm); ok {
			return payload, nil
		}
		if hdr.KeyID != "" || ks.static() {
			return nil, refuse(ReasonSignature)
		}
		// A kid-less token failing every key: perhaps the IdP rotated.
	} else if ks.static() {
		return nil, refuse(ReasonUnknownKey)
	}
	// Unknown kid: perhaps the IdP rotated. One rate-limited, coalesced
	// refresh, then decide.
	if err := ks.refresh(ctx, false); err != nil && !errors.Is(err, errRateLimited) {
		ks.log.Warn("jwt issuer key refresh failed", "issuer", ks.iss.Name, "err", err)
	}
	cands = candidates(*ks.keys.Load(), hdr.KeyID, false)
	if len(cands) == 0 {
		return nil, refuse(ReasonUnknownKey)
	}
	if payload, ok := tryKeys(jws, cands, hdr.Algorithm); ok {
		return payload, nil
	}
	return nil, refuse(ReasonSignature)
}

// tryKeys verifies the signature with each key whose declared alg (if any)
// matches the header's; go-jose refuses a key of the wrong type for the alg.
func tryKeys(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, alg string) ([]byte, bool) {
	for _, k := range keys {
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		if payload, err := jws.Verify(k.Key); err == nil {
			return payload, true
		}
	}
	return nil, false
}

// candidates are the keys a token with this kid may be checked against: the
// keys with that kid; for a kid-less token every key; for static PEM keys (whose
// kid is our own thumbprint) every key when the kid matches none.
func candidates(keys []jose.JSONWebKey, kid string, static bool) []jose.JSONWebKey {
	if kid == "" {
		return keys
	}
	var out []jose.JSONWebKey
	for _, k := range keys {
		if k.KeyID == kid {
			out = append(out, k)
		}
	}
	if len(out) == 0 && static {
		return keys
	}
	return out
}

// refresh fetches the JWKS unless one was fetched less than MinRefreshInterval
// ago (force skips that check; the scheduled refresh uses it). Callers arriving
// while a fetch is in flight wait for it and share its result.
func (ks *keySet) refresh(ctx context.Context, force bool) error {
	ks.mu.Lock()
	if c := ks.inflight; c != nil {
		ks.mu.Unlock()
		select {
		case <-c.done:
			return c.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if !force && !ks.lastFetch.IsZero() && ks.now().Sub(ks.lastFetch) < ks.iss.MinRefreshInterval {
		ks.mu.Unlock()
		return errRateLimited
	}
	c := &fetchCall{done: make(chan struct{})}
	ks.inflight = c
	ks.lastFetch = ks.now()
	ks.mu.Unlock()

	// The fetch outlives the caller that started it (others may be waiting on
	// it) but not the Authenticator.
	fctx, cancel := context.WithTimeout(ks.base, fetchTimeout)
	c.err = ks.fetch(fctx)
	cancel()

	ks.mu.Lock()
	ks.inflight = nil
	ks.mu.Unlock()
	close(c.done)
	return c.err
}

func (ks *keySet) fetch(ctx context.Context) error {
	ks.mu.Lock()
	jwksURL := ks.jwksURL
	ks.mu.Unlock()
	if jwksURL == "" {
		u, err := ks.discover(ctx)
		if err != nil {
			return err
		}
		jwksURL = u
	}
	ks.fetches.Add(1)
	keys, err := ks.fetchJWKS(ctx, jwksURL)
	if err != nil {
		if ks.iss.DiscoveryURL != "" {
			ks.mu.Lock()
			ks.jwksURL = "" // re-discover next time: the jwks_uri may have moved
			ks.mu.Unlock()
		}
		return err
	}
	ks.keys.Store(&keys)
	ks.log.Debug("jwt issuer keys refreshed", "issuer", ks.iss.Name, "keys", len(keys))
	return nil
}

// discover reads the OIDC discovery document with go-oidc and checks that it
// names the configured issuer.
func (ks *keySet) discover(ctx context.Context) (string, error) {
	base := strings.TrimSuffix(ks.iss.DiscoveryURL, wellKnownSuffix)
	// The discovery base may differ from iss (e.g. an in-cluster API server URL);
	// go-oidc's own equality check is replaced by the exact check below.
	dctx := oidc.InsecureIssuerURLContext(oidc.ClientContext(ctx, ks.client), ks.iss.Issuer)
	p, err := oidc.NewProvider(dctx, base)
	if err != nil {
		return "", fmt.Errorf("issuer %q: discovery: %w", ks.iss.Name, err)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := p.Claims(&doc); err != nil {
		return "", fmt.Errorf("issuer %q: discovery document: %w", ks.iss.Name, err)
	}
	if doc.Issuer != ks.iss.Issuer {
		return "", fmt.Errorf("issuer %q: discovery document names issuer %q, want %q", ks.iss.Name, doc.Issuer, ks.iss.Issuer)
	}
	if err := authutil.CheckIdPURL(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("issuer %q: discovery jwks_uri: %w", ks.iss.Name, err)
	}
	ks.mu.Lock()
	ks.jwksURL = doc.JWKSURI
	ks.mu.Unlock()
	return doc.JWKSURI, nil
}

func (ks *keySet) fetchJWKS(ctx context.Context, u string) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("issuer %q: jwks request: %w", ks.iss.Name, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := ks.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("issuer %q: jwks fetch: %w", ks.iss.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("issuer %q: jwks fetch: status %s", ks.iss.Name, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("issuer %q: jwks read: %w", ks.iss.Name, err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("issuer %q: jwks larger than %d bytes", ks.iss.Name, maxJWKSBytes)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("issuer %q: jwks decode: %w", ks.iss.Name, err)
	}
	var keys []jose.JSONWebKey
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if err := json.Unmarshal(raw, &k); err != nil {
			continue // unsupported key types are skipped, not fatal
		}
		if k.Use == "enc" {
			continue
		}
		if _, symmetric := k.Key.([]byte); symmetric {
			continue // never verify with a shared secret
		}
		if !k.IsPublic() {
			k = k.Public() // a private key published by mistake: use its public half
		}
		if !k.Valid() {
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("issuer %q: jwks has no usable signing keys", ks.iss.Name)
	}
	return keys, nil
}

// run refreshes the keys every RefreshInterval until ctx is cancelled.
func (ks *keySet) run(ctx context.Context) {
	t := time.NewTicker(ks.iss.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := ks.refresh(ctx, true); err != nil && ctx.Err() == nil {
				ks.log.Warn("jwt issuer scheduled key refresh failed", "issuer", ks.iss.Name, "err", err)
			}
		}
	}
}
