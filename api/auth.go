package api

import "time"

// AppRoleLoginRequest is POST /v1/auth/approle/login.
type AppRoleLoginRequest struct {
	RoleID   string `json:"role_id"`
	SecretID string `json:"secret_id"`
}

// RenewRequest is POST /v1/auth/token/renew-self.
type RenewRequest struct {
	Increment Duration `json:"increment,omitempty"`
}

// AccessorRequest is POST /v1/auth/token/revoke-accessor and lookup-accessor.
type AccessorRequest struct {
	Accessor string `json:"accessor"`
}

// TokenRequest is POST /v1/auth/token/lookup (a privileged caller looking up
// another token, as a gateway does for status reads).
type TokenRequest struct {
	Token string `json:"token"`
}

// TokenInfo is the data of lookup-self, lookup and lookup-accessor, in
// Vault's field names. ID is present only in lookup-self, where the caller
// already holds the token.
type TokenInfo struct {
	ID             string            `json:"id,omitempty"`
	Accessor       string            `json:"accessor"`
	CreationTime   int64             `json:"creation_time"`
	CreationTTL    int               `json:"creation_ttl"`
	DisplayName    string            `json:"display_name"`
	EntityID       string            `json:"entity_id"`
	ExpireTime     *time.Time        `json:"expire_time"`
	ExplicitMaxTTL int               `json:"explicit_max_ttl"`
	IssueTime      time.Time         `json:"issue_time"`
	Meta           map[string]string `json:"meta"`
	NumUses        int               `json:"num_uses"`
	Orphan         bool              `json:"orphan"`
	Path           string            `json:"path"`
	Policies       []string          `json:"policies"`
	Renewable      bool              `json:"renewable"`
	TTL            int               `json:"ttl"`
	Type           string            `json:"type"`
	Role           string            `json:"role,omitempty"`
}

// RoleIDData is GET /v1/auth/approle/role/<role>/role-id.
type RoleIDData struct {
	RoleID string `json:"role_id"`
}

// SecretIDRequest is POST /v1/auth/approle/role/<role>/secret-id.
type SecretIDRequest struct {
	Agent    string            `json:"agent,omitempty"` // agent name; defaults to the accessor
	Metadata map[string]string `json:"metadata,omitempty"`
	TTL      *Duration         `json:"ttl,omitempty"`
	NumUses  *int              `json:"num_uses,omitempty"`
}

// SecretIDData is the response to SecretIDRequest.
type SecretIDData struct {
	SecretID         string `json:"secret_id"`
	SecretIDAccessor string `json:"secret_id_accessor"`
	SecretIDTTL      int    `json:"secret_id_ttl"`
	SecretIDNumUses  int    `json:"secret_id_num_uses"`
	Agent            string `json:"agent"`
}

// JWTLoginRequest is POST /v1/auth/oidc/login and /v1/auth/jwt/login, as in
// Vault's JWT method (and the article's sample agent).
type JWTLoginRequest struct {
	Role string `json:"role"`
	JWT  string `json:"jwt"`
}

// RevokeAgentRequest is POST /v1/sys/agents/<id>/revoke.
type RevokeAgentRequest struct {
	Suspend    bool   `json:"suspend,omitempty"`     // also refuse new logins until resumed
	CancelJobs bool   `json:"cancel_jobs,omitempty"` // also cancel the agent's jobs at the provider
	Reason     string `json:"reason,omitempty"`
}

// RevokeAgentData is its response.
type RevokeAgentData struct {
	Agent     string        `json:"agent"`
	Revoked   int           `json:"revoked_tokens"`
	Suspended bool          `json:"suspended"`
	Jobs      []CanceledJob `json:"canceled_jobs,omitempty"`
	// AWSSessions are the agent's STS sessions cut off, one entry per IAM
	// role the broker assumes (when AWS credentials are configured). An
	// entry with an error means that role's sessions still work.
	AWSSessions []AWSCutoff `json:"aws_sessions,omitempty"`
}

// CanceledJob is one job a revocation asked the provider to cancel.
type CanceledJob struct {
	Provider string `json:"provider"`
	ID       string `json:"id"`
	Status   string `json:"status,omitempty"` // what the provider reports, e.g. "canceled" or "already finished"
	Error    string `json:"error,omitempty"`
}

// TokenExchangeRequest is POST /v1/auth/token/exchange (RFC 8693, JSON):
// subject_token is the person's broker token, actor_token the agent's.
type TokenExchangeRequest struct {
	GrantType        string `json:"grant_type"`
	SubjectToken     string `json:"subject_token"`
	SubjectTokenType string `json:"subject_token_type"`
	ActorToken       string `json:"actor_token"`
	ActorTokenType   string `json:"actor_token_type"`
}

// DeviceStartRequest is POST /v1/auth/device/start.
type DeviceStartRequest struct {
	Role string `json:"role"` // the JWT role that verifies the person's ID token
}

// DeviceStartData is its response: show the person the URI and code, then
// poll with the handle (a bearer secret) every Interval seconds.
type DeviceStartData struct {
	Handle                  string `json:"handle"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete,omitempty"`
	ExpiresIn               int    `json:"expires_in"`
	Interval                int    `json:"interval"`
}

// DevicePollRequest is POST /v1/auth/device/poll.
type DevicePollRequest struct {
	Handle string `json:"handle"`
}
