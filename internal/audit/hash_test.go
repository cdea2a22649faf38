package audit

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"
)

var digestRE = regexp.MustCompile(`^hmac-sha256:[0-9a-f]{64}$`)

func TestHMACDeterministicAndKeyed(t *testing.T) {
	const secret = "qbt_s3cr3t-token-value"
	h1 := NewHasher([]byte("audit-key-one-0123456789abcdef!!"))
	h1again := NewHasher([]byte("audit-key-one-0123456789abcdef!!"))
	h2 := NewHasher([]byte("audit-key-two-0123456789abcdef!!"))

	d := h1.HMAC(secret)
	if !digestRE.MatchString(d) {
		t.Fatalf("digest %q has wrong shape", d)
	}
	if got := h1.HMAC(secret); got != d {
		t.Errorf("not deterministic: %q then %q", d, got)
	}
	if got := h1again.HMAC(secret); got != d {
		t.Errorf("same key, different digest: %q vs %q", d, got)
	}
	if got := h2.HMAC(secret); got == d {
		t.Errorf("different key gave the same digest %q", got)
	}
	if got := h1.HMAC(secret + "x"); got == d {
		t.Errorf("different value gave the same digest")
	}
	if strings.Contains(d, secret) || strings.Contains(d, hex.EncodeToString([]byte(secret))) {
		t.Errorf("digest %q contains the raw value", d)
	}
	// Known-answer check against RFC 4231 test case 2.
	kat := NewHasher([]byte("Jefe")).HMAC("what do ya want for nothing?")
	if want := HashPrefix + "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"; kat != want {
		t.Errorf("RFC 4231 case 2: got %s, want %s", kat, want)
	}
}

func TestHasherCopiesKey(t *testing.T) {
	key := []byte("mutable-key-0123456789abcdef!!!!")
	h := NewHasher(key)
	before := h.HMAC("v")
	key[0] ^= 0xff
	if after := h.HMAC("v"); after != before {
		t.Errorf("changing the caller's key slice changed the hasher")
	}
}

func TestHasherMatchesAndAdd(t *testing.T) {
	h := NewHasher([]byte("k-0123456789abcdef0123456789abcd"))
	e := &Event{Type: "issue"}
	h.Add(e, "token", "qbt_secret")
	if !h.Matches("qbt_secret", e.Hashed["token"]) {
		t.Errorf("Matches false for the right value")
	}
	if h.Matches("qbt_other", e.Hashed["token"]) {
		t.Errorf("Matches true for a wrong value")
	}
	other := NewHasher([]byte("another-key-0123456789abcdef!!!!"))
	if other.Matches("qbt_secret", e.Hashed["token"]) {
		t.Errorf("Matches true under a different key")
	}
}

func TestNewHasherEmptyKeyPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Errorf("NewHasher(nil) did not panic")
		}
	}()
	NewHasher(nil)
}

func TestHasherNeverPrintsKey(t *testing.T) {
	key := []byte("PRINTME-KEY-0123456789abcdef!!!!")
	h := NewHasher(key)
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		out = append(out, fmt.Sprintf(verb, h), fmt.Sprintf(verb, *h))
	}
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("x", "hasher", h, "value", *h)
	out = append(out, logBuf.String())
	for _, s := range out {
		for _, leak := range []string{string(key), hex.EncodeToString(key), fmt.Sprint(key), "PRINTME"} {
			if strings.Contains(s, leak) {
				t.Errorf("rendering %q leaks the key", s)
			}
		}
	}
}
