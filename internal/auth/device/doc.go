// Package device is the broker side of the OAuth 2.0 device authorization grant
// (RFC 8628) for desktop agents: `qbroker login --method device`.
//
// The broker is the OAuth client of the configured identity provider. Start asks
// the IdP's device_authorization_endpoint for a device code and returns only the
// user-facing half (user code, verification URI, expiry, polling interval) plus an
// opaque Handle; the device code stays in the Flow, keyed by the Handle (32
// random bytes, base64url), and never leaves the broker. The agent shows the URI
// and code to its owner and polls the broker with the Handle; each Poll makes at
// most one token request to the IdP. When the owner approves, Poll returns the
// tokens the IdP issued to that person (Result); the broker then verifies the
// raw token with its jwtauth role and mints its own token bound to that subject.
//
// Pending entries are bounded (Config.MaxPending, expired entries swept on each
// Start), single use (a handle that completed, was denied, expired or failed is
// removed), and polled no faster than the IdP's interval: a poll that comes too
// early returns ErrSlowDown without contacting the IdP, and an IdP slow_down adds
// five seconds to the handle's interval (RFC 8628 §3.5).
//
// Errors callers branch on are the *Error sentinels below (ErrPending,
// ErrSlowDown, ErrExpired, ErrDenied, ErrUnknownHandle, ErrTooManyPending,
// ErrIdPUnavailable, ErrIdPRefused); each carries an RFC 8628 / RFC 6749 error
// code (Code) and a message safe to show the agent. They never contain device
// codes, tokens or the client secret.
//
// golang.org/x/oauth2's Config.DeviceAccessToken is not used for polling: it is
// a blocking loop that sleeps at least one interval before its first request and
// keeps polling while authorization is pending, whereas the broker answers each
// agent poll with exactly one IdP request. Its DeviceAuth does not authenticate
// confidential clients (it sends only client_id), which IdPs such as zitadel
// require at the token endpoint. The two form POSTs are therefore written here,
// with client_secret_basic authentication (RFC 6749 §2.3.1) on both.
package device
