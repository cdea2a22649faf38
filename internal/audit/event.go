// Package audit records qbroker's audit trail: one JSON line per login,
// decision, issuance, redemption, submission, revocation and administrative
// action, made durable before the request it describes is answered.
//
// Two security invariants from DESIGN.md live here:
//
//   - Invariant 4 (fail closed): [Sink.Write] returns only once the event is
//     durable. Any error from Write, in particular one wrapping
//     [ErrUnavailable], means the event was not recorded and the caller must
//     refuse the request it was about to answer.
//   - Invariant 5 (no secrets): events carry no secret values. A value that
//     must be correlated (a token, a wrapped secret, a client secret) is
//     recorded only as a keyed digest from [Hasher.HMAC], in [Event.Hashed].
//
// [FileSink] is the file-backed sink. It uses group commit: concurrent
// writers are queued to a single goroutine that appends each batch with one
// write and one fsync, so throughput under load is bounded by batches, not by
// events.
//
// The trail is tamper-evident: the writer gives each line a seq and the
// SHA-256 of the previous line (prev), and with FileOptions.Signer appends
// Ed25519-signed checkpoint lines; [Verify] checks a trail offline with the
// public key alone. docs/audit.md documents the line formats.
//
// # Producing a failing sink in tests
//
// Tests of fail-closed behaviour in other packages should use a real sink
// that really fails rather than a mock:
//
//   - Linux: OpenFile("/dev/full", FileOptions{AllowNonRegular: true})
//     returns a sink whose every Write fails with ENOSPC, reported as
//     ErrUnavailable.
//   - Anywhere: open a FileSink in t.TempDir(), drive the happy path, then
//     Close it; every later Write fails with ErrUnavailable.
package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SchemaVersion is the version written in every line's "v" field. Version 3
// added qpu_seconds and the "recover" type; version 2
// added the hash chain (seq, prev), checkpoints, owner, estimated_cost_usd,
// actual_cost_usd and approval_id. docs/audit.md describes every field.
const SchemaVersion = 3

// TypeCheckpoint is the type of the signed checkpoint lines the sink writes
// itself. Callers may not write events of this type.
const TypeCheckpoint = "checkpoint"

// Decision values for [Event.Decision].
const (
	DecisionAllow = "allow"
	DecisionDeny  = "deny"
	DecisionError = "error"
)

// HashPrefix begins every digest produced by [Hasher.HMAC].
const HashPrefix = "hmac-sha256:"

// ErrUnavailable is returned (wrapped, with the cause) when a sink cannot
// persist an event: a write or fsync failed, or the sink is closed. Callers
// must treat it as "not recorded" and refuse the request.
var ErrUnavailable = errors.New("audit: sink unavailable")

// ErrInvalidEvent is returned (wrapped) for an event that cannot be recorded
// as given, such as a nil event or one without a Type. It is a programming
// error in the caller, who must still refuse the request.
var ErrInvalidEvent = errors.New("audit: invalid event")

