package server

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/qbroker/qbroker/api"
)

// Token exchange (RFC 8693): the delegated token names the agent and the
// person it acts for, policy can decide on either, and revoking the
// person's session revokes the agent's delegated tokens.
func TestTokenExchange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agents.cedar")
	writeAtomic(t, path, demoPolicy(t)+`
@id("nothing-for-mallory")
forbid (principal, action == Action::"SubmitJob", resource) when { principal.acting_for == "approle:people:mallory" };
`)
	d := startDevWithPolicy(t, path)
	e := &env{t: t, d: d, hc: &http.Client{Timeout: 10 * time.Second}}
	e.putRole("people", `{"provider":"ionq","devices":["simulator"],"max_shots":10}`)
	peopleRole := e.roleID("people")
	alice := e.mustLogin(peopleRole, e.newSecretID("people", "alice", "").SecretID)
	mallory := e.mustLogin(peopleRole, e.newSecretID("people", "mallory", "").SecretID)
	agent := e.mustLogin(d.RoleID, d.SecretID)

	exchange := func(subject, actor string) result {
		body, _ := json.Marshal(api.TokenExchangeRequest{
			GrantType: "urn:ietf:params:oauth:grant-type:token-exchange", SubjectToken: subject, ActorToken: actor,
			SubjectTokenType: "urn:ietf:params:oauth:token-type:access_token", ActorTokenType: "urn:ietf:params:oauth:token-type:access_token",
		})
		return e.broker(http.MethodPost, "/v1/auth/token/exchange", "", string(body))
	}
	var resp struct {
		Auth api.Auth `json:"auth"`
	}
	r := exchange(alice.ClientToken, agent.ClientToken)
	if r.status != http.StatusOK || json.Unmarshal(r.body, &resp) != nil {
		t.Fatalf("exchange: %s", r)
	}
	delegated := resp.Auth
	if delegated.EntityID != agent.EntityID || delegated.Metadata["acting_for"] != alice.EntityID || delegated.LeaseDuration > alice.LeaseDuration {
		t.Fatalf("delegated token %+v", delegated)
	}
	// The agent's role and limits apply; policy sees acting_for.
	e.mustJobToken(delegated.ClientToken, "simulator", 100, "")
	var forMallory struct {
		Auth api.Auth `json:"auth"`
	}
	json.Unmarshal(exchange(mallory.ClientToken, agent.ClientToken).body, &forMallory)
	want(t, "job token acting for mallory", e.jobToken(forMallory.Auth.ClientToken, "demo", "simulator", 100, ""), http.StatusForbidden, "nothing-for-mallory")
	var acting int
	for _, ev := range e.events() {
		if ev.Type == "issue" && ev.Action == "SubmitJob" && ev.ActingFor == alice.EntityID && ev.Agent == agent.EntityID {
			acting++
		}
	}
	if acting != 1 {
		t.Fatalf("issuance audited with acting_for %d times, want 1", acting)
	}

	// Refusals.
	want(t, "exchange a delegated token again", exchange(alice.ClientToken, delegated.ClientToken), http.StatusBadRequest, "delegated")
	want(t, "root as a party", exchange(d.RootToken, agent.ClientToken), http.StatusBadRequest, "root")
	want(t, "same identity", exchange(agent.ClientToken, agent.ClientToken), http.StatusBadRequest, "same")
	want(t, "bad grant type", e.broker(http.MethodPost, "/v1/auth/token/exchange", "", `{"grant_type":"password","subject_token":"x","actor_token":"y"}`), http.StatusBadRequest, "grant_type")

	// Alice signs out: the agent's token acting for her dies with her session;
	// the agent's own token does not.
	want(t, "alice revokes her session", e.broker(http.MethodPost, "/v1/auth/token/revoke-self", alice.ClientToken, ""), http.StatusNoContent)
	want(t, "delegated token after the person's revoke", e.broker(http.MethodGet, "/v1/auth/token/lookup-self", delegated.ClientToken, ""), http.StatusForbidden)
	want(t, "exchange with a revoked subject", exchange(alice.ClientToken, agent.ClientToken), http.StatusForbidden, "subject_token")
	e.mustJobToken(agent.ClientToken, "simulator", 100, "")
}
