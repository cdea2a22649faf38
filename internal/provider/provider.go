// Package provider is the contract between qbroker and one quantum cloud.
// Each provider has its own package (ionq, awsbraket, …) that implements
// Adapter for the gateway's secretless path; providers with dynamic
// credentials also give the broker a way to mint them. The gateway drives
// any Adapter the same way: classify the request, check a submission
// against its job token before anything changes, redeem the token, add the
// upstream credential, forward, record the job's owner, audit.
package provider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"time"
)

// Kind is what a gateway request does.
type Kind int

// Request kinds.
const (
	Refused Kind = iota // never forwarded
	Submit              // creates a job: needs a job token
	Read                // reads a job or its results: needs the owner's broker token
	Cancel              // cancels a job: needs the owner's broker token
	Public              // forwarded with the credential, no job involved (device lists)
)

// Route is a classified gateway request.
type Route struct {
	Kind  Kind
	JobID string // for Read and Cancel: the provider's job id (decoded)
	// Action is the policy action for Read and Cancel (ReadJob,
	// ReadResult, CancelJob).
	Action string
	// Result marks a read of results the adapter fetches itself
	// (ResultFetcher), rather than one forwarded as it is.
	Result bool
}

// Submission is what a job submission asks for, read from the provider's
// own request shape.
type Submission struct {
	Device        string // the provider's device id as sent (an ARN for Braket)
	Shots         int
	ProgramSHA256 string // digest of the program, as the broker computes it for that format
	Qubits        int
}

// Credential is what the gateway holds for one upstream call: an API key
// or bearer token in Secret, or an AWS session (AccessKeyID, Secret,
// SessionToken). It lives in memory only and is dropped at Expires.
type Credential struct {
	AccessKeyID  string
	Secret       string
	SessionToken string
	Expires      time.Time
}

// Digest names a credential without revealing it: the hex SHA-256 of its
// key id and secret. A gateway reports a credential the provider rejected
// by its digest.
func (c Credential) Digest() string {
	sum := sha256.Sum256([]byte(c.AccessKeyID + "\x00" + c.Secret))
	return hex.EncodeToString(sum[:])
}

// Scope is the per-role setting an adapter may impose on a submission
// (for Braket: the only S3 bucket and prefix results may go to).
type Scope struct {
	Bucket, Prefix string
	AllowHybrid    bool
}

// Outcome is what a job's status answer says.
type Outcome struct {
	Status   string
	Terminal bool
	CostUSD  *float64 // when the provider reports it
	// QPUSeconds is the QPU time the provider reports for the job, when
	// it does (budgets' qpu_seconds limits settle on it).
	QPUSeconds *float64
}

// Adapter is one provider's gateway front.
type Adapter interface {
	// Name is the provider id in job tokens and job records ("aws").
	Name() string
	// Token reads the caller's qbroker token (a job token for Submit, the
	// broker token otherwise) from where the provider's own clients put
	// their credential.
	Token(h http.Header) (string, bool)
	// Route classifies method and the escaped path under the provider's
	// gateway prefix.
	Route(method, escapedPath string) Route
	// ParseSubmit validates a submission strictly and reads what the job
	// token is checked against.
	ParseSubmit(body []byte) (Submission, error)
	// Prepare returns the submission as it is forwarded (an adapter may
	// force fields the role fixes, such as the results location).
	Prepare(body []byte, s Scope) ([]byte, error)
	// JobID reads the new job's id from the upstream's submit answer.
	JobID(body []byte) (string, error)
	// Outcome reads status (and cost, if given) from a job answer.
	Outcome(body []byte) (Outcome, error)
	// Authenticate adds the credential to the upstream request; body is
	// exactly what will be sent.
	Authenticate(ctx context.Context, req *http.Request, body []byte, c Credential) error
	// WriteError answers in the provider's own error shape.
	WriteError(w http.ResponseWriter, status int, msg string)
}

// Minter turns the provider root credential the broker keeps sealed into
// the short-lived credential the gateway uses for one broker role (an IAM
// bearer token, an Entra access token, a provider id-token, an STS
// session). The broker caches the result until shortly before Expires.
type Minter interface {
	// Mint exchanges root for an upstream credential for role. When the
	// provider rotates the root credential on use (a refresh token), the
	// new one is returned in Rotated and the broker stores it, sealed,
	// before the credential is used: a lost rotation would lock the
	// account out.
	Mint(ctx context.Context, root string, role string) (c Credential, s Scope, rotated string, err error)
}

// CancelCaller is an optional extra: how to cancel a job upstream, for the
// gateway's own cancel of a job it could not record or audit (so the
// agent, told the job failed, is not billed for one that runs).
type CancelCaller interface {
	CancelCall(jobID string) (method, escapedPath string, body []byte)
}

// ResultFetcher is an optional extra for providers whose results live
// elsewhere (Braket writes them to S3): FetchResult fetches job id's
// results with the credential, sending each request it builds with send.
type ResultFetcher interface {
	FetchResult(ctx context.Context, jobID string, c Credential, send func(*http.Request) (*http.Response, error)) (*http.Response, error)
}

// Uploads is an optional extra for providers whose program travels in a
// separate upload before the job is created (Azure Quantum's blob
// storage). The gateway receives the upload itself, so the program it
// checks against the job token is the one that runs:
//
//   - UploadRoute classifies a request before Route: UploadGrant (the
//     holder of a verified, not yet redeemed job token asks where to
//     upload), UploadStaging (the upload itself, authorized by the
//     grant's own key), or "" (not an upload: go on with Route).
//   - Send makes the upstream calls of a Submit (after the token is
//     redeemed), Read or Cancel route and returns the answer for the agent.
type Uploads interface {
	UploadRoute(method, escapedPath string) string
	Grant(w http.ResponseWriter, r *http.Request, jti string, expires time.Time)
	ServeStaging(w http.ResponseWriter, r *http.Request, escapedPath string)
	Send(ctx context.Context, route Route, escapedPath string, body []byte, c Credential, send func(*http.Request) (*http.Response, error)) (*http.Response, error)
}

// UploadRoute results.
const (
	UploadGrant   = "grant"
	UploadStaging = "staging"
)
