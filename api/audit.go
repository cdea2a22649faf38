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

// ClientHeader names the client software a request comes through (for
// example `qbroker mcp` on behalf of the MCP client "claude-desktop 1.2").
// The broker records it in the request's audit events; it is
// self-declared, so it attributes and does not authenticate.
const ClientHeader = "X-Qbroker-Client"

// ToolCallRequest is POST /v1/sys/audit/tool-call: an agent's tool server
// (`qbroker mcp`) records a tool call in the audit trail before acting on
// it, with the MCP client's name. Any valid broker token may record its
// own calls; the agent and role come from the token.
type ToolCallRequest struct {
	Client     string `json:"client"` // required: the MCP client's name and version
	Tool       string `json:"tool"`   // required: e.g. submit_circuit
	Provider   string `json:"provider,omitempty"`
	Device     string `json:"device,omitempty"`
	Shots      int    `json:"shots,omitempty"`
	JobID      string `json:"job_id,omitempty"`
	ApprovalID string `json:"approval_id,omitempty"`
}
