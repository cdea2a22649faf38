package server

import (
	"net/http"
	"testing"

	"github.com/qbroker/qbroker/internal/audit"
)

// With the audit sink failing mid-run, every request that would change
// state or hand out a credential is refused with 503 — and nothing is
// handed out without its audit event.
func TestAuditFailureMidRunFailsClosed(t *testing.T) {
	e := newEnv(t)
	agent := e.mustLogin(e.d.RoleID, e.d.SecretID)
	held := e.mustJobToken(agent.ClientToken, "simulator", 100, "")
	gw, jobPosts := e.countingGateway()
	issuedBefore := e.count(func(ev audit.Event) bool { return ev.Type == "issue" && ev.Action == "SubmitJob" })

	if err := e.d.Server.sink.Close(); err != nil { // the disk is gone
		t.Fatal(err)
	}
	want(t, "login with the audit sink down", e.login(e.d.RoleID, e.d.SecretID), http.StatusServiceUnavailable, "audit")
	want(t, "job token with the audit sink down", e.jobToken(agent.ClientToken, "demo", "simulator", 100, ""), http.StatusServiceUnavailable, "audit")
	want(t, "submission with the audit sink down", e.submitTo(gw, held.Token, bell()), http.StatusServiceUnavailable, "")
	if n := jobPosts(); n != 0 {
		t.Fatalf("the upstream received %d jobs with the audit sink down", n)
	}
	// Nothing new was issued: the trail still holds exactly the issuances
	// that reached an agent.
	if n := e.count(func(ev audit.Event) bool { return ev.Type == "issue" && ev.Action == "SubmitJob" }); n != issuedBefore {
		t.Fatalf("issuance events changed from %d to %d with the sink down", issuedBefore, n)
	}
}
