package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
)

// Hasher turns secret values into keyed digests for the audit trail, so that
// an operator holding the audit key can tell whether two events involve the
// same secret, while a reader of the log alone learns nothing about it.
//
// A Hasher is safe for concurrent use. Its key is never printed: String,
// GoString, Format-based verbs and slog all render it redacted.
type Hasher struct {
	key []byte
}

// NewHasher returns a Hasher keyed with a copy of key. The key should be at
// least 32 random bytes from the sealed audit key. NewHasher panics on an
// empty key, since an unkeyed digest of a low-entropy secret can be reversed
// by guessing.
func NewHasher(key []byte) *Hasher {
	if len(key) == 0 {
		panic("audit: NewHasher with empty key")
	}
	return &Hasher{key: append([]byte(nil), key...)}
}

// HMAC returns "hmac-sha256:" followed by the lowercase hex HMAC-SHA256 of
// value under the hasher's key.
func (h *Hasher) HMAC(value string) string {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte(value)) // hash.Hash.Write never fails
	var sum [sha256.Size]byte
	return HashPrefix + hex.EncodeToString(m.Sum(sum[:0]))
}

// Add records the digest of value under name in e.Hashed, allocating the map
// if needed. It is the one way callers should attach a secret to an event.
func (h *Hasher) Add(e *Event, name, value string) {
	if e.Hashed == nil {
		e.Hashed = make(map[string]string, 1)
	}
	e.Hashed[name] = h.HMAC(value)
}

// Matches reports, in constant time, whether digest is the HMAC of value.
// Operators use it to find events about a secret they hold.
func (h *Hasher) Matches(value, digest string) bool {
	return hmac.Equal([]byte(h.HMAC(value)), []byte(digest))
}

const redactedHasher = "audit.Hasher{key:REDACTED}"

// String renders the hasher without its key. The value receiver makes the
// redaction apply to Hasher values as well as pointers.
func (h Hasher) String() string { return redactedHasher }

// GoString renders the hasher without its key, for %#v.
func (h Hasher) GoString() string { return redactedHasher }

// LogValue renders the hasher without its key in slog output.
func (h Hasher) LogValue() slog.Value { return slog.StringValue(redactedHasher) }

var (
	_ fmt.Stringer   = Hasher{}
	_ fmt.GoStringer = Hasher{}
	_ slog.LogValuer = Hasher{}
)
