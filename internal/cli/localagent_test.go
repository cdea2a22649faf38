package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/localagent"
	"github.com/qbroker/qbroker/internal/policy"
	"github.com/qbroker/qbroker/internal/server"
	"github.com/qbroker/qbroker/internal/sim/braketsim"
)

// The test binary doubles as the qbroker binary and as the "agents" that
// `qbroker exec` starts, so that every process in these tests is real.
const testAs = "QBROKER_CLI_TEST_AS"

func TestMain(m *testing.M) {
	switch os.Getenv(testAs) {
	case "qbroker":
		os.Exit(Main(context.Background(), os.Args[1:], Env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}))
	case "awschild":
		os.Exit(awsChild())
	case "ionqchild":
		os.Exit(ionqChild())
	}
	os.Exit(m.Run())
}

const bellQASM = "OPENQASM 3;\nqubit[2] q;\nbit[2] b;\nh q[0];\ncnot q[0], q[1];\nb[0] = measure q[0];\nb[1] = measure q[1];\n"

// childReport is what the agent processes print for the test.
type childReport struct {
	Source       string            `json:"source"`
	AccessKey    string            `json:"access_key"`
	SecretKey    string            `json:"secret_key"`
	SessionToken string            `json:"session_token"`
	Status       int               `json:"status"`
	Body         string            `json:"body"`
	Env          map[string]string `json:"env"` // AWS_*, IONQ_*, QBROKER_* as the child saw them
}

func credentialEnv() map[string]string {
	out := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "IONQ_") || strings.HasPrefix(k, "QBROKER_") {
			out[k] = v
		}
	}
	return out
}

// awsChild is an unmodified AWS SDK user: aws-sdk-go-v2's default
// credential chain, then a SigV4-signed Braket CreateQuantumTask at the
// endpoint AWS_ENDPOINT_URL_BRAKET names (the emulator).
func awsChild() int {
	ctx := context.Background()
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "LoadDefaultConfig:", err)
		return 3
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "credentials:", err)
		return 4
	}
	action, _ := json.Marshal(map[string]any{"braketSchemaHeader": map[string]string{"name": "braket.ir.openqasm.program", "version": "1"}, "source": bellQASM})
	body, _ := json.Marshal(map[string]any{"clientToken": fmt.Sprintf("qb-%d", time.Now().UnixNano()), "deviceArn": braketsim.SV1ARN, "shots": 100,
		"outputS3Bucket": "amazon-braket-qbroker-results", "outputS3KeyPrefix": "tenants/demo", "action": string(action)})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, os.Getenv("AWS_ENDPOINT_URL_BRAKET")+"/quantum-task", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "braket", cfg.Region, time.Now()); err != nil {
		fmt.Fprintln(os.Stderr, "sign:", err)
		return 5
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "braket:", err)
		return 6
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	_ = json.NewEncoder(os.Stdout).Encode(childReport{Source: creds.Source, AccessKey: creds.AccessKeyID, SecretKey: creds.SecretAccessKey,
		SessionToken: creds.SessionToken, Status: resp.StatusCode, Body: string(b), Env: credentialEnv()})
	return 0
}

