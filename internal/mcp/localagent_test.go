package mcp_test

// The desktop path of issue 10: `qbroker mcp` with no broker token at all,
// acting through the local broker (`qbroker agent`, internal/localagent)
// on its Unix socket. The daemon runs in-process against the dev stack,
// signed in as the demo agent; its consent prompts are answered by the
// test.

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/client"
	"github.com/qbroker/qbroker/internal/localagent"
	"github.com/qbroker/qbroker/internal/mcp"
	"github.com/qbroker/qbroker/internal/server"
)

// scriptedAsker answers consent questions from a queue, as the person at
// the terminal would, and records each question.
type scriptedAsker struct {
	mu      sync.Mutex
	answers []localagent.Answer
	asked   []localagent.Request
	delay   time.Duration // how long the person takes to answer
}

func (a *scriptedAsker) Ask(ctx context.Context, r localagent.Request) (localagent.Answer, error) {
	a.mu.Lock()
	delay := a.delay
	a.mu.Unlock()
	select {
	case <-time.After(delay):
	case <-ctx.Done():
		return localagent.Deny, ctx.Err()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.asked = append(a.asked, r)
	if len(a.answers) == 0 {
		return localagent.Deny, fmt.Errorf("the test has no answer for %s on %s", r.What, r.Device)
	}
	ans := a.answers[0]
	a.answers = a.answers[1:]
	return ans, nil
}

func (a *scriptedAsker) answer(ans ...localagent.Answer) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.answers = append(a.answers, ans...)
}

func (a *scriptedAsker) questions() []localagent.Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]localagent.Request(nil), a.asked...)
}

// desktop is a dev stack with a local agent signed in as the demo agent.
type desktop struct {
	st     *stack // the dev stack (its token-mode server is not used)
	sock   string
	asker  *scriptedAsker
	logs   *buffer // the daemon's logs
	mu     sync.Mutex
	tokens []string // every broker token the daemon was given
}

func (dt *desktop) daemonTokens() []string {
	dt.mu.Lock()
	defer dt.mu.Unlock()
	return append([]string(nil), dt.tokens...)
}

