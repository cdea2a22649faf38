package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/client"
	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/localagent"
	"github.com/qbroker/qbroker/internal/server"
	"github.com/qbroker/qbroker/internal/testidp"
)

// openPTY opens a pseudo-terminal pair (/dev/ptmx), as a terminal emulator does.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return m, s
}

type screen struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *screen) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until the terminal has shown s n times.
func (s *screen) waitFor(t *testing.T, want string, n int) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if out := s.text(); strings.Count(out, want) >= n {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("the terminal never showed %q %d times:\n%s", want, n, s.text())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Issue 9, criterion 3 (terminal, end to end): `qbroker agent` started on
// a pseudo-terminal picks the terminal prompt by itself. A
// credential_process (`qbroker creds aws`) asks; the prompt names its pid,
// executable and command line; the test types y (credentials in the
// credential_process JSON: Version 1, Expiration), n (refused), a (allowed
// for 10 minutes: the same program is not asked again), and nothing (the
// timeout denies).
func TestAgentTerminalConsentThroughPTY(t *testing.T) {
	d := startAWSDev(t)
	m, s := openPTY(t)
	scr := &screen{}
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := m.Read(b)
			scr.mu.Lock()
			scr.b.Write(b[:n])
			scr.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	// The pty is the agent's controlling terminal and it leads the
	// foreground group, as in a shell: auto mode picks the terminal.
	a := startAgentWith(t, d, func(c *exec.Cmd) {
		c.Stdin, c.Stderr = s, s
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	}, "--consent-timeout", "1500ms")
	prompts := 0
	creds := func(answer string) (localagent.CredentialProcess, int, string, error) {
		t.Helper()
		cmd := a.qbroker([]string{"QBROKER_AGENT_SOCKET=" + a.sock}, "creds", "aws", "--role", awsRole, "--format", "credential-process")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if answer != "-" { // "-": no prompt expected
			prompts++
			scr.waitFor(t, "[N] deny", prompts)
			if answer != "" {
				io.WriteString(m, answer+"\r")
			}
		}
		err := cmd.Wait()
		var cp localagent.CredentialProcess
		if err == nil {
			err = json.Unmarshal(out.Bytes(), &cp)
		}
		return cp, cmd.Process.Pid, errb.String(), err
	}

	cp, pid, _, err := creds("y")
	if err != nil || cp.Version != 1 || !strings.HasPrefix(cp.AccessKeyID, "ASIA") || cp.SecretAccessKey == "" || cp.SessionToken == "" || time.Until(cp.Expiration) < 10*time.Minute {
		t.Fatalf("allowed: %+v %v", cp, err)
	}
	out := scr.waitFor(t, "allowed once", 1)
	for _, want := range []string{"pid " + strconv.Itoa(pid), a.self, "creds aws --role " + awsRole, "AWS credentials (role " + awsRole + ", aws)", "credential export"} {
		if !strings.Contains(out, want) {
			t.Fatalf("the prompt does not show %q:\n%s", want, out)
		}
	}
	if _, _, stderr, err := creds("n"); err == nil || !strings.Contains(stderr, "consent denied: the person denied it") {
		t.Fatalf("denied: %v %s", err, stderr)
	}
	start := time.Now()
	if _, _, stderr, err := creds(""); err == nil || !strings.Contains(stderr, "no answer within 1.5s") {
		t.Fatalf("no answer: %v %s", err, stderr)
	}
	if time.Since(start) < 1400*time.Millisecond {
		t.Fatal("denied before the timeout")
	}
	scr.waitFor(t, "no answer: denied", 1)
	if _, _, _, err := creds("a"); err != nil {
		t.Fatalf("allowed for 10 minutes: %v", err)
	}
	if _, _, _, err := creds("-"); err != nil {
		t.Fatalf("within the grant: %v", err)
	}
	if got := strings.Count(scr.text(), "[N] deny"); got != prompts {
		t.Fatalf("%d prompts, want %d:\n%s", got, prompts, scr.text())
	}
}

// `qbroker agent doctor` reports the daemon (running, core dumps off) and
// which provider hosts are reachable directly; it fails when one is, or
// when no agent runs.
func TestAgentDoctor(t *testing.T) {
	d := startAWSDev(t)
	a := startAgent(t, d, "--consent", "none")
	open, err := net.Listen("tcp", "127.0.0.1:0") // a "provider" this machine can reach
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close() // a "provider" the firewall blocks
	doctor := func(socket string, hosts ...string) (int, string) {
		var out bytes.Buffer
		code := Main(context.Background(), []string{"agent", "doctor", "--socket", socket, "--timeout", "1s", "--hosts", strings.Join(hosts, ",")},
			Env{Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }})
		return code, out.String()
	}
	code, out := doctor(a.sock, open.Addr().String(), closedAddr)
	if code != 1 || !strings.Contains(out, open.Addr().String()) || !strings.Contains(out, "REACHABLE directly") ||
		!strings.Contains(out, "blocked") || !strings.Contains(out, "core dumps    off") || !strings.Contains(out, "running at "+a.sock) {
		t.Fatalf("doctor with a reachable provider: %d\n%s", code, out)
	}
	if code, out := doctor(a.sock, closedAddr); code != 0 || !strings.Contains(out, "all checks passed") {
		t.Fatalf("doctor with egress restricted: %d\n%s", code, out)
	}
	if code, out := doctor(filepath.Join(t.TempDir(), "none.sock"), closedAddr); code != 1 || !strings.Contains(out, "NOT RUNNING") {
		t.Fatalf("doctor without an agent: %d\n%s", code, out)
	}
}

