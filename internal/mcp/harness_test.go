package mcp_test

// The harness: a real `qbroker dev` stack (broker, gateway, IonQ emulator)
// in-process on loopback, the demo agent logged in with AppRole, and the
// Go SDK's own MCP client connected to the server over in-memory
// transports, with the whole JSON-RPC transcript captured.

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/client"
	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/mcp"
	"github.com/qbroker/qbroker/internal/server"
)

// Circuits: a Bell pair in OpenQASM 3 and in IonQ's JSON.
const (
	bellQASM = "OPENQASM 3;\ninclude \"stdgates.inc\";\nqubit[2] q;\nbit[2] c;\nh q[0];\ncx q[0], q[1];\nc = measure q;\n"
	bellIonQ = `{"qubits":2,"circuit":[{"gate":"h","target":0},{"gate":"cnot","control":0,"target":1}]}`
)

// buffer is a goroutine-safe bytes.Buffer (transports and loggers write
// from their own goroutines).
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// stack is one dev stack, the demo agent's token and an MCP server for it.
type stack struct {
	d      *server.Dev
	token  string // the demo agent's broker token
	broker *client.Client
	root   *client.Client
	srv    *mcp.Server
	logs   *buffer // the MCP server's logs
}

func newStack(t *testing.T, budgets *config.Budgets, opts ...func(*server.DevOptions)) *stack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	o := server.DevOptions{
		Addr: "127.0.0.1:0", GatewayAddr: "127.0.0.1:0", SimAddr: "127.0.0.1:0",
		DataDir: t.TempDir(), IonQKey: "ionq-test-key-0123456789abcdef0123456789abcdef", Budgets: budgets,
		SimStepDelay: 5 * time.Millisecond,
	}
	for _, f := range opts {
		f(&o)
	}
	d, err := server.StartDev(ctx, o)
	if err != nil {
		t.Fatalf("StartDev: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	hc := &http.Client{Timeout: 60 * time.Second}
	bc := client.New(d.BrokerURL, hc)
	auth, err := bc.AppRoleLogin(ctx, d.RoleID, d.SecretID)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	st := &stack{d: d, token: auth.ClientToken, broker: bc, root: bc.WithToken(d.RootToken), logs: &buffer{}}
	st.srv, err = mcp.New(mcp.Options{
		Broker: bc, Token: auth.ClientToken, GatewayURL: d.GatewayURL, HTTPClient: hc,
		Logger:       slog.New(slog.NewTextHandler(st.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		PollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// session is a connected MCP client and its transcript.
type session struct {
	t          *testing.T
	cs         *sdk.ClientSession
	transcript *buffer
}

// connect attaches the Go SDK's client, named name, over in-memory
// transports (the stdio server: Options.Token).
func (st *stack) connect(t *testing.T, name string, opts ...*sdk.ClientOptions) *session {
	t.Helper()
	ctx := context.Background()
	ct, stt := sdk.NewInMemoryTransports()
	ss, err := st.srv.MCPServer(false).Connect(ctx, stt, nil)
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
	return &session{t: t, cs: cs, transcript: tr}
}

// call calls a tool; it fails the test on a protocol error, not a tool
// error.
func (s *session) call(name string, args map[string]any) *sdk.CallToolResult {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	res, err := s.cs.CallTool(ctx, &sdk.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		s.t.Fatalf("%s: %v", name, err)
	}
	return res
}

// ok calls a tool that must succeed and decodes its structured content.
func (s *session) ok(name string, args map[string]any, out any) *sdk.CallToolResult {
	s.t.Helper()
	res := s.call(name, args)
	if res.IsError {
		s.t.Fatalf("%s(%v): tool error: %s", name, args, textOf(res))
	}
	if textOf(res) == "" {
		s.t.Errorf("%s: no text summary", name)
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		s.t.Fatalf("%s: structured content %s: %v", name, b, err)
	}
	return res
}

// refused calls a tool that must fail with a tool error and returns its
// text.
func (s *session) refused(name string, args map[string]any) string {
	s.t.Helper()
	res := s.call(name, args)
	if !res.IsError {
		s.t.Fatalf("%s(%v) succeeded, want a tool error: %s", name, args, textOf(res))
	}
	return textOf(res)
}

func textOf(res *sdk.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*sdk.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// submission and result mirror the tools' structured content.
type submission struct {
	Status           string   `json:"status"`
	JobID            string   `json:"job_id"`
	Device           string   `json:"device"`
	ApprovalID       string   `json:"approval_id"`
	ConsoleURL       string   `json:"console_url"`
	Next             string   `json:"next"`
	Shots            int      `json:"shots"`
	Qubits           int      `json:"qubits"`
	Reasons          []string `json:"reasons"`
	EstimatedCostUSD float64  `json:"estimated_cost_usd"`
}

type result struct {
	JobID         string             `json:"job_id"`
	Status        string             `json:"status"`
	Shots         int                `json:"shots"`
	Counts        map[string]int     `json:"counts"`
	Probabilities map[string]float64 `json:"probabilities"`
}

// waitJob polls job_status until the job is completed.
func (s *session) waitJob(id string) {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st struct {
			Status string `json:"status"`
		}
		s.ok("job_status", map[string]any{"job_id": id}, &st)
		switch st.Status {
		case "completed":
			return
		case "failed", "canceled":
			s.t.Fatalf("job %s %s", id, st.Status)
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("job %s still %s after 30s", id, st.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkBell asserts ~50/50 counts of 00 and 11 over shots.
func checkBell(t *testing.T, r result, shots int) {
	t.Helper()
	if r.Status != "completed" || r.Shots != shots {
		t.Fatalf("result %+v, want completed with %d shots", r, shots)
	}
	if r.Counts["00"]+r.Counts["11"] != shots || r.Counts["01"] != 0 || r.Counts["10"] != 0 {
		t.Fatalf("counts %v: want only 00 and 11 summing to %d", r.Counts, shots)
	}
	// Five standard deviations of a fair binomial: a false failure is
	// about one in a million; a biased or broken circuit still fails.
	dev := int(math.Ceil(5 * math.Sqrt(float64(shots)) / 2))
	lo, hi := shots/2-dev, shots/2+dev
	for _, k := range []string{"00", "11"} {
		if c := r.Counts[k]; c < lo || c > hi {
			t.Fatalf("counts %v: %s = %d, want within [%d, %d] of %d shots", r.Counts, k, c, lo, hi, shots)
		}
	}
	t.Logf("Bell counts over %d shots: 00=%d 11=%d", shots, r.Counts["00"], r.Counts["11"])
}

// events reads audit events of one type (root).
func (st *stack) events(t *testing.T, typ string) []map[string]any {
	t.Helper()
	var out struct {
		Events []map[string]any `json:"events"`
	}
	if err := st.root.Do(context.Background(), http.MethodGet, "/v1/sys/audit/events?limit=1000&type="+typ, nil, &api.Response{Data: &out}); err != nil {
		t.Fatalf("audit events: %v", err)
	}
	return out.Events
}

// credentialShapes are what no transcript may contain: a broker token, a
// JWS/JWT (job tokens), an IonQ key.
var credentialShapes = regexp.MustCompile(`qbt_|eyJ[A-Za-z0-9_-]{10,}|ionq-test-key|(?i)apikey\s`)

// noSecrets fails if text contains any secret of the stack or anything
// credential-shaped.
func (st *stack) noSecrets(t *testing.T, what, text string) {
	t.Helper()
	if text == "" {
		t.Fatalf("%s: empty (nothing was searched)", what)
	}
	for name, secret := range map[string]string{
		"agent broker token": st.token, "root token": st.d.RootToken, "AppRole secret_id": st.d.SecretID,
		"IonQ key": "ionq-test-key-0123456789abcdef0123456789abcdef",
	} {
		if secret != "" && strings.Contains(text, secret) {
			t.Errorf("%s contains the %s", what, name)
		}
	}
	if m := credentialShapes.FindString(text); m != "" {
		t.Errorf("%s contains something credential-shaped: %q", what, m)
	}
}
