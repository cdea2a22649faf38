package api

import (
	"encoding/json"
	"time"
)

// Role is the body of POST /v1/sys/roles/<name> and the data of its GET.
type Role struct {
	Name            string   `json:"name,omitempty"` // from the path; ignored in requests
	Provider        string   `json:"provider"`
	Devices         []string `json:"devices"`
	MaxShots        int      `json:"max_shots"`
	TokenTTL        Duration `json:"token_ttl,omitempty"`
	TokenMaxTTL     Duration `json:"token_max_ttl,omitempty"`
	JobTokenTTL     Duration `json:"job_token_ttl,omitempty"`
	SecretIDTTL     Duration `json:"secret_id_ttl,omitempty"`
	SecretIDNumUses int      `json:"secret_id_num_uses,omitempty"`
	Owner           string   `json:"owner,omitempty"`
	Team            string   `json:"team,omitempty"`
	RoleID          string   `json:"role_id,omitempty"` // read-only
}

// ListData is the data of a LIST (GET ?list=true) call, in Vault's shape.
type ListData struct {
	Keys []string `json:"keys"`
}

// JobTokenRequest is POST /v1/quantum/jobtoken/<role>.
type JobTokenRequest struct {
	Provider      string `json:"provider"`
	Device        string `json:"device"`
	Shots         int    `json:"shots"`
	ProgramSHA256 string `json:"program_sha256,omitempty"`
	// Program is the program itself: an IonQ circuit input object
	// ({"qubits":2,"circuit":[...]}) for format "ionq.circuit.v1", or the
	// OpenQASM 3 source as a JSON string for format "qasm3". A request that
	// needs approval must carry it, so the approver sees what will run; the
	// token is then bound to its digest.
	Program json.RawMessage `json:"program,omitempty"`
	Format  string          `json:"format,omitempty"` // "ionq.circuit.v1" (default), "qasm3", "qasm2" or "quil"
	// ApprovalID redeems an approved request: the parameters must be
	// exactly the approved ones, and it works once.
	ApprovalID string `json:"approval_id,omitempty"`
}

// Program formats.
const (
	FormatIonQ  = "ionq.circuit.v1"
	FormatQASM3 = "qasm3"
	FormatQASM2 = "qasm2" // OpenQASM 2.0 (Quantinuum)
	FormatQuil  = "quil"  // Quil (Rigetti QCS)
)

// JobTokenData is the data of a job token response.
type JobTokenData struct {
	Token         string    `json:"token"`
	JTI           string    `json:"jti"`
	ExpiresAt     time.Time `json:"expires_at"`
	GatewayAddr   string    `json:"gateway_addr"`
	Provider      string    `json:"provider"`
	Device        string    `json:"device"`
	MaxShots      int       `json:"max_shots"`
	ProgramSHA256 string    `json:"program_sha256,omitempty"`
	Policies      []string  `json:"policies"` // the policies that permitted the request
}

// KeyRotateData is the data of POST /v1/sys/keys/rotate.
type KeyRotateData struct {
	ActiveKID  string    `json:"active_kid"`
	RetiredKID string    `json:"retired_kid"`
	RetiredAt  time.Time `json:"retired_verifiable_until"`
}

// HealthData is GET /v1/sys/health.
type HealthData struct {
	Initialized bool   `json:"initialized"`
	Sealed      bool   `json:"sealed"`
	Standby     bool   `json:"standby"`
	Version     string `json:"version"`
	ServerTime  int64  `json:"server_time_utc"`
	Store       string `json:"store"` // ok or failing
	Audit       string `json:"audit"` // ok or failing (the last write failed)
	Draining    bool   `json:"draining"`
}

// Gateway-facing calls (token policy "gateway").

// RedeemRequest is POST /v1/sys/gateway/redeem: mark a job token used.
type RedeemRequest struct {
	JTI string `json:"jti"`
}

// JobRecord is POST /v1/sys/gateway/jobs and the data of
// GET /v1/sys/gateway/jobs/<provider>/<id>.
type JobRecord struct {
	Provider  string    `json:"provider"`
	ID        string    `json:"id"`
	AgentID   string    `json:"agent_id"`
	Role      string    `json:"role"`
	JTI       string    `json:"jti"`
	Device    string    `json:"device"`
	Shots     int       `json:"shots"`
	CreatedAt time.Time `json:"created_at"`
}