// ionqChild is an IonQ client configured only by IONQ_BASE_URL and
// IONQ_API_KEY: a Bell pair, then its probabilities.
func ionqChild() int {
	base, key := os.Getenv("IONQ_BASE_URL"), os.Getenv("IONQ_API_KEY")
	call := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "apiKey "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	report := childReport{Env: credentialEnv()}
	defer func() { _ = json.NewEncoder(os.Stdout).Encode(report) }()
	status, body := call(http.MethodPost, "/v0.4/jobs", `{"type":"ionq.circuit.v1","backend":"simulator","shots":500,"input":{"qubits":2,"gateset":"qis","circuit":[{"gate":"h","target":0},{"gate":"cnot","control":0,"target":1}]}}`)
	var job struct {
		ID string `json:"id"`
	}
	if status != http.StatusCreated || json.Unmarshal([]byte(body), &job) != nil {
		report.Status, report.Body = status, body
		return 0
	}
	for range 400 {
		if s, b := call(http.MethodGet, "/v0.4/jobs/"+job.ID, ""); s == http.StatusOK && strings.Contains(b, `"completed"`) {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	report.Status, report.Body = call(http.MethodGet, "/v0.4/jobs/"+job.ID+"/results/probabilities", "")
	return 0
}

// awsDev is the dev broker with dynamic AWS credentials for the demo role
// against the AWS emulator.
type awsDev struct {
	*server.Dev
	simURL string
	secret string // the emulator's root secret (the broker's AWS key)
}

const awsRole = "braket-sv1"

func startAWSDev(t *testing.T) *awsDev {
	t.Helper()
	var b [24]byte
	rand.Read(b[:])
	a := &awsDev{secret: hex.EncodeToString(b[:])}
	e, err := braketsim.New(braketsim.Config{RootAccessKeyID: "AKIAQBROKERTESTROOT1", RootSecretAccessKey: a.secret, StepDelay: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sim := httptest.NewServer(e)
	t.Cleanup(func() { sim.Close(); e.Close() })
	a.simURL = sim.URL
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
	a.Dev, err = server.StartDev(context.Background(), server.DevOptions{Addr: "127.0.0.1:0", GatewayAddr: "127.0.0.1:0", SimAddr: "127.0.0.1:0",
		DataDir: t.TempDir(), PolicyFiles: []string{path}, AWS: config.AWS{
			Region: "us-east-1", STSEndpoint: sim.URL, BraketEndpoint: sim.URL, S3Endpoint: sim.URL,
			Roles: []config.AWSRole{{Name: awsRole, RoleARN: "arn:aws:iam::123456789012:role/qbroker-braket", DeviceARNs: []string{braketsim.SV1ARN},
				S3Bucket: "amazon-braket-qbroker-results", S3Prefix: "tenants/demo", BrokerRoles: []string{server.DemoRole}},
				{Name: "braket-lab", RoleARN: "arn:aws:iam::123456789012:role/qbroker-braket", DeviceARNs: []string{braketsim.SV1ARN},
					S3Bucket: "amazon-braket-qbroker-results", S3Prefix: "tenants/lab", BrokerRoles: []string{"lab"}}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(context.Background()) })
	req, _ := http.NewRequest(http.MethodPost, a.BrokerURL+"/v1/sys/providers/aws/credential", strings.NewReader(fmt.Sprintf(`{"api_key":%q}`, "AKIAQBROKERTESTROOT1:"+a.secret)))
	req.Header.Set("X-Vault-Token", a.RootToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("store the AWS root key: %v %v", resp, err)
	}
	resp.Body.Close()
	return a
}

// lockedBuf is an io.Writer several goroutines write to.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// agentProc is `qbroker agent` running as its own process.
type agentProc struct {
	cmd    *exec.Cmd
	sock   string
	stderr *lockedBuf
	self   string
	home   string // the session's HOME
	run    string // XDG_RUNTIME_DIR
}

func startAgent(t *testing.T, d *awsDev, args ...string) *agentProc {
	t.Helper()
	return startAgentWith(t, d, nil, args...)
}

// startAgentWith lets the test attach the agent's stdio (a pty) before it starts.
func startAgentWith(t *testing.T, d *awsDev, attach func(*exec.Cmd), args ...string) *agentProc {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	a := &agentProc{self: self, stderr: &lockedBuf{}, home: t.TempDir(), run: t.TempDir()}
	a.sock = filepath.Join(a.run, "qbroker", "agent.sock")
	a.cmd = exec.Command(self, append([]string{"agent", "--method", "approle", "--gateway", d.GatewayURL}, args...)...)
	a.cmd.Env = []string{testAs + "=qbroker", "PATH=" + os.Getenv("PATH"), "HOME=" + a.home, "XDG_RUNTIME_DIR=" + a.run,
		"QBROKER_ADDR=" + d.BrokerURL, "QBROKER_ROLE_ID=" + d.RoleID, "QBROKER_SECRET_ID=" + d.SecretID}
	a.cmd.Stdout, a.cmd.Stderr = io.Discard, a.stderr
	if attach != nil {
		attach(a.cmd)
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = a.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { a.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			a.cmd.Process.Kill()
			t.Error("the agent did not stop on SIGTERM")
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		in, err := localagent.NewSocketClient(a.sock).Status(context.Background())
		if err == nil && in.SignedIn {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("qbroker agent did not come up: %v\n%s", err, a.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var consentURL = regexp.MustCompile(`open (http://127\.0\.0\.1:\d+/consent/[A-Za-z0-9_-]+)`)

// answerConsent waits for the n-th consent URL the agent prints, checks
// that the page names the program, and answers.
func (a *agentProc) answerConsent(t *testing.T, n int, wantOnPage, answer string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var u string
	for {
		if m := consentURL.FindAllStringSubmatch(a.stderr.String(), -1); len(m) >= n {
			u = m[n-1][1]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no consent URL #%d:\n%s", n, a.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), wantOnPage) {
		t.Fatalf("consent page %d, want %q on it:\n%s", resp.StatusCode, wantOnPage, page)
	}
	resp, err = http.PostForm(u, url.Values{"answer": {answer}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("answer %s: %d", answer, resp.StatusCode)
	}
}

// run starts the test binary as qbroker with args in the agent's session.
func (a *agentProc) qbroker(extraEnv []string, args ...string) *exec.Cmd {
	cmd := exec.Command(a.self, args...)
	cmd.Env = append([]string{testAs + "=qbroker", "PATH=" + os.Getenv("PATH"), "HOME=" + a.home, "XDG_RUNTIME_DIR=" + a.run}, extraEnv...)
	return cmd
}

func decodeReport(t *testing.T, out []byte) childReport {
	t.Helper()
	var r childReport
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	if err := json.Unmarshal(lines[len(lines)-1], &r); err != nil {
		t.Fatalf("child output %q: %v", out, err)
	}
	return r
}

// Issue 9, criteria 2 and 4. A real `qbroker agent` process (approle
// machine identity, consent on its one-time page) serves:
//   - `qbroker exec --role R -- <agent>`: aws-sdk-go-v2's default chain in
//     the child finds the container-credentials endpoint, the credentials
//     create a Bell task on the Braket emulator (which checks SigV4 and the
//     session policy); inherited keys are scrubbed; after the child exits
//     the endpoint refuses its token;
//   - credential_process in an AWS config file in a temp HOME, which runs
//     `qbroker creds aws --format credential-process`;
//   - `qbroker exec --provider ionq`: an IonQ client with only a base URL
//     and a per-process key runs a Bell pair through the passthrough.
//
// Then nothing the test saw (tokens, keys, session secrets) is anywhere in
// the temp HOME, the runtime dir, the broker's data dir or the agent's
// log, and the daemon runs with core dumps off.
func TestDesktopSessionSDKsAndNoSecretOnDisk(t *testing.T) {
	d := startAWSDev(t)
	a := startAgent(t, d, "--consent", "page", "--consent-first-device=false", "--consent-timeout", "30s")
	sockEnv := "QBROKER_AGENT_SOCKET=" + a.sock
	var seen []string // every secret the test saw
	seen = append(seen, d.SecretID, d.RootToken, d.secret)

	// Core dumps are off for the daemon: the kernel's view, and its own.
	limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", a.cmd.Process.Pid))
	if err != nil || !regexp.MustCompile(`Max core file size\s+0\s+0\s`).Match(limits) {
		t.Fatalf("the daemon's core limit:\n%s %v", limits, err)
	}
	in, err := localagent.NewSocketClient(a.sock).Status(context.Background())
	if err != nil || !in.Hardened || in.Entity == "" {
		t.Fatalf("daemon status %+v %v", in, err)
	}

	// 1. qbroker exec (AWS): the default chain reads the container endpoint.
	execAWS := a.qbroker([]string{sockEnv, "AWS_REGION=us-east-1", "AWS_ENDPOINT_URL_BRAKET=" + d.simURL,
		"AWS_ACCESS_KEY_ID=AKIAPARENTSHOULDNOTLEAK", "AWS_SECRET_ACCESS_KEY=parent-secret", "AWS_PROFILE=parent", "QBROKER_TOKEN=qbt_parent"},
		"exec", "--role", awsRole, "--", "env", testAs+"=awschild", a.self)
	var out, errOut bytes.Buffer
	execAWS.Stdout, execAWS.Stderr = &out, &errOut
	if err := execAWS.Start(); err != nil {
		t.Fatal(err)
	}
	a.answerConsent(t, 1, "exec --role "+awsRole, "allow")
	if err := execAWS.Wait(); err != nil {
		t.Fatalf("qbroker exec: %v\n%s\n%s", err, errOut.String(), a.stderr)
	}
	r := decodeReport(t, out.Bytes())
	if r.Source != "CredentialsEndpointProvider" || r.Status != http.StatusCreated || !strings.Contains(r.Body, "quantumTaskArn") || !strings.HasPrefix(r.AccessKey, "ASIA") {
		t.Fatalf("the SDK in the exec'd child: %+v", r)
	}
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "QBROKER_TOKEN"} {
		if _, ok := r.Env[k]; ok {
			t.Fatalf("the child inherited %s", k)
		}
	}
	uri, tok := r.Env["AWS_CONTAINER_CREDENTIALS_FULL_URI"], r.Env["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
	if tok == "" || r.Env["AWS_SHARED_CREDENTIALS_FILE"] != os.DevNull {
		t.Fatalf("the child's credential variables: %v", r.Env)
	}
	seen = append(seen, tok, r.SecretKey, r.SessionToken)
	// Revoked when the child exited.
	req, _ := http.NewRequest(http.MethodGet, uri, nil)
	req.Header.Set("Authorization", tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the container endpoint after the child exited: %d", resp.StatusCode)
	}

	// 2. credential_process in ~/.aws/config of a temp HOME.
	if err := os.MkdirAll(filepath.Join(a.home, ".aws"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("[default]\nregion = us-east-1\ncredential_process = env %s=qbroker %s %s creds aws --role %s --format credential-process\n", testAs, sockEnv, a.self, awsRole)
	if err := os.WriteFile(filepath.Join(a.home, ".aws", "config"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	child := exec.Command(a.self)
	child.Env = []string{testAs + "=awschild", "PATH=" + os.Getenv("PATH"), "HOME=" + a.home, "AWS_ENDPOINT_URL_BRAKET=" + d.simURL}
	out.Reset()
	errOut.Reset()
	child.Stdout, child.Stderr = &out, &errOut
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	a.answerConsent(t, 2, "creds aws --role "+awsRole, "allow")
	if err := child.Wait(); err != nil {
		t.Fatalf("credential_process child: %v\n%s\n%s", err, errOut.String(), a.stderr)
	}
	r = decodeReport(t, out.Bytes())
	if r.Source != "ProcessProvider" || r.Status != http.StatusCreated || !strings.HasPrefix(r.AccessKey, "ASIA") {
		t.Fatalf("the SDK with credential_process: %+v\n%s", r, errOut.String())
	}
	seen = append(seen, r.SecretKey, r.SessionToken)

	// A denied credential_process: the SDK gets no credentials.
	child = exec.Command(a.self)
	child.Env = []string{testAs + "=awschild", "PATH=" + os.Getenv("PATH"), "HOME=" + a.home, "AWS_ENDPOINT_URL_BRAKET=" + d.simURL}
	out.Reset()
	errOut.Reset()
	child.Stdout, child.Stderr = &out, &errOut
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	a.answerConsent(t, 3, "creds aws", "deny")
	if err := child.Wait(); err == nil || !strings.Contains(errOut.String(), "consent denied") {
		t.Fatalf("a denied credential_process: %v\n%s", err, errOut.String())
	}

	// 3. qbroker exec (IonQ) through the passthrough; no consent needed for a simulator.
	execIonQ := a.qbroker([]string{sockEnv, "IONQ_API_KEY=parent-ionq-key"}, "exec", "--provider", "ionq", "--role", server.DemoRole, "--", "env", testAs+"=ionqchild", a.self)
	outb, err := execIonQ.Output()
	if err != nil {
		t.Fatalf("qbroker exec --provider ionq: %v\n%s", err, a.stderr)
	}
	r = decodeReport(t, outb)
	var probs map[string]float64
	if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Body), &probs) != nil || probs["0"] < 0.3 || probs["3"] < 0.3 {
		t.Fatalf("Bell through the passthrough: %+v", r)
	}
	if !strings.HasPrefix(r.Env["IONQ_API_KEY"], "qbl_") {
		t.Fatalf("the IonQ child's key: %v", r.Env)
	}
	seen = append(seen, r.Env["IONQ_API_KEY"])

	// 4. No secret on disk, nor in the agent's log.
	scan := []string{a.home, a.run, d.DataDir}
	for _, root := range scan {
		err := filepath.WalkDir(root, func(path string, de fs.DirEntry, err error) error {
			if err != nil || !de.Type().IsRegular() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, s := range seen {
				if s != "" && bytes.Contains(b, []byte(s)) {
					t.Errorf("a secret (%d bytes, %.6s…) is on disk in %s", len(s), s, path)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range seen {
		if s != "" && strings.Contains(a.stderr.String(), s) {
			t.Errorf("a secret (%.6s…) is in the agent's log", s)
		}
	}
	if got := len(seen); got < 9 {
		t.Fatalf("only %d secrets collected", got)
	}
}
