package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/gateway"
	"github.com/qbroker/qbroker/internal/sim/braketsim"
	"github.com/qbroker/qbroker/internal/token"
)

const (
	awsRootID     = "AKIAQBROKERTESTROOT1"
	awsRoleARN    = "arn:aws:iam::123456789012:role/qbroker-braket"
	awsBucket     = "amazon-braket-qbroker-results"
	awsPrefix     = "tenants/demo"
	bellQASM      = "OPENQASM 3;\nqubit[2] q;\nbit[2] b;\nh q[0];\ncnot q[0], q[1];\nb[0] = measure q[0];\nb[1] = measure q[1];\n"
	awsPolicyTmpl = `
@id("demo-aws-creds")
permit (principal in Role::"demo", action == Action::"IssueCredentials", resource == Provider::"aws");
`
)

// awsSim runs the AWS emulator with a movable clock.
type awsSim struct {
	e      *braketsim.Emulator
	url    string
	offset atomic.Int64
	secret string
}

func (s *awsSim) now() time.Time { return time.Now().Add(time.Duration(s.offset.Load())) }

func startAWSSim(t *testing.T) *awsSim { return startAWSSimWith(t, nil) }

// startAWSSimWith runs the emulator with mutate applied to its config.
func startAWSSimWith(t *testing.T, mutate func(*braketsim.Config)) *awsSim {
	t.Helper()
	var b [24]byte
	rand.Read(b[:])
	s := &awsSim{secret: hex.EncodeToString(b[:])}
	cfg := braketsim.Config{RootAccessKeyID: awsRootID, RootSecretAccessKey: s.secret, Now: s.now, StepDelay: 5 * time.Millisecond}
	if mutate != nil {
		mutate(&cfg)
	}
	e, err := braketsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e)
	t.Cleanup(func() { srv.Close(); e.Close() })
	s.e, s.url = e, srv.URL
	return s
}

