package token

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/crc32"
)

const (
	// BrokerTokenPrefix starts every broker token.
	BrokerTokenPrefix = "qbt_"
	brokerRandBytes   = 32
	brokerBodyLen     = 43 // ceil(256 / log2(62))
	brokerCRCLen      = 6  // ceil(32 / log2(62))
	// BrokerTokenLen is the length of every broker token.
	BrokerTokenLen = len(BrokerTokenPrefix) + brokerBodyLen + brokerCRCLen

	base62Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	accessorBytes  = 24
)

// FormatError says why a string is not a well-formed broker token. Its values
// are constants and never contain the token.
type FormatError string

func (e FormatError) Error() string { return "token: malformed broker token: " + string(e) }

// The reasons [CheckFormat] reports.
const (
	ErrTokenPrefix   FormatError = "missing " + BrokerTokenPrefix + " prefix"
	ErrTokenLength   FormatError = "wrong length"
	ErrTokenAlphabet FormatError = "character outside the base62 alphabet"
	ErrTokenChecksum FormatError = "checksum mismatch"
)

// NewBrokerToken returns a fresh random broker token.
func NewBrokerToken() (string, error) {
	var raw [brokerRandBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("token: random: %w", err)
	}
	buf := make([]byte, 0, BrokerTokenLen)
	buf = append(buf, BrokerTokenPrefix...)
	buf = appendBase62(buf, raw[:], brokerBodyLen)
	clear(raw[:])
	sum := crc32.ChecksumIEEE(buf)
	buf = appendBase62Uint32(buf, sum)
	return string(buf), nil
}

// CheckFormat reports whether tok has the shape of a broker token: prefix,
// length, alphabet and checksum. It says nothing about whether the token was
// issued; it lets callers reject typos and junk before a store lookup.
func CheckFormat(tok string) error {
	if len(tok) < len(BrokerTokenPrefix) || tok[:len(BrokerTokenPrefix)] != BrokerTokenPrefix {
		return ErrTokenPrefix
	}
	if len(tok) != BrokerTokenLen {
		return ErrTokenLength
	}
	for i := len(BrokerTokenPrefix); i < len(tok); i++ {
		if base62Value(tok[i]) < 0 {
			return ErrTokenAlphabet
		}
	}
	body := tok[:BrokerTokenLen-brokerCRCLen]
	var want [brokerCRCLen]byte
	appendBase62Uint32(want[:0], crc32.ChecksumIEEE([]byte(body)))
	if string(want[:]) != tok[BrokerTokenLen-brokerCRCLen:] {
		return ErrTokenChecksum
	}
	return nil
}

// Hash returns the hex SHA-256 of tok: the only form of a broker token the
// store keeps.
func Hash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// NewAccessor returns a random, non-secret handle for a token (48 hex
// characters from 24 random bytes), independent of the token itself, so a
// token can be looked up or revoked without knowing it.
func NewAccessor() (string, error) {
	var raw [accessorBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("token: random: %w", err)
	}
	return hex.EncodeToString(raw[:]), nil
}

// appendBase62 appends the big-endian number in src as exactly width base62
// digits (zero-padded). width must be large enough for len(src) bytes.
func appendBase62(dst, src []byte, width int) []byte {
	num := make([]byte, len(src))
	copy(num, src)
	defer clear(num)
	start := len(dst)
	for range width {
		dst = append(dst, 0)
	}
	for i := width - 1; i >= 0; i-- {
		// num = num / 62, remainder r.
		var r uint
		for j := range num {
			acc := r<<8 | uint(num[j])
			num[j] = byte(acc / 62)
			r = acc % 62
		}
		dst[start+i] = base62Alphabet[r]
	}
	return dst
}

func appendBase62Uint32(dst []byte, v uint32) []byte {
	var tmp [brokerCRCLen]byte
	for i := brokerCRCLen - 1; i >= 0; i-- {
		tmp[i] = base62Alphabet[v%62]
		v /= 62
	}
	return append(dst, tmp[:]...)
}

func base62Value(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 10
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 36
	}
	return -1
}
