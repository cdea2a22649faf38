package jwtauth

import "errors"

// Reasons carried by LoginError. They are safe to show to the caller: they never
// contain token contents, keys or claim values. A bound-claim failure appends the
// configured claim name: ReasonBoundClaim + ": " + claim.
const (
	ReasonUnknownRole     = "unknown role"
	ReasonMalformed       = "malformed token"
	ReasonAlgorithm       = "signing algorithm not allowed"
	ReasonIssuer          = "token issuer not accepted"
	ReasonIssuerMismatch  = "token issuer does not match the role's issuer"
	ReasonUnknownKey      = "unknown signing key"
	ReasonSignature       = "invalid token signature"
	ReasonMissingExpiry   = "token has no expiry"
	ReasonExpired         = "token expired"
	ReasonNotYetValid     = "token not yet valid"
	ReasonIssuedInFuture  = "token issued in the future"
	ReasonMissingIssuedAt = "token has no issued-at time"
	ReasonTooOld          = "token too old"
	ReasonAudience        = "token audience not allowed"
	ReasonSubject         = "token subject not allowed"
	ReasonBoundClaim      = "bound claim mismatch"
	ReasonUserClaim       = "user claim missing or not a string"
	ReasonClaimMapping    = "mapped claim is not a string, number or boolean"
)

// LoginError is a refused login. Reason is user-safe (one of the Reason*
// constants, possibly with a configured claim name appended); the broker maps it
// to a 4xx response.
type LoginError struct{ Reason string }

func (e *LoginError) Error() string { return "jwt login refused: " + e.Reason }

// Is reports whether target is a *LoginError with the same Reason, so callers can
// write errors.Is(err, &jwtauth.LoginError{Reason: jwtauth.ReasonExpired}).
func (e *LoginError) Is(target error) bool {
	t, ok := target.(*LoginError)
	return ok && t.Reason == e.Reason
}

func refuse(reason string) error { return &LoginError{Reason: reason} }

// ErrIssuerUnavailable is returned (wrapped, not as a LoginError) when an issuer's
// keys have never been fetched and the fetch fails: the IdP is down or
// misconfigured, which is the broker's problem (503), not the caller's.
var ErrIssuerUnavailable = errors.New("jwtauth: identity provider keys unavailable")

// errRateLimited: a refresh was skipped because the last one was too recent.
var errRateLimited = errors.New("jwtauth: key refresh rate limited")
