package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/circuit"
	"github.com/qbroker/qbroker/internal/config"
)

// heldBody is a job-token request that carries its program.
func heldBody(device string, shots int, input, approvalID string) string {
	b, _ := json.Marshal(api.JobTokenRequest{Provider: "ionq", Device: device, Shots: shots,
		Program: json.RawMessage(input), Format: api.FormatIonQ, ApprovalID: approvalID})
	return string(b)
}

func (e *env) askHeld(tok, role, device string, shots int, input, approvalID string) result {
	e.t.Helper()
	return e.broker(http.MethodPost, "/v1/quantum/jobtoken/"+role, tok, heldBody(device, shots, input, approvalID))
}

// mustHold asks for a gated job and returns the held approval.
func (e *env) mustHold(tok, role, device string, shots int, input string) api.Approval {
	e.t.Helper()
	r := e.askHeld(tok, role, device, shots, input, "")
	want(e.t, "gated job token", r, http.StatusAccepted)
	if strings.Contains(string(r.body), `"token"`) {
		e.t.Fatalf("a held request carried a token: %s", r)
	}
	var a api.Approval
	decodeData(e.t, r, &a)
	if a.ID == "" || a.State != api.ApprovalPending {
		e.t.Fatalf("202 without a pending approval: %s", r)
	}
	return a
}

func (e *env) vote(tok, id, decision, reason string) result {
	e.t.Helper()
	b, _ := json.Marshal(api.DecisionRequest{Reason: reason})
	return e.broker(http.MethodPost, "/v1/sys/approvals/"+id+"/"+decision, tok, string(b))
}

