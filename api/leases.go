package api

import "time"

// RevokeLeaseRequest is PUT /v1/sys/leases/revoke, as Vault's.
type RevokeLeaseRequest struct {
	LeaseID string `json:"lease_id"` // aws/creds/<role>/<id>, as GET /v1/aws/creds/<role> returned it
}

// LeaseRevocationData answers PUT /v1/sys/leases/revoke and POST
// /v1/sys/leases/revoke-prefix/<prefix>.
type LeaseRevocationData struct {
	LeaseID string    `json:"lease_id,omitempty"`
	Prefix  string    `json:"prefix,omitempty"`
	AWSRole string    `json:"aws_role"`
	AWS     AWSCutoff `json:"aws"`
}

// AWSCutoff is how STS sessions already issued were cut off: an explicit
// Deny in the IAM role's inline policy Policy of the sessions issued before
// IssuedBefore (of one lease, one agent, or all of the role's). Error, when
// set, says the Deny was not written: those sessions still work until they
// expire.
type AWSCutoff struct {
	RoleARN      string     `json:"role_arn"`
	Policy       string     `json:"policy,omitempty"`
	IssuedBefore *time.Time `json:"issued_before,omitempty"`
	// Widened: the policy was full, so every session of the role issued
	// before IssuedBefore is now denied, not only the ones asked for.
	Widened bool `json:"widened,omitempty"`
	// Unverified: IAM took the write, but reading the policy back did not
	// show the Deny (IAM is eventually consistent; or another replica
	// wrote at the same moment). Check the role's policy.
	Unverified bool   `json:"unverified,omitempty"`
	Error      string `json:"error,omitempty"`
}
