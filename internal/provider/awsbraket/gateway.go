package awsbraket

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/qbroker/qbroker/internal/circuit/qasm"
	"github.com/qbroker/qbroker/internal/provider"
)

// Adapter is the gateway's Braket front: Braket's own REST shapes under
// the gateway's /braket prefix, so an unmodified Braket client can point
// its endpoint at the gateway. The client's qbroker token travels where an
// AWS SDK puts a session token (X-Amz-Security-Token; any access key and
// secret will do, the gateway re-signs), or as Authorization: Bearer.
type Adapter struct {
	// Region is used to sign calls whose path names no regional ARN.
	Region string
	// Braket and S3 are the upstream bases results are read from (S3 in
	// path style, e.g. https://s3.us-east-1.amazonaws.com).
	Braket, S3 string
}

var (
	_ provider.Adapter       = Adapter{}
	_ provider.ResultFetcher = Adapter{}
)

// Name implements provider.Adapter.
func (Adapter) Name() string { return "aws" }

// Token implements provider.Adapter.
func (Adapter) Token(h http.Header) (string, bool) {
	if t := h.Get("X-Amz-Security-Token"); t != "" {
		return t, true
	}
	if a := h.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:]), true
	}
	return "", false
}

// Route implements provider.Adapter: CreateQuantumTask submits;
// GetQuantumTask reads; CancelQuantumTask cancels; device discovery is
// public. Hybrid jobs (POST /job, which start instances), spending limits,
// tags and anything else are refused.
func (Adapter) Route(method, p string) provider.Route {
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	switch {
	case method == http.MethodPost && p == "/quantum-task":
		return provider.Route{Kind: provider.Submit}
	case method == http.MethodGet && len(segs) == 2 && segs[0] == "quantum-task":
		if arn, err := url.PathUnescape(segs[1]); err == nil && isTaskARN(arn) {
			return provider.Route{Kind: provider.Read, JobID: arn, Action: "ReadJob"}
		}
	case method == http.MethodGet && len(segs) == 3 && segs[0] == "quantum-task" && segs[2] == "results":
		// A qbroker extension: the task's results, read from S3 for the owner.
		if arn, err := url.PathUnescape(segs[1]); err == nil && isTaskARN(arn) {
			return provider.Route{Kind: provider.Read, JobID: arn, Action: "ReadResult", Result: true}
		}
	case method == http.MethodPut && len(segs) == 3 && segs[0] == "quantum-task" && segs[2] == "cancel":
		if arn, err := url.PathUnescape(segs[1]); err == nil && isTaskARN(arn) {
			return provider.Route{Kind: provider.Cancel, JobID: arn, Action: "CancelJob"}
		}
	case method == http.MethodPost && p == "/devices":
		return provider.Route{Kind: provider.Public}
	case method == http.MethodGet && len(segs) == 2 && segs[0] == "device":
		return provider.Route{Kind: provider.Public}
	}
	return provider.Route{Kind: provider.Refused}
}

func isTaskARN(s string) bool {
	return strings.HasPrefix(s, "arn:aws:braket:") && strings.Contains(s, ":quantum-task/") && !strings.ContainsAny(s, "?#")
}

// createTask is CreateQuantumTask's body as the gateway checks it.
type createTask struct {
	ClientToken       string          `json:"clientToken"`
	DeviceArn         string          `json:"deviceArn"`
	DeviceParameters  json.RawMessage `json:"deviceParameters,omitempty"`
	Shots             *int            `json:"shots"`
	OutputS3Bucket    string          `json:"outputS3Bucket"`
	OutputS3KeyPrefix string          `json:"outputS3KeyPrefix"`
	Action            string          `json:"action"`
	Tags              json.RawMessage `json:"tags,omitempty"`
}