// The dev flow of the issue: the demo agent asks for Forte, gets 202 with
// everything an approver needs, waits by long poll; the dev admin's root
// token approves; the wait ends; exactly the approved parameters are issued
// once, and the job runs on the emulator.
func TestApprovalDevFlow(t *testing.T) {
	e := newEnv(t)
	login := e.mustLogin(e.d.RoleID, e.d.SecretID)
	agent := login.ClientToken

	// Without the program nothing can be approved: a clear 400.
	want(t, "gated request without a program", e.jobToken(agent, DemoRole, "qpu.forte-1", 100, ""), http.StatusBadRequest, "needs approval", "include the program")

	a := e.mustHold(agent, DemoRole, "qpu.forte-1", 100, bellInput)
	digest, _ := circuit.Digest([]byte(bellInput))
	if a.Requester != login.EntityID || a.Device != "qpu.forte-1" || a.Shots != 100 || a.ProgramSHA256 != digest ||
		a.EstimatedCostUSD < 8.29 || a.EstimatedCostUSD > 8.31 || a.Required != 1 || a.Group != "admins" ||
		!strings.HasSuffix(a.ConsoleURL, "/ui/approvals/"+a.ID) || len(a.Reasons) == 0 || a.Price == nil || a.Price.PerShotUSD != 0.08 {
		t.Fatalf("held approval lacks what an approver needs: %+v", a)
	}
	// Using it before it is approved: refused, not issued.
	want(t, "issue while pending", e.askHeld(agent, DemoRole, "qpu.forte-1", 100, bellInput, a.ID), http.StatusConflict, "still pending")

	// The agent can read its own request; another agent cannot.
	want(t, "agent reads its approval", e.broker(http.MethodGet, "/v1/sys/approvals/"+a.ID, agent, ""), http.StatusOK)
	e.putRole("other", `{"provider":"ionq","devices":["simulator"],"max_shots":10}`)
	other := e.mustLogin(e.roleID("other"), e.newSecretID("other", "o1", "").SecretID).ClientToken
	want(t, "another agent reads it", e.broker(http.MethodGet, "/v1/sys/approvals/"+a.ID, other, ""), http.StatusNotFound)
	// The agent may not approve itself.
	want(t, "agent approves itself", e.vote(agent, a.ID, "approve", ""), http.StatusForbidden, "not in approver group")

	// Long poll: the wait ends when the admin approves, not at its timeout.
	var wg sync.WaitGroup
	var polled result
	var waited time.Duration
	wg.Go(func() {
		start := time.Now()
		polled = e.broker(http.MethodGet, "/v1/sys/approvals/"+a.ID+"?wait=30s", agent, "")
		waited = time.Since(start)
	})
	time.Sleep(300 * time.Millisecond)
	r := e.vote(e.d.RootToken, a.ID, "approve", "bell test on forte is fine")
	want(t, "admin approves", r, http.StatusOK)
	wg.Wait()
	want(t, "long poll", polled, http.StatusOK)
	var done api.Approval
	decodeData(t, polled, &done)
	if done.State != api.ApprovalApproved || waited > 5*time.Second || len(done.Votes) != 1 || done.Votes[0].Approver != DevAdmin {
		t.Fatalf("long poll answered %s after %v with votes %+v, want approved by %s promptly", done.State, waited, done.Votes, DevAdmin)
	}

	// Other parameters need a new approval.
	want(t, "more shots", e.askHeld(agent, DemoRole, "qpu.forte-1", 200, bellInput, a.ID), http.StatusForbidden, "differs", "shots 200, approved 100")
	want(t, "another program", e.askHeld(agent, DemoRole, "qpu.forte-1", 100, otherInput, a.ID), http.StatusForbidden, "differs", "different program")
	want(t, "another device", e.askHeld(agent, DemoRole, "simulator", 100, bellInput, a.ID), http.StatusForbidden, "differs")
	// Another agent of the same role cannot ride on it.
	agent2 := e.mustLogin(e.d.RoleID, e.newSecretID(DemoRole, "demo-agent-2", "").SecretID).ClientToken
	want(t, "replay by another agent", e.askHeld(agent2, DemoRole, "qpu.forte-1", 100, bellInput, a.ID), http.StatusForbidden, "another agent")

	// Exactly the approved request: issued, once.
	r = e.askHeld(agent, DemoRole, "qpu.forte-1", 100, bellInput, a.ID)
	want(t, "issue approved", r, http.StatusOK)
	var jt api.JobTokenData
	decodeData(t, r, &jt)
	if jt.ProgramSHA256 != digest || jt.MaxShots != 100 || jt.Device != "qpu.forte-1" {
		t.Fatalf("issued token not bound to the approved parameters: %+v", jt)
	}
	want(t, "second issue", e.askHeld(agent, DemoRole, "qpu.forte-1", 100, bellInput, a.ID), http.StatusConflict, "already used")

	// The job runs on the emulator's Forte.
	id := e.mustSubmit(jt.Token, ionqBody("qpu.forte-1", 100, bellInput))
	if id == "" {
		t.Fatal("no job id")
	}
	// The trail has the request, the vote and the issuance with the approval id.
	for _, c := range []struct {
		what  string
		match func(audit.Event) bool
	}{
		{"request", func(ev audit.Event) bool {
			return ev.Type == "approval" && ev.Action == "RequestApproval" && ev.ApprovalID == a.ID
		}},
		{"vote", func(ev audit.Event) bool {
			return ev.Type == "approval" && ev.Action == "Approve" && ev.Approver == DevAdmin && ev.Decision == "allow"
		}},
		{"issue", func(ev audit.Event) bool {
			return ev.Type == "issue" && ev.Decision == "allow" && ev.ApprovalID == a.ID && ev.JTI == jt.JTI
		}},
		{"refused self-approval", func(ev audit.Event) bool {
			return ev.Type == "approval" && ev.Action == "Vote" && ev.Decision == "deny" && ev.Approver == login.EntityID
		}},
	} {
		if e.count(c.match) != 1 {
			t.Errorf("audit: %d %s events, want 1", e.count(c.match), c.what)
		}
	}
}

// quorumEnv: Forte needs 2 approvals from group quorum: the AppRole agents
// of role "approvers" (alice, bob, carol, approving through the API as
// their agent ids). Role "lab" (owned by carol) may run Forte with
// approval; its agent lab-agent is also listed as an approver, to prove it
// still cannot approve its own request. mallory is not an approver.
func quorumEnv(t *testing.T, dataDir string, ttl time.Duration) *env {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "lab.cedar")
	writeAtomic(t, path, demoPolicy(t)+`
@id("lab-forte")
permit (principal in Role::"lab", action == Action::"SubmitJob", resource == Device::"ionq/qpu.forte-1")
when { context.approved };
`)
	d := startDevWith(t, DevOptions{PolicyFiles: []string{path}, DataDir: dataDir, Approvals: &config.Approvals{
		TTL: ttl, IssueWindow: time.Minute,
		Groups: []config.ApproverGroup{{Name: "quorum", Roles: []string{"approvers"}, People: []string{"approle:lab:lab-agent"}}},
		Rules: []config.ApprovalRule{{Name: "hardware", DeviceKind: "qpu",
			ApprovalConsent: config.ApprovalConsent{Approvals: 2, Group: "quorum"}}},
	}})
	return &env{t: t, d: d, hc: &http.Client{Timeout: 40 * time.Second}}
}

