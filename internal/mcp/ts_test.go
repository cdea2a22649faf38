package mcp_test

// The real-client test: the official MCP TypeScript SDK's client (npm
// @modelcontextprotocol/sdk, pinned in scripts/mcp/package-lock.json and
// installed by scripts/mcp/install.sh) drives `qbroker mcp` (the built
// binary, over stdio) and the streamable HTTP handler. It runs when
// QBROKER_MCP_CLIENT names the directory holding client.mjs and its
// node_modules (`make unit` sets it to scripts/mcp), and is skipped
// otherwise.

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/localagent"
	"github.com/qbroker/qbroker/internal/server"
)

// tsSummary is client.mjs's last line.
type tsSummary struct {
	OK     bool   `json:"ok"`
	Error  string `json:"error"`
	Server struct {
		Name string `json:"name"`
	} `json:"server"`
	Tools     []string `json:"tools"`
	Resources []string `json:"resources"`
	Simulator struct {
		Kind   string `json:"kind"`
		Qubits int    `json:"qubits"`
	} `json:"simulator"`
	EstimateUSD  float64 `json:"estimate_usd"`
	BudgetLimits int     `json:"budget_limits"`
	Bell         tsJob   `json:"bell"`
	Hardware     *struct {
		tsJob
		ApprovalState string `json:"approval_state"`
	} `json:"hardware"`
	Refusal struct {
		IsError bool   `json:"is_error"`
		Text    string `json:"text"`
	} `json:"refusal"`
	Refused          bool   `json:"refused"`
	Code             int    `json:"code"`
	Status           int    `json:"status"`
	ResourceMetadata string `json:"resource_metadata_url"`
	Metadata         struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
	} `json:"metadata"`
}

type tsJob struct {
	Status     string         `json:"status"`
	JobID      string         `json:"job_id"`
	ApprovalID string         `json:"approval_id"`
	Counts     map[string]int `json:"counts"`
	Shots      int            `json:"result_shots"`
}

