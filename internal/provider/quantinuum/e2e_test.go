package quantinuum

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/circuit/qasm"
	"github.com/qbroker/qbroker/internal/provider"
	"github.com/qbroker/qbroker/internal/sim/quantinuumsim"
)

// jobAnswer is the part of GET /v1/job/{id} the tests read.
type jobAnswer struct {
	Status  string              `json:"status"`
	Cost    float64             `json:"cost"`
	MaxCost *float64            `json:"max-cost"`
	Results map[string][]string `json:"results"`
}

// submit drives a submission as the gateway does: Token, Route,
// ParseSubmit, Prepare, then the upstream request with Authenticate.
func submit(t *testing.T, s *emu, a Adapter, cred provider.Credential, body []byte) (int, []byte, provider.Submission) {
	t.Helper()
	in := agentHeaders()
	if tok, ok := a.Token(in); !ok || tok != jobToken {
		t.Fatalf("Token = %q, %v", tok, ok)
	}
	if r := a.Route(http.MethodPost, "/v1/job"); r.Kind != provider.Submit {
		t.Fatalf("Route = %+v", r)
	}
	sub, err := a.ParseSubmit(body)
	if err != nil {
		t.Fatalf("ParseSubmit: %v", err)
	}
	prepared, err := a.Prepare(body, provider.Scope{})
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	code, out := gatewaySend(t, a, s.url, http.MethodPost, "/v1/job", "", in, prepared, cred)
	return code, out, sub
}