// braketCall signs a Braket REST call with creds (aws-sdk-go-v2's signer,
// as the SDKs sign) at the emulator's time and sends it.
func (s *awsSim) braketCall(t *testing.T, creds aws.Credentials, method, path string, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, s.url+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "braket", "us-east-1", s.now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

func createTask(device string) []byte {
	action, _ := json.Marshal(map[string]any{"braketSchemaHeader": map[string]string{"name": "braket.ir.openqasm.program", "version": "1"}, "source": bellQASM})
	b, _ := json.Marshal(map[string]any{"clientToken": fmt.Sprintf("qb-%d", time.Now().UnixNano()), "deviceArn": device, "shots": 100,
		"outputS3Bucket": awsBucket, "outputS3KeyPrefix": awsPrefix, "action": string(action)})
	return b
}

// Issue 6, criterion 2: the credentials from aws/creds/<role> work with
// aws-sdk-go-v2's signer against the emulator for the allowed device, are
// refused by the emulator (enforcing the session policy) for another device
// ARN and for non-Braket actions, and expire at the lease duration. The
// session names the agent (SourceIdentity, tags); secrets stay out of audit.
func TestAWSCredsScopedBySessionPolicy(t *testing.T) {
	sim := startAWSSim(t)
	path := filepath.Join(t.TempDir(), "policies.cedar")
	writeAtomic(t, path, demoPolicy(t)+awsPolicyTmpl)
	d := startDevWith(t, DevOptions{PolicyFiles: []string{path}, AWS: config.AWS{
		Region: "us-east-1", STSEndpoint: sim.url,
		Roles: []config.AWSRole{{Name: "braket-sv1", RoleARN: awsRoleARN, DeviceARNs: []string{braketsim.SV1ARN},
			S3Bucket: awsBucket, S3Prefix: awsPrefix, BrokerRoles: []string{DemoRole}}},
	}})
	e := &env{t: t, d: d, hc: &http.Client{Timeout: 20 * time.Second}}
	login := e.mustLogin(d.RoleID, d.SecretID)

	want(t, "creds before the root key is stored", e.broker(http.MethodGet, "/v1/aws/creds/braket-sv1", login.ClientToken, ""), http.StatusServiceUnavailable, "no AWS root credential")
	want(t, "store the root key", e.broker(http.MethodPost, "/v1/sys/providers/aws/credential", d.RootToken, fmt.Sprintf(`{"api_key":%q}`, awsRootID+":"+sim.secret)), http.StatusNoContent)
	want(t, "unknown AWS role", e.broker(http.MethodGet, "/v1/aws/creds/nope", login.ClientToken, ""), http.StatusNotFound, "unknown AWS role")
	e.putRole("other", `{"provider":"ionq","devices":["simulator"],"max_shots":10}`)
	other := e.mustLogin(e.roleID("other"), e.newSecretID("other", "o1", "").SecretID).ClientToken
	want(t, "another broker role", e.broker(http.MethodGet, "/v1/aws/creds/braket-sv1", other, ""), http.StatusForbidden, "not for broker role")

	r := e.broker(http.MethodGet, "/v1/aws/creds/braket-sv1", login.ClientToken, "")
	want(t, "aws creds", r, http.StatusOK)
	var env struct {
		LeaseID       string           `json:"lease_id"`
		LeaseDuration int              `json:"lease_duration"`
		Data          api.AWSCredsData `json:"data"`
	}
	if err := json.Unmarshal(r.body, &env); err != nil {
		t.Fatal(err)
	}
	c := env.Data
	if !strings.HasPrefix(env.LeaseID, "aws/creds/braket-sv1/") || env.LeaseDuration < 890 || env.LeaseDuration > 900 ||
		!strings.HasPrefix(c.AccessKey, "ASIA") || c.SecretKey == "" || c.SecurityToken == "" {
		t.Fatalf("aws creds answer: lease %q %ds, access key %q", env.LeaseID, env.LeaseDuration, c.AccessKey)
	}
	sess, ok := sim.e.Session(c.AccessKey)
	if !ok || sess.RoleARN != awsRoleARN || !strings.Contains(sess.SourceIdentity, "demo-agent") || !strings.Contains(sess.Policy, braketsim.SV1ARN) {
		t.Fatalf("STS session: %+v", sess)
	}
	tags := map[string]string{}
	for _, tg := range sess.Tags {
		tags[tg.Key] = tg.Value
	}
	if tags["qbroker-agent"] != login.EntityID || tags["qbroker-owner"] != "dev" || tags["qbroker-team"] != "dev" {
		t.Fatalf("session tags: %v", tags)
	}

	creds := aws.Credentials{AccessKeyID: c.AccessKey, SecretAccessKey: c.SecretKey, SessionToken: c.SecurityToken}
	status, body := sim.braketCall(t, creds, http.MethodPost, "/quantum-task", createTask(braketsim.SV1ARN))
	if status != http.StatusCreated {
		t.Fatalf("Bell on SV1 with the minted creds: %d %s", status, body)
	}
	status, body = sim.braketCall(t, creds, http.MethodPost, "/quantum-task", createTask(braketsim.ForteARN))
	if status != http.StatusForbidden || !strings.Contains(body, "AccessDenied") || !strings.Contains(body, "braket:CreateQuantumTask") {
		t.Fatalf("another device with the minted creds: %d %s", status, body)
	}
	// A non-Braket action: STS AssumeRole with the session (aws-sdk-go-v2's own client).
	stsc := sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(sim.url),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return creds, nil })})
	if _, err := stsc.AssumeRole(context.Background(), &sts.AssumeRoleInput{RoleArn: aws.String(awsRoleARN), RoleSessionName: aws.String("escalate")}); err == nil {
		t.Fatal("the minted session could call sts:AssumeRole")
	}

	// The lease ends when STS says it does.
	sim.offset.Store(int64(time.Duration(env.LeaseDuration+5) * time.Second))
	status, body = sim.braketCall(t, creds, http.MethodPost, "/quantum-task", createTask(braketsim.SV1ARN))
	if status != http.StatusForbidden || !strings.Contains(body, "ExpiredToken") {
		t.Fatalf("after the lease: %d %s", status, body)
	}

	// Secrets only as HMACs in the trail; the agent's identity with the issue.
	trail, err := os.ReadFile(filepath.Join(d.DataDir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{c.SecretKey, c.SecurityToken, sim.secret} {
		if bytes.Contains(trail, []byte(s)) {
			t.Fatal("an AWS secret is in the audit trail in clear")
		}
	}
	if e.count(func(ev audit.Event) bool {
		return ev.Type == "issue" && ev.Action == "IssueCredentials" && ev.Provider == "aws" && ev.Decision == "allow" && ev.Agent == login.EntityID &&
			strings.HasPrefix(ev.Hashed["secret_key"], "hmac-sha256:")
	}) != 1 {
		t.Fatal("the issuance is not audited with the agent and hashed secrets")
	}
}

// Without a Cedar permit for IssueCredentials nothing is minted, and STS is
// never called.
func TestAWSCredsNeedPolicy(t *testing.T) {
	sim := startAWSSim(t)
	d := startDevWith(t, DevOptions{AWS: config.AWS{
		Region: "us-east-1", STSEndpoint: sim.url,
		Roles: []config.AWSRole{{Name: "braket-sv1", RoleARN: awsRoleARN, DeviceARNs: []string{braketsim.SV1ARN},
			S3Bucket: awsBucket, S3Prefix: awsPrefix, BrokerRoles: []string{DemoRole}}},
	}})
	e := &env{t: t, d: d, hc: &http.Client{Timeout: 20 * time.Second}}
	want(t, "store the root key", e.broker(http.MethodPost, "/v1/sys/providers/aws/credential", d.RootToken, fmt.Sprintf(`{"api_key":%q}`, awsRootID+":"+sim.secret)), http.StatusNoContent)
	want(t, "creds without a permit", e.broker(http.MethodGet, "/v1/aws/creds/braket-sv1", e.agent(), ""), http.StatusForbidden, "no policy permits IssueCredentials")
	if e.count(func(ev audit.Event) bool {
		return ev.Type == "decision" && ev.Action == "IssueCredentials" && ev.Decision == "deny"
	}) != 1 {
		t.Fatal("the refusal is not audited")
	}
}

// The secretless Braket path: an agent with a job token calls Braket's own
// CreateQuantumTask through the gateway (the token where an SDK puts its
// session token); the gateway checks device, shots and program against the
// token before redeeming it, forces the results into the role's prefix,
// signs with a broker-minted STS session and records the task's owner;
// the owner reads the task's status with its broker token. The AWS root
// key and the STS session never reach the agent.
func TestBraketThroughGateway(t *testing.T) {
	sim := startAWSSim(t)
	path := filepath.Join(t.TempDir(), "policies.cedar")
	writeAtomic(t, path, demoPolicy(t)+`
@id("lab-sv1") permit (principal in Role::"lab", action == Action::"SubmitJob", resource == Device::"aws/sv1");
@id("lab-own-jobs") permit (principal in Role::"lab", action in [Action::"ReadJob", Action::"ReadResult", Action::"CancelJob"], resource is Job)
when { resource.owner == principal };
`)
	d := startDevWith(t, DevOptions{PolicyFiles: []string{path}, AWS: config.AWS{
		Region: "us-east-1", STSEndpoint: sim.url, BraketEndpoint: sim.url, S3Endpoint: sim.url,
		Roles: []config.AWSRole{{Name: "braket-lab", RoleARN: awsRoleARN, DeviceARNs: []string{braketsim.SV1ARN},
			S3Bucket: awsBucket, S3Prefix: awsPrefix, BrokerRoles: []string{"lab"}}},
	}})
	e := &env{t: t, d: d, hc: &http.Client{Timeout: 20 * time.Second}}
	want(t, "store the root key", e.broker(http.MethodPost, "/v1/sys/providers/aws/credential", d.RootToken, fmt.Sprintf(`{"api_key":%q}`, awsRootID+":"+sim.secret)), http.StatusNoContent)
	e.putRole("lab", `{"provider":"aws","devices":["sv1","forte-1"],"max_shots":1000}`)
	lab := e.mustLogin(e.roleID("lab"), e.newSecretID("lab", "lab-agent", "").SecretID)
	e.putRole("lab2", `{"provider":"aws","devices":["sv1"],"max_shots":1000}`)

	jobToken := func(shots int) string {
		t.Helper()
		b, _ := json.Marshal(api.JobTokenRequest{Provider: "aws", Device: "sv1", Shots: shots, Program: mustJSON(bellQASM), Format: api.FormatQASM3})
		r := e.broker(http.MethodPost, "/v1/quantum/jobtoken/lab", lab.ClientToken, string(b))
		want(t, "aws job token", r, http.StatusOK)
		var jt api.JobTokenData
		decodeData(t, r, &jt)
		return jt.Token
	}
	// The agent's SDK signs with whatever keys it has; the token rides as the session token.
	agentCall := func(method, p, tok string, body []byte) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, d.GatewayURL+"/braket"+p, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		sum := sha256.Sum256(body)
		creds := aws.Credentials{AccessKeyID: "qbroker", SecretAccessKey: "not-a-secret", SessionToken: tok}
		if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "braket", "us-east-1", time.Now()); err != nil {
			t.Fatal(err)
		}
		resp, err := e.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if strings.Contains(string(out), sim.secret) {
			t.Fatal("the AWS root secret reached the agent")
		}
		return resp.StatusCode, string(out)
	}
	body := func(device string, shots int, src, prefix string) []byte {
		action, _ := json.Marshal(map[string]any{"braketSchemaHeader": map[string]string{"name": "braket.ir.openqasm.program", "version": "1"}, "source": src})
		b, _ := json.Marshal(map[string]any{"clientToken": fmt.Sprintf("c-%d", time.Now().UnixNano()), "deviceArn": device, "shots": shots,
			"outputS3Bucket": "someone-elses-bucket", "outputS3KeyPrefix": prefix, "action": string(action)})
		return b
	}

	// Refused before redemption: the same token works afterwards.
	tok := jobToken(100)
	for _, c := range []struct {
		what   string
		body   []byte
		status int
		msg    string
	}{
		{"another device", body(braketsim.ForteARN, 100, bellQASM, "x"), http.StatusForbidden, "job token is for device sv1"},
		{"more shots", body(braketsim.SV1ARN, 200, bellQASM, "x"), http.StatusForbidden, "at most 100"},
		{"another program", body(braketsim.SV1ARN, 100, strings.Replace(bellQASM, "h q[0]", "x q[0]", 1), "x"), http.StatusForbidden, "program digest"},
		{"not OpenQASM", []byte(`{"clientToken":"a","deviceArn":"` + braketsim.SV1ARN + `","shots":1,"outputS3Bucket":"b","outputS3KeyPrefix":"p","action":"{}"}`), http.StatusBadRequest, "openqasm"},
		{"unknown member", []byte(`{"clientToken":"a","deviceArn":"x","shots":1,"outputS3Bucket":"b","outputS3KeyPrefix":"p","action":"{}","jobToken":"hybrid"}`), http.StatusBadRequest, "unknown field"},
	} {
		status, out := agentCall(http.MethodPost, "/quantum-task", tok, c.body)
		if status != c.status || !strings.Contains(out, c.msg) {
			t.Fatalf("%s: %d %s, want %d with %q", c.what, status, out, c.status, c.msg)
		}
	}
	if status, out := agentCall(http.MethodPost, "/job", tok, []byte(`{}`)); status != http.StatusForbidden || !strings.Contains(out, "not available") {
		t.Fatalf("hybrid job: %d %s", status, out)
	}

	status, out := agentCall(http.MethodPost, "/quantum-task", tok, body(braketsim.SV1ARN, 100, bellQASM, "agent-chosen"))
	if status != http.StatusCreated {
		t.Fatalf("submit through the gateway: %d %s", status, out)
	}
	var created struct {
		ARN string `json:"quantumTaskArn"`
	}
	json.Unmarshal([]byte(out), &created)
	if status, out := agentCall(http.MethodPost, "/quantum-task", tok, body(braketsim.SV1ARN, 100, bellQASM, "x")); status != http.StatusUnauthorized || !strings.Contains(out, "already used") {
		t.Fatalf("replayed job token: %d %s", status, out)
	}

	// The owner reads its task; the results went to the role's prefix.
	taskPath := "/quantum-task/" + url.PathEscape(created.ARN)
	var task struct {
		Status            string `json:"status"`
		OutputS3Bucket    string `json:"outputS3Bucket"`
		OutputS3Directory string `json:"outputS3Directory"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for task.Status != "COMPLETED" {
		status, out := agentCall(http.MethodGet, taskPath, lab.ClientToken, nil)
		if status != http.StatusOK {
			t.Fatalf("read task: %d %s", status, out)
		}
		json.Unmarshal([]byte(out), &task)
		if time.Now().After(deadline) {
			t.Fatalf("task still %s", task.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if task.OutputS3Bucket != awsBucket || !strings.HasPrefix(task.OutputS3Directory, awsPrefix+"/") {
		t.Fatalf("results went to s3://%s/%s, want the role's s3://%s/%s/…", task.OutputS3Bucket, task.OutputS3Directory, awsBucket, awsPrefix)
	}
	// The owner reads the results through the gateway (from the role's S3
	// prefix, with the role's session): a Bell pair.
	status, out = agentCall(http.MethodGet, taskPath+"/results", lab.ClientToken, nil)
	if status != http.StatusOK {
		t.Fatalf("results through the gateway: %d %s", status, out)
	}
	var result struct {
		Measurements [][]int `json:"measurements"`
	}
	if err := json.Unmarshal([]byte(out), &result); err != nil || len(result.Measurements) != 100 {
		t.Fatalf("results: %v, %d measurements", err, len(result.Measurements))
	}
	counts := map[string]int{}
	for _, m := range result.Measurements {
		counts[fmt.Sprint(m)]++
	}
	if len(counts) != 2 || counts["[0 0]"] < 25 || counts["[1 1]"] < 25 {
		t.Fatalf("Bell counts %v: want only 00 and 11, each well above 25 of 100", counts)
	}
	// Someone else's broker token: the task does not exist for them.
	other := e.mustLogin(e.roleID("lab2"), e.newSecretID("lab2", "other-agent", "").SecretID)
	if status, _ := agentCall(http.MethodGet, taskPath, other.ClientToken, nil); status != http.StatusNotFound {
		t.Fatalf("another agent reads the task: %d", status)
	}
	if status, _ := agentCall(http.MethodGet, taskPath+"/results", other.ClientToken, nil); status != http.StatusNotFound {
		t.Fatalf("another agent reads the results: %d", status)
	}
	if e.count(func(ev audit.Event) bool {
		return ev.Type == "submit" && ev.Provider == "aws" && ev.Decision == "allow" && ev.JobID == created.ARN && ev.Agent == lab.EntityID
	}) != 1 {
		t.Fatal("the submission is not audited with the task ARN and the agent")
	}
	// Device discovery (SearchDevices) through the gateway, with the
	// role's session; a role with no AWS role gets nothing.
	status, out = agentCall(http.MethodPost, "/devices", lab.ClientToken, []byte(`{"filters":[{"name":"deviceArn","values":["`+braketsim.SV1ARN+`"]}]}`))
	if status != http.StatusOK || !strings.Contains(out, braketsim.SV1ARN) {
		t.Fatalf("SearchDevices through the gateway: %d %s", status, out)
	}
	if status, _ := agentCall(http.MethodPost, "/devices", other.ClientToken, []byte(`{"filters":[]}`)); status != http.StatusForbidden {
		t.Fatalf("SearchDevices for a role without an AWS role: %d", status)
	}
	if status, _ := agentCall(http.MethodPost, "/devices", "", []byte(`{"filters":[]}`)); status != http.StatusUnauthorized {
		t.Fatalf("SearchDevices without a broker token: %d", status)
	}
	e.wantNotInAudit(sim.secret)
	assertDirHasNo(t, d.DataDir, sim.secret)
}

// A standalone gateway gets its upstream sessions from the broker over
// HTTP with its gateway token; nobody else does.
func TestRemoteGatewayUpstream(t *testing.T) {
	sim := startAWSSim(t)
	d := startDevWith(t, DevOptions{AWS: config.AWS{
		Region: "us-east-1", STSEndpoint: sim.url,
		Roles: []config.AWSRole{{Name: "braket-lab", RoleARN: awsRoleARN, DeviceARNs: []string{braketsim.SV1ARN},
			S3Bucket: awsBucket, S3Prefix: awsPrefix, BrokerRoles: []string{"lab"}}},
	}})
	e := &env{t: t, d: d, hc: &http.Client{Timeout: 20 * time.Second}}
	want(t, "store the root key", e.broker(http.MethodPost, "/v1/sys/providers/aws/credential", d.RootToken, fmt.Sprintf(`{"api_key":%q}`, awsRootID+":"+sim.secret)), http.StatusNoContent)
	r := e.broker(http.MethodPost, "/v1/auth/token/create", d.RootToken, `{"policies":["gateway"]}`)
	want(t, "gateway token", r, http.StatusOK)
	var created struct {
		Auth api.Auth `json:"auth"`
	}
	json.Unmarshal(r.body, &created)

	rb := gateway.NewRemoteBroker(d.BrokerURL, created.Auth.ClientToken, e.hc)
	c, s, err := rb.Upstream(context.Background(), "aws", "lab")
	if err != nil || !strings.HasPrefix(c.AccessKeyID, "ASIA") || c.Secret == "" || c.SessionToken == "" || s.Bucket != awsBucket || s.Prefix != awsPrefix {
		t.Fatalf("remote upstream: %+v %+v %v", c.AccessKeyID, s, err)
	}
	if c2, _, err := rb.Upstream(context.Background(), "aws", "lab"); err != nil || c2.AccessKeyID != c.AccessKeyID {
		t.Fatalf("second call minted again or failed: %v", err)
	}
	if _, _, err := rb.Upstream(context.Background(), "aws", "nobody"); err == nil {
		t.Fatal("a role with no AWS role got a session")
	}
	agentRB := gateway.NewRemoteBroker(d.BrokerURL, e.agent(), e.hc)
	if _, _, err := agentRB.Upstream(context.Background(), "aws", "lab"); err == nil {
		t.Fatal("an agent token read the gateway's upstream session")
	}
}

// Credential export held for a person: an approval rule on
// IssueCredentials answers 202 with the held request and mints nothing;
// the agent cannot approve it; once a person approves, the same request
// with the approval id gets credentials once, and the id cannot be used
// again or for another AWS role.
func TestAWSCredsHeldForApproval(t *testing.T) {
	sim := startAWSSim(t)
	// STS behind a counter: a held request must not reach it.
	var assumes atomic.Int64
	up, _ := url.Parse(sim.url)
	rp := httputil.NewSingleHostReverseProxy(up)
	stsProxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			assumes.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(stsProxy.Close)
	path := filepath.Join(t.TempDir(), "policies.cedar")
	writeAtomic(t, path, demoPolicy(t)+awsPolicyTmpl)
	approvals := DevApprovals()
	approvals.Rules = append(approvals.Rules, config.ApprovalRule{Name: "aws-creds", Actions: []string{"IssueCredentials"}, Always: true,
		ApprovalConsent: config.ApprovalConsent{Approvals: 1, Group: "admins"}})
	d := startDevWith(t, DevOptions{PolicyFiles: []string{path}, Approvals: &approvals, AWS: config.AWS{
		Region: "us-east-1", STSEndpoint: stsProxy.URL,
		Roles: []config.AWSRole{
			{Name: "braket-sv1", RoleARN: awsRoleARN, DeviceARNs: []string{braketsim.SV1ARN}, S3Bucket: awsBucket, S3Prefix: awsPrefix, BrokerRoles: []string{DemoRole}},
			{Name: "braket-sv1-b", RoleARN: awsRoleARN, DeviceARNs: []string{braketsim.SV1ARN}, S3Bucket: awsBucket, S3Prefix: awsPrefix, BrokerRoles: []string{DemoRole}},
		},
	}})
	e := &env{t: t, d: d, hc: &http.Client{Timeout: 20 * time.Second}}
	want(t, "store the root key", e.broker(http.MethodPost, "/v1/sys/providers/aws/credential", d.RootToken, fmt.Sprintf(`{"api_key":%q}`, awsRootID+":"+sim.secret)), http.StatusNoContent)
	agent := e.mustLogin(d.RoleID, d.SecretID).ClientToken

	r := e.broker(http.MethodGet, "/v1/aws/creds/braket-sv1", agent, "")
	want(t, "creds under an approval rule", r, http.StatusAccepted)
	if strings.Contains(string(r.body), "secret_key") || strings.Contains(string(r.body), "ASIA") {
		t.Fatalf("a held request returned credentials: %s", r.body)
	}
	var held api.Approval
	decodeData(t, r, &held)
	if held.ID == "" || !strings.Contains(strings.Join(held.Reasons, ";"), "aws-creds") {
		t.Fatalf("the held request: %+v", held)
	}
	if n := assumes.Load(); n != 0 {
		t.Fatalf("STS was called %d times for a held request", n)
	}
	want(t, "the agent approves its own request", e.broker(http.MethodPost, "/v1/sys/approvals/"+held.ID+"/approve", agent, `{}`), http.StatusForbidden)
	want(t, "pending", e.do(http.MethodGet, d.BrokerURL+"/v1/aws/creds/braket-sv1", "", "X-Vault-Token", agent, "X-Qbroker-Approval", held.ID), http.StatusConflict, "pending")
	want(t, "a person approves", e.broker(http.MethodPost, "/v1/sys/approvals/"+held.ID+"/approve", d.RootToken, `{"reason":"ok for the demo"}`), http.StatusOK)
	want(t, "the approval on another AWS role", e.do(http.MethodGet, d.BrokerURL+"/v1/aws/creds/braket-sv1-b", "", "X-Vault-Token", agent, "X-Qbroker-Approval", held.ID), http.StatusForbidden, "differs")
	r = e.do(http.MethodGet, d.BrokerURL+"/v1/aws/creds/braket-sv1", "", "X-Vault-Token", agent, "X-Qbroker-Approval", held.ID)
	want(t, "creds with the approval", r, http.StatusOK)
	if !strings.Contains(string(r.body), `"secret_key"`) {
		t.Fatalf("no credentials with the approval: %s", r.body)
	}
	want(t, "the approval again", e.do(http.MethodGet, d.BrokerURL+"/v1/aws/creds/braket-sv1", "", "X-Vault-Token", agent, "X-Qbroker-Approval", held.ID), http.StatusConflict, "already used")
	if n := assumes.Load(); n != 1 {
		t.Fatalf("%d STS AssumeRole calls, want exactly 1", n)
	}
}

// A standalone gateway whose cached STS session is revoked at AWS (every
// session of the AWS role cut off) does not keep failing until the session
// would have expired: the provider's 403 makes it drop the session, tell
// the broker, and the next request goes out with a fresh one.
func TestStandaloneGatewayReplacesARevokedSession(t *testing.T) {
	sim := startAWSSim(t)
	awsCfg := config.AWS{
		Region: "us-east-1", STSEndpoint: sim.url, BraketEndpoint: sim.url, S3Endpoint: sim.url, IAMEndpoint: sim.url,
		Roles: []config.AWSRole{{Name: "braket-lab", RoleARN: awsRoleARN, DeviceARNs: []string{braketsim.SV1ARN},
			S3Bucket: awsBucket, S3Prefix: awsPrefix, BrokerRoles: []string{"lab"}}},
	}
	d := startDevWith(t, DevOptions{AWS: awsCfg})
	e := &env{t: t, d: d, hc: &http.Client{Timeout: 20 * time.Second}}
	want(t, "store the root key", e.broker(http.MethodPost, "/v1/sys/providers/aws/credential", d.RootToken, fmt.Sprintf(`{"api_key":%q}`, awsRootID+":"+sim.secret)), http.StatusNoContent)
	e.putRole("lab", `{"provider":"aws","devices":["sv1"],"max_shots":1000}`)
	lab := e.mustLogin(e.roleID("lab"), e.newSecretID("lab", "lab-agent", "").SecretID)
	r := e.broker(http.MethodPost, "/v1/auth/token/create", d.RootToken, `{"policies":["gateway"]}`)
	want(t, "gateway token", r, http.StatusOK)
	var created struct {
		Auth api.Auth `json:"auth"`
	}
	json.Unmarshal(r.body, &created)
	fronts, err := GatewayFronts(&config.Config{Providers: config.Providers{AWS: awsCfg}, Devices: config.DefaultDevices()})
	if err != nil {
		t.Fatal(err)
	}
	v, err := token.NewVerifier(token.VerifierConfig{Issuer: d.BrokerURL, Audience: Audience,
		Keys: token.NewJWKSCache(d.BrokerURL+"/.well-known/jwks.json", e.hc, 5*time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	up, _ := url.Parse("http://127.0.0.1:9")
	gw, err := gateway.New(gateway.Config{Broker: gateway.NewRemoteBroker(d.BrokerURL, created.Auth.ClientToken, e.hc), Verifier: v, IonQUpstream: up, Fronts: fronts})
	if err != nil {
		t.Fatal(err)
	}
	gsrv := httptest.NewServer(gw)
	t.Cleanup(gsrv.Close)
	search := func() (int, string) {
		t.Helper()
		body := []byte(`{"filters":[{"name":"deviceArn","values":["` + braketsim.SV1ARN + `"]}]}`)
		req, _ := http.NewRequest(http.MethodPost, gsrv.URL+"/braket/devices", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		sum := sha256.Sum256(body)
		creds := aws.Credentials{AccessKeyID: "qbroker", SecretAccessKey: "not-a-secret", SessionToken: lab.ClientToken}
		if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "braket", "us-east-1", time.Now()); err != nil {
			t.Fatal(err)
		}
		resp, err := e.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	if st, out := search(); st != http.StatusOK {
		t.Fatalf("SearchDevices through the standalone gateway: %d %s", st, out)
	}
	// Every session of the AWS role issued until now is cut off at AWS.
	want(t, "revoke the role's sessions", e.broker(http.MethodPost, "/v1/sys/leases/revoke-prefix/aws/creds/braket-lab", d.RootToken, ""), http.StatusOK)
	refused := 0
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, out := search()
		if st == http.StatusOK {
			break
		}
		if st != http.StatusForbidden || !strings.Contains(out, "explicit deny") {
			t.Fatalf("after the revocation: %d %s", st, out)
		}
		refused++
		if time.Now().After(deadline) {
			t.Fatalf("the standalone gateway kept its revoked session: %d refusals in 5 s", refused)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if refused == 0 {
		t.Fatal("the cached session was never refused: the test did not exercise the revocation")
	}
	t.Logf("the standalone gateway replaced its revoked session after %d refusal(s)", refused)
}
