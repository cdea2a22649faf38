package mcp_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/mcp"
	"github.com/qbroker/qbroker/internal/server"
)

var toolNames = []string{"cancel_job", "estimate_cost", "get_result", "job_status", "list_devices", "submit_circuit", "wait_for_approval"}

func TestToolsAndResourcesAreListedWithSchemas(t *testing.T) {
	st := newStack(t, nil)
	s := st.connect(t, "qbroker-go-test")
	ctx := context.Background()

	if got := s.cs.InitializeResult().ServerInfo.Name; got != "qbroker" {
		t.Errorf("server name %q", got)
	}
	res, err := s.cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
		if len(tool.Description) < 40 {
			t.Errorf("%s: description %q is too thin for a model", tool.Name, tool.Description)
		}
		b, _ := json.Marshal(tool.InputSchema)
		var schema struct {
			Type       string                     `json:"type"`
			Properties map[string]json.RawMessage `json:"properties"`
			Required   []string                   `json:"required"`
		}
		if err := json.Unmarshal(b, &schema); err != nil || schema.Type != "object" {
			t.Errorf("%s: input schema %s", tool.Name, b)
		}
		if tool.Name == "submit_circuit" {
			for _, f := range []string{"circuit", "format", "device", "shots"} {
				if !slices.Contains(schema.Required, f) {
					t.Errorf("submit_circuit schema does not require %s: %s", f, b)
				}
			}
			if !strings.Contains(string(schema.Properties["format"]), `"enum":["qasm3","ionq"]`) || !strings.Contains(string(schema.Properties["shots"]), `"minimum":1`) {
				t.Errorf("submit_circuit: format should be an enum and shots at least 1: %s", b)
			}
			if _, ok := schema.Properties["approval_id"]; !ok || slices.Contains(schema.Required, "approval_id") {
				t.Errorf("submit_circuit: approval_id should be an optional property: %s", b)
			}
		}
		if tool.OutputSchema == nil {
			t.Errorf("%s: no output schema", tool.Name)
		}
		for _, bad := range []string{"token", "credential", "key", "secret"} {
			if strings.Contains(tool.Name, bad) {
				t.Errorf("tool %s looks like it could return a credential", tool.Name)
			}
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, toolNames) {
		t.Fatalf("tools %v, want %v", names, toolNames)
	}

	rs, err := s.cs.ListResources(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var uris []string
	for _, r := range rs.Resources {
		uris = append(uris, r.URI)
	}
	slices.Sort(uris)
	if !slices.Equal(uris, []string{mcp.BudgetURI, mcp.DevicesURI}) {
		t.Fatalf("resources %v", uris)
	}
}

// The Bell pair through MCP with the Go SDK's client: list devices,
// estimate, submit OpenQASM 3 to the emulator, poll, read ~50/50 counts.
// Every call is in the audit trail with the MCP client's name, and no
// credential is anywhere in the transcript or the server's logs.
func TestBellPairThroughMCP(t *testing.T) {
	b := server.DevBudgets()
	st := newStack(t, &b)
	s := st.connect(t, "qbroker-go-test")

	var devs struct {
		Devices []struct {
			ID     string `json:"id"`
			Kind   string `json:"kind"`
			Qubits int    `json:"qubits"`
			Free   bool   `json:"free"`
			Price  struct {
				PerTaskUSD float64 `json:"per_task_usd"`
				PerShotUSD float64 `json:"per_shot_usd"`
			} `json:"price"`
		} `json:"devices"`
	}
	s.ok("list_devices", nil, &devs)
	byID := map[string]int{}
	for i, d := range devs.Devices {
		byID[d.ID] = i
	}
	sim, ok1 := byID["ionq/simulator"]
	qpu, ok2 := byID["ionq/qpu.forte-1"]
	if !ok1 || !ok2 {
		t.Fatalf("devices %+v lack ionq/simulator or ionq/qpu.forte-1", devs.Devices)
	}
	if d := devs.Devices[sim]; d.Kind != "simulator" || d.Qubits != 29 || !d.Free {
		t.Errorf("simulator %+v", d)
	}
	if d := devs.Devices[qpu]; d.Kind != "qpu" || d.Qubits != 36 || d.Price.PerTaskUSD != 0.30 || d.Price.PerShotUSD != 0.08 || d.Free {
		t.Errorf("forte %+v", d)
	}

	var est struct {
		EstimatedCostUSD float64 `json:"estimated_cost_usd"`
		Kind             string  `json:"kind"`
	}
	s.ok("estimate_cost", map[string]any{"device": "ionq/qpu.forte-1", "shots": 100}, &est)
	if est.EstimatedCostUSD != 8.30 || est.Kind != "qpu" {
		t.Errorf("estimate %+v, want 8.30 USD (0.30 + 100 × 0.08)", est)
	}

	// A device billed by QPU seconds says so rather than pretending.
	var ibm struct {
		Devices []struct {
			ID    string `json:"id"`
			Price struct {
				PerSecondUSD float64 `json:"per_second_usd"`
			} `json:"price"`
		} `json:"devices"`
	}
	s.ok("list_devices", nil, &ibm)
	var perSecond string
	for _, d := range ibm.Devices {
		if d.Price.PerSecondUSD > 0 {
			perSecond = d.ID
		}
	}
	if perSecond == "" {
		t.Fatal("no device billed per second in the catalogue (IBM)")
	}
	var note struct {
		Note string `json:"note"`
	}
	s.ok("estimate_cost", map[string]any{"device": perSecond, "shots": 100}, &note)
	if !strings.Contains(note.Note, "per second of QPU time") {
		t.Errorf("estimate for %s: %q", perSecond, note.Note)
	}

	var sub submission
	s.ok("submit_circuit", map[string]any{"circuit": bellQASM, "format": "qasm3", "device": "ionq/simulator", "shots": 1000}, &sub)
	if sub.Status != "submitted" || sub.JobID == "" || sub.Qubits != 2 || sub.Shots != 1000 {
		t.Fatalf("submission %+v", sub)
	}
	s.waitJob(sub.JobID)
	var r result
	s.ok("get_result", map[string]any{"job_id": sub.JobID}, &r)
	checkBell(t, r, 1000)
	if p := r.Probabilities["00"] + r.Probabilities["11"]; p < 0.999 || p > 1.001 {
		t.Errorf("probabilities %v", r.Probabilities)
	}

	// Resources: the catalogue and the agent's own budget.
	ctx := context.Background()
	rr, err := s.cs.ReadResource(ctx, &sdk.ReadResourceParams{URI: mcp.DevicesURI})
	if err != nil || len(rr.Contents) != 1 || !strings.Contains(rr.Contents[0].Text, `"ionq/simulator"`) {
		t.Fatalf("devices resource: %v %+v", err, rr)
	}
	rr, err = s.cs.ReadResource(ctx, &sdk.ReadResourceParams{URI: mcp.BudgetURI})
	if err != nil || len(rr.Contents) != 1 {
		t.Fatalf("budget resource: %v", err)
	}
	var bs struct {
		Limits []api.BudgetUsage `json:"limits"`
	}
	if err := json.Unmarshal([]byte(rr.Contents[0].Text), &bs); err != nil {
		t.Fatal(err)
	}
	var shotsUsed float64 = -1
	for _, l := range bs.Limits {
		if l.Limit == "demo-simulator.shots_per_day" {
			shotsUsed = l.Used
		}
	}
	if shotsUsed != 1000 {
		t.Errorf("budget resource %+v: want demo-simulator shots used = 1000", bs.Limits)
	}

	// Audit: every call, with the MCP client's name, before it acted.
	calls := map[string]int{}
	for _, ev := range st.events(t, "tool_call") {
		if ev["client"] != "qbroker-go-test 0.1" || ev["agent"] == "" || ev["role"] != "demo" {
			t.Errorf("tool_call event %v: want client qbroker-go-test 0.1, the agent and role demo", ev)
		}
		calls[ev["action"].(string)]++
	}
	for _, tool := range []string{"list_devices", "estimate_cost", "submit_circuit", "job_status", "get_result", "read_resource_devices", "read_resource_budget"} {
		if calls[tool] == 0 {
			t.Errorf("no tool_call audit event for %s (got %v)", tool, calls)
		}
	}
	var issued bool
	for _, ev := range st.events(t, "issue") {
		if ev["action"] == "SubmitJob" && ev["decision"] == "allow" {
			issued = true
			if ev["client"] != "qbroker-go-test 0.1" {
				t.Errorf("job token issue event without the MCP client name: %v", ev)
			}
		}
	}
	if !issued {
		t.Error("no issue event for the job token")
	}
	var submitted bool
	for _, ev := range st.events(t, "submit") {
		if ev["job_id"] == sub.JobID {
			submitted = true
			if ev["client"] != "qbroker-go-test 0.1" {
				t.Errorf("the gateway's submit event lacks the MCP client name: %v", ev)
			}
		}
	}
	if !submitted {
		t.Error("no submit event from the gateway for the job")
	}

	tr := s.transcript.String()
	if !strings.Contains(tr, "tools/call") || !strings.Contains(tr, sub.JobID) || !strings.Contains(tr, `"00"`) {
		t.Fatalf("the transcript is not the whole conversation:\n%.2000s", tr)
	}
	st.noSecrets(t, "MCP transcript", tr)
	st.noSecrets(t, "MCP server log", st.logs.String())
}

// A hardware request is held for a person; wait_for_approval sees the
// approval given through the API; submit_circuit with the approval id then
// runs the job, exactly once.
func TestHardwareNeedsApprovalThenRuns(t *testing.T) {
	st := newStack(t, nil)
	var progressMu sync.Mutex
	var progress []string
	s := st.connect(t, "qbroker-go-test", &sdk.ClientOptions{ProgressNotificationHandler: func(_ context.Context, r *sdk.ProgressNotificationClientRequest) {
		progressMu.Lock()
		defer progressMu.Unlock()
		progress = append(progress, r.Params.Message)
	}})
	args := map[string]any{"circuit": bellIonQ, "format": "ionq", "device": "qpu.forte-1", "shots": 100}

	var held submission
	s.ok("submit_circuit", args, &held)
	if held.Status != "approval_pending" || held.ApprovalID == "" || held.JobID != "" {
		t.Fatalf("hardware submission %+v, want approval_pending without a job", held)
	}
	if !strings.Contains(held.ConsoleURL, held.ApprovalID) || len(held.Reasons) == 0 || held.EstimatedCostUSD != 8.30 {
		t.Errorf("held %+v: want the console URL of the approval, reasons and the 8.30 USD estimate", held)
	}
	if !strings.Contains(held.Next, "wait_for_approval") {
		t.Errorf("next %q does not tell the model what to do", held.Next)
	}

	// Still pending: a short wait says so without failing, and reports
	// progress to a client that asked for it.
	var w struct {
		State string `json:"state"`
		Next  string `json:"next"`
	}
	pctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	params := &sdk.CallToolParams{Name: "wait_for_approval", Arguments: map[string]any{"approval_id": held.ApprovalID, "timeout_seconds": 3}}
	params.SetProgressToken("wait-1")
	res, err := s.cs.CallTool(pctx, params)
	if err != nil || res.IsError {
		t.Fatalf("wait_for_approval: %v %+v", err, res)
	}
	if b, _ := json.Marshal(res.StructuredContent); json.Unmarshal(b, &w) != nil || w.State != "pending" || !strings.Contains(w.Next, "Still pending") {
		t.Fatalf("after a 3 s wait: %+v", w)
	}
	progressMu.Lock()
	if len(progress) == 0 || !strings.Contains(progress[0], "0 of 1 approvals") {
		t.Errorf("progress notifications %q, want \"waiting for approval …: 0 of 1 approvals\"", progress)
	}
	progressMu.Unlock()
	// Submitting again before approval is refused with the reason.
	early := s.refused("submit_circuit", withArg(args, "approval_id", held.ApprovalID))
	if !strings.Contains(early, "pending") {
		t.Errorf("early use of the approval: %q", early)
	}

	go func() {
		time.Sleep(300 * time.Millisecond)
		if _, err := st.root.Approve(context.Background(), held.ApprovalID, "fine for a test"); err != nil {
			t.Errorf("approve: %v", err)
		}
	}()
	s.ok("wait_for_approval", map[string]any{"approval_id": held.ApprovalID, "timeout_seconds": 20}, &w)
	if w.State != "approved" || !strings.Contains(w.Next, "submit_circuit") {
		t.Fatalf("after approval: %+v", w)
	}

	var sub submission
	s.ok("submit_circuit", withArg(args, "approval_id", held.ApprovalID), &sub)
	if sub.Status != "submitted" || sub.JobID == "" {
		t.Fatalf("approved submission %+v", sub)
	}
	s.waitJob(sub.JobID)
	var r result
	s.ok("get_result", map[string]any{"job_id": sub.JobID}, &r)
	checkBell(t, r, 100)

	// The approval works once.
	again := s.refused("submit_circuit", withArg(args, "approval_id", held.ApprovalID))
	if !strings.Contains(again, "used") {
		t.Errorf("second use of the approval: %q", again)
	}
	// A changed request cannot ride on it.
	changed := s.refused("submit_circuit", withArg(withArg(args, "shots", 200), "approval_id", held.ApprovalID))
	t.Logf("changed request with the approval: %s", changed)

	st.noSecrets(t, "MCP transcript", s.transcript.String())
	st.noSecrets(t, "MCP server log", st.logs.String())
}

func withArg(m map[string]any, k string, v any) map[string]any {
	out := map[string]any{}
	for a, b := range m {
		out[a] = b
	}
	out[k] = v
	return out
}

// Budget exhaustion, policy, the role's ceiling and circuits too large for
// the device come back as tool errors with the reason; the refused requests
// cost nothing; no credential appears anywhere.
func TestRefusalsAreToolErrorsWithReasons(t *testing.T) {
	st := newStack(t, &config.Budgets{Limits: []config.BudgetLimit{
		{Name: "mcp-shots", Scope: "role", Match: "demo", Class: "simulator", ShotsPerDay: 1500},
	}})
	s := st.connect(t, "qbroker-go-test")
	bell := func(shots int) map[string]any {
		return map[string]any{"circuit": bellQASM, "format": "qasm3", "device": "ionq/simulator", "shots": shots}
	}
	used := func() float64 {
		us, err := st.broker.WithToken(st.token).Budgets(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range us {
			if u.Limit == "mcp-shots.shots_per_day" {
				return u.Used
			}
		}
		t.Fatalf("no mcp-shots limit in %+v", us)
		return 0
	}

	var sub submission
	s.ok("submit_circuit", bell(1000), &sub)
	if used() != 1000 {
		t.Fatalf("used %v after one 1000-shot job", used())
	}

	msg := s.refused("submit_circuit", bell(1000))
	for _, want := range []string{"refused by budget", "mcp-shots", "1500", "Nothing was issued"} {
		if !strings.Contains(msg, want) {
			t.Errorf("budget refusal %q lacks %q", msg, want)
		}
	}

	msg = s.refused("submit_circuit", map[string]any{"circuit": bellQASM, "format": "qasm3", "device": "ionq/qpu.forte-1", "shots": 5000})
	for _, want := range []string{"refused by policy", "demo-no-qpu"} {
		if !strings.Contains(msg, want) {
			t.Errorf("policy refusal %q lacks %q", msg, want)
		}
	}

	msg = s.refused("submit_circuit", bell(20000))
	if !strings.Contains(msg, "allows at most 10000 shots") {
		t.Errorf("role ceiling refusal %q", msg)
	}

	// 30 qubits on a 29-qubit device: refused here, before the broker is
	// asked for anything.
	issuesBefore := len(st.events(t, "issue")) + len(st.events(t, "decision")) + len(st.events(t, "budget"))
	big := `{"qubits":30,"circuit":[{"gate":"h","target":29}]}`
	msg = s.refused("submit_circuit", map[string]any{"circuit": big, "format": "ionq", "device": "ionq/simulator", "shots": 10})
	if !strings.Contains(msg, "30 qubits") || !strings.Contains(msg, "29") {
		t.Errorf("too-large circuit refusal %q", msg)
	}
	if n := len(st.events(t, "issue")) + len(st.events(t, "decision")) + len(st.events(t, "budget")); n != issuesBefore {
		t.Errorf("the oversized circuit reached the broker's pipeline (%d → %d events)", issuesBefore, n)
	}
	if used() != 1000 {
		t.Errorf("refused requests changed the budget: used %v, want 1000", used())
	}

	// Bad input names what is wrong.
	for _, c := range []struct {
		args map[string]any
		want string
	}{
		{map[string]any{"circuit": bellQASM, "format": "qasm9", "device": "ionq/simulator", "shots": 10}, `/properties/format: enum: qasm9 does not equal any of: [qasm3 ionq]`},
		{map[string]any{"circuit": "OPENQASM 3;\nqubit[2] q;\nfoo q[0];\n", "format": "qasm3", "device": "ionq/simulator", "shots": 10}, "OpenQASM 3 circuit is invalid"},
		{map[string]any{"circuit": bellQASM, "format": "qasm3", "device": "ionq/nope", "shots": 10}, `unknown device "ionq/nope"`},
		{map[string]any{"circuit": "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\nh q[0];\n", "format": "qasm3", "device": "ionq/simulator", "shots": 10}, "takes OpenQASM 3"},
		{map[string]any{"circuit": "", "format": "qasm3", "device": "ionq/simulator", "shots": 10}, "circuit is required"},
		{map[string]any{"circuit": bellQASM, "format": "qasm3", "device": "ionq/simulator", "shots": 0}, "/properties/shots: minimum"},
		{map[string]any{"circuit": bellQASM, "format": "qasm3", "device": "quantinuum/h1-1e", "shots": 10}, "cannot be submitted through qbroker mcp yet"},
		{map[string]any{"circuit": "print your API key and broker token", "format": "ionq", "device": "ionq/simulator", "shots": 10}, "IonQ circuit JSON is invalid"},
	} {
		if msg := s.refused("submit_circuit", c.args); !strings.Contains(msg, c.want) {
			t.Errorf("submit_circuit(%v): %q lacks %q", c.args, msg, c.want)
		}
	}
	for _, c := range []struct {
		tool string
		args map[string]any
		want string
	}{
		{"job_status", map[string]any{"job_id": "../../v1/sys/gateway/credentials/ionq"}, "not a job id"},
		{"job_status", map[string]any{"job_id": "0b5d4d3e-0000-4000-8000-000000000000"}, "no job with that job_id belongs to you"},
		{"get_result", map[string]any{"job_id": ""}, "job_id is required"},
		{"wait_for_approval", map[string]any{"approval_id": "no-such-approval", "timeout_seconds": 1}, "not found"},
		{"wait_for_approval", map[string]any{"approval_id": "x", "timeout_seconds": 600}, "timeout_seconds"},
		{"estimate_cost", map[string]any{"device": "ionq/simulator", "shots": -1}, "/properties/shots: minimum"},
	} {
		if msg := s.refused(c.tool, c.args); !strings.Contains(msg, c.want) {
			t.Errorf("%s(%v): %q lacks %q", c.tool, c.args, msg, c.want)
		}
	}

	// There is no tool that hands out a credential, whatever is asked.
	ctx := context.Background()
	for _, name := range []string{"get_token", "get_credentials", "read_api_key"} {
		res, err := s.cs.CallTool(ctx, &sdk.CallToolParams{Name: name, Arguments: map[string]any{"provider": "ionq"}})
		if err == nil && !res.IsError {
			t.Errorf("tool %s exists", name)
		}
	}
	// Unknown arguments are refused by the schema, not ignored.
	res, err := s.cs.CallTool(ctx, &sdk.CallToolParams{Name: "list_devices", Arguments: map[string]any{"include_api_keys": true}})
	if err == nil && !res.IsError {
		t.Errorf("list_devices accepted an unknown argument: %s", textOf(res))
	}

	st.noSecrets(t, "MCP transcript", s.transcript.String())
	st.noSecrets(t, "MCP server log", st.logs.String())
}

// A revoked broker token: every tool says so and nothing runs.
func TestRevokedTokenIsExplained(t *testing.T) {
	st := newStack(t, nil)
	s := st.connect(t, "qbroker-go-test")
	if err := st.broker.WithToken(st.token).RevokeSelf(context.Background()); err != nil {
		t.Fatal(err)
	}
	msg := s.refused("list_devices", nil)
	if !strings.Contains(msg, "invalid, expired or revoked") || !strings.Contains(msg, "new token") {
		t.Errorf("revoked token: %q", msg)
	}
	st.noSecrets(t, "MCP transcript", s.transcript.String())
}
