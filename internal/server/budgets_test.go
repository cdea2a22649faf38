package server

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/config"
)

func budgetEnv(t *testing.T, b config.Budgets) *env {
	t.Helper()
	d := startDevWith(t, DevOptions{Budgets: &b})
	return &env{t: t, d: d, hc: &http.Client{Timeout: 20 * time.Second}}
}

func (e *env) budgets(tok, q string) []api.BudgetUsage {
	e.t.Helper()
	r := e.broker(http.MethodGet, "/v1/sys/budgets"+q, tok, "")
	want(e.t, "budgets", r, http.StatusOK)
	var out struct {
		Budgets []api.BudgetUsage `json:"budgets"`
	}
	decodeData(e.t, r, &out)
	return out.Budgets
}

// A runaway agent in a tight loop is stopped at its rate limit with clear
// 429s, then at its shots budget with clear 403s; nothing beyond the
// limits is ever issued, and every refusal is audited.
func TestRunawayAgentStopped(t *testing.T) {
	e := budgetEnv(t, config.Budgets{Limits: []config.BudgetLimit{
		{Name: "demo-rate", Scope: "role", Match: DemoRole, JobsPerMinute: 20},
		{Name: "demo-sim", Scope: "role", Match: DemoRole, Class: "simulator", ShotsPerDay: 3000},
	}})
	agent := e.agent()
	issued, limited := 0, 0
	var last result
	for range 100 {
		r := e.jobToken(agent, DemoRole, "simulator", 100, "")
		switch r.status {
		case http.StatusOK:
			issued++
		case http.StatusTooManyRequests:
			limited++
			last = r
		default:
			t.Fatalf("unexpected answer: %s", r)
		}
	}
	if issued != 20 || limited != 80 {
		t.Fatalf("a tight loop of 100: %d issued, %d rate-limited; want exactly 20 and 80", issued, limited)
	}
	want(t, "rate refusal", last, http.StatusTooManyRequests, "rate limit demo-rate.jobs_per_minute for role demo: 20 job tokens a minute, 20 used, this request adds 1; resets ")
	if ra, err := strconv.Atoi(last.header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Fatalf("a job-rate refusal's Retry-After: %q, want 1-60 seconds", last.header.Get("Retry-After"))
	}
	us := e.budgets(agent, "")
	for _, u := range us {
		if u.Used > u.Max {
			t.Fatalf("overspend: %+v", u)
		}
	}
	if n := e.count(func(ev audit.Event) bool { return ev.Type == "budget" && ev.Decision == "deny" }); n != 80 {
		t.Fatalf("budget refusals audited: %d, want 80", n)
	}

	// The shots budget: 3000 a day at 100 a job allows 30; 20 are in.
	e2 := budgetEnv(t, config.Budgets{Limits: []config.BudgetLimit{
		{Name: "demo-sim", Scope: "role", Match: DemoRole, Class: "simulator", ShotsPerDay: 3000},
	}})
	agent2 := e2.agent()
	issued = 0
	for range 40 {
		r := e2.jobToken(agent2, DemoRole, "simulator", 100, "")
		if r.status == http.StatusOK {
			issued++
			continue
		}
		last = r
	}
	if issued != 30 {
		t.Fatalf("shots budget 3000 at 100 a job: %d issued, want 30", issued)
	}
	want(t, "budget refusal", last, http.StatusForbidden, "budget limit demo-sim.shots_per_day for role demo: 3000 shots a day, 3000 used, this request adds 100; resets ")
	// Hardware is a separate budget: the simulator's exhaustion does not touch it.
	for _, u := range e2.budgets(agent2, "") {
		if u.Limit == "demo-sim.shots_per_day" && (u.Used != 3000 || u.Max != 3000 || u.ResetsAt == nil) {
			t.Fatalf("usage %+v", u)
		}
	}
}