// Event is one audit record. It must never hold a secret value: put secrets
// through [Hasher.HMAC] into Hashed instead. Accessor and JTI are identifiers,
// not secrets.
//
// Seq and Prev are the hash chain. They are assigned by the sink when it
// writes the line; whatever a caller puts there is ignored. They are filled
// when a line is read back.
type Event struct {
	Seq        uint64            `json:"seq,omitempty"`  // position in the whole trail, from 1
	Prev       string            `json:"prev,omitempty"` // hex SHA-256 of the previous line
	Time       time.Time         `json:"time"`
	Type       string            `json:"type"` // "login","decision","issue","redeem","submit","revoke","renew","lookup","admin", ...
	RequestID  string            `json:"request_id,omitempty"`
	Agent      string            `json:"agent,omitempty"`
	Role       string            `json:"role,omitempty"`
	AuthMethod string            `json:"auth_method,omitempty"`
	RemoteAddr string            `json:"remote_addr,omitempty"`
	Path       string            `json:"path,omitempty"`
	Action     string            `json:"action,omitempty"`
	Provider   string            `json:"provider,omitempty"`
	Device     string            `json:"device,omitempty"`
	Shots      int               `json:"shots,omitempty"`
	Decision   string            `json:"decision,omitempty"` // "allow","deny","error"
	Policies   []string          `json:"policies,omitempty"`
	Reason     string            `json:"reason,omitempty"`
	Accessor   string            `json:"accessor,omitempty"` // token accessor (not secret)
	JTI        string            `json:"jti,omitempty"`
	JobID      string            `json:"job_id,omitempty"`
	Status     int               `json:"status,omitempty"`
	Error      string            `json:"error,omitempty"`
	Hashed     map[string]string `json:"hashed,omitempty"` // name -> "hmac-sha256:<hex>" of secret values
	Owner      string            `json:"owner,omitempty"`  // accountable person or team of the agent
	// EstimatedCostUSD is the list-price estimate reserved at issuance; nil
	// when not applicable. A pointer so that a free job (0) is recorded.
	EstimatedCostUSD *float64 `json:"estimated_cost_usd,omitempty"`
	// ActualCostUSD is the settled cost reported for a job; nil when unknown.
	ActualCostUSD *float64 `json:"actual_cost_usd,omitempty"`
	// QPUSeconds is the QPU time the provider reported for a settled job;
	// nil when it reported none.
	QPUSeconds *float64 `json:"qpu_seconds,omitempty"`
	ApprovalID string   `json:"approval_id,omitempty"` // the approval that released the request
	// Approver is the person who voted on an approval (type "approval").
	Approver string `json:"approver,omitempty"`
	// ActingFor is the person the agent acted for (a delegated token).
	ActingFor string `json:"acting_for,omitempty"`
	// Client is the software the agent drove the broker through, as that
	// software named itself (an MCP client's name and version, sent by
	// `qbroker mcp` in X-Qbroker-Client). Self-declared: it attributes, it
	// does not authenticate.
	Client  string `json:"client,omitempty"`
	Version int    `json:"v"` // schema version, SchemaVersion
}

// USD returns a pointer to v, for [Event.EstimatedCostUSD] and
// [Event.ActualCostUSD].
func USD(v float64) *float64 { return &v }

// encodeLine renders e as one JSON line terminated by '\n', without the
// chain fields, which the writer adds in front (see chainLine). It does not
// modify e: a zero Time is filled with the current UTC time and Version is
// set to SchemaVersion on a copy.
func encodeLine(e *Event, now func() time.Time) ([]byte, error) {
	if e == nil {
		return nil, fmt.Errorf("%w: nil event", ErrInvalidEvent)
	}
	if e.Type == "" {
		return nil, fmt.Errorf("%w: empty type", ErrInvalidEvent)
	}
	if e.Type == TypeCheckpoint {
		// Only the sink writes checkpoints; a caller-made one would be a
		// forgery attempt or a bug.
		return nil, fmt.Errorf("%w: type %q is reserved", ErrInvalidEvent, TypeCheckpoint)
	}
	ev := *e
	ev.Seq, ev.Prev = 0, "" // assigned by the writer
	if ev.Time.IsZero() {
		ev.Time = now()
	}
	ev.Time = ev.Time.UTC()
	ev.Version = SchemaVersion
	for name, v := range ev.Hashed {
		if !isDigest(v) {
			// A raw value here would put a secret on disk (invariant 5).
			// Do not echo the value itself in the error.
			return nil, fmt.Errorf("%w: hashed[%q] is not an %s digest", ErrInvalidEvent, name, HashPrefix)
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&ev); err != nil { // Encode appends '\n'
		return nil, fmt.Errorf("%w: encode: %w", ErrInvalidEvent, err)
	}
	return buf.Bytes(), nil
}

// isDigest reports whether v has the exact shape HMAC produces.
func isDigest(v string) bool {
	const hexLen = 64
	if len(v) != len(HashPrefix)+hexLen || v[:len(HashPrefix)] != HashPrefix {
		return false
	}
	for _, c := range v[len(HashPrefix):] {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