func TestOfficialTypeScriptClient(t *testing.T) {
	dir := os.Getenv("QBROKER_MCP_CLIENT")
	if dir == "" {
		t.Skip("QBROKER_MCP_CLIENT is not set (scripts/mcp/install.sh, then QBROKER_MCP_CLIENT=$PWD/scripts/mcp)")
	}
	script := filepath.Join(dir, "client.mjs")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@modelcontextprotocol", "sdk", "package.json")); err != nil {
		t.Fatalf("QBROKER_MCP_CLIENT=%s has no node_modules/@modelcontextprotocol/sdk: run scripts/mcp/install.sh", dir)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not installed")
	}
	bin := filepath.Join(t.TempDir(), "qbroker")
	build := exec.Command("go", "build", "-o", bin, "github.com/qbroker/qbroker/cmd/qbroker")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	b := server.DevBudgets()
	st := newStack(t, &b)
	ts := st.serveHTTP(t)

	for _, c := range []struct{ name, mode, target string }{
		{"stdio", "stdio", bin},
		{"streamable-http", "http", ts.URL + "/mcp"},
	} {
		t.Run(c.name, func(t *testing.T) {
			transcript := filepath.Join(t.TempDir(), "transcript.log")
			sum := st.runTS(t, script, transcript, c.mode, c.target, true)
			if !sum.OK {
				t.Fatalf("client.mjs: %s", sum.Error)
			}
			if sum.Server.Name != "qbroker" || strings.Join(sum.Tools, ",") != strings.Join(toolNames, ",") {
				t.Errorf("server %q tools %v, want qbroker and %v", sum.Server.Name, sum.Tools, toolNames)
			}
			if strings.Join(sum.Resources, ",") != "qbroker://budget,qbroker://devices" || sum.BudgetLimits != 3 {
				t.Errorf("resources %v, budget limits %d", sum.Resources, sum.BudgetLimits)
			}
			if sum.Simulator.Kind != "simulator" || sum.Simulator.Qubits != 29 || sum.EstimateUSD != 8.30 {
				t.Errorf("simulator %+v, estimate %v", sum.Simulator, sum.EstimateUSD)
			}
			checkBell(t, result{JobID: sum.Bell.JobID, Status: "completed", Shots: sum.Bell.Shots, Counts: sum.Bell.Counts}, 1000)
			if h := sum.Hardware; h == nil || h.ApprovalState != "approved" || h.Status != "submitted" || h.ApprovalID == "" {
				t.Errorf("hardware through approval: %+v", sum.Hardware)
			} else {
				checkBell(t, result{JobID: h.JobID, Status: "completed", Shots: h.Shots, Counts: h.Counts}, 100)
			}
			if !sum.Refusal.IsError || !strings.Contains(sum.Refusal.Text, "refused by policy") || !strings.Contains(sum.Refusal.Text, "demo-no-qpu") {
				t.Errorf("policy refusal through the TS client: %+v", sum.Refusal)
			}
			tr, err := os.ReadFile(transcript)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(tr), `"tools/call"`) || !strings.Contains(string(tr), sum.Bell.JobID) {
				t.Fatalf("the transcript is not the conversation:\n%.2000s", tr)
			}
			st.noSecrets(t, "TypeScript client transcript ("+c.name+")", string(tr))
		})
	}

	t.Run("streamable-http-without-token", func(t *testing.T) {
		sum := st.runTS(t, script, filepath.Join(t.TempDir(), "transcript.log"), "http-unauth", ts.URL+"/mcp", false)
		if !sum.Refused || sum.Code != 401 || sum.Status != 401 {
			t.Errorf("unauthenticated TS client: %+v, want refused with 401", sum)
		}
		if want := ts.URL + "/.well-known/oauth-protected-resource"; sum.ResourceMetadata != want {
			t.Errorf("the TS SDK read resource_metadata %q from the challenge, want %q", sum.ResourceMetadata, want)
		}
		if sum.Metadata.Resource != ts.URL+"/mcp" || len(sum.Metadata.AuthorizationServers) != 1 || sum.Metadata.AuthorizationServers[0] != st.d.BrokerURL {
			t.Errorf("the TS SDK discovered %+v, want resource %s/mcp with the broker %s as authorization server", sum.Metadata, ts.URL, st.d.BrokerURL)
		}
	})

	// The desktop path: `qbroker mcp` spawned with only the local agent's
	// socket; the daemon's consent is answered by the test (the
	// simulator's first use and the hardware request allowed, the
	// oversized hardware request denied).
	t.Run("stdio-local-agent", func(t *testing.T) {
		dt := startDesktop(t)
		dt.asker.answer(localagent.Allow, localagent.Allow, localagent.Deny)
		transcript := filepath.Join(t.TempDir(), "transcript.log")
		sum := dt.st.runTSWith(t, script, transcript, "stdio-local-agent", bin, true, []string{"QBROKER_AGENT_SOCKET=" + dt.sock})
		if !sum.OK {
			t.Fatalf("client.mjs: %s", sum.Error)
		}
		checkBell(t, result{JobID: sum.Bell.JobID, Status: "completed", Shots: sum.Bell.Shots, Counts: sum.Bell.Counts}, 1000)
		if h := sum.Hardware; h == nil || h.ApprovalState != "approved" || h.Status != "submitted" {
			t.Errorf("hardware after consent and approval: %+v", sum.Hardware)
		} else {
			checkBell(t, result{JobID: h.JobID, Status: "completed", Shots: h.Shots, Counts: h.Counts}, 100)
		}
		if !sum.Refusal.IsError || !strings.Contains(sum.Refusal.Text, "consent denied") {
			t.Errorf("the denied request through the TS client: %+v", sum.Refusal)
		}
		if n := len(dt.asker.questions()); n != 3 {
			t.Errorf("%d consent questions, want 3", n)
		}
		tr, err := os.ReadFile(transcript)
		if err != nil {
			t.Fatal(err)
		}
		dt.noDaemonToken(t, "TypeScript client transcript (stdio-local-agent)", string(tr))
	})

	var named int
	for _, ev := range st.events(t, "tool_call") {
		if ev["client"] == "qbroker-ts-test-client 1.0.0" {
			named++
		}
	}
	if named < 10 {
		t.Errorf("%d tool_call audit events name the TypeScript client, want every call", named)
	}
	st.noSecrets(t, "MCP server log", st.logs.String())
}

// runTS runs client.mjs, approving any hardware request it reports, and
// returns its summary.
func (st *stack) runTS(t *testing.T, script, transcript, mode, target string, hardware bool) tsSummary {
	t.Helper()
	return st.runTSWith(t, script, transcript, mode, target, hardware, []string{
		"QBROKER_ADDR=" + st.d.BrokerURL, "QBROKER_TOKEN=" + st.token, "QBROKER_GATEWAY_ADDR=" + st.d.GatewayURL})
}

// runTSWith is runTS with the given variables for client.mjs (and what it
// passes on to the server).
func (st *stack) runTSWith(t *testing.T, script, transcript, mode, target string, hardware bool, vars []string) tsSummary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", script, mode, target)
	cmd.Env = append(append(os.Environ(), vars...), "MCP_TRANSCRIPT="+transcript)
	if hardware {
		cmd.Env = append(cmd.Env, "QBROKER_MCP_HARDWARE=1")
	}
	var stderr buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var last string
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var ev struct {
			Event      string `json:"event"`
			ApprovalID string `json:"approval_id"`
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Event == "approval_pending" {
			// A person approves through the API while the agent waits.
			if _, err := st.root.Approve(ctx, ev.ApprovalID, "approved by the TS client test"); err != nil {
				t.Errorf("approve %s: %v", ev.ApprovalID, err)
			}
			continue
		}
		last = line
	}
	werr := cmd.Wait()
	var sum tsSummary
	if err := json.Unmarshal([]byte(last), &sum); err != nil {
		t.Fatalf("client.mjs (%v): last line %q: %v\nstderr: %s", werr, last, err, stderr.String())
	}
	if werr != nil && sum.OK {
		t.Errorf("client.mjs exited %v after ok", werr)
	}
	return sum
}
