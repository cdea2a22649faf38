package api

import (
	"encoding/json"
	"time"
)

// ApprovalHeader releases an administrative call that an approval rule
// held: repeat the same call with the approved request's id in it.
const ApprovalHeader = "X-Qbroker-Approval"

// Approval states.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved" // the approved parameters may be issued once
	ApprovalDenied   = "denied"
	ApprovalExpired  = "expired"
	ApprovalIssued   = "issued" // approved and used
)

// Approval is a request held for human consent: the data of the 202 answer
// to a gated request, of GET /v1/sys/approvals/<id> and of the decision
// calls.
type Approval struct {
	ID    string `json:"approval_id"`
	State string `json:"state"`

	// Who asks.
	Requester string `json:"requester"`            // agent id
	ActingFor string `json:"acting_for,omitempty"` // the person a delegated agent acts for
	Role      string `json:"role"`
	Owner     string `json:"owner,omitempty"` // the role's owner (never an approver of it)
	Team      string `json:"team,omitempty"`
	Source    string `json:"source_ip,omitempty"`

	// What for: exactly what will be issued once approved.
	Action           string          `json:"action"` // SubmitJob
	Provider         string          `json:"provider"`
	Device           string          `json:"device"`
	DeviceKind       string          `json:"device_kind"` // qpu or simulator
	Shots            int             `json:"shots"`
	Program          json.RawMessage `json:"program,omitempty"`
	Format           string          `json:"format,omitempty"`
	ProgramSHA256    string          `json:"program_sha256,omitempty"`
	EstimatedCostUSD float64         `json:"estimated_cost_usd"`
	Price            *DevicePrice    `json:"price,omitempty"`

	// Why, and who must consent.
	Reasons  []string `json:"reasons"` // the rules and policies that asked for approval
	Rule     string   `json:"rule"`
	Required int      `json:"required"`       // approvals needed
	Group    string   `json:"approver_group"` // who may approve
	Approved int      `json:"approvals"`      // approvals so far
	Votes    []Vote   `json:"votes,omitempty"`

	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"` // a pending request expires then
	DecidedAt *time.Time `json:"decided_at,omitempty"`
	IssueBy   *time.Time `json:"issue_by,omitempty"` // an approved request must be issued before this
	// Reason explains a final state: the denier's reason, or why it expired.
	Reason     string `json:"reason,omitempty"`
	JTI        string `json:"jti,omitempty"` // the job token issued from it
	ConsoleURL string `json:"console_url,omitempty"`
}

// Vote is one person's decision on an approval.
type Vote struct {
	Approver string    `json:"approver"`
	Decision string    `json:"decision"` // approve or deny
	Reason   string    `json:"reason,omitempty"`
	Via      string    `json:"via"` // console or api
	At       time.Time `json:"at"`
}

// DevicePrice is a device's list price.
type DevicePrice struct {
	PerTaskUSD   float64 `json:"per_task_usd"`
	PerShotUSD   float64 `json:"per_shot_usd"`
	PerMinuteUSD float64 `json:"per_minute_usd,omitempty"`
	// MinMinutes is the least runtime billed per task, for devices billed
	// by the minute.
	MinMinutes float64 `json:"min_minutes,omitempty"`
	// PerSecondUSD prices QPU time, for devices billed by it (IBM).
	PerSecondUSD float64 `json:"per_second_usd,omitempty"`
}

// DecisionRequest is the body of POST /v1/sys/approvals/<id>/approve and
// /deny.
type DecisionRequest struct {
	Reason string `json:"reason"`
}

// ApprovalList is the data of GET /v1/sys/approvals.
type ApprovalList struct {
	Approvals []Approval `json:"approvals"`
}