// startDesktop runs `qbroker agent` in-process: consent for hardware and
// for a device's first use, asked of the scripted person.
func startDesktop(t *testing.T) *desktop {
	t.Helper()
	b := server.DevBudgets()
	dt := &desktop{st: newStack(t, &b), asker: &scriptedAsker{}, logs: &buffer{}}
	// A short path: a Unix socket path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "qbm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	dt.sock = filepath.Join(dir, "run", "agent.sock")
	log := slog.New(slog.NewJSONHandler(dt.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	d, err := localagent.New(localagent.Config{
		Broker:     client.New(dt.st.d.BrokerURL, &http.Client{Timeout: 70 * time.Second}),
		SocketPath: dt.sock,
		Logger:     log,
		Login: func(ctx context.Context, c *client.Client) (*api.Auth, error) {
			a, err := c.AppRoleLogin(ctx, dt.st.d.RoleID, dt.st.d.SecretID)
			if err == nil {
				dt.mu.Lock()
				dt.tokens = append(dt.tokens, a.ClientToken)
				dt.mu.Unlock()
			}
			return a, err
		},
		Consent: localagent.NewConsent(localagent.Rules{Hardware: true, CostAboveUSD: -1, FirstDevice: true, Timeout: 20 * time.Second}, dt.asker, log),
		// The gateway is learned from the first job token, as the MCP
		// server learns it.
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the local agent did not stop")
		}
	})
	sc := localagent.NewSocketClient(dt.sock)
	for deadline := time.Now().Add(20 * time.Second); ; {
		if in, err := sc.Status(context.Background()); err == nil && in.SignedIn {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the local agent did not come up\n%s", dt.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return dt
}

// connectLocal runs an MCP server with no token and no broker address,
// through the local agent, and connects the Go SDK's client to it.
func (dt *desktop) connectLocal(t *testing.T, name string, opts ...*sdk.ClientOptions) (*session, *buffer) {
	t.Helper()
	logs := &buffer{}
	srv, err := mcp.New(mcp.Options{
		LocalAgent: dt.sock, HTTPClient: &http.Client{Timeout: 60 * time.Second},
		Logger:       slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		PollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ct, stt := sdk.NewInMemoryTransports()
	ss, err := srv.MCPServer(false).Connect(ctx, stt, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &buffer{}
	var co *sdk.ClientOptions
	if len(opts) > 0 {
		co = opts[0]
	}
	cs, err := sdk.NewClient(&sdk.Implementation{Name: name, Version: "0.1"}, co).
		Connect(ctx, &sdk.LoggingTransport{Transport: ct, Writer: tr}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close(); ss.Wait() })
	return &session{t: t, cs: cs, transcript: tr}, logs
}

// noDaemonToken fails if text holds any broker token the daemon had, or
// anything credential-shaped.
func (dt *desktop) noDaemonToken(t *testing.T, what, text string) {
	t.Helper()
	toks := dt.daemonTokens()
	if len(toks) == 0 {
		t.Fatal("the daemon was given no token")
	}
	for _, tok := range toks {
		if strings.Contains(text, tok) {
			t.Errorf("%s contains the local agent's broker token", what)
		}
	}
	dt.st.noSecrets(t, what, text)
}

func TestLocalAgentDesktopPath(t *testing.T) {
	dt := startDesktop(t)
	s, logs := dt.connectLocal(t, "claude-desktop-test")

	var devs struct {
		Devices []struct {
			ID, Kind string
		} `json:"devices"`
	}
	s.ok("list_devices", nil, &devs)
	kinds := map[string]string{}
	for _, d := range devs.Devices {
		kinds[d.ID] = d.Kind
	}
	if kinds["ionq/simulator"] != "simulator" || kinds["ionq/qpu.forte-1"] != "qpu" {
		t.Fatalf("devices through the local agent: %v", kinds)
	}

	// The simulator's first use asks the person: allowed, the Bell pair runs.
	dt.asker.answer(localagent.Allow)
	var sub submission
	s.ok("submit_circuit", map[string]any{"circuit": bellQASM, "format": "qasm3", "device": "ionq/simulator", "shots": 1000}, &sub)
	if sub.Status != "submitted" || sub.JobID == "" {
		t.Fatalf("submission %+v", sub)
	}
	if q := dt.asker.questions(); len(q) != 1 || q[0].Device != "simulator" || !strings.Contains(strings.Join(q[0].Reasons, ";"), "first use") {
		t.Fatalf("consent questions %+v, want one for the simulator's first use", q)
	}
	s.waitJob(sub.JobID)
	var r result
	s.ok("get_result", map[string]any{"job_id": sub.JobID}, &r)
	checkBell(t, r, 1000)

	// The budget resource through the daemon.
	rr, err := s.cs.ReadResource(context.Background(), &sdk.ReadResourceParams{URI: mcp.BudgetURI})
	if err != nil || len(rr.Contents) != 1 || !strings.Contains(rr.Contents[0].Text, "demo-simulator.shots_per_day") {
		t.Fatalf("budget resource: %v %+v", err, rr)
	}

	// Hardware waits for the person. Denied: a tool error naming it, and
	// nothing issued.
	qpuArgs := map[string]any{"circuit": bellQASM, "format": "qasm3", "device": "ionq/qpu.forte-1", "shots": 100}
	dt.asker.answer(localagent.Deny)
	msg := s.refused("submit_circuit", qpuArgs)
	if !strings.Contains(msg, "refused by the person at this computer") || !strings.Contains(msg, "consent denied") {
		t.Fatalf("denied consent: %q", msg)
	}
	if q := dt.asker.questions(); len(q) != 2 || q[1].Kind != "qpu" || !strings.Contains(strings.Join(q[1].Reasons, ";"), "hardware device") || !strings.Contains(q[1].Program.Exe, "mcp.test") ||
		q[1].Client != "claude-desktop-test 0.1" || !strings.Contains(q[1].Summary(), `On behalf of (as it names itself): "claude-desktop-test 0.1"`) {
		t.Fatalf("consent questions %+v, want the hardware one naming this program", q)
	}

	// Allowed: then the broker's own approval flow, as without the daemon.
	dt.asker.answer(localagent.Allow)
	var held submission
	s.ok("submit_circuit", qpuArgs, &held)
	if held.Status != "approval_pending" || held.ApprovalID == "" || held.ConsoleURL == "" {
		t.Fatalf("after consent: %+v, want approval_pending", held)
	}
	if _, err := dt.st.root.Approve(context.Background(), held.ApprovalID, "fine for a test"); err != nil {
		t.Fatal(err)
	}
	var as struct {
		State string `json:"state"`
	}
	s.ok("wait_for_approval", map[string]any{"approval_id": held.ApprovalID, "timeout_seconds": 10}, &as)
	if as.State != "approved" {
		t.Fatalf("approval state %q", as.State)
	}
	// Redeeming it for exactly the consented request is not asked again.
	qpuArgs["approval_id"] = held.ApprovalID
	var hw submission
	s.ok("submit_circuit", qpuArgs, &hw)
	if hw.Status != "submitted" || hw.JobID == "" {
		t.Fatalf("approved hardware submission %+v", hw)
	}
	if n := len(dt.asker.questions()); n != 3 {
		t.Fatalf("%d consent questions, want 3 (the approval's redemption is covered by the consent before it)", n)
	}
	s.waitJob(hw.JobID)
	// A cancel reaches the gateway with the owner's token (added by the
	// daemon): the provider's own answer for a finished job comes back.
	if msg := s.refused("cancel_job", map[string]any{"job_id": hw.JobID}); !strings.Contains(msg, "already completed") {
		t.Fatalf("cancel of a completed job: %q", msg)
	}

	// Audit: the calls are the daemon's agent's, with the MCP client's name.
	calls := map[string]int{}
	for _, ev := range dt.st.events(t, "tool_call") {
		if ev["client"] != "claude-desktop-test 0.1" || ev["role"] != server.DemoRole || ev["agent"] == "" {
			t.Errorf("tool_call event %v", ev)
		}
		calls[ev["action"].(string)]++
	}
	for _, tool := range []string{"list_devices", "submit_circuit", "job_status", "get_result", "wait_for_approval", "cancel_job", "read_resource_budget"} {
		if calls[tool] == 0 {
			t.Errorf("no tool_call event for %s (%v)", tool, calls)
		}
	}
	var issued int
	for _, ev := range dt.st.events(t, "issue") {
		if ev["action"] == "SubmitJob" && ev["decision"] == "allow" && ev["client"] == "claude-desktop-test 0.1" {
			issued++
		}
	}
	if issued != 2 {
		t.Errorf("%d job-token issue events with the MCP client's name, want 2", issued)
	}

	// No token anywhere: not the daemon's, not one of the stack's.
	dt.noDaemonToken(t, "the MCP transcript", s.transcript.String())
	dt.noDaemonToken(t, "the MCP server's logs", logs.String()+"\n(logs)")
	if !strings.Contains(dt.logs.String(), "consent: given before the broker's approval") {
		t.Error("the daemon did not log the redemption covered by the earlier consent")
	}
}

// The built binary, as a desktop MCP host runs it: `qbroker mcp` with only
// QBROKER_AGENT_SOCKET in its environment (no QBROKER_TOKEN, no
// QBROKER_ADDR), over stdio with the SDK's CommandTransport.
func TestLocalAgentBuiltBinaryOverStdio(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dt := startDesktop(t)
	dt.asker.answer(localagent.Allow) // the simulator's first use
	bin := filepath.Join(t.TempDir(), "qbroker")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/qbroker/qbroker/cmd/qbroker").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "mcp")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "QBROKER_AGENT_SOCKET=" + dt.sock}
	stderr := &buffer{}
	cmd.Stderr = stderr
	tr := &buffer{}
	ctx := context.Background()
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "stdio-host", Version: "1"}, nil).
		Connect(ctx, &sdk.LoggingTransport{Transport: &sdk.CommandTransport{Command: cmd}, Writer: tr}, nil)
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, stderr)
	}
	defer cs.Close()
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	s := &session{t: t, cs: cs, transcript: tr}
	var sub submission
	s.ok("submit_circuit", map[string]any{"circuit": bellIonQ, "format": "ionq", "device": "ionq/simulator", "shots": 500}, &sub)
	s.waitJob(sub.JobID)
	var r result
	s.ok("get_result", map[string]any{"job_id": sub.JobID}, &r)
	checkBell(t, r, 500)
	cs.Close()

	if strings.Contains(string(environ), "QBROKER_TOKEN") || strings.Contains(string(environ), "QBROKER_ADDR") {
		t.Fatalf("the MCP server's environment has a token or a broker address: %q", environ)
	}
	dt.noDaemonToken(t, "the MCP server's environment", string(environ))
	dt.noDaemonToken(t, "the stdio transcript", tr.String())
	dt.noDaemonToken(t, "the MCP server's stderr", stderr.String()+"\n(stderr)")
}

// A tool call that waits for the person's consent tells a client that
// asked for progress what it waits for (hosts show it; some reset their
// timeout on it).
func TestLocalAgentConsentWaitSendsProgress(t *testing.T) {
	dt := startDesktop(t)
	dt.asker.delay = 2500 * time.Millisecond
	dt.asker.answer(localagent.Allow)
	var mu sync.Mutex
	var progress []string
	s, _ := dt.connectLocal(t, "progress-test", &sdk.ClientOptions{ProgressNotificationHandler: func(_ context.Context, r *sdk.ProgressNotificationClientRequest) {
		mu.Lock()
		defer mu.Unlock()
		progress = append(progress, r.Params.Message)
	}})
	params := &sdk.CallToolParams{Name: "submit_circuit", Arguments: map[string]any{"circuit": bellIonQ, "format": "ionq", "device": "ionq/simulator", "shots": 10}}
	params.SetProgressToken("consent-1")
	res, err := s.cs.CallTool(context.Background(), params)
	if err != nil || res.IsError {
		t.Fatalf("submit after a slow consent: %v %s", err, textOf(res))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(progress) == 0 || !strings.Contains(progress[0], "consent prompt") {
		t.Fatalf("progress %q, want a notification naming the consent prompt", progress)
	}
}

// Without a running daemon, every call says what to do, and nothing else
// happens.
func TestLocalAgentNotRunning(t *testing.T) {
	srv, err := mcp.New(mcp.Options{LocalAgent: filepath.Join(t.TempDir(), "agent.sock")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mcp.New(mcp.Options{LocalAgent: "/x.sock", Token: "qbt_x"}); err == nil {
		t.Fatal("a token and a local agent together were accepted")
	}
	ctx := context.Background()
	ct, stt := sdk.NewInMemoryTransports()
	ss, err := srv.MCPServer(false).Connect(ctx, stt, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "t", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cs.Close(); ss.Wait() }()
	s := &session{t: t, cs: cs, transcript: &buffer{}}
	if msg := s.refused("list_devices", nil); !strings.Contains(msg, "start `qbroker agent`") {
		t.Fatalf("no daemon: %q", msg)
	}
}