func (e *env) quorumTokens() (lab string, people map[string]string) {
	e.t.Helper()
	e.putRole("lab", `{"provider":"ionq","devices":["qpu.forte-1"],"max_shots":1000,"owner":"approle:approvers:carol","team":"q"}`)
	e.putRole("approvers", `{"provider":"ionq","devices":["simulator"],"max_shots":1}`)
	e.putRole("outsiders", `{"provider":"ionq","devices":["simulator"],"max_shots":1}`)
	lab = e.mustLogin(e.roleID("lab"), e.newSecretID("lab", "lab-agent", "").SecretID).ClientToken
	people = map[string]string{}
	for _, p := range []string{"alice", "bob", "carol"} {
		people[p] = e.mustLogin(e.roleID("approvers"), e.newSecretID("approvers", p, "").SecretID).ClientToken
	}
	people["mallory"] = e.mustLogin(e.roleID("outsiders"), e.newSecretID("outsiders", "mallory", "").SecretID).ClientToken
	return lab, people
}

// The rules of consent, each attack tried and refused, and audited.
func TestApprovalRulesOfConsent(t *testing.T) {
	e := quorumEnv(t, "", time.Hour)
	lab, p := e.quorumTokens()

	a := e.mustHold(lab, "lab", "qpu.forte-1", 10, bellInput)
	want(t, "self-approval", e.vote(lab, a.ID, "approve", ""), http.StatusForbidden, "made or own")
	want(t, "owner approves", e.vote(p["carol"], a.ID, "approve", ""), http.StatusForbidden, "made or own")
	want(t, "outsider approves", e.vote(p["mallory"], a.ID, "approve", ""), http.StatusForbidden, "not in approver group quorum")
	want(t, "alice approves", e.vote(p["alice"], a.ID, "approve", "ok"), http.StatusOK)
	want(t, "alice approves again", e.vote(p["alice"], a.ID, "approve", "ok"), http.StatusConflict, "already voted")
	var mid api.Approval
	decodeData(t, e.broker(http.MethodGet, "/v1/sys/approvals/"+a.ID, lab, ""), &mid)
	if mid.State != api.ApprovalPending || mid.Approved != 1 {
		t.Fatalf("after one distinct approval: %s with %d, want pending with 1 (2 of 3 needed)", mid.State, mid.Approved)
	}
	want(t, "issue with one of two", e.askHeld(lab, "lab", "qpu.forte-1", 10, bellInput, a.ID), http.StatusConflict, "1 of 2")
	want(t, "bob approves", e.vote(p["bob"], a.ID, "approve", ""), http.StatusOK)
	want(t, "vote after approval", e.vote(p["carol"], a.ID, "deny", "late"), http.StatusConflict, "is approved")

	// An approval cannot be replayed onto another request: b is the same
	// agent's second request; a's id does not release b's parameters.
	b := e.mustHold(lab, "lab", "qpu.forte-1", 20, otherInput)
	want(t, "replay a's approval onto b's parameters", e.askHeld(lab, "lab", "qpu.forte-1", 20, otherInput, a.ID), http.StatusForbidden, "differs")
	want(t, "b still needs its own votes", e.askHeld(lab, "lab", "qpu.forte-1", 20, otherInput, b.ID), http.StatusConflict, "pending")
	want(t, "a issues", e.askHeld(lab, "lab", "qpu.forte-1", 10, bellInput, a.ID), http.StatusOK)

	// One denial ends the request, with the denier's reason.
	want(t, "deny without a reason", e.vote(p["alice"], b.ID, "deny", " "), http.StatusBadRequest, "needs a reason")
	want(t, "alice denies", e.vote(p["alice"], b.ID, "deny", "X-basis run not planned"), http.StatusOK)
	want(t, "bob approves after the denial", e.vote(p["bob"], b.ID, "approve", ""), http.StatusConflict)
	want(t, "issue denied", e.askHeld(lab, "lab", "qpu.forte-1", 20, otherInput, b.ID), http.StatusForbidden, "denied by approle:approvers:alice: X-basis run not planned")

	refused := e.count(func(ev audit.Event) bool {
		return ev.Type == "approval" && ev.Action == "Vote" && ev.Decision == audit.DecisionDeny
	})
	if refused != 7 {
		t.Fatalf("refused votes audited: %d, want 7", refused)
	}
	issues := e.count(func(ev audit.Event) bool {
		return ev.Type == "issue" && ev.Decision == "allow" && ev.Device == "qpu.forte-1"
	})
	if issues != 1 {
		t.Fatalf("forte tokens issued: %d, want 1", issues)
	}
}

