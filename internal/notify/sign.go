package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Errors Verify returns (wrapped); callers branch with errors.Is.
var (
	// ErrMissing: the timestamp or signature header is absent.
	ErrMissing = errors.New("notify: signature or timestamp header missing")
	// ErrBadSignature: the signature does not match the body and
	// timestamp under the secret, or a header is malformed.
	ErrBadSignature = errors.New("notify: bad signature")
	// ErrStale: the signature is valid but its timestamp is outside the
	// tolerance, in the past or the future: a possible replay.
	ErrStale = errors.New("notify: stale timestamp")
)

// DefaultTolerance is the clock skew Verify allows when given none.
const DefaultTolerance = 5 * time.Minute

// signaturePrefix names the scheme: HMAC-SHA256 over timestamp "." body.
const signaturePrefix = "v1="

// Sign returns the X-Qbroker-Signature value for a body sent at timestamp
// (decimal unix seconds, exactly as in X-Qbroker-Timestamp):
// "v1=" + hex(HMAC-SHA256(secret, timestamp + "." + body)).
func Sign(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return signaturePrefix + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a delivery as a receiver should: the signature must match
// the body and timestamp under secret (compared in constant time), and
// the timestamp must be within tolerance of now in either direction
// (tolerance <= 0 means DefaultTolerance). A valid request may still be a
// retry of one already handled: dedupe by X-Qbroker-Delivery.
func Verify(secret []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	ts, sig := h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if ts == "" || sig == "" {
		return ErrMissing
	}
	if len(secret) == 0 {
		return fmt.Errorf("%w: no secret to verify with", ErrBadSignature)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: malformed timestamp", ErrBadSignature)
	}
	if !hmac.Equal([]byte(Sign(secret, ts, body)), []byte(sig)) {
		return ErrBadSignature
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	// Compare in whole seconds, bounds first: no arithmetic on the
	// untrusted value that could overflow.
	nowSec, tol := now.Unix(), int64(tolerance/time.Second)
	if sec < nowSec-tol || sec > nowSec+tol {
		return ErrStale
	}
	return nil
}
