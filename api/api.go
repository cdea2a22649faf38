// Package api holds qbroker's wire types: Vault's response envelope and the
// request and response bodies of every /v1 path. It imports only the
// standard library so that agents and tools can depend on it cheaply.
//
// Conventions (see docs/api.md): paths under /v1/; the caller's broker token
// in X-Vault-Token or Authorization: Bearer; success bodies are Response;
// failures are {"errors":[...]} with a status code as Vault uses them.
package api

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// TokenHeader is the header Vault clients put the token in.
const TokenHeader = "X-Vault-Token"

// Response is Vault's response envelope.
type Response struct {
	RequestID     string    `json:"request_id"`
	LeaseID       string    `json:"lease_id"`
	LeaseDuration int       `json:"lease_duration"`
	Renewable     bool      `json:"renewable"`
	Data          any       `json:"data"`
	WrapInfo      *WrapInfo `json:"wrap_info"`
	Warnings      []string  `json:"warnings"`
	Auth          *Auth     `json:"auth"`
	MountType     string    `json:"mount_type"`
}

// WrapInfo is Vault's response-wrapping block (unused until wrapping lands).
type WrapInfo struct {
	Token          string    `json:"token"`
	Accessor       string    `json:"accessor"`
	TTL            int       `json:"ttl"`
	CreationTime   time.Time `json:"creation_time"`
	CreationPath   string    `json:"creation_path"`
	WrappedAccesor string    `json:"wrapped_accessor,omitempty"`
}

// Auth is the auth block of a login or renewal.
type Auth struct {
	ClientToken   string            `json:"client_token"`
	Accessor      string            `json:"accessor"`
	Policies      []string          `json:"policies"`
	TokenPolicies []string          `json:"token_policies"`
	Metadata      map[string]string `json:"metadata"`
	LeaseDuration int               `json:"lease_duration"`
	Renewable     bool              `json:"renewable"`
	EntityID      string            `json:"entity_id"`
	TokenType     string            `json:"token_type"`
	Orphan        bool              `json:"orphan"`
	NumUses       int               `json:"num_uses"`
}

// ErrorResponse is the body of every failure.
type ErrorResponse struct {
	Errors []string `json:"errors"`
}

// Duration is a TTL on the wire: it accepts Vault's forms (integer seconds,
// or a Go duration string such as "15m") and is written as integer seconds.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		secs, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil || secs < 0 {
			return fmt.Errorf("duration %s: want non-negative whole seconds or a duration string", n)
		}
		*d = Duration(time.Duration(secs) * time.Second)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want seconds or a string like \"15m\"")
	}
	if secs, err := strconv.ParseInt(s, 10, 64); err == nil && secs >= 0 {
		*d = Duration(time.Duration(secs) * time.Second)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("duration %q: want a non-negative duration such as \"15m\"", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return strconv.AppendInt(nil, int64(time.Duration(d)/time.Second), 10), nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
