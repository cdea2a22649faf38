package token

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Key is an Ed25519 job-token signing key.
type Key struct {
	ID      string // kid: base64url of the first 12 bytes of SHA-256 of the public key
	Private ed25519.PrivateKey
	Created time.Time
	// NotAfter is zero for the active key. For a retired key it is the time
	// until which tokens signed by it still verify.
	NotAfter time.Time
}

// Public returns the key's public half.
func (k Key) Public() ed25519.PublicKey {
	return k.Private.Public().(ed25519.PublicKey)
}

// KeyID derives the kid of an Ed25519 public key.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

// GenerateKey creates a new active signing key.
func GenerateKey(now time.Time) (Key, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Key{}, fmt.Errorf("token: generate signing key: %w", err)
	}
	return Key{ID: KeyID(pub), Private: priv, Created: now}, nil
}

func (k Key) clone() Key {
	k.Private = bytes.Clone(k.Private)
	return k
}

// KeyRing holds the active signing key and the retired keys that remain
// verifiable until their NotAfter. It is safe for concurrent use.
//
// A retired key is refused by [KeyRing.Key] once its NotAfter has passed, and
// is removed (also from the JWKS) by [KeyRing.Prune], which the owner should
// call periodically.
type KeyRing struct {
	now func() time.Time // wall clock; replaced only by this package's tests

	mu      sync.RWMutex
	active  Key
	signer  jose.Signer
	retired []Key  // oldest first
	jwks    []byte // cached JWKS of active + retired
}

// NewKeyRing builds a ring from persisted keys. Exactly one key must be active
// (NotAfter zero); every key's ID must match its public key.
func NewKeyRing(keys []Key) (*KeyRing, error) {
	r := &KeyRing{now: time.Now}
	seen := make(map[string]bool, len(keys))
	var active []Key
	for i, k := range keys {
		if len(k.Private) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("token: key %d: not an Ed25519 private key", i)
		}
		if k.ID != KeyID(k.Public()) {
			return nil, fmt.Errorf("token: key %d: id %q does not match its public key", i, k.ID)
		}
		if seen[k.ID] {
			return nil, fmt.Errorf("token: duplicate key id %q", k.ID)
		}
		seen[k.ID] = true
		if k.NotAfter.IsZero() {
			active = append(active, k.clone())
		} else {
			r.retired = append(r.retired, k.clone())
		}
	}
	if len(active) != 1 {
		return nil, fmt.Errorf("token: key ring needs exactly one active key (zero NotAfter), got %d", len(active))
	}
	slices.SortStableFunc(r.retired, func(a, b Key) int { return a.NotAfter.Compare(b.NotAfter) })
	if err := r.setActive(active[0]); err != nil {
		return nil, err
	}
	r.rebuildJWKS()
	return r, nil
}

// setActive installs k as the active key and builds its signer. Callers hold mu
// (or own r exclusively).
func (r *KeyRing) setActive(k Key) error {
	opts := (&jose.SignerOptions{}).WithType(JobTokenType)
	signer, err := jose.NewSigner(jose.SigningKey{
		Algorithm: jose.EdDSA,
		Key:       jose.JSONWebKey{Key: k.Private, KeyID: k.ID, Algorithm: string(jose.EdDSA)},
	}, opts)
	if err != nil {
		return fmt.Errorf("token: signer: %w", err)
	}
	r.active, r.signer = k, signer
	return nil
}

// Replace swaps the ring's keys for keys, checked as NewKeyRing checks
// them: how a replica takes up a rotation another replica made.
func (r *KeyRing) Replace(keys []Key) error {
	nr, err := NewKeyRing(keys)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range r.retired {
		clear(k.Private)
	}
	r.active, r.signer, r.retired, r.jwks = nr.active, nr.signer, nr.retired, nr.jwks
	return nil
}

// ActiveKeyID returns the kid new tokens are signed with.
func (r *KeyRing) ActiveKeyID() string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.active.ID
}

// Sign validates c and returns it as a compact JWS signed by the active key,
// with header alg EdDSA, typ qbroker-job+jwt and kid.
func (r *KeyRing) Sign(c Claims) (string, error) {
	if err := c.checkContent(); err != nil {
		return "", err
	}
	return r.signWire(c.wire())
}