// Approving after expiry fails; the request says it expired.
func TestApprovalExpiry(t *testing.T) {
	e := quorumEnv(t, "", 700*time.Millisecond)
	lab, p := e.quorumTokens()
	a := e.mustHold(lab, "lab", "qpu.forte-1", 10, bellInput)
	want(t, "alice approves in time", e.vote(p["alice"], a.ID, "approve", ""), http.StatusOK)
	time.Sleep(time.Until(a.ExpiresAt) + 50*time.Millisecond)
	want(t, "bob approves after expiry", e.vote(p["bob"], a.ID, "approve", ""), http.StatusGone, "expired")
	want(t, "issue after expiry", e.askHeld(lab, "lab", "qpu.forte-1", 10, bellInput, a.ID), http.StatusGone, "expired")
	n, err := e.d.Broker.ExpireApprovals(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("sweep expired %d (%v), want 1", n, err)
	}
	var got api.Approval
	decodeData(t, e.broker(http.MethodGet, "/v1/sys/approvals/"+a.ID, lab, ""), &got)
	if got.State != api.ApprovalExpired || !strings.Contains(got.Reason, "expired") || got.Approved != 1 {
		t.Fatalf("after the sweep: %+v", got)
	}
	if e.count(func(ev audit.Event) bool {
		return ev.Type == "approval" && ev.Action == "Expire" && ev.ApprovalID == a.ID
	}) != 1 {
		t.Fatal("expiry not audited")
	}
}

// A restart while a request is pending keeps it pending, with its votes.
func TestApprovalSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	e := quorumEnv(t, dir, time.Hour)
	lab, p := e.quorumTokens()
	a := e.mustHold(lab, "lab", "qpu.forte-1", 10, bellInput)
	want(t, "alice approves", e.vote(p["alice"], a.ID, "approve", "before restart"), http.StatusOK)
	if err := e.d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	e2 := quorumEnv(t, dir, time.Hour)
	var got api.Approval
	decodeData(t, e2.broker(http.MethodGet, "/v1/sys/approvals/"+a.ID, lab, ""), &got)
	if got.State != api.ApprovalPending || got.Approved != 1 || len(got.Votes) != 1 || got.Votes[0].Approver != "approle:approvers:alice" || got.Votes[0].Reason != "before restart" {
		t.Fatalf("after restart: %+v", got)
	}
	want(t, "alice again after restart", e2.vote(p["alice"], a.ID, "approve", ""), http.StatusConflict, "already voted")
	want(t, "bob completes it", e2.vote(p["bob"], a.ID, "approve", ""), http.StatusOK)
	want(t, "issue", e2.askHeld(lab, "lab", "qpu.forte-1", 10, bellInput, a.ID), http.StatusOK)
}

