package seal

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
)

// Sentinel errors callers branch on.
var (
	// ErrWrongKey means the blob was sealed under a different KEK.
	ErrWrongKey = errors.New("seal: sealed with a different key")
	// ErrCorrupt means the blob is truncated, of an unknown version, was
	// tampered with, or is being opened under the wrong AAD (name).
	ErrCorrupt = errors.New("seal: sealed data is corrupt or bound to another name")
)

const (
	version1   = 1
	keyIDSize  = 8
	dekSize    = 32
	nonceSize  = 12
	tagSize    = 16
	headerSize = 1 + keyIDSize
	wrappedLen = nonceSize + dekSize + tagSize
	// Overhead is the number of bytes a sealed blob adds to its plaintext.
	Overhead = headerSize + wrappedLen + nonceSize + tagSize
)

// Sealer seals and opens secrets under one KEK. It is safe for concurrent use.
type Sealer struct {
	kek   cipher.AEAD
	keyID [keyIDSize]byte
}

// New fetches the KEK from p and returns a Sealer using it.
func New(ctx context.Context, p KEKProvider) (*Sealer, error) {
	if p == nil {
		return nil, errors.New("seal: no KEK provider")
	}
	kek, err := p.KEK(ctx)
	if err != nil {
		return nil, fmt.Errorf("seal: load KEK: %w", err)
	}
	defer clear(kek)
	if len(kek) != KEKSize {
		return nil, fmt.Errorf("seal: KEK must be %d bytes, got %d", KEKSize, len(kek))
	}
	aead, err := newGCM(kek)
	if err != nil {
		return nil, err
	}
	s := &Sealer{kek: aead}
	sum := sha256.Sum256(kek)
	copy(s.keyID[:], sum[:keyIDSize])
	return s, nil
}

// KeyID returns the hex id of the KEK (first 8 bytes of its SHA-256), as
// recorded in every blob. It identifies the key without revealing it.
func (s *Sealer) KeyID() string { return hex.EncodeToString(s.keyID[:]) }

// Seal encrypts plaintext under a fresh data key and binds it to aad, which
// should name the secret (for example "signing-key/<kid>").
func (s *Sealer) Seal(plaintext, aad []byte) ([]byte, error) {
	dek := make([]byte, dekSize)
	defer clear(dek)
	if _, err := rand.Read(dek); err != nil {
		return nil, fmt.Errorf("seal: generate data key: %w", err)
	}
	data, err := newGCM(dek)
	if err != nil {
		return nil, err
	}

	out := make([]byte, headerSize, Overhead+len(plaintext))
	out[0] = version1
	copy(out[1:], s.keyID[:])

	// Wrap the DEK: nonce | GCM(KEK, DEK, aad = header | aad).
	wrapNonce := make([]byte, nonceSize)
	if _, err := rand.Read(wrapNonce); err != nil {
		return nil, fmt.Errorf("seal: generate nonce: %w", err)
	}
	out = append(out, wrapNonce...)
	out = s.kek.Seal(out, wrapNonce, dek, joinAAD(out[:headerSize], aad))

	// Encrypt the data: nonce | GCM(DEK, plaintext, aad = header | wrapped | aad).
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: generate nonce: %w", err)
	}
	bound := joinAAD(out, aad) // header and wrapped DEK, both fixed length
	out = append(out, nonce...)
	out = data.Seal(out, nonce, plaintext, bound)
	return out, nil
}

// Open decrypts a blob produced by [Sealer.Seal] with the same aad. It returns
// [ErrWrongKey] if the blob was sealed under another KEK and [ErrCorrupt] (wrapped
// with detail) if it was altered, truncated or is bound to another aad.
func (s *Sealer) Open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, fmt.Errorf("%w: too short", ErrCorrupt)
	}
	if sealed[0] != version1 {
		return nil, fmt.Errorf("%w: unknown version %d", ErrCorrupt, sealed[0])
	}
	if subtle.ConstantTimeCompare(sealed[1:headerSize], s.keyID[:]) != 1 {
		return nil, fmt.Errorf("%w (blob key id %x, this key %x)", ErrWrongKey, sealed[1:headerSize], s.keyID[:])
	}
	wrapped := sealed[headerSize : headerSize+wrappedLen]
	dek, err := s.kek.Open(nil, wrapped[:nonceSize], wrapped[nonceSize:], joinAAD(sealed[:headerSize], aad))
	if err != nil {
		return nil, fmt.Errorf("%w: data key authentication failed", ErrCorrupt)
	}
	defer clear(dek)
	data, err := newGCM(dek)
	if err != nil {
		return nil, err
	}
	body := sealed[headerSize+wrappedLen:]
	pt, err := data.Open(nil, body[:nonceSize], body[nonceSize:], joinAAD(sealed[:headerSize+wrappedLen], aad))
	if err != nil {
		return nil, fmt.Errorf("%w: data authentication failed", ErrCorrupt)
	}
	return pt, nil
}

// joinAAD concatenates a fixed-length prefix and the caller's aad. Because the
// prefix length is fixed per position, the encoding is unambiguous.
func joinAAD(prefix, aad []byte) []byte {
	b := make([]byte, 0, len(prefix)+len(aad))
	return append(append(b, prefix...), aad...)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return aead, nil
}
