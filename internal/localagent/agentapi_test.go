package localagent

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/client"
	"github.com/qbroker/qbroker/internal/server"
)

// rawSocket makes one HTTP call on the daemon's socket and returns the
// status and body, whatever they are.
func rawSocket(t *testing.T, sock, method, path string, body []byte, hdr map[string]string) (int, string) {
	t.Helper()
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://local-agent"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The agent API (what `qbroker mcp` uses through the daemon): who am I,
// the catalogue, budgets, an approval, a tool-call audit record, and the
// reads of the agent's own jobs at the gateway, all made with the
// daemon's broker token and none answering with it; a held job-token
// request comes back as 202 with ?approval=return; everything outside the
// allow-list is refused.
func TestAgentAPI(t *testing.T) {
	dev := startDev(t, server.DevOptions{SimStepDelay: time.Millisecond})
	h := startDaemon(t, dev, nil)
	root := client.New(dev.BrokerURL, &http.Client{Timeout: 30 * time.Second}).WithToken(dev.RootToken)
	var answers []string
	get := func(path string, want int) string {
		t.Helper()
		code, body := rawSocket(t, h.sock, http.MethodGet, path, nil, map[string]string{api.ClientHeader: "agentapi-test 1"})
		if code != want {
			t.Fatalf("GET %s: %d %s, want %d", path, code, body, want)
		}
		answers = append(answers, body)
		return body
	}

	var who WhoAmI
	if err := json.Unmarshal([]byte(get("/v1/whoami", 200)), &who); err != nil || who.Role != server.DemoRole || who.EntityID == "" || who.ExpiresAt == nil {
		t.Fatalf("whoami %+v %v", who, err)
	}
	var devs struct {
		Devices []api.DeviceInfo `json:"devices"`
	}
	if err := json.Unmarshal([]byte(get("/v1/quantum/devices", 200)), &devs); err != nil || len(devs.Devices) == 0 {
		t.Fatalf("devices %s %v", answers[len(answers)-1], err)
	}
	var bud struct {
		Budgets []api.BudgetUsage `json:"budgets"`
	}
	if err := json.Unmarshal([]byte(get("/v1/sys/budgets", 200)), &bud); err != nil || bud.Budgets == nil {
		t.Fatalf("budgets %s %v", answers[len(answers)-1], err)
	}

	// A tool-call record lands in the broker's trail with its client name.
	code, body := rawSocket(t, h.sock, http.MethodPost, "/v1/sys/audit/tool-call", []byte(`{"client":"agentapi-test 1","tool":"list_devices"}`), nil)
	if code != http.StatusNoContent {
		t.Fatalf("tool-call: %d %s", code, body)
	}
	var evs struct {
		Events []map[string]any `json:"events"`
	}
	if err := root.Do(context.Background(), http.MethodGet, "/v1/sys/audit/events?limit=100&type=tool_call", nil, &api.Response{Data: &evs}); err != nil {
		t.Fatal(err)
	}
	if len(evs.Events) != 1 || evs.Events[0]["client"] != "agentapi-test 1" || evs.Events[0]["role"] != server.DemoRole {
		t.Fatalf("tool_call events %v", evs.Events)
	}

	// Hardware: held for the broker's approver, returned at once.
	jreq, _ := json.Marshal(api.JobTokenRequest{Provider: "ionq", Device: "qpu.forte-1", Shots: 10, Program: json.RawMessage(bellIonQ), Format: api.FormatIonQ})
	code, body = rawSocket(t, h.sock, http.MethodPost, "/v1/jobtoken/"+server.DemoRole+"?approval=return", jreq, nil)
	var held struct {
		Data api.Approval `json:"data"`
	}
	if code != http.StatusAccepted || json.Unmarshal([]byte(body), &held) != nil || held.Data.ID == "" || held.Data.State != api.ApprovalPending {
		t.Fatalf("held job token: %d %s, want 202 with the approval", code, body)
	}
	if _, err := root.Approve(context.Background(), held.Data.ID, "fine for a test"); err != nil {
		t.Fatal(err)
	}
	var a api.Approval
	if err := json.Unmarshal([]byte(get("/v1/sys/approvals/"+held.Data.ID+"?wait=5s", 200)), &a); err != nil || a.State != api.ApprovalApproved {
		t.Fatalf("approval %+v %v", a, err)
	}

	// A simulator job: the job token from the socket, the submission with
	// it straight to the gateway (as qbroker mcp does), the reads through
	// the daemon.
	jreq, _ = json.Marshal(api.JobTokenRequest{Provider: "ionq", Device: "simulator", Shots: 100, Program: json.RawMessage(bellIonQ), Format: api.FormatIonQ})
	code, body = rawSocket(t, h.sock, http.MethodPost, "/v1/jobtoken/"+server.DemoRole, jreq, nil)
	var jt api.JobTokenData
	if code != 200 || json.Unmarshal([]byte(body), &jt) != nil || jt.Token == "" {
		t.Fatalf("job token: %d %s", code, body)
	}
	sub, _ := json.Marshal(map[string]any{"type": "ionq.circuit.v1", "backend": "simulator", "shots": 100, "input": json.RawMessage(bellIonQ)})
	req, _ := http.NewRequest(http.MethodPost, dev.GatewayURL+"/ionq/v0.4/jobs", bytes.NewReader(sub))
	req.Header.Set("Authorization", "apiKey "+jt.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var job struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	json.NewDecoder(resp.Body).Decode(&job)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || job.ID == "" {
		t.Fatalf("submit: %d %+v", resp.StatusCode, job)
	}
	deadline := time.Now().Add(20 * time.Second)
	for job.Status != "completed" {
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s", job.ID, job.Status)
		}
		time.Sleep(20 * time.Millisecond)
		if err := json.Unmarshal([]byte(get("/v1/gateway/ionq/v0.4/jobs/"+job.ID, 200)), &job); err != nil {
			t.Fatal(err)
		}
	}
	var probs map[string]float64
	if err := json.Unmarshal([]byte(get("/v1/gateway/ionq/v0.4/jobs/"+job.ID+"/results/probabilities", 200)), &probs); err != nil || probs["0"]+probs["3"] < 0.99 {
		t.Fatalf("probabilities %v %v", probs, err)
	}
	code, body = rawSocket(t, h.sock, http.MethodPut, "/v1/gateway/ionq/v0.4/jobs/"+job.ID+"/status/cancel", nil, nil)
	if code == http.StatusForbidden && strings.Contains(body, "not_allowed") {
		t.Fatalf("cancel is on the allow-list: %d %s", code, body)
	}
	answers = append(answers, body)

	// Outside the allow-list.
	for _, c := range []struct {
		method, path string
		body         []byte
		want         int
	}{
		{http.MethodGet, "/v1/gateway/ionq/v0.4/jobs", nil, 403},                                        // the job list
		{http.MethodPost, "/v1/gateway/ionq/v0.4/jobs", sub, 403},                                       // a submission (job tokens only)
		{http.MethodGet, "/v1/gateway/ionq/v0.4/backends", nil, 403},                                    // not a job
		{http.MethodDelete, "/v1/gateway/ionq/v0.4/jobs/" + job.ID, nil, 403},                           // wrong method
		{http.MethodGet, "/v1/gateway/ionq/v0.4/jobs/" + job.ID + "/status/cancel", nil, 403},           // wrong method
		{http.MethodGet, "/v1/gateway/ionq/v0.4/jobs/" + job.ID + "/results", nil, 403},                 // not a listed read
		{http.MethodGet, "/v1/gateway/ionq/v0.4/jobs/" + job.ID + "?x=1", nil, 400},                     // a query
		{http.MethodGet, "/v1/gateway/ionq/v0.4/jobs/a%2F..%2F..%2Fbackends", nil, 403},                 // an encoded path
		{http.MethodGet, "/v1/gateway/braket/quantum-task/not-an-arn", nil, 403},                        // not a task ARN
		{http.MethodGet, "/v1/gateway/ibm/api/v1/jobs/x", nil, 403},                                     // another front
		{http.MethodGet, "/v1/gateway/v1/quantum/devices", nil, 403},                                    // the broker's API
		{http.MethodGet, "/v1/sys/budgets?agent=root", nil, 400},                                        // someone else's budgets
		{http.MethodGet, "/v1/sys/approvals/" + held.Data.ID + "?wait=2h", nil, 400},                    // a long wait
		{http.MethodGet, "/v1/sys/approvals", nil, 404},                                                 // the list
		{http.MethodGet, "/v1/sys/roles", nil, 404},                                                     // anything else
		{http.MethodGet, "/v1/auth/token/lookup-self", nil, 404},                                        // the token itself
		{http.MethodPost, "/v1/sys/audit/tool-call", []byte(`{"client":"x","tool":"t","evil":1}`), 400}, // unknown field
		{http.MethodPost, "/v1/sys/audit/tool-call", bytes.Repeat([]byte(" "), 20<<10), 400},            // over 16 KiB
		{http.MethodPost, "/v1/jobtoken/" + server.DemoRole + "?approval=wait", jreq, 400},              // unknown parameter
	} {
		code, body := rawSocket(t, h.sock, c.method, c.path, c.body, nil)
		if code != c.want {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, code, body, c.want)
		}
		answers = append(answers, body)
	}
	if !strings.Contains(h.logs.String(), "refused a gateway call outside the allow-list") {
		t.Error("refusals outside the allow-list are not logged")
	}

	// The broker token is in no answer.
	toks := h.tokens()
	if len(toks) == 0 {
		t.Fatal("no token seen")
	}
	all := strings.Join(answers, "\n")
	for _, tok := range toks {
		if strings.Contains(all, tok) {
			t.Fatal("an answer of the agent API carries the daemon's broker token")
		}
	}
	if strings.Contains(all, "qbt_") || strings.Contains(all, "accessor") {
		t.Fatalf("an answer carries something token-shaped:\n%s", all)
	}
}

