package localagent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/policy"
	"github.com/qbroker/qbroker/internal/server"
	"github.com/qbroker/qbroker/internal/sim/braketsim"
)

const (
	awsRootID  = "AKIAQBROKERTESTROOT1"
	awsRoleARN = "arn:aws:iam::123456789012:role/qbroker-braket"
	awsRole    = "braket-sv1"
)

// startAWSDev runs the dev broker with dynamic AWS credentials for the
// demo role against the AWS emulator.
func startAWSDev(t *testing.T) (*server.Dev, string) {
	t.Helper()
	var b [24]byte
	rand.Read(b[:])
	secret := hex.EncodeToString(b[:])
	e, err := braketsim.New(braketsim.Config{RootAccessKeyID: awsRootID, RootSecretAccessKey: secret, StepDelay: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sim := httptest.NewServer(e)
	t.Cleanup(func() { sim.Close(); e.Close() })
	var demo string
	for _, f := range policy.DefaultFiles() {
		if f.Name == "demo.cedar" {
			demo = string(f.Data)
		}
	}
	path := filepath.Join(t.TempDir(), "policies.cedar")
	if err := os.WriteFile(path, []byte(demo+`
@id("demo-aws-creds")
permit (principal in Role::"demo", action == Action::"IssueCredentials", resource == Provider::"aws");
@id("lab-sv1") permit (principal in Role::"lab", action == Action::"SubmitJob", resource == Device::"aws/sv1");
@id("lab-own-jobs") permit (principal in Role::"lab", action in [Action::"ReadJob", Action::"ReadResult", Action::"CancelJob"], resource is Job)
when { resource.owner == principal };
`), 0o600); err != nil {
		t.Fatal(err)
	}
	dev := startDev(t, server.DevOptions{PolicyFiles: []string{path}, AWS: config.AWS{
		Region: "us-east-1", STSEndpoint: sim.URL, BraketEndpoint: sim.URL, S3Endpoint: sim.URL,
		Roles: []config.AWSRole{{Name: awsRole, RoleARN: awsRoleARN, DeviceARNs: []string{braketsim.SV1ARN},
			S3Bucket: "amazon-braket-qbroker-results", S3Prefix: "tenants/demo", BrokerRoles: []string{server.DemoRole}},
			{Name: "braket-lab", RoleARN: awsRoleARN, DeviceARNs: []string{braketsim.SV1ARN},
				S3Bucket: "amazon-braket-qbroker-results", S3Prefix: "tenants/lab", BrokerRoles: []string{"lab"}}},
	}})
	req, _ := http.NewRequest(http.MethodPost, dev.BrokerURL+"/v1/sys/providers/aws/credential", strings.NewReader(fmt.Sprintf(`{"api_key":%q}`, awsRootID+":"+secret)))
	req.Header.Set("X-Vault-Token", dev.RootToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("store the AWS root key: %v %v", resp, err)
	}
	resp.Body.Close()
	return dev, sim.URL
}

func get(t *testing.T, u, auth string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The AWS container-credentials endpoint serves an exec session's STS
// credentials only with the session's authorization token, only to
// loopback clients, and only while the session is open.
func TestAWSContainerEndpoint(t *testing.T) {
	dev, _ := startAWSDev(t)
	h := startDaemon(t, dev, nil)
	ctx := context.Background()
	s, err := h.client().OpenSession(ctx, SessionRequest{Role: awsRole, Provider: "aws"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := h.client().OpenSession(ctx, SessionRequest{Role: awsRole, Provider: "aws"})
	if err != nil {
		t.Fatal(err)
	}
	uri, tok := s.Env["AWS_CONTAINER_CREDENTIALS_FULL_URI"], s.Env["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
	if !strings.HasPrefix(uri, "http://127.0.0.1:") || len(tok) < 40 || len(s.Env) != 2 {
		t.Fatalf("session env: %v", s.Env)
	}
	for _, c := range []struct{ what, auth string }{
		{"no token", ""}, {"a wrong token", tok + "x"}, {"another session's token", other.Env["AWS_CONTAINER_AUTHORIZATION_TOKEN"]},
		{"the token as Bearer", "Bearer " + tok},
	} {
		if status, body := get(t, uri, c.auth); status != http.StatusUnauthorized || strings.Contains(body, "AccessKeyId") {
			t.Fatalf("%s: %d %s", c.what, status, body)
		}
	}
	status, body := get(t, uri, tok)
	var cc containerCreds
	if status != http.StatusOK || json.Unmarshal([]byte(body), &cc) != nil || !strings.HasPrefix(cc.AccessKeyID, "ASIA") ||
		cc.SecretAccessKey == "" || cc.Token == "" || time.Until(cc.Expiration) < 10*time.Minute {
		t.Fatalf("with the token: %d %s", status, body)
	}
	// Not from another host (the listener is loopback-only; the handler checks too).
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, uri, nil)
	req.RemoteAddr = "192.0.2.7:40000"
	req.Header.Set("Authorization", tok)
	h.d.serveAWS(rec, req)
	if rec.Code != http.StatusForbidden || strings.Contains(rec.Body.String(), "AccessKeyId") {
		t.Fatalf("a non-loopback client: %d %s", rec.Code, rec.Body)
	}
	// Closing the session ends the token.
	if err := h.client().CloseSession(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if status, _ := get(t, uri, tok); status != http.StatusUnauthorized {
		t.Fatalf("after the session closed: %d", status)
	}
	if err := h.client().CloseSession(ctx, s.ID); err == nil {
		t.Fatal("a closed session closed twice")
	}
	// No secret in the daemon's log.
	for _, sec := range append(h.tokens(), tok, cc.SecretAccessKey, cc.Token) {
		if strings.Contains(h.logs.String(), sec) {
			t.Fatal("a secret is in the daemon's log")
		}
	}
}

// A session ends when the process that opened it exits, even if it never
// closed it (a `qbroker exec` killed with SIGKILL).
func TestSessionEndsWithItsProcess(t *testing.T) {
	dev, _ := startAWSDev(t)
	h := startDaemon(t, dev, nil)
	self, _ := os.Executable()
	cmd := exec.Command(self)
	cmd.Env = []string{helperEnv + "=opensession", "LOCALAGENT_SOCKET=" + h.sock}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v %s", err, out)
	}
	var s SessionData
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	uri, tok := s.Env["AWS_CONTAINER_CREDENTIALS_FULL_URI"], s.Env["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
	deadline := time.Now().Add(5 * time.Second)
	for {
		status, _ := get(t, uri, tok)
		if status == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the session of an exited process still answers: %d", status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := h.d.sessions.count(); n != 0 {
		t.Fatalf("%d sessions left", n)
	}
}

// The gateway passthrough: an IonQ client pointed at it with the session
// key runs a Bell pair on the emulator with no provider key and no job
// token of its own; a request without the key, with a wrong one, from
// another host or after the session is refused; a hardware job the person
// denies gets no job token.
func TestIonQPassthrough(t *testing.T) {
	dev := startDev(t, server.DevOptions{})
	var asked []Request
	deny := askerFunc(func(_ context.Context, r Request) (Answer, error) { asked = append(asked, r); return Deny, nil })
	h := startDaemon(t, dev, func(c *Config) {
		c.GatewayURL = dev.GatewayURL
		c.Consent = NewConsent(Rules{Hardware: true, CostAboveUSD: -1}, deny, c.Logger)
	})
	ctx := context.Background()
	s, err := h.client().OpenSession(ctx, SessionRequest{Role: server.DemoRole, Provider: "ionq"})
	if err != nil {
		t.Fatal(err)
	}
	key, base := s.Env["IONQ_API_KEY"], s.Env["IONQ_BASE_URL"]
	if !strings.HasPrefix(key, "qbl_") || !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("session env %v", s.Env)
	}
	bell := `{"qubits":2,"gateset":"qis","circuit":[{"gate":"h","target":0},{"gate":"cnot","control":0,"target":1}]}`
	submit := func(auth, backend string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, base+"/v0.4/jobs", strings.NewReader(
			fmt.Sprintf(`{"type":"ionq.circuit.v1","backend":%q,"shots":200,"input":%s}`, backend, bell)))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct{ what, auth string }{{"no key", ""}, {"a wrong key", "apiKey qbl_wrong"}, {"the broker's token", "apiKey " + h.tokens()[0]}} {
		if status, body := submit(c.auth, "simulator"); status != http.StatusUnauthorized {
			t.Fatalf("%s: %d %s", c.what, status, body)
		}
	}
	status, body := submit("apiKey "+key, "simulator")
	var job struct {
		ID string `json:"id"`
	}
	if status != http.StatusCreated || json.Unmarshal([]byte(body), &job) != nil || job.ID == "" {
		t.Fatalf("submit through the passthrough: %d %s", status, body)
	}
	// The socket's agent API does not reach a session's job: only the
	// session's key reads it.
	if code, body := rawSocket(t, h.sock, http.MethodGet, "/v1/gateway/ionq/v0.4/jobs/"+job.ID, nil, nil); code != http.StatusForbidden || !strings.Contains(body, "belongs to an exec session") {
		t.Fatalf("a session's job through the agent API: %d %s", code, body)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		status, body := get(t, base+"/v0.4/jobs/"+job.ID, "apiKey "+key)
		if status == http.StatusOK && strings.Contains(body, `"completed"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job status: %d %s", status, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	status, body = get(t, base+"/v0.4/jobs/"+job.ID+"/results/probabilities", "apiKey "+key)
	var probs map[string]float64
	if status != http.StatusOK || json.Unmarshal([]byte(body), &probs) != nil || probs["0"] < 0.3 || probs["3"] < 0.3 {
		t.Fatalf("Bell results: %d %s", status, body)
	}

	// Job-scoped: another session (another process) cannot read this job,
	// although the daemon's broker token could.
	other, err := h.client().OpenSession(ctx, SessionRequest{Role: server.DemoRole, Provider: "ionq"})
	if err != nil {
		t.Fatal(err)
	}
	if status, body := get(t, base+"/v0.4/jobs/"+job.ID, "apiKey "+other.Env["IONQ_API_KEY"]); status != http.StatusNotFound || !strings.Contains(body, "not a job of this session") {
		t.Fatalf("another session reads the job: %d %s", status, body)
	}
	if status, _ := get(t, base+"/v0.4/backends", "apiKey "+other.Env["IONQ_API_KEY"]); status != http.StatusOK {
		t.Fatalf("the backend list: %d", status)
	}
	// The broker token goes only to the front the path names: no "..".
	for _, p := range []string{"/v0.4/backends/../../../v1/auth/token/lookup-self", "/v0.4/backends/%2e%2e/%2e%2e/%2e%2e/v1/sys/health"} {
		raw := base + p
		req, _ := http.NewRequest(http.MethodGet, raw, nil)
		req.URL.Opaque = strings.TrimPrefix(raw, "http:") // keep the dots as sent
		req.Header.Set("Authorization", "apiKey "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "not clean") {
			t.Fatalf("%s: %d %s", p, resp.StatusCode, b)
		}
	}

	// A job the gateway would refuse is refused before a job token (and
	// its budget reservation) exists.
	untyped, _ := http.NewRequest(http.MethodPost, base+"/v0.4/jobs", strings.NewReader(`{"backend":"simulator","shots":10,"input":`+bell+`}`))
	untyped.Header.Set("Authorization", "apiKey "+key)
	resp, err := http.DefaultClient.Do(untyped)
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(rb), "type") {
		t.Fatalf("a job without a type: %d %s", resp.StatusCode, rb)
	}

	// Hardware: the person is asked (and denies): no job token.
	if status, body := submit("apiKey "+key, "qpu.forte-1"); status != http.StatusForbidden || !strings.Contains(body, "consent denied") {
		t.Fatalf("a denied hardware job: %d %s", status, body)
	}
	if len(asked) != 1 || asked[0].Kind != "qpu" || asked[0].Shots != 200 || asked[0].CostUSD < 16 || asked[0].Program.PID != int32(os.Getpid()) {
		t.Fatalf("consent asked %+v", asked)
	}

	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, base+"/v0.4/jobs/"+job.ID, nil)
	req.RemoteAddr = "10.1.2.3:5555"
	req.Header.Set("Authorization", "apiKey "+key)
	h.d.servePassthrough(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("a non-loopback client: %d %s", rec.Code, rec.Body)
	}
	if err := h.client().CloseSession(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if status, _ := get(t, base+"/v0.4/jobs/"+job.ID, "apiKey "+key); status != http.StatusUnauthorized {
		t.Fatalf("after the session: %d", status)
	}
	if err := h.client().CloseSession(ctx, "nope"); err == nil {
		t.Fatal("closed an unknown session")
	}
	var le *Error
	if _, err := h.client().OpenSession(ctx, SessionRequest{Role: "x", Provider: "ibm"}); !errors.As(err, &le) || le.Status != http.StatusBadRequest {
		t.Fatalf("an unsupported provider: %v", err)
	}
}

type askerFunc func(context.Context, Request) (Answer, error)

func (f askerFunc) Ask(ctx context.Context, r Request) (Answer, error) { return f(ctx, r) }