// openQASMProgram is the Braket IR inside "action" (a JSON string).
type openQASMProgram struct {
	Header struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"braketSchemaHeader"`
	Source string `json:"source"`
}

// ParseSubmit implements provider.Adapter. Unknown members, program
// inputs, hybrid-job association and any IR other than an OpenQASM 3
// program are refused, so what is checked is what runs.
func (Adapter) ParseSubmit(body []byte) (provider.Submission, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var t createTask
	if err := dec.Decode(&t); err != nil {
		return provider.Submission{}, fmt.Errorf("CreateQuantumTask body: %w", err)
	}
	if dec.More() {
		return provider.Submission{}, errors.New("CreateQuantumTask body: data after the JSON object")
	}
	switch {
	case t.ClientToken == "" || len(t.ClientToken) > 64:
		return provider.Submission{}, errors.New("clientToken is required (1-64 characters)")
	case t.DeviceArn == "":
		return provider.Submission{}, errors.New("deviceArn is required")
	case t.Shots == nil || *t.Shots < 0:
		return provider.Submission{}, errors.New("shots is required and must not be negative")
	case t.Action == "":
		return provider.Submission{}, errors.New("action is required")
	}
	var prog openQASMProgram
	pd := json.NewDecoder(strings.NewReader(t.Action))
	pd.DisallowUnknownFields()
	if err := pd.Decode(&prog); err != nil {
		return provider.Submission{}, fmt.Errorf("action: %w", err)
	}
	if prog.Header.Name != "braket.ir.openqasm.program" || prog.Header.Version != "1" {
		return provider.Submission{}, fmt.Errorf("action: only braket.ir.openqasm.program version 1 is accepted (got %q %q)", prog.Header.Name, prog.Header.Version)
	}
	p, err := qasm.Parse([]byte(prog.Source))
	if err == nil && p.Version == "2.0" {
		err = errors.New("OpenQASM 2.0 is not accepted: braket.ir.openqasm.program is OpenQASM 3")
	}
	if err != nil {
		return provider.Submission{}, fmt.Errorf("action source: %w", err)
	}
	return provider.Submission{Device: t.DeviceArn, Shots: *t.Shots, ProgramSHA256: qasm.Digest([]byte(prog.Source)), Qubits: p.Qubits}, nil
}

// Prepare implements provider.Adapter: results go to the role's bucket,
// under its prefix (a prefix the agent chose inside it is kept).
func (Adapter) Prepare(body []byte, s provider.Scope) ([]byte, error) {
	if s.Bucket == "" {
		return nil, errors.New("no results bucket configured for this role")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	var asked string
	_ = json.Unmarshal(m["outputS3KeyPrefix"], &asked)
	prefix := strings.Trim(s.Prefix, "/")
	if prefix != "" && asked != prefix && !strings.HasPrefix(asked, prefix+"/") {
		asked = prefix
	}
	if strings.Contains(asked, "..") {
		asked = prefix
	}
	m["outputS3Bucket"], _ = json.Marshal(s.Bucket)
	m["outputS3KeyPrefix"], _ = json.Marshal(asked)
	return json.Marshal(m)
}

// JobID implements provider.Adapter.
func (Adapter) JobID(body []byte) (string, error) {
	var out struct {
		ARN string `json:"quantumTaskArn"`
	}
	if err := json.Unmarshal(body, &out); err != nil || !isTaskARN(out.ARN) {
		return "", errors.New("no quantumTaskArn in the answer")
	}
	return out.ARN, nil
}

// Outcome implements provider.Adapter (GetQuantumTask's answer). Braket
// does not report a cost.
func (Adapter) Outcome(body []byte) (provider.Outcome, error) {
	var out struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Status == "" {
		return provider.Outcome{}, errors.New("no status in the answer")
	}
	switch out.Status {
	case "COMPLETED", "FAILED", "CANCELLED":
		return provider.Outcome{Status: out.Status, Terminal: true}, nil
	}
	return provider.Outcome{Status: out.Status}, nil
}

// Authenticate implements provider.Adapter: it drops whatever the client
// signed with and signs the request with the broker-held STS session
// (SigV4, service braket), in the region of the ARN the call names. The
// path is signed exactly as it will be sent (percent-encoded ARNs kept).
func (a Adapter) Authenticate(ctx context.Context, req *http.Request, body []byte, c provider.Credential) error {
	for _, h := range []string{"Authorization", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-Sha256"} {
		req.Header.Del(h)
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.Secret, SessionToken: c.SessionToken}
	return v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "braket", a.regionFor(req.URL.EscapedPath(), body), time.Now())
}

// regionFor is the region of the device or task ARN a call names, or the
// default region (simulator ARNs name none).
func (a Adapter) regionFor(escapedPath string, body []byte) string {
	arn := ""
	if p, err := url.PathUnescape(escapedPath); err == nil {
		if i := strings.Index(p, "arn:aws:braket:"); i >= 0 {
			arn = p[i:]
		}
	}
	if arn == "" {
		var t struct {
			DeviceArn string `json:"deviceArn"`
		}
		_ = json.Unmarshal(body, &t)
		arn = t.DeviceArn
	}
	if parts := strings.SplitN(arn, ":", 5); len(parts) == 5 && parts[3] != "" {
		return parts[3]
	}
	if a.Region != "" {
		return a.Region
	}
	return "us-east-1"
}

// WriteError implements provider.Adapter: Braket's {"__type","message"}
// with X-Amzn-ErrorType.
func (Adapter) WriteError(w http.ResponseWriter, status int, msg string) {
	typ := "ValidationException"
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden:
		typ = "AccessDeniedException"
	case http.StatusNotFound:
		typ = "ResourceNotFoundException"
	case http.StatusConflict:
		typ = "ConflictException"
	case http.StatusTooManyRequests:
		typ = "ThrottlingException"
	case http.StatusMethodNotAllowed:
		typ = "ValidationException"
	default:
		if status >= 500 {
			typ = "InternalServiceException"
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", typ)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
}

// FetchResult implements provider.ResultFetcher: GetQuantumTask for the
// task's results location, then the results.json object from S3, both
// signed with the role's session.
func (a Adapter) FetchResult(ctx context.Context, arn string, c provider.Credential, send func(*http.Request) (*http.Response, error)) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(a.Braket, "/")+"/quantum-task/"+url.PathEscape(arn), nil)
	if err != nil {
		return nil, err
	}
	if err := a.Authenticate(ctx, req, nil, c); err != nil {
		return nil, err
	}
	resp, err := send(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	var task struct {
		Status    string `json:"status"`
		Bucket    string `json:"outputS3Bucket"`
		Directory string `json:"outputS3Directory"`
	}
	err = json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 1<<20)).Decode(&task)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("GetQuantumTask answer: %w", err)
	}
	if task.Status != "COMPLETED" {
		return textResponse(http.StatusConflict, fmt.Sprintf(`{"__type":"ConflictException","message":"task is %s; results exist once it is COMPLETED"}`, task.Status)), nil
	}
	if task.Bucket == "" || strings.Contains(task.Bucket+task.Directory, "..") {
		return nil, errors.New("GetQuantumTask answer names no results location")
	}
	key := strings.Trim(task.Directory, "/") + "/results.json"
	sreq, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(a.S3, "/")+"/"+url.PathEscape(task.Bucket)+"/"+escapeKey(key), nil)
	if err != nil {
		return nil, err
	}
	creds := aws.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.Secret, SessionToken: c.SessionToken}
	const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	sreq.Header.Set("X-Amz-Content-Sha256", emptySHA256)
	if err := v4.NewSigner().SignHTTP(ctx, creds, sreq, emptySHA256, "s3", a.regionFor("/"+arn, nil), time.Now(), func(o *v4.SignerOptions) {
		o.DisableURIPathEscaping = true
	}); err != nil {
		return nil, err
	}
	return send(sreq)
}

func escapeKey(k string) string {
	parts := strings.Split(k, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

func textResponse(status int, body string) *http.Response {
	return &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body))}
}

// CancelCall implements provider.CancelCaller (CancelQuantumTask).
func (Adapter) CancelCall(arn string) (string, string, []byte) {
	return http.MethodPut, "/quantum-task/" + url.PathEscape(arn) + "/cancel", []byte(`{"clientToken":"qbroker-cancel"}`)
}
