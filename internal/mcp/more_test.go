package mcp_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/client"
	"github.com/qbroker/qbroker/internal/mcp"
	"github.com/qbroker/qbroker/internal/server"
)

// cancel_job stops a job that has not finished.
func TestCancelJob(t *testing.T) {
	st := newStack(t, nil, func(o *server.DevOptions) { o.SimStepDelay = 2 * time.Second })
	s := st.connect(t, "qbroker-go-test")
	var sub submission
	s.ok("submit_circuit", map[string]any{"circuit": bellIonQ, "format": "ionq", "device": "ionq/simulator", "shots": 10}, &sub)
	var c struct {
		Status string `json:"status"`
	}
	s.ok("cancel_job", map[string]any{"job_id": sub.JobID}, &c)
	if c.Status != "canceled" {
		t.Fatalf("after cancel_job: %q", c.Status)
	}
	msg := s.refused("get_result", map[string]any{"job_id": sub.JobID})
	if !strings.Contains(msg, "canceled, not completed") {
		t.Errorf("result of a canceled job: %q", msg)
	}
	var audited bool
	for _, ev := range st.events(t, "cancel") {
		if ev["job_id"] == sub.JobID && ev["client"] == "qbroker-go-test 0.1" {
			audited = true
		}
	}
	if !audited {
		t.Errorf("no cancel event naming the MCP client: %v", st.events(t, "cancel"))
	}
}

// A denied approval is reported with the denier's reason and cannot be
// used.
func TestDeniedApproval(t *testing.T) {
	st := newStack(t, nil)
	s := st.connect(t, "qbroker-go-test")
	args := map[string]any{"circuit": bellQASM, "format": "qasm3", "device": "ionq/qpu.forte-1", "shots": 10}
	var held submission
	s.ok("submit_circuit", args, &held)
	if held.Status != "approval_pending" {
		t.Fatalf("%+v", held)
	}
	if _, err := st.root.Deny(context.Background(), held.ApprovalID, "not on a Friday"); err != nil {
		t.Fatal(err)
	}
	var w struct {
		State  string `json:"state"`
		Reason string `json:"reason"`
		Next   string `json:"next"`
	}
	s.ok("wait_for_approval", map[string]any{"approval_id": held.ApprovalID, "timeout_seconds": 5}, &w)
	if w.State != "denied" || w.Reason != "not on a Friday" || !strings.Contains(w.Next, "do not submit") {
		t.Fatalf("denied approval: %+v", w)
	}
	args["approval_id"] = held.ApprovalID
	if msg := s.refused("submit_circuit", args); !strings.Contains(msg, "denied") {
		t.Errorf("using a denied approval: %q", msg)
	}
}

// The broker's tool-call endpoint: bad input is 400 naming the problem,
// no token is refused, and a hostile client name is recorded cleaned.
func TestToolCallAuditEndpoint(t *testing.T) {
	st := newStack(t, nil)
	ctx := context.Background()
	agent := st.broker.WithToken(st.token)
	for _, c := range []struct {
		c      *client.Client
		req    any
		status int
		want   string
	}{
		{st.broker, api.ToolCallRequest{Client: "x", Tool: "list_devices"}, 403, "missing token"},
		{agent, api.ToolCallRequest{Tool: "list_devices"}, 400, "client is required"},
		{agent, api.ToolCallRequest{Client: "x", Tool: "DROP TABLE"}, 400, "not a tool name"},
		{agent, api.ToolCallRequest{Client: "x", Tool: "list_devices", Shots: -1}, 400, "shots"},
		{agent, map[string]any{"client": "x", "tool": "list_devices", "token": "qbt_x"}, 400, "token"},
	} {
		err := c.c.Do(ctx, http.MethodPost, "/v1/sys/audit/tool-call", c.req, nil)
		ce, ok := err.(*client.Error)
		if !ok || ce.Status != c.status || !strings.Contains(strings.Join(ce.Errors, " "), c.want) {
			t.Errorf("%+v: %v, want %d naming %q", c.req, err, c.status, c.want)
		}
	}
	if err := agent.RecordToolCall(ctx, api.ToolCallRequest{Client: "evil\x1b[31m\nclient\u202e " + strings.Repeat("x", 300), Tool: "get_result", JobID: "j1"}); err != nil {
		t.Fatal(err)
	}
	evs := st.events(t, "tool_call")
	if len(evs) != 1 {
		t.Fatalf("%d tool_call events, want 1 (refused calls record nothing)", len(evs))
	}
	got, _ := evs[0]["client"].(string)
	if !strings.HasPrefix(got, "evil?[31m?client? xxx") || len(got) > 128 || !strings.HasSuffix(fmt.Sprint(evs[0]["agent"]), server.DemoAgent) || evs[0]["job_id"] != "j1" {
		t.Errorf("recorded %v", evs[0])
	}
}

// If the broker cannot record a tool call, the call is refused before the
// server asks the broker or the gateway for anything else.
func TestToolCallRefusedWhenNotAudited(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"errors":["audit log unavailable; request refused"]}`))
	}))
	defer fake.Close()
	srv, err := mcp.New(mcp.Options{Broker: client.New(fake.URL, nil), Token: "qbt_fake", GatewayURL: fake.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ct, stt := sdk.NewInMemoryTransports()
	ss, err := srv.MCPServer(false).Connect(ctx, stt, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "t", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	s := &session{t: t, cs: cs}
	for tool, args := range map[string]map[string]any{
		"submit_circuit": {"circuit": bellQASM, "format": "qasm3", "device": "ionq/simulator", "shots": 10},
		"job_status":     {"job_id": "85e64093-a0d4-4ce1-a6e7-67e569909bb9"},
		"cancel_job":     {"job_id": "85e64093-a0d4-4ce1-a6e7-67e569909bb9"},
	} {
		if msg := s.refused(tool, args); !strings.Contains(msg, "could not record this call") || !strings.Contains(msg, "nothing was done") {
			t.Errorf("%s with the audit down: %q", tool, msg)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range paths {
		if p != "/v1/sys/audit/tool-call" {
			t.Errorf("the server called %s although the tool call was not recorded", p)
		}
	}
	if len(paths) != 3 {
		t.Errorf("%d calls, want 3 audit attempts", len(paths))
	}
}
