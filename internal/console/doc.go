// Package console is the approval console: the web pages under /ui/ where
// people review the requests the broker holds for human consent (a job on
// real quantum hardware, a costly run) and approve or deny them.
//
// Pages are rendered on the server with html/template; the stylesheet is
// embedded; no JavaScript is needed. People sign in with OpenID Connect
// (authorization code with PKCE S256, ID token verified for issuer,
// audience, expiry and nonce) or, in `qbroker dev`, with a one-time login
// link. The session is an HMAC-SHA256-signed cookie; every form carries a
// CSRF token bound to the session, the action and the approval, and POSTs
// from another origin are refused.
//
// The console decides nothing itself: every read and every decision goes
// through [Backend], which the broker implements and authorizes.
package console
