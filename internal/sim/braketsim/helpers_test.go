package braketsim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

const (
	rootKey    = "AKIAEMULATORROOT0001"
	rootSecret = "emulator/root/secret/key/abcdefghijklmnopqrstu"
	testBucket = "amazon-braket-test"
	testRole   = "arn:aws:iam::123456789012:role/qbroker-tenant"
	taskPrefix = "arn:aws:braket:us-east-1:123456789012:quantum-task/"
)

var rootCreds = aws.Credentials{AccessKeyID: rootKey, SecretAccessKey: rootSecret}

// harness runs an emulator on a loopback listener with a clock the test can
// move forward.
type harness struct {
	t      *testing.T
	e      *Emulator
	srv    *httptest.Server
	offset atomic.Int64 // added to time.Now, in nanoseconds
}

func newHarness(t *testing.T, mutate func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t}
	cfg := Config{
		RootAccessKeyID:     rootKey,
		RootSecretAccessKey: rootSecret,
		StepDelay:           2 * time.Millisecond,
		Seed:                42,
		Now:                 h.now,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.e = e
	h.srv = httptest.NewServer(e)
	t.Cleanup(func() {
		h.srv.Close()
		e.Close()
	})
	return h
}

func (h *harness) now() time.Time          { return time.Now().Add(time.Duration(h.offset.Load())) }
func (h *harness) advance(d time.Duration) { h.offset.Add(int64(d)) }

// stsClient returns aws-sdk-go-v2's real STS client pointed at the emulator.
func (h *harness) stsClient(c aws.Credentials) *sts.Client {
	return sts.New(sts.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(h.srv.URL),
		Credentials:      aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return c, nil }),
		HTTPClient:       h.srv.Client(),
		RetryMaxAttempts: 1,
	})
}

// assume calls AssumeRole with the root key and returns the session
// credentials.
func (h *harness) assume(policy string, duration int32) aws.Credentials {
	h.t.Helper()
	in := &sts.AssumeRoleInput{RoleArn: aws.String(testRole), RoleSessionName: aws.String("tenant-a.job-1")}
	if policy != "" {
		in.Policy = aws.String(policy)
	}
	if duration != 0 {
		in.DurationSeconds = aws.Int32(duration)
	}
	out, err := h.stsClient(rootCreds).AssumeRole(context.Background(), in)
	if err != nil {
		h.t.Fatalf("AssumeRole: %v", err)
	}
	cr := out.Credentials
	return aws.Credentials{AccessKeyID: *cr.AccessKeyId, SecretAccessKey: *cr.SecretAccessKey, SessionToken: *cr.SessionToken}
}