// `qbroker exec` exits with its child's status.
func TestExecPassesExitStatus(t *testing.T) {
	d := startAWSDev(t)
	a := startAgent(t, d, "--consent", "none")
	cmd := a.qbroker([]string{"QBROKER_AGENT_SOCKET=" + a.sock}, "exec", "--provider", "ionq", "--role", "demo", "--", "sh", "-c", `test -n "$IONQ_API_KEY" && exit 7`)
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Fatalf("exec of a child that exits 7: %v", err)
	}
	// A refused session starts nothing: exit 1 with the reason.
	cmd = a.qbroker([]string{"QBROKER_AGENT_SOCKET=" + a.sock}, "exec", "--role", awsRole, "--", "sh", "-c", "echo started")
	out, err := cmd.CombinedOutput()
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || strings.Contains(string(out), "started") || !strings.Contains(string(out), "consent denied") {
		t.Fatalf("a refused exec: %v %s", err, out)
	}
}

// `qbroker exec --provider braket --device sv1`: the unmodified SDK chain
// in the child picks up the session's environment credentials and its
// Braket endpoint (the local passthrough); the task runs through the
// gateway on the emulator, and the child never holds an AWS credential.
func TestExecBraketPassthroughWithSDK(t *testing.T) {
	d := startAWSDev(t)
	ctx := context.Background()
	root := client.New(d.BrokerURL, nil).WithToken(d.RootToken)
	if _, err := root.PutRole(ctx, "lab", api.Role{Provider: "aws", Devices: []string{"sv1"}, MaxShots: 1000, Owner: "lab", Team: "lab"}); err != nil {
		t.Fatal(err)
	}
	rid, err := root.RoleID(ctx, "lab")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := root.NewSecretID(ctx, "lab", api.SecretIDRequest{Agent: "lab-agent"})
	if err != nil {
		t.Fatal(err)
	}
	a := startAgentWith(t, d, func(c *exec.Cmd) {
		c.Env = append(c.Env, "QBROKER_ROLE_ID="+rid, "QBROKER_SECRET_ID="+sid.SecretID)
	}, "--consent", "none", "--consent-first-device=false")
	cmd := a.qbroker([]string{"QBROKER_AGENT_SOCKET=" + a.sock, "AWS_REGION=us-east-1", "AWS_ENDPOINT_URL_BRAKET=" + d.simURL},
		"exec", "--provider", "braket", "--device", "sv1", "--role", "lab", "--", "env", testAs+"=awschild", a.self)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("qbroker exec --provider braket: %v\n%s", err, a.stderr)
	}
	r := decodeReport(t, out)
	if r.Source != "EnvConfigCredentials" || r.Status != http.StatusCreated || !strings.Contains(r.Body, "quantumTaskArn") ||
		!strings.HasPrefix(r.AccessKey, "qbl_") || r.SessionToken != "" || !strings.Contains(r.Env["AWS_ENDPOINT_URL_BRAKET"], "/braket") {
		t.Fatalf("the SDK through the Braket passthrough: %+v", r)
	}
}