// Issue 10's desktop path: another uid is refused on the agent API too
// (the same SO_PEERCRED check; the socket is 0666 here so that only it can
// refuse).
func TestAgentAPIOtherUIDRefused(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("starting a process as another uid needs root")
	}
	dev := startDev(t, server.DevOptions{})
	h := startDaemon(t, dev, func(c *Config) { c.SocketMode = 0o666 })
	openUp(t, filepath.Dir(h.sock))
	bin := copyExecutable(t)
	for _, p := range []string{"/v1/quantum/devices", "/v1/whoami", "/v1/gateway/ionq/v0.4/jobs/x"} {
		out := runAs(t, bin, 65534, helperEnv+"=get", "LOCALAGENT_SOCKET="+h.sock, "LOCALAGENT_PATH="+p)
		if !strings.Contains(out, "403") || !strings.Contains(out, "peer uid 65534 is not the owner") || strings.Contains(out, "devices") {
			t.Fatalf("another uid on %s: %q, want the peer-credential 403", p, out)
		}
	}
	if out := runAs(t, bin, 0, helperEnv+"=get", "LOCALAGENT_SOCKET="+h.sock, "LOCALAGENT_PATH=/v1/quantum/devices"); !strings.Contains(out, "200") || !strings.Contains(out, `"devices"`) {
		t.Fatalf("the owner: %q", out)
	}
}
