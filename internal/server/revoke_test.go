package server

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/config"
)

// Revoking an agent reaches everything it holds at once: its broker tokens
// at the broker and the gateway, and job tokens it has not used yet; with
// --suspend it cannot log back in until resumed. Only root may do it.
func TestRevokeAndSuspendAgent(t *testing.T) {
	e := newEnv(t)
	a1 := e.mustLogin(e.d.RoleID, e.d.SecretID)
	a2 := e.mustLogin(e.d.RoleID, e.d.SecretID)
	id := e.mustSubmit(e.mustJobToken(a1.ClientToken, "simulator", 100, "").Token, bell())
	pending := e.mustJobToken(a2.ClientToken, "simulator", 100, "")
	agent := a1.EntityID
	path := "/v1/sys/agents/" + agent + "/revoke"

	want(t, "revoke by the agent itself", e.broker(http.MethodPost, path, a1.ClientToken, `{"suspend":true}`), http.StatusForbidden, "root")
	want(t, "revoke an unknown agent", e.broker(http.MethodPost, "/v1/sys/agents/approle:demo:nobody/revoke", e.d.RootToken, `{}`), http.StatusNotFound, "not found")

	start := time.Now()
	var out api.RevokeAgentData
	decodeData(t, e.broker(http.MethodPost, path, e.d.RootToken, `{"suspend":true,"reason":"incident 42"}`), &out)
	if out.Revoked != 2 || !out.Suspended {
		t.Fatalf("revoke answer %+v", out)
	}
	for _, tok := range []string{a1.ClientToken, a2.ClientToken} {
		want(t, "broker token after revoke", e.broker(http.MethodGet, "/v1/auth/token/lookup-self", tok, ""), http.StatusForbidden, "")
		want(t, "gateway read after revoke", e.readJob("apiKey", tok, id), http.StatusUnauthorized, "")
	}
	want(t, "unused job token after revoke", e.submit(pending.Token, bell()), http.StatusUnauthorized, "revoked")
	if took := time.Since(start); took > time.Second {
		t.Fatalf("revocation took %s to reach everything (want under one second)", took)
	}
	want(t, "login while suspended", e.login(e.d.RoleID, e.d.SecretID), http.StatusForbidden, "suspended")

	want(t, "resume", e.broker(http.MethodPost, "/v1/sys/agents/"+agent+"/resume", e.d.RootToken, ""), http.StatusNoContent)
	e.mustLogin(e.d.RoleID, e.d.SecretID)
	var audited int
	for _, ev := range e.events() {
		if ev.Action == "SuspendAgent" && ev.Agent == agent && strings.Contains(ev.Reason, "incident 42") {
			audited++
		}
	}
	if audited != 1 {
		t.Fatalf("suspension audited %d times", audited)
	}
}

