// Package seal provides envelope encryption for secrets at rest.
//
// Every secret is encrypted with AES-256-GCM under a fresh random 256-bit data
// key (DEK). The DEK is itself encrypted ("wrapped") with AES-256-GCM under a
// key-encryption key (KEK) obtained from a [KEKProvider]. The resulting blob is
// self-describing:
//
//	version (1 byte) | key id (8 bytes) | wrapped DEK (12-byte nonce + 32 + 16 tag) | nonce (12 bytes) | ciphertext+tag
//
// The key id is the first 8 bytes of SHA-256 of the KEK, so opening a blob with
// the wrong KEK fails with [ErrWrongKey] rather than an opaque authentication
// failure. The caller-supplied additional authenticated data (AAD) binds a blob
// to the name of the secret it holds (for example "signing-key/<kid>"), so a
// blob cannot be moved to another name in the store.
//
// Built-in KEK providers are [FileKEK] (a key file, for development and
// single-host deployments) and [EnvKEK] (a base64 key in an environment
// variable). Neither ever puts key material in an error string.
package seal