// reqOpts adjust a signed request.
type reqOpts struct {
	region      string
	signTime    time.Time
	contentType string
	before      func(*http.Request) // before signing
	after       func(*http.Request) // after signing: tampering
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// awsCode returns the error code of a Braket (JSON) or STS/S3 (XML) answer.
func (r response) code() string {
	if c := r.header.Get("X-Amzn-Errortype"); c != "" {
		return c
	}
	if i := bytes.Index(r.body, []byte("<Code>")); i >= 0 {
		rest := r.body[i+len("<Code>"):]
		if j := bytes.Index(rest, []byte("</Code>")); j >= 0 {
			return string(rest[:j])
		}
	}
	return ""
}

func (r response) message() string {
	var m struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(r.body, &m) == nil && m.Message != "" {
		return m.Message
	}
	var x struct {
		Message string `xml:"Message"`
		Error   struct {
			Message string `xml:"Message"`
		} `xml:"Error"`
	}
	if xml.Unmarshal(r.body, &x) == nil {
		return x.Message + x.Error.Message
	}
	return ""
}

// do signs a request with v4.Signer as the SDKs do and sends it. path is
// the escaped path (and query) exactly as it goes on the wire.
func (h *harness) do(c aws.Credentials, svc, method, path string, body []byte, opts ...func(*reqOpts)) response {
	h.t.Helper()
	o := reqOpts{region: "us-east-1", signTime: h.now(), contentType: "application/json"}
	for _, f := range opts {
		f(&o)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if len(body) > 0 {
		req.Header.Set("Content-Type", o.contentType)
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	if svc == svcS3 {
		req.Header.Set("X-Amz-Content-Sha256", hash)
	}
	if o.before != nil {
		o.before(req)
	}
	err = v4.NewSigner().SignHTTP(context.Background(), c, req, hash, svc, o.region, o.signTime, func(so *v4.SignerOptions) {
		so.DisableURIPathEscaping = svc == svcS3
	})
	if err != nil {
		h.t.Fatal(err)
	}
	if o.after != nil {
		o.after(req)
	}
	return h.send(req)
}

func (h *harness) send(req *http.Request) response {
	h.t.Helper()
	res, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// escapeLabel percent-encodes a path label as smithy does: everything but
// A-Za-z0-9-._~.
func escapeLabel(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func bellSource() string {
	return "OPENQASM 3.0;\nqubit[2] q;\nbit[2] c;\nh q[0];\ncnot q[0], q[1];\nc = measure q;"
}

func action(source string) string {
	b, _ := json.Marshal(map[string]any{
		"braketSchemaHeader": map[string]string{"name": "braket.ir.openqasm.program", "version": "1"},
		"source":             source,
		"inputs":             map[string]any{},
	})
	return string(b)
}

// createBody builds a CreateQuantumTask body; extra members override.
func createBody(device string, shots int, source, prefix string, extra map[string]any) []byte {
	m := map[string]any{
		"clientToken":       newUUID(),
		"deviceArn":         device,
		"shots":             shots,
		"outputS3Bucket":    testBucket,
		"outputS3KeyPrefix": prefix,
		"action":            action(source),
		"deviceParameters":  `{"braketSchemaHeader":{"name":"braket.device_schema.simulators.gate_model_simulator_device_parameters","version":"1"},"paradigmParameters":{"qubitCount":2}}`,
	}
	for k, v := range extra {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, _ := json.Marshal(m)
	return b
}

// create submits a task and returns its ARN, failing the test on an error.
func (h *harness) create(c aws.Credentials, body []byte) string {
	h.t.Helper()
	res := h.do(c, svcBraket, http.MethodPost, "/quantum-task", body)
	if res.status != http.StatusCreated {
		h.t.Fatalf("CreateQuantumTask: %d %s", res.status, res.body)
	}
	var out struct {
		QuantumTaskArn string `json:"quantumTaskArn"`
	}
	if err := json.Unmarshal(res.body, &out); err != nil || !strings.HasPrefix(out.QuantumTaskArn, "arn:aws:braket:") {
		h.t.Fatalf("CreateQuantumTask answer %s", res.body)
	}
	return out.QuantumTaskArn
}

type taskView struct {
	QuantumTaskArn     string            `json:"quantumTaskArn"`
	Status             string            `json:"status"`
	DeviceArn          string            `json:"deviceArn"`
	Shots              int64             `json:"shots"`
	OutputS3Bucket     string            `json:"outputS3Bucket"`
	OutputS3Directory  string            `json:"outputS3Directory"`
	CreatedAt          string            `json:"createdAt"`
	EndedAt            string            `json:"endedAt"`
	FailureReason      string            `json:"failureReason"`
	NumSuccessfulShots *int64            `json:"numSuccessfulShots"`
	Tags               map[string]string `json:"tags"`
	QueueInfo          *struct {
		Position string `json:"position"`
	} `json:"queueInfo"`
}

func (h *harness) getTask(c aws.Credentials, arn string) taskView {
	h.t.Helper()
	res := h.do(c, svcBraket, http.MethodGet, "/quantum-task/"+escapeLabel(arn), nil)
	if res.status != http.StatusOK {
		h.t.Fatalf("GetQuantumTask: %d %s", res.status, res.body)
	}
	var v taskView
	if err := json.Unmarshal(res.body, &v); err != nil {
		h.t.Fatal(err)
	}
	return v
}

// wait polls until the task is terminal.
func (h *harness) wait(c aws.Credentials, arn string) taskView {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v := h.getTask(c, arn)
		if isTerminal(v.Status) || time.Now().After(deadline) {
			return v
		}
		time.Sleep(2 * time.Millisecond)
	}
}

type results struct {
	BraketSchemaHeader       schemaHeader       `json:"braketSchemaHeader"`
	Measurements             [][]int            `json:"measurements"`
	MeasurementProbabilities map[string]float64 `json:"measurementProbabilities"`
	MeasuredQubits           []int              `json:"measuredQubits"`
	TaskMetadata             struct {
		ID       string `json:"id"`
		Shots    int64  `json:"shots"`
		DeviceID string `json:"deviceId"`
		Status   string `json:"status"`
	} `json:"taskMetadata"`
	AdditionalMetadata struct {
		Action struct {
			Source string `json:"source"`
		} `json:"action"`
	} `json:"additionalMetadata"`
}

// results reads results.json of a completed task through the emulated S3.
func (h *harness) results(c aws.Credentials, v taskView) results {
	h.t.Helper()
	res := h.do(c, svcS3, http.MethodGet, "/"+v.OutputS3Bucket+"/"+v.OutputS3Directory+"/results.json", nil)
	if res.status != http.StatusOK {
		h.t.Fatalf("GetObject: %d %s", res.status, res.body)
	}
	var r results
	if err := json.Unmarshal(res.body, &r); err != nil {
		h.t.Fatal(err)
	}
	return r
}

// apiCode returns the AWS error code of an SDK error.
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func expectRefusal(t *testing.T, what string, res response, status int, code string) {
	t.Helper()
	if res.status != status || res.code() != code {
		t.Errorf("%s: got %d %q (%s), want %d %s", what, res.status, res.code(), res.body, status, code)
	}
}
