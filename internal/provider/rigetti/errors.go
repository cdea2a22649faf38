package rigetti

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrRefreshRejected means the authorization server answered invalid_grant:
// the stored refresh token is no longer valid (already used — by another
// broker replica or QCS client holding the same token, or by a mint whose
// rotation was lost — expired or revoked). Nothing but a new login fixes
// it: an operator must re-enrol a fresh refresh token with
// `qbroker provider set rigetti`. Test with errors.Is.
var ErrRefreshRejected = errors.New("rigetti: the stored QCS refresh token is no longer valid; an operator must re-enrol one with `qbroker provider set rigetti`")

// TokenError is the authorization server's refusal of a refresh: the HTTP
// status and the OAuth error code and description (RFC 6749 §5.2). It is
// ErrRefreshRejected (errors.Is) when Code is invalid_grant. It never
// holds a token.
type TokenError struct {
	Status      int
	Code        string // e.g. invalid_grant, invalid_client; "" if the answer had none
	Description string
}

func (e *TokenError) Error() string {
	what := fmt.Sprintf("HTTP %d", e.Status)
	if e.Code != "" {
		what += " " + e.Code
	}
	if e.Description != "" {
		what += ": " + e.Description
	}
	switch e.Code {
	case "invalid_grant":
		return fmt.Sprintf("rigetti: the token endpoint refused the stored QCS refresh token (%s); it is no longer valid (used already, expired or revoked) and an operator must re-enrol one with `qbroker provider set rigetti`", what)
	case "invalid_client":
		return fmt.Sprintf("rigetti: the token endpoint refused the client (%s); check the configured QCS client id (the refresh token was not used)", what)
	}
	return fmt.Sprintf("rigetti: the token endpoint refused the refresh (%s)", what)
}

// Is makes an invalid_grant refusal match ErrRefreshRejected.
func (e *TokenError) Is(target error) bool {
	return target == ErrRefreshRejected && e.Code == "invalid_grant"
}

// redactedError is an error whose text had secrets removed. It unwraps
// only to a context error (for errors.Is), never to the original text.
type redactedError struct {
	msg   string
	cause error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.cause }

// redact hides secrets in err's text (a transport error could quote what
// it was sending).
func redact(err error, secrets ...string) error {
	msg := err.Error()
	clean := scrub(msg, secrets...)
	if clean == msg {
		return err
	}
	var cause error
	for _, c := range []error{context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, c) {
			cause = c
		}
	}
	return &redactedError{msg: clean, cause: cause}
}

// scrub replaces every secret in s with [redacted].
func scrub(s string, secrets ...string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}

// clean makes server-supplied text safe to show: secrets removed, control
// characters dropped, at most n bytes.
func clean(s string, n int, secrets ...string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, scrub(s, secrets...))
	if len(s) > n {
		// Cut on a rune boundary.
		cut := n
		for cut > 0 && s[cut]&0xc0 == 0x80 {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