// A token that expires unused releases its reservation within one sweep;
// a submitted job keeps its place until it settles.
func TestExpiredTokenReleasesReservation(t *testing.T) {
	e := budgetEnv(t, config.Budgets{Limits: []config.BudgetLimit{
		{Name: "demo-flight", Scope: "role", Match: DemoRole, InFlight: 2},
	}})
	e.putRole(DemoRole, `{"provider":"ionq","devices":["simulator","qpu.forte-1"],"max_shots":10000,"job_token_ttl":"1s","owner":"dev","team":"dev"}`)
	agent := e.agent()
	used := e.mustJobToken(agent, "simulator", 10, "")
	e.mustSubmit(used.Token, ionqBody("simulator", 10, bellInput)) // confirmed: stays in flight
	e.mustJobToken(agent, "simulator", 10, "")                     // will expire unused
	want(t, "third in flight", e.jobToken(agent, DemoRole, "simulator", 10, ""), http.StatusForbidden, "demo-flight.in_flight", "2 jobs in flight, 2 used")
	time.Sleep(1100 * time.Millisecond)
	n, err := e.d.Broker.ReleaseExpiredReservations(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("sweep released %d (%v), want the one unused token", n, err)
	}
	want(t, "after the release", e.jobToken(agent, DemoRole, "simulator", 10, ""), http.StatusOK)
	want(t, "in flight again full", e.jobToken(agent, DemoRole, "simulator", 10, ""), http.StatusForbidden, "in_flight")
	var flight api.BudgetUsage
	for _, u := range e.budgets(agent, "") {
		if strings.HasSuffix(u.Limit, ".in_flight") {
			flight = u
		}
	}
	if flight.Used != 2 || flight.Max != 2 || flight.ResetsAt != nil {
		t.Fatalf("in-flight usage %+v", flight)
	}
}

// When the gateway sees a job finish, its reservation settles: it no
// longer counts as in flight, and the settlement (at the estimate, with no
// cost reported) is audited.
func TestFinishedJobSettles(t *testing.T) {
	e := budgetEnv(t, config.Budgets{Limits: []config.BudgetLimit{
		{Name: "demo-flight", Scope: "role", Match: DemoRole, InFlight: 1},
	}})
	agent := e.agent()
	jt := e.mustJobToken(agent, "simulator", 10, "")
	id := e.mustSubmit(jt.Token, ionqBody("simulator", 10, bellInput))
	want(t, "second while the first runs", e.jobToken(agent, DemoRole, "simulator", 10, ""), http.StatusForbidden, "in_flight")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(string(e.readJob("apiKey", agent, id).body), `"completed"`) {
		if time.Now().After(deadline) {
			t.Fatal("the job did not complete")
		}
		time.Sleep(20 * time.Millisecond)
	}
	deadline = time.Now().Add(5 * time.Second)
	for e.jobToken(agent, DemoRole, "simulator", 10, "").status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the finished job still holds its in-flight place")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if e.count(func(ev audit.Event) bool { return ev.Type == "settle" && ev.JTI == jt.JTI && ev.ActualCostUSD != nil }) != 1 {
		t.Fatal("the settlement is not audited")
	}
}

// A submission the provider refuses runs nothing: its reservation settles
// at 0 and leaves the in-flight count, instead of holding the agent's only
// in-flight place for good.
func TestRefusedSubmissionFreesItsReservation(t *testing.T) {
	e := budgetEnv(t, config.Budgets{Limits: []config.BudgetLimit{
		{Name: "demo-flight", Scope: "role", Match: DemoRole, InFlight: 1},
	}})
	agent := e.agent()
	jt := e.mustJobToken(agent, "simulator", 10, "")
	// The emulator has no sessions: IonQ refuses the job with 400.
	body := `{"type":"ionq.circuit.v1","backend":"simulator","shots":10,"session_id":"no-such-session","input":` + bellInput + `}`
	r := e.submit(jt.Token, body)
	if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "session") {
		t.Fatalf("a submission the provider refuses: %s", r)
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.jobToken(agent, DemoRole, "simulator", 10, "").status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the refused submission still holds the agent's in-flight place")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if e.count(func(ev audit.Event) bool {
		return ev.Type == "settle" && ev.JTI == jt.JTI && ev.ActualCostUSD != nil && *ev.ActualCostUSD == 0
	}) != 1 {
		t.Fatal("the refused submission's settlement at 0 is not audited")
	}
}
