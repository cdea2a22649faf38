package mcp

import (
	"errors"
	"net/http"
	"regexp"
	"strings"

	"github.com/qbroker/qbroker/client"
)

// refusal is a tool error: msg is what the model reads (words it can act
// on, no internals, no credentials); cause is kept for the log only.
type refusal struct {
	msg   string
	cause error
}

func (r *refusal) Error() string { return r.msg }
func (r *refusal) Unwrap() error { return r.cause }

// refusef makes a refusal about the model's own input.
func refusef(msg string) error { return &refusal{msg: msg} }

// refuseBroker turns a broker answer into a refusal a model can act on.
func refuseBroker(err error) error {
	var r *refusal
	if errors.As(err, &r) {
		return r // already in words for the model (the local agent's refusals)
	}
	var ce *client.Error
	if !errors.As(err, &ce) {
		return &refusal{msg: "qbroker could not be reached or answered unexpectedly; nothing was done. Try again later.", cause: err}
	}
	reason := redact(strings.Join(ce.Errors, "; "))
	var msg string
	switch {
	case strings.Contains(reason, "invalid, expired or revoked token") || strings.Contains(reason, "missing token"):
		msg = "refused: the broker token this server acts with is invalid, expired or revoked. A person must give qbroker mcp a new token; retrying will not help."
	case strings.HasPrefix(reason, "budget limit"):
		msg = "refused by budget: " + reason + ". Nothing was issued or charged. Use fewer shots, a cheaper device, or wait until the limit resets; see the qbroker://budget resource."
	case strings.HasPrefix(reason, "rate limit") || ce.Status == http.StatusTooManyRequests:
		msg = "refused by rate limit: " + reason + ". Wait until it resets, then try again."
	case strings.Contains(reason, "denied by policy") || strings.HasPrefix(reason, "permission denied"):
		msg = "refused by policy: " + reason + ". This exact request will be refused again; choose a device and shots your role's policy allows (see list_devices), or ask a person to change the policy."
	case strings.Contains(reason, "allows at most") || strings.Contains(reason, "does not allow device"):
		msg = "refused by your role's limits: " + reason + ". Nothing was issued or charged. Stay within the role's limits."
	case ce.Status == http.StatusGone:
		msg = "refused: " + reason + ". The approval is no longer usable; submit the circuit again to ask for a new approval."
	case ce.Status == http.StatusConflict:
		msg = "refused: " + reason + "."
	case ce.Status == http.StatusNotFound:
		msg = "not found: " + reason + "."
	case ce.Status == http.StatusBadRequest:
		msg = "invalid request: " + reason + ". Fix the arguments and try again."
	case ce.Status == http.StatusForbidden:
		msg = "refused: " + reason + "."
	case ce.Status >= 500:
		msg = "qbroker is unavailable right now (" + reason + "); nothing was done. Try again later."
	default:
		msg = "refused: " + reason + "."
	}
	return &refusal{msg: msg, cause: err}
}

// credentialLike matches strings shaped like credentials: broker tokens
// (qbt_), JWTs and JWS (job tokens), bearer/apiKey header values, and
// long opaque secrets. redact replaces them, whatever their origin.
var credentialLike = regexp.MustCompile(`qbt_[A-Za-z0-9_\-]+|eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*\.?[A-Za-z0-9_\-]*|(?i:(?:bearer|apikey)\s+)[^\s"',;]+|[A-Za-z0-9_\-]{40,}`)

// redact removes anything credential-shaped from s. Hex digests (circuit
// SHA-256) are kept: they are not secrets and a model needs them.
func redact(s string) string {
	return credentialLike.ReplaceAllStringFunc(s, func(m string) string {
		if isHex(m) {
			return m
		}
		return "[redacted]"
	})
}

func isHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