func (r *KeyRing) signWire(w wireClaims) (string, error) {
	r.mu.RLock()
	signer := r.signer
	r.mu.RUnlock()
	// Marshal the claims ourselves and sign the bytes: jwt.Signed's builder
	// round-trips the claims through a map, which was most of Sign's cost.
	payload, err := json.Marshal(w)
	if err != nil {
		return "", fmt.Errorf("token: sign: %w", err)
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("token: sign: %w", err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("token: sign: %w", err)
	}
	return s, nil
}

// Rotate makes a freshly generated key active and retires the current one,
// which stays verifiable until now+overlap. overlap should be at least the
// longest job-token TTL plus clock leeway. Both returned keys must be persisted
// (sealed) by the caller.
func (r *KeyRing) Rotate(now time.Time, overlap time.Duration) (newKey Key, retired Key, err error) {
	if overlap <= 0 {
		return Key{}, Key{}, errors.New("token: rotation overlap must be positive")
	}
	nk, err := GenerateKey(now)
	if err != nil {
		return Key{}, Key{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.active
	old.NotAfter = now.Add(overlap)
	if err := r.setActive(nk); err != nil {
		return Key{}, Key{}, err
	}
	r.retired = append(r.retired, old)
	slices.SortStableFunc(r.retired, func(a, b Key) int { return a.NotAfter.Compare(b.NotAfter) })
	r.rebuildJWKS()
	return nk.clone(), old.clone(), nil
}

// Prune drops retired keys whose NotAfter is not after now and returns their
// ids.
func (r *KeyRing) Prune(now time.Time) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var dropped []string
	kept := r.retired[:0]
	for _, k := range r.retired {
		if now.Before(k.NotAfter) {
			kept = append(kept, k)
		} else {
			dropped = append(dropped, k.ID)
			clear(k.Private)
		}
	}
	clear(r.retired[len(kept):])
	r.retired = kept
	if len(dropped) > 0 {
		r.rebuildJWKS()
	}
	return dropped
}

// Keys returns copies of all keys, active first, then retired by NotAfter.
// The result includes private keys, for sealing and persisting.
func (r *KeyRing) Keys() []Key {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Key, 0, 1+len(r.retired))
	out = append(out, r.active.clone())
	for _, k := range r.retired {
		out = append(out, k.clone())
	}
	return out
}

// Key returns the public key for kid, implementing [KeySource]. A retired key
// whose NotAfter has passed is reported as unknown even before it is pruned.
func (r *KeyRing) Key(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if kid == r.active.ID {
		return r.active.Public(), nil
	}
	for _, k := range r.retired {
		if k.ID == kid {
			if !r.now().Before(k.NotAfter) {
				return nil, fmt.Errorf("%w: key retired and past its overlap", ErrUnknownKey)
			}
			return k.Public(), nil
		}
	}
	return nil, ErrUnknownKey
}

// JWKS returns the public keys as a JSON Web Key Set. The bytes are built
// when the ring changes; each call returns a copy.
func (r *KeyRing) JWKS() []byte {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return bytes.Clone(r.jwks)
}

// jwk is the public JWK form of an Ed25519 key. It has no field for private
// material, so a JWKS built from it cannot leak "d".
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Alg string `json:"alg,omitempty"`
	Use string `json:"use,omitempty"`
}

type jwkSet struct {
	Keys []jwk `json:"keys"`
}

func publicJWK(k Key) jwk {
	return jwk{
		Kty: "OKP",
		Crv: "Ed25519",
		X:   base64.RawURLEncoding.EncodeToString(k.Public()),
		Kid: k.ID,
		Alg: string(jose.EdDSA),
		Use: "sig",
	}
}

// rebuildJWKS must be called with mu held for writing (or r owned exclusively).
func (r *KeyRing) rebuildJWKS() {
	set := jwkSet{Keys: []jwk{publicJWK(r.active)}}
	for _, k := range r.retired {
		set.Keys = append(set.Keys, publicJWK(k))
	}
	b, err := json.Marshal(set)
	if err != nil {
		// Marshalling a struct of strings cannot fail.
		panic("token: marshal JWKS: " + err.Error())
	}
	r.jwks = b
}

var _ KeySource = (*KeyRing)(nil)
