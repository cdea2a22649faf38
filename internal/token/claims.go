package token

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
)

// Typed errors from job-token verification. Verify wraps them with detail;
// branch with errors.Is. No error ever contains the token.
var (
	ErrMalformed      = errors.New("token: malformed job token")
	ErrUnsupportedAlg = errors.New("token: unsupported signing algorithm")
	ErrUnknownKey     = errors.New("token: unknown signing key")
	ErrBadSignature   = errors.New("token: bad signature")
	ErrExpired        = errors.New("token: job token expired")
	ErrNotYetValid    = errors.New("token: job token not yet valid")
	ErrClaims         = errors.New("token: invalid job token claims")
)

// JobTokenType is the JWS "typ" header of a job token.
const JobTokenType = "qbroker-job+jwt"

// Claims are the contents of a job token.
type Claims struct {
	Issuer    string // iss
	Subject   string // sub: the agent id
	Audience  string // aud: the gateway
	IssuedAt  time.Time
	NotBefore time.Time // defaults to IssuedAt when signing
	Expiry    time.Time
	ID        string // jti: single-use redemption id

	Role          string
	Provider      string
	Device        string
	MaxShots      int    // max_shots
	ProgramSHA256 string // program_sha256 (lowercase hex), optional
	// MaxCostUSD is the cost ceiling the token was issued under (the
	// estimate at issuance; 0: none recorded). ApprovalID is the human
	// approval that released it, when one did.
	MaxCostUSD float64
	ApprovalID string
}

// wireClaims is the JSON form of Claims.
type wireClaims struct {
	Issuer        string           `json:"iss"`
	Subject       string           `json:"sub,omitempty"`
	Audience      jwt.Audience     `json:"aud"`
	IssuedAt      *jwt.NumericDate `json:"iat,omitempty"`
	NotBefore     *jwt.NumericDate `json:"nbf,omitempty"`
	Expiry        *jwt.NumericDate `json:"exp,omitempty"`
	ID            string           `json:"jti,omitempty"`
	Role          string           `json:"role,omitempty"`
	Provider      string           `json:"provider"`
	Device        string           `json:"device"`
	MaxShots      int              `json:"max_shots"`
	ProgramSHA256 string           `json:"program_sha256,omitempty"`
	MaxCostUSD    float64          `json:"max_cost_usd,omitempty"`
	ApprovalID    string           `json:"approval_id,omitempty"`
}

func numericDate(t time.Time) *jwt.NumericDate {
	if t.IsZero() {
		return nil
	}
	return jwt.NewNumericDate(t)
}

func dateTime(d *jwt.NumericDate) time.Time {
	if d == nil {
		return time.Time{}
	}
	return d.Time().UTC()
}

func (c Claims) wire() wireClaims {
	nbf := c.NotBefore
	if nbf.IsZero() {
		nbf = c.IssuedAt
	}
	w := wireClaims{
		Issuer:        c.Issuer,
		Subject:       c.Subject,
		IssuedAt:      numericDate(c.IssuedAt),
		NotBefore:     numericDate(nbf),
		Expiry:        numericDate(c.Expiry),
		ID:            c.ID,
		Role:          c.Role,
		Provider:      c.Provider,
		Device:        c.Device,
		MaxShots:      c.MaxShots,
		ProgramSHA256: c.ProgramSHA256,
		MaxCostUSD:    c.MaxCostUSD,
		ApprovalID:    c.ApprovalID,
	}
	if c.Audience != "" {
		w.Audience = jwt.Audience{c.Audience}
	}
	return w
}

func (w wireClaims) claims() *Claims {
	c := &Claims{
		Issuer:        w.Issuer,
		Subject:       w.Subject,
		IssuedAt:      dateTime(w.IssuedAt),
		NotBefore:     dateTime(w.NotBefore),
		Expiry:        dateTime(w.Expiry),
		ID:            w.ID,
		Role:          w.Role,
		Provider:      w.Provider,
		Device:        w.Device,
		MaxShots:      w.MaxShots,
		ProgramSHA256: w.ProgramSHA256,
		MaxCostUSD:    w.MaxCostUSD,
		ApprovalID:    w.ApprovalID,
	}
	if len(w.Audience) == 1 {
		c.Audience = w.Audience[0]
	}
	return c
}

// checkContent validates the claims that do not depend on time or on the
// verifier's configuration. Sign and Verify both apply it, so the broker cannot
// mint a token that every gateway would refuse.
func (c Claims) checkContent() error {
	switch {
	case c.Issuer == "":
		return fmt.Errorf("%w: iss is empty", ErrClaims)
	case c.Audience == "":
		return fmt.Errorf("%w: aud is empty", ErrClaims)
	case c.Subject == "":
		return fmt.Errorf("%w: sub is empty", ErrClaims)
	case c.ID == "":
		return fmt.Errorf("%w: jti is empty", ErrClaims)
	case c.Provider == "":
		return fmt.Errorf("%w: provider is empty", ErrClaims)
	case c.Device == "":
		return fmt.Errorf("%w: device is empty", ErrClaims)
	case c.MaxShots <= 0:
		return fmt.Errorf("%w: max_shots must be positive", ErrClaims)
	case c.MaxCostUSD < 0 || math.IsNaN(c.MaxCostUSD) || math.IsInf(c.MaxCostUSD, 0):
		return fmt.Errorf("%w: max_cost_usd must be a non-negative number", ErrClaims)
	case c.IssuedAt.IsZero():
		return fmt.Errorf("%w: iat is missing", ErrClaims)
	case c.Expiry.IsZero():
		return fmt.Errorf("%w: exp is missing", ErrClaims)
	case !c.Expiry.After(c.IssuedAt):
		return fmt.Errorf("%w: exp is not after iat", ErrClaims)
	case !c.NotBefore.IsZero() && c.NotBefore.After(c.Expiry):
		return fmt.Errorf("%w: nbf is after exp", ErrClaims)
	case c.ProgramSHA256 != "" && !isSHA256Hex(c.ProgramSHA256):
		return fmt.Errorf("%w: program_sha256 is not 64 lowercase hex characters", ErrClaims)
	}
	return nil
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