// The anomaly rules watch the live trail: an agent probing for hardware
// gets refused repeatedly, and the repeated denials are flagged.
func TestLiveAnomalyRepeatedDenials(t *testing.T) {
	e := newEnv(t)
	a := e.mustLogin(e.d.RoleID, e.d.SecretID)
	for range 6 {
		// 5000 shots: more than the demo policy permits on Forte even with approval.
		want(t, "qpu job token", e.jobToken(a.ClientToken, "demo", "qpu.forte-1", 5000, ""), http.StatusForbidden, "demo-no-qpu")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, ev := range e.events() {
			if ev.Type == "anomaly" && ev.Agent == a.EntityID && strings.HasPrefix(ev.Reason, "repeated_denials") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no repeated_denials anomaly in the audit trail")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Revocation follows through to the provider: --cancel-jobs cancels the
// agent's queued jobs at the emulator and audits each cancellation.
func TestRevokeCancelsJobs(t *testing.T) {
	d, err := StartDev(context.Background(), DevOptions{
		Addr: "127.0.0.1:0", GatewayAddr: "127.0.0.1:0", SimAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		IonQKey: "ionq-test-cancel-key", SimStepDelay: 5 * time.Second, // jobs stay queued
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	e := &env{t: t, d: d, ionqKey: "ionq-test-cancel-key", hc: &http.Client{Timeout: 10 * time.Second}}
	a := e.mustLogin(d.RoleID, d.SecretID)
	ids := []string{
		e.mustSubmit(e.mustJobToken(a.ClientToken, "simulator", 100, "").Token, bell()),
		e.mustSubmit(e.mustJobToken(a.ClientToken, "simulator", 100, "").Token, bell()),
	}
	var out api.RevokeAgentData
	decodeData(t, e.broker(http.MethodPost, "/v1/sys/agents/"+a.EntityID+"/revoke", d.RootToken, `{"cancel_jobs":true,"reason":"runaway"}`), &out)
	if out.Revoked != 1 || len(out.Jobs) != 2 {
		t.Fatalf("revoke answer %+v", out)
	}
	for _, j := range out.Jobs {
		if j.Status != "canceled" || j.Error != "" {
			t.Fatalf("job %+v not canceled", j)
		}
	}
	for _, id := range ids {
		if r := e.simJob(id); !strings.Contains(string(r.body), `"status":"canceled"`) {
			t.Fatalf("the emulator still runs %s: %s", id, r)
		}
	}
	if n := e.count(func(ev audit.Event) bool {
		return ev.Type == "cancel" && ev.Agent == a.EntityID && ev.Decision == "allow"
	}); n != 2 {
		t.Fatalf("want 2 audited cancellations, got %d", n)
	}
}

// The hardware freeze refuses every QPU job token and redemption — even
// tokens issued before it — and leaves simulators alone until lifted.
func TestHardwareFreeze(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agents.cedar")
	writeAtomic(t, path, demoPolicy(t)+`
@id("hw-qpu")
permit (principal in Role::"hw", action == Action::"SubmitJob", resource == Device::"ionq/qpu.forte-1");
`)
	d := startDevWith(t, DevOptions{PolicyFiles: []string{path}, Approvals: &config.Approvals{}}) // no approval gate here
	e := &env{t: t, d: d, hc: &http.Client{Timeout: 10 * time.Second}}
	e.putRole("hw", `{"provider":"ionq","devices":["qpu.forte-1","simulator"],"max_shots":100}`)
	hw := e.mustLogin(e.roleID("hw"), e.newSecretID("hw", "hw-agent", "").SecretID)
	held := e.jobToken(hw.ClientToken, "hw", "qpu.forte-1", 10, "")
	want(t, "qpu job token before the freeze", held, http.StatusOK)
	var jt struct {
		Data api.JobTokenData `json:"data"`
	}
	json.Unmarshal(held.body, &jt)
	demo := e.mustLogin(d.RoleID, d.SecretID)

	want(t, "freeze by an agent", e.broker(http.MethodPost, "/v1/sys/freeze", hw.ClientToken, `{"hardware":true}`), http.StatusForbidden, "root")
	want(t, "freeze", e.broker(http.MethodPost, "/v1/sys/freeze", d.RootToken, `{"hardware":true,"reason":"incident 7"}`), http.StatusOK, "")
	want(t, "qpu job token while frozen", e.jobToken(hw.ClientToken, "hw", "qpu.forte-1", 10, ""), http.StatusForbidden, "frozen.*incident 7")
	body := ionqBody("qpu.forte-1", 10, bellInput)
	want(t, "qpu token issued before the freeze", e.submit(jt.Data.Token, body), http.StatusUnauthorized, "revoked")
	e.mustJobToken(demo.ClientToken, "simulator", 100, "")

	want(t, "lift", e.broker(http.MethodPost, "/v1/sys/freeze", d.RootToken, `{"hardware":false}`), http.StatusOK, "")
	want(t, "qpu job token after the lift", e.jobToken(hw.ClientToken, "hw", "qpu.forte-1", 10, ""), http.StatusOK)
}

// Revoking a role revokes every token of it, and only of it.
func TestRevokeRole(t *testing.T) {
	e := newEnv(t)
	a1 := e.mustLogin(e.d.RoleID, e.d.SecretID)
	a2 := e.mustLogin(e.d.RoleID, e.d.SecretID)
	e.putRole("other", `{"provider":"ionq","devices":["simulator"],"max_shots":10}`)
	o := e.mustLogin(e.roleID("other"), e.newSecretID("other", "o1", "").SecretID)
	want(t, "revoke role by an agent", e.broker(http.MethodPost, "/v1/sys/roles/demo/revoke", a1.ClientToken, ""), http.StatusForbidden, "root")
	want(t, "revoke an unknown role", e.broker(http.MethodPost, "/v1/sys/roles/nope/revoke", e.d.RootToken, ""), http.StatusNotFound, "")
	r := e.broker(http.MethodPost, "/v1/sys/roles/demo/revoke", e.d.RootToken, `{"reason":"rotate everything"}`)
	want(t, "revoke role", r, http.StatusOK, "")
	if !strings.Contains(string(r.body), `"revoked_tokens":2`) {
		t.Fatalf("revoke role answer: %s", r)
	}
	for _, tok := range []string{a1.ClientToken, a2.ClientToken} {
		want(t, "demo token after the role's revocation", e.broker(http.MethodGet, "/v1/auth/token/lookup-self", tok, ""), http.StatusForbidden, "")
	}
	want(t, "another role's token", e.broker(http.MethodGet, "/v1/auth/token/lookup-self", o.ClientToken, ""), http.StatusOK, "")
}