// ProviderCredential is the data of GET /v1/sys/gateway/credentials/<provider>:
// the upstream credential a gateway injects. Only tokens with the gateway
// policy can read it.
type ProviderCredential struct {
	Provider string `json:"provider"`
	APIKey   string `json:"api_key"`
}

// AuthorizeRequest is POST /v1/sys/gateway/authorize: may the agent behind
// Token do Action ("ReadJob", "ReadResult", "CancelJob") on Job?
type AuthorizeRequest struct {
	Token  string    `json:"token"`
	Action string    `json:"action"`
	Job    JobRecord `json:"job"`
}

// FreezeRequest is POST /v1/sys/freeze: the global switch that refuses all
// QPU work (issuance and redemption) until lifted. Root only.
type FreezeRequest struct {
	Hardware bool   `json:"hardware"`
	Reason   string `json:"reason,omitempty"`
}

// FreezeData is the state of the switch (GET /v1/sys/freeze).
type FreezeData struct {
	HardwareFrozen bool   `json:"hardware_frozen"`
	Reason         string `json:"reason,omitempty"`
}

// AWSCredsData is the data of GET /v1/aws/creds/<role>: an STS session
// (the lease_id and lease_duration are in the envelope).
type AWSCredsData struct {
	AccessKey     string    `json:"access_key"`
	SecretKey     string    `json:"secret_key"`
	SecurityToken string    `json:"security_token"`
	ARN           string    `json:"arn,omitempty"` // the assumed-role session
	Expiration    time.Time `json:"expiration"`
}

// ProviderTokenData is the data of GET /v1/ibm/token/<role> and
// GET /v1/azure/token/<role>: a fresh short-lived bearer token for the
// provider's own API. Secret.
type ProviderTokenData struct {
	AccessToken string    `json:"access_token"`
	TokenType   string    `json:"token_type"` // Bearer
	Provider    string    `json:"provider"`
	ExpiresAt   time.Time `json:"expires_at"`
	ExpiresIn   int       `json:"expires_in"` // seconds
}

// UpstreamData is the data of GET /v1/sys/gateway/upstream/<provider>?role=R
// (gateway tokens only): the short-lived upstream credential the gateway
// uses for a broker role, and the scope it enforces. Secret.
type UpstreamData struct {
	AccessKeyID  string    `json:"access_key_id,omitempty"`
	Secret       string    `json:"secret"`
	SessionToken string    `json:"session_token,omitempty"`
	Expires      time.Time `json:"expires"`
	Bucket       string    `json:"bucket,omitempty"`
	Prefix       string    `json:"prefix,omitempty"`
}

// BudgetUsage is one limit and its use (GET /v1/sys/budgets).
type BudgetUsage struct {
	Limit    string     `json:"limit"`
	Scope    string     `json:"scope"` // agent, role or team
	ScopeID  string     `json:"scope_id"`
	Class    string     `json:"class,omitempty"` // hardware or simulator; empty: both
	Metric   string     `json:"metric"`          // jobs, shots, usd, in_flight
	Max      float64    `json:"max"`
	Used     float64    `json:"used"`
	ResetsAt *time.Time `json:"resets_at,omitempty"`
}

// SettleRequest is POST /v1/sys/gateway/settle (gateway tokens only): a
// job the gateway saw finish.
type SettleRequest struct {
	JTI       string  `json:"jti"`
	Completed bool    `json:"completed"`
	ActualUSD float64 `json:"actual_usd"` // < 0: no cost reported
	// QPUSeconds is the QPU time the provider reported for the job; absent
	// when it reports none.
	QPUSeconds *float64 `json:"qpu_seconds,omitempty"`
}

// DeviceInfo is one entry of the device catalogue
// (GET /v1/quantum/devices: data.devices).
type DeviceInfo struct {
	Provider string      `json:"provider"`
	Name     string      `json:"name"`
	Kind     string      `json:"kind"`          // qpu or simulator
	ARN      string      `json:"arn,omitempty"` // the provider's id or ARN for it (Braket's deviceArn)
	Qubits   int         `json:"qubits"`
	MaxShots int         `json:"max_shots,omitempty"`
	Price    DevicePrice `json:"price"` // list price; all zero: free
}