// `qbroker agent --method device`: the person signs in once with the
// device flow (a real OpenID provider in process); the daemon then serves
// as that person.
func TestAgentDeviceSignIn(t *testing.T) {
	op := testidp.Start(t)
	t.Setenv("QB_AGENT_DEVICE_SECRET", testidp.DeviceClientSecret)
	dev, err := server.StartDev(context.Background(), server.DevOptions{
		Addr: "127.0.0.1:0", GatewayAddr: "127.0.0.1:0", SimAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		Auth: config.Auth{
			JWT: config.JWTAuth{
				Issuers: []config.JWTIssuer{{Name: "corp", Issuer: op.Issuer, DiscoveryURL: op.Issuer}},
				Roles:   []config.JWTRole{{Name: "people", Issuer: "corp", BoundAudiences: []string{testidp.DeviceClientID}, BrokerRole: server.DemoRole}},
			},
			Device: config.DeviceAuth{Issuer: op.Issuer, ClientID: testidp.DeviceClientID, ClientSecretEnv: "QB_AGENT_DEVICE_SECRET"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close(context.Background())
	stderr := &lockedBuf{}
	approved := make(chan struct{})
	go func() {
		defer close(approved)
		re := regexp.MustCompile(`enter the code (\S+)`)
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if m := re.FindStringSubmatch(stderr.String()); m != nil {
				op.Approve(t, m[1], "alice", "allowed")
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Error("the agent showed no user code")
	}()
	a := startAgentWith(t, &awsDev{Dev: dev}, func(c *exec.Cmd) { c.Stderr = stderr }, "--method", "device", "--role", "people", "--consent", "none")
	<-approved
	in, err := localagent.NewSocketClient(a.sock).Status(context.Background())
	if err != nil || in.Entity != "device:corp:alice" || !in.SignedIn {
		t.Fatalf("after the device sign-in: %+v %v\n%s", in, err, stderr)
	}
	if strings.Contains(stderr.String(), "qbt_") {
		t.Fatal("the broker token is in the agent's output")
	}
}

// `qbroker agent &` from a shell with job control: the terminal is not the
// agent's to read (the first read would stop it with SIGTTIN), so auto
// mode asks on the consent page instead, and the agent keeps serving.
func TestAgentInTheBackgroundUsesThePage(t *testing.T) {
	d := startAWSDev(t)
	m, s := openPTY(t)
	go io.Copy(io.Discard, m)
	self, _ := os.Executable()
	run := t.TempDir()
	sock := filepath.Join(run, "qbroker", "agent.sock")
	stderr := &lockedBuf{}
	// sh -m: job control, so the & job gets its own, background, process group.
	sh := exec.Command("sh", "-mc", `"$0" agent --method approle --gateway "$1" --consent-timeout 30s & wait`, self, d.GatewayURL)
	sh.Env = []string{testAs + "=qbroker", "PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "XDG_RUNTIME_DIR=" + run,
		"QBROKER_ADDR=" + d.BrokerURL, "QBROKER_ROLE_ID=" + d.RoleID, "QBROKER_SECRET_ID=" + d.SecretID}
	sh.Stdin, sh.Stdout = s, s
	sh.Stderr = stderr
	sh.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The agent's pid, as the kernel reports the socket's peer; the
		// shell's wait ends when it exits.
		if conn, err := net.Dial("unix", sock); err == nil {
			raw, _ := conn.(*net.UnixConn).SyscallConn()
			_ = raw.Control(func(fd uintptr) {
				if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
					_ = syscall.Kill(int(cred.Pid), syscall.SIGTERM)
				}
			})
			conn.Close()
		}
		done := make(chan struct{})
		go func() { sh.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = sh.Process.Kill()
			t.Error("the background agent did not stop")
		}
	})
	c := localagent.NewSocketClient(sock)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if in, err := c.Status(context.Background()); err == nil && in.SignedIn {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the background agent did not come up:\n%s", stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	errc := make(chan error, 1)
	go func() { _, err := c.AWSCreds(context.Background(), awsRole); errc <- err }()
	a := &agentProc{stderr: stderr}
	a.answerConsent(t, 1, "AWS credentials", "allow")
	if err := <-errc; err != nil {
		t.Fatalf("credentials after consent on the page: %v", err)
	}
	if strings.Contains(stderr.String(), "[N] deny") {
		t.Fatal("the background agent prompted on the terminal")
	}
}
