// Package quantinuum is qbroker's Quantinuum adapter, for the legacy
// machine API (https://qapi.quantinuum.com/v1/, reference section 5.1),
// emulated by package quantinuumsim. Quantinuum Nexus (cookie sessions) is
// not covered.
//
// [Minter] turns the sealed root credential into an id-token with POST
// /v1/login. The root credential is either the account's refresh token
// (recommended: it works with MFA and keeps the password out of qbroker)
// or "email:password" (told apart by an '@' before the first ':'; refresh
// tokens have neither character). A refresh-token login returns a new
// id-token; if the service also returns a different refresh token, it is
// handed back as the rotated root so the broker stores it. A password
// login never rotates anything (the password stays the root), and fails
// for an account with MFA. quantinuumsim supports both forms; it never
// rotates refresh tokens, and its refresh tokens expire 30 days after the
// password login that issued them (UNCERTAIN for the service: pytket
// caches them 29 days), after which a new one must be stored.
//
// The login answer gives no expiry. The id-token's expiry is its JWT "exp"
// claim when it is a JWT (as the service's are, UNCERTAIN), otherwise
// Minter.IDTokenLifetime after the login was sent (default 55 minutes,
// pytket's cache setting for a token believed to last about an hour); it
// is never more than MaxIDTokenLifetime.
//
// [Adapter] is the gateway's front, served under a prefix such as
// /quantinuum with the service's own paths, so the gateway's upstream is
// the service root (https://qapi.quantinuum.com): POST /v1/job submits,
// GET /v1/job/{id} reads (results included, so it is a ReadResult),
// POST /v1/job/{id}/cancel cancels, and GET /v1/machine[/{name}] is
// public. POST /v1/login and everything else are refused. A caller sends
// its qbroker token where Quantinuum clients send their id-token: the raw
// Authorization header value, without a scheme.
//
// A submission must be one OpenQASM 2.0 program (language "OPENQASM 2.0",
// parsed by package qasm) with an explicit count; options, a priority
// other than "normal", batching, WASM and unknown members are refused,
// since the job token cannot bind what they do (UNCERTAIN: the service's
// options are not in the reference). The job is forwarded re-encoded from
// the checked fields, with max-cost at most the configured HQC ceiling.
package quantinuum
