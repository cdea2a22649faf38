package api

// AuditHashRequest is POST /v1/sys/audit/hash: the HMAC under the audit key
// of a value an operator wants to find in the trail (root only).
type AuditHashRequest struct {
	Value string `json:"value"`
}

// AuditHashData is its response.
type AuditHashData struct {
	Hash string `json:"hash"`
}

// AuditPublicKeyData is GET /v1/sys/audit/public-key: the Ed25519 key that
// signs the trail's checkpoints, and the trail's current head.
type AuditPublicKeyData struct {
	KeyID     string `json:"key_id"`
	PublicKey string `json:"public_key"` // standard base64 of the raw 32-byte key
	Seq       uint64 `json:"seq,omitempty"`
	ChainHead string `json:"chain_head,omitempty"`
}
