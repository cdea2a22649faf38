// Package token issues and checks the two kinds of bearer token qbroker hands
// out.
//
// Broker tokens are opaque: "qbt_" + 43 base62 characters of 256-bit
// randomness + a 6-character base62 CRC32 checksum, so secret scanners can
// recognise a leaked token offline. The store keeps only [Hash] of a token.
//
// Job tokens are short-lived JWTs signed with Ed25519 (JWS alg "EdDSA", typ
// "qbroker-job+jwt") by a [KeyRing] that supports rotation with overlap and
// publishes its public keys as a JWKS. A [Verifier] checks them against a
// [KeySource]: the KeyRing itself inside the broker, or a [JWKSCache] in a
// gateway that fetches the broker's JWKS. Verification refuses every algorithm
// but EdDSA before any key lookup and returns typed errors ([ErrMalformed],
// [ErrUnsupportedAlg], [ErrUnknownKey], [ErrBadSignature], [ErrExpired],
// [ErrNotYetValid], [ErrClaims]) that never contain the token.
package token
