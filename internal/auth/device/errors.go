package device

import "errors"

// Error is a device-flow failure with a user-safe message and the OAuth error
// code the broker's /v1/auth/device/poll response should carry. The exported
// Err* values are sentinels: compare with errors.Is.
type Error struct {
	code string
	msg  string
}

func (e *Error) Error() string { return "device login: " + e.msg }

// Code is the RFC 8628 §3.5 / RFC 6749 §5.2 error code for the wire response
// (e.g. "authorization_pending", "slow_down", "expired_token", "access_denied").
func (e *Error) Code() string { return e.code }

// Message is the user-safe text without the package prefix; render this (with
// Code) to the agent, not err.Error() of a wrapping error, which may carry
// internal detail for the broker's log.
func (e *Error) Message() string { return e.msg }

// Sentinels. Pending and SlowDown are not failures: the agent keeps polling
// (after adding 5 s to its interval on SlowDown). The others end the login.
var (
	ErrPending        = &Error{"authorization_pending", "authorization pending: the user has not approved the request yet"}
	ErrSlowDown       = &Error{"slow_down", "polling too fast: wait longer between polls"}
	ErrExpired        = &Error{"expired_token", "the device code expired before it was approved; start a new login"}
	ErrDenied         = &Error{"access_denied", "the user denied the login request"}
	ErrUnknownHandle  = &Error{"invalid_grant", "unknown or already used device login handle"}
	ErrTooManyPending = &Error{"temporarily_unavailable", "too many device logins in progress; try again later"}
	ErrIdPUnavailable = &Error{"temporarily_unavailable", "the identity provider is unavailable"}
	ErrIdPRefused     = &Error{"server_error", "the identity provider refused the device login"}
)

// ErrorCode returns the wire error code of err if it is (or wraps) an *Error,
// and "server_error" otherwise.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.code
	}
	return "server_error"
}
