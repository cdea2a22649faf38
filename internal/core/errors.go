package core

import (
	"errors"
	"fmt"
)

// Kind classifies an error for the one place that maps errors to HTTP.
type Kind int

// Kinds of user-facing error.
const (
	KindInternal         Kind = iota // 500: the message is never shown
	KindBadRequest                   // 400
	KindPermissionDenied             // 403
	KindUnauthenticated              // 401 at the gateway (IonQ's answer to a bad key); 403 at the broker API (Vault's)
	KindNotFound                     // 404
	KindMethodNotAllowed             // 405
	KindConflict                     // 409
	KindTooLarge                     // 413
	KindRateLimited                  // 429
	KindUnavailable                  // 503: e.g. the audit sink cannot persist
	KindGone                         // 410: e.g. an approval that expired
)

// Error is an error whose Msg is safe to show the caller. Err is the
// internal cause: logged, never sent.
type Error struct {
	Kind Kind
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds a user-safe error of the given kind.
func Errorf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

// Wrap builds a user-safe error with an internal cause.
func Wrap(k Kind, cause error, msg string) *Error {
	return &Error{Kind: k, Msg: msg, Err: cause}
}

// KindOf returns the kind of err, KindInternal when it carries none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// UserMessage returns what the caller may see for err.
func UserMessage(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Kind != KindInternal {
		return e.Msg
	}
	return "internal error"
}