// read reads job id through the adapter until it is terminal.
func read(t *testing.T, s *emu, a Adapter, cred provider.Credential, id string) (provider.Outcome, jobAnswer) {
	t.Helper()
	rest := "/v1/job/" + id
	if r := a.Route(http.MethodGet, rest); r.Kind != provider.Read || r.JobID != id {
		t.Fatalf("Route(GET %s) = %+v", rest, r)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := gatewaySend(t, a, s.url, http.MethodGet, rest, "websocket=true", agentHeaders(), nil, cred)
		if code != 200 {
			t.Fatalf("GET job: %d %s", code, body)
		}
		o, err := a.Outcome(body)
		if err != nil {
			t.Fatal(err)
		}
		if o.Terminal {
			var ans jobAnswer
			if err := json.Unmarshal(body, &ans); err != nil {
				t.Fatal(err)
			}
			return o, ans
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s", id, o.Status)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A Bell job built as the gateway builds it runs on the emulator with the
// minted id-token and gives about half 00 and half 11; the root credential
// and the caller's token never reach the service outside the login.
func TestBellThroughTheAdapter(t *testing.T) {
	s := newEmu(t, nil)
	refresh := s.passwordLogin(t, nil)
	cred := s.mint(t, refresh)
	a := Adapter{MaxCostHQC: 50, USDPerHQC: 10}
	const shots = 1000
	code, out, sub := submit(t, s, a, cred, bellJob(t, shots))
	if code != 200 {
		t.Fatalf("submit: %d %s", code, out)
	}
	if sub.Device != "H1-1E" || sub.Shots != shots || sub.ProgramSHA256 != qasm.Digest([]byte(bellQASM2)) {
		t.Fatalf("Submission %+v", sub)
	}
	id, err := a.JobID(out)
	if err != nil {
		t.Fatal(err)
	}
	o, ans := read(t, s, a, cred, id)
	if o.Status != StatusCompleted {
		t.Fatalf("status %s", o.Status)
	}
	prog, _ := qasm.Parse([]byte(bellQASM2))
	hqc, _ := quantinuumsim.EstimateHQC(prog, shots)
	if ans.Cost != hqc || o.CostUSD == nil || *o.CostUSD != hqc*10 {
		t.Fatalf("cost %v HQC, CostUSD %v; want %v HQC and %v USD", ans.Cost, o.CostUSD, hqc, hqc*10)
	}
	if ans.MaxCost == nil || *ans.MaxCost != 50 {
		t.Fatalf("upstream max-cost %v, want the ceiling 50", ans.MaxCost)
	}
	counts := map[string]int{}
	for _, r := range ans.Results["c"] {
		counts[r]++
	}
	if len(ans.Results["c"]) != shots || counts["00"]+counts["11"] != shots || counts["00"] < 420 || counts["11"] < 420 {
		t.Fatalf("results %v, want about 500 each of 00 and 11", counts)
	}

	// Every request after the login carried exactly the id-token, and
	// neither the root nor the caller's token nor its cookie.
	for _, r := range s.requests() {
		if r.path == "/v1/login" {
			continue
		}
		if got := r.header.Values("Authorization"); len(got) != 1 || got[0] != cred.Secret {
			t.Fatalf("%s %s: Authorization %q, want the id-token", r.method, r.path, got)
		}
		for _, part := range [][]byte{headerText(r.header), r.body} {
			if leak := contains(part, refresh, testPassword, jobToken, "myqos_id", "agent-cookie"); leak != "" {
				t.Fatalf("%s %s carries %q", r.method, r.path, leak)
			}
		}
	}
}

// The ceiling is what the service enforces: a job costing more than it is
// refused upstream, though the agent asked for no limit.
func TestMaxCostCeilingBindsUpstream(t *testing.T) {
	s := newEmu(t, nil)
	cred := s.mint(t, s.passwordLogin(t, nil))
	code, out, _ := submit(t, s, Adapter{MaxCostHQC: 6}, cred, bellJob(t, 1000)) // the job costs 11.2
	if code != 400 || !strings.Contains(string(out), "exceeds max-cost") {
		t.Fatalf("over the ceiling: %d %s, want 400 exceeds max-cost", code, out)
	}
	big, _ := json.Marshal(map[string]any{"count": 1000, "machine": "H1-1E", "language": "OPENQASM 2.0", "program": bellQASM2, "max-cost": 1e6})
	if code, out, _ := submit(t, s, Adapter{MaxCostHQC: 6}, cred, big); code != 400 {
		t.Fatalf("agent's own huge max-cost: %d %s, want the ceiling to bind", code, out)
	}
	if code, out, _ := submit(t, s, Adapter{MaxCostHQC: 12}, cred, bellJob(t, 1000)); code != 200 {
		t.Fatalf("under the ceiling: %d %s", code, out)
	}
}

func TestCancelThroughTheAdapter(t *testing.T) {
	s := newEmu(t, nil)
	cred := s.mint(t, s.passwordLogin(t, nil))
	if err := s.e.SetMachineState("H1-1E", quantinuumsim.StateOffline); err != nil {
		t.Fatal(err)
	}
	a := Adapter{MaxCostHQC: 50}
	code, out, _ := submit(t, s, a, cred, bellJob(t, 10))
	if code != 200 {
		t.Fatalf("submit: %d %s", code, out)
	}
	id, _ := a.JobID(out)
	rest := "/v1/job/" + id + "/cancel"
	if r := a.Route(http.MethodPost, rest); r.Kind != provider.Cancel || r.JobID != id || r.Action != "CancelJob" {
		t.Fatalf("Route = %+v", r)
	}
	if code, body := gatewaySend(t, a, s.url, http.MethodPost, rest, "", agentHeaders(), nil, cred); code != 200 {
		t.Fatalf("cancel: %d %s", code, body)
	}
	if o, _ := read(t, s, a, cred, id); o.Status != StatusCanceled || o.CostUSD != nil {
		t.Fatalf("after cancel: %+v", o)
	}
}

func TestMachinesArePublic(t *testing.T) {
	s := newEmu(t, nil)
	cred := s.mint(t, testEmail+":"+testPassword)
	a := Adapter{}
	for _, rest := range []string{"/v1/machine/", "/v1/machine/H1-1E"} {
		if r := a.Route(http.MethodGet, rest); r.Kind != provider.Public {
			t.Fatalf("Route(%s) = %+v", rest, r)
		}
		code, body := gatewaySend(t, a, s.url, http.MethodGet, rest, "config=true", agentHeaders(), nil, cred)
		if code != 200 || !strings.Contains(string(body), `"H1-1E"`) {
			t.Fatalf("%s: %d %s", rest, code, body)
		}
	}
}

// A request sent with the caller's token instead of the id-token (what a
// gateway that forgot Authenticate would do) is refused by the service.
func TestCallerTokenAloneIsRefusedUpstream(t *testing.T) {
	s := newEmu(t, nil)
	if code, _ := s.machinesWith(t, agentHeaders()); code != 401 {
		t.Fatalf("caller's token upstream: %d, want 401", code)
	}
}