// Concurrent issuance of one approval: exactly one token.
func TestApprovalIssuedOnceUnderRace(t *testing.T) {
	e := newEnv(t)
	agent := e.agent()
	a := e.mustHold(agent, DemoRole, "qpu.forte-1", 50, bellInput)
	want(t, "approve", e.vote(e.d.RootToken, a.ID, "approve", ""), http.StatusOK)
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			r := e.askHeld(agent, DemoRole, "qpu.forte-1", 50, bellInput, a.ID)
			mu.Lock()
			codes[r.status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if codes[http.StatusOK] != 1 || codes[http.StatusConflict] != 15 {
		t.Fatalf("16 concurrent issuances of one approval: %v, want one 200 and fifteen 409", codes)
	}
}

// Listing: approvers see every request, agents only their own; filters
// are checked.
func TestApprovalList(t *testing.T) {
	e := newEnv(t)
	agent := e.agent()
	a := e.mustHold(agent, DemoRole, "qpu.forte-1", 10, bellInput)
	e.putRole("other", `{"provider":"ionq","devices":["simulator"],"max_shots":10}`)
	other := e.mustLogin(e.roleID("other"), e.newSecretID("other", "o1", "").SecretID).ClientToken
	list := func(tok, q string) api.ApprovalList {
		t.Helper()
		r := e.broker(http.MethodGet, "/v1/sys/approvals"+q, tok, "")
		want(t, "list "+q, r, http.StatusOK)
		var l api.ApprovalList
		decodeData(t, r, &l)
		return l
	}
	if l := list(e.d.RootToken, "?state=pending"); len(l.Approvals) != 1 || l.Approvals[0].ID != a.ID {
		t.Fatalf("root's pending list: %+v", l)
	}
	if l := list(agent, ""); len(l.Approvals) != 1 {
		t.Fatalf("agent's own list: %+v", l)
	}
	if l := list(other, ""); len(l.Approvals) != 0 {
		t.Fatalf("another agent sees %d approvals", len(l.Approvals))
	}
	want(t, "bad state", e.broker(http.MethodGet, "/v1/sys/approvals?state=maybe", e.d.RootToken, ""), http.StatusBadRequest, "state")
	want(t, "bad wait", e.broker(http.MethodGet, "/v1/sys/approvals/"+a.ID+"?wait=2h", agent, ""), http.StatusBadRequest, "wait")
	want(t, "unknown approval", e.broker(http.MethodGet, "/v1/sys/approvals/apr_nope", e.d.RootToken, ""), http.StatusNotFound)
	want(t, "program digest mismatch", e.broker(http.MethodPost, "/v1/quantum/jobtoken/demo", agent,
		fmt.Sprintf(`{"provider":"ionq","device":"qpu.forte-1","shots":10,"program":%s,"program_sha256":"%s"}`, bellInput, strings.Repeat("a", 64))),
		http.StatusBadRequest, "does not match")
	want(t, "bad program", e.broker(http.MethodPost, "/v1/quantum/jobtoken/demo", agent,
		`{"provider":"ionq","device":"qpu.forte-1","shots":10,"program":{"qubits":2,"circuit":[{"gate":"h","target":7}]}}`),
		http.StatusBadRequest, "program")
	want(t, "unknown format", e.broker(http.MethodPost, "/v1/quantum/jobtoken/demo", agent,
		fmt.Sprintf(`{"provider":"ionq","device":"qpu.forte-1","shots":10,"program":%s,"format":"quil"}`, bellInput)),
		http.StatusBadRequest, "format")
	if l := list(e.d.RootToken, ""); len(l.Approvals) != 1 {
		t.Fatalf("refused requests created approvals: %d", len(l.Approvals))
	}
}

// An OpenQASM 3 program can be held for approval too: validated, bound by
// its digest, and drawn for the approver.
func TestApprovalQASM(t *testing.T) {
	e := newEnv(t)
	agent := e.agent()
	const src = "OPENQASM 3;\ninclude \"stdgates.inc\";\nqubit[3] q;\nbit[3] c;\nh q[0];\ncx q[0], q[1];\nccx q[0], q[1], q[2];\nc = measure q;\n"
	body := func(src string) string {
		b, _ := json.Marshal(api.JobTokenRequest{Provider: "ionq", Device: "qpu.forte-1", Shots: 10, Program: mustJSON(src), Format: api.FormatQASM3})
		return string(b)
	}
	r := e.broker(http.MethodPost, "/v1/quantum/jobtoken/demo", agent, body(src))
	want(t, "qasm3 gated", r, http.StatusAccepted)
	var a api.Approval
	decodeData(t, r, &a)
	if a.Format != api.FormatQASM3 || len(a.ProgramSHA256) != 64 {
		t.Fatalf("held qasm3 request: %+v", a)
	}
	d, err := renderProgram(a.Format, a.Program)
	if err != nil || d.Qubits != 3 || d.Gates != 3 || d.TwoQubit != 1 || d.Measurements != 3 || !strings.Contains(string(d.SVG), "<svg") {
		t.Fatalf("qasm3 diagram: %+v %v", d, err)
	}
	want(t, "bad qasm", e.broker(http.MethodPost, "/v1/quantum/jobtoken/demo", agent, body("OPENQASM 3;\nqubit[2] q;\nfor int i in [0:1] { h q[0]; }\n")),
		http.StatusBadRequest, "program: line 3")
	want(t, "qasm not a string", e.broker(http.MethodPost, "/v1/quantum/jobtoken/demo", agent,
		`{"provider":"ionq","device":"qpu.forte-1","shots":10,"format":"qasm3","program":{"x":1}}`), http.StatusBadRequest, "JSON string")
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
