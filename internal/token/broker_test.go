package token

import (
	"crypto/rand"
	"errors"
	"math/big"
	"regexp"
	"strings"
	"testing"
)

func TestBrokerTokenShape(t *testing.T) {
	re := regexp.MustCompile(`^qbt_[0-9A-Za-z]{49}$`)
	seen := map[string]bool{}
	for range 200 {
		tok, err := NewBrokerToken()
		if err != nil {
			t.Fatal(err)
		}
		if !re.MatchString(tok) || len(tok) != BrokerTokenLen || BrokerTokenLen != 53 {
			t.Fatalf("bad shape: len %d", len(tok))
		}
		if err := CheckFormat(tok); err != nil {
			t.Fatalf("fresh token fails CheckFormat: %v", err)
		}
		if seen[tok] {
			t.Fatal("duplicate token")
		}
		seen[tok] = true
	}
}

func TestBase62FixedWidth(t *testing.T) {
	// All-zero and all-0xff inputs must both give exactly 43 digits.
	zero := appendBase62(nil, make([]byte, 32), brokerBodyLen)
	if string(zero) != strings.Repeat("0", 43) {
		t.Fatalf("zero encodes to %q", zero)
	}
	ff := make([]byte, 32)
	for i := range ff {
		ff[i] = 0xff
	}
	max := appendBase62(nil, ff, brokerBodyLen)
	if len(max) != 43 || max[0] == '0' && max[1] == '0' {
		t.Fatalf("max encodes to %q", max)
	}
	// Known value: 0x0ec7 = 3783 = 61*62 + 1 -> "00z1".
	small := appendBase62(nil, []byte{0x0e, 0xc7}, 4)
	if string(small) != "00z1" {
		t.Fatalf("3783 encodes to %q", small)
	}
	if got := string(appendBase62Uint32(nil, 0xffffffff)); got != "4gfFC3" {
		t.Fatalf("0xffffffff encodes to %q", got)
	}
}

func TestCheckFormatRefuses(t *testing.T) {
	tok, _ := NewBrokerToken()
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	cases := []struct {
		name string
		in   string
		want FormatError
	}{
		{"empty", "", ErrTokenPrefix},
		{"wrong prefix", "qbx_" + tok[4:], ErrTokenPrefix},
		{"upper prefix", "QBT_" + tok[4:], ErrTokenPrefix},
		{"short", tok[:len(tok)-1], ErrTokenLength},
		{"long", tok + "0", ErrTokenLength},
		{"bad char", tok[:10] + "-" + tok[11:], ErrTokenAlphabet},
		{"unicode", tok[:10] + "é" + tok[12:], ErrTokenAlphabet},
		{"body typo", flip(tok, 10), ErrTokenChecksum},
		{"checksum typo", flip(tok, len(tok)-1), ErrTokenChecksum},
		{"swapped", tok[:5] + tok[6:7] + tok[5:6] + tok[7:], ErrTokenChecksum},
	}
	for _, c := range cases {
		if c.name == "swapped" && tok[5] == tok[6] {
			continue
		}
		err := CheckFormat(c.in)
		if err != c.want {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
		var fe FormatError
		if !errors.As(err, &fe) {
			t.Errorf("%s: not a FormatError", c.name)
		}
		if len(c.in) > 8 && strings.Contains(err.Error(), c.in[4:]) {
			t.Errorf("%s: error echoes the token", c.name)
		}
	}
}

func TestHash(t *testing.T) {
	tok, _ := NewBrokerToken()
	h := Hash(tok)
	if len(h) != 64 || strings.Contains(h, tok) || h != Hash(tok) {
		t.Fatalf("bad hash %q", h)
	}
	if Hash("qbt_a") == Hash("qbt_b") {
		t.Fatal("hash collision")
	}
	// Known answer: SHA-256("abc").
	if Hash("abc") != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatal("Hash is not hex SHA-256")
	}
}

func TestAccessor(t *testing.T) {
	a, err := NewAccessor()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewAccessor()
	if len(a) != 48 || a == b || !regexp.MustCompile(`^[0-9a-f]{48}$`).MatchString(a) {
		t.Fatalf("bad accessors %q %q", a, b)
	}
}

func BenchmarkNewBrokerToken(b *testing.B) {
	for b.Loop() {
		if _, err := NewBrokerToken(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckFormat(b *testing.B) {
	tok, _ := NewBrokerToken()
	for b.Loop() {
		if err := CheckFormat(tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHash(b *testing.B) {
	tok, _ := NewBrokerToken()
	for b.Loop() {
		_ = Hash(tok)
	}
}

func TestBase62MatchesBigInt(t *testing.T) {
	for range 100 {
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			t.Fatal(err)
		}
		want := new(big.Int).SetBytes(raw).Text(62) // big uses 0-9a-zA-Z
		want = strings.Repeat("0", brokerBodyLen-len(want)) + want
		got := string(appendBase62(nil, raw, brokerBodyLen))
		// Map our alphabet (0-9A-Za-z) to big's (0-9a-zA-Z) by swapping case.
		swapped := strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z':
				return r - 32
			case r >= 'A' && r <= 'Z':
				return r + 32
			}
			return r
		}, got)
		if swapped != want {
			t.Fatalf("base62 mismatch: %s vs %s", swapped, want)
		}
	}
}
