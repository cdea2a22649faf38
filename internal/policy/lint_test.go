package policy

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin without relying on the host's zoneinfo
)

func TestLintWarnings(t *testing.T) {
	src := `@id("any-submit") permit(principal, action == Action::"SubmitJob", resource);
@id("any-submit-is") permit(principal in Role::"r", action in [Action::"SubmitJob", Action::"EstimateCost"], resource is Device) when { context.shots < 10 };
@id("provider-submit") permit(principal in Role::"r", action == Action::"SubmitJob", resource in Provider::"ionq");
@id("everything") permit(principal == Agent::"root", action, resource);
@id("admin-group") permit(principal in Role::"ops", action in Action::"Admin", resource);
@id("admin-one") permit(principal in Role::"ops", action == Action::"AdminKeys", resource) when { context.hour > 8 };
@id("admin-unless") permit(principal in Role::"ops", action == Action::"AdminAudit", resource) unless { context.approved };
@id("ok-kind") permit(principal, action == Action::"SubmitJob", resource) when { resource.kind == "simulator" };
@id("ok-provider-cond") permit(principal, action == Action::"SubmitJob", resource in Provider::"ionq") when { context.shots < 10 };
@id("ok-device") permit(principal, action == Action::"SubmitJob", resource == Device::"ionq/simulator");
@id("ok-admin") permit(principal in Role::"ops", action in Action::"Admin", resource) when { context.approved };
@id("ok-forbid") forbid(principal, action, resource);
@id("ok-read") permit(principal, action == Action::"ReadJob", resource);
`
	e := newEngine(t, File{Name: "lint.cedar", Data: []byte(src)})
	var got []string
	for _, w := range e.Warnings() {
		got = append(got, w.PolicyID+":"+w.Rule)
		if w.File != "lint.cedar" || w.Line == 0 || w.Msg == "" {
			t.Errorf("incomplete warning %+v", w)
		}
	}
	want := []string{
		"any-submit:" + LintSubmitAnyDevice,
		"any-submit-is:" + LintSubmitAnyDevice,
		"provider-submit:" + LintSubmitUnconditionalProvider,
		"everything:" + LintSubmitAnyDevice,
		"everything:" + LintAdminWithoutApproval,
		"admin-group:" + LintAdminWithoutApproval,
		"admin-one:" + LintAdminWithoutApproval,
		"admin-unless:" + LintAdminWithoutApproval,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("warnings:\n got %q\nwant %q", got, want)
	}
	if s := e.Warnings()[2].String(); s != `lint.cedar:3:1: policy "provider-submit": permits SubmitJob on every device of Provider "ionq", QPUs included, without any condition [submit-provider-unconditional]` {
		t.Errorf("String() = %q", s)
	}
	// Warnings are not errors, and the slice is a copy.
	e.Warnings()[0].Msg = "changed"
	if e.Warnings()[0].Msg == "changed" {
		t.Fatal("Warnings exposes internal state")
	}
}

func TestDemoPoliciesHaveNoWarnings(t *testing.T) {
	if w := demoEngine(t).Warnings(); len(w) != 0 {
		t.Fatalf("demo warnings: %v", w)
	}
}

func TestExplain(t *testing.T) {
	e := templateEngine(t)
	x := e.Explain(submit(Agent{ID: "q1", Role: "sim"}, forte(), 10))
	if x.Allowed || x.Decision != "deny" || !slices.Equal(x.DeterminingPolicies, []string{"sim-no-qpu"}) || x.Reason != `denied by policy "sim-no-qpu"` {
		t.Fatalf("explanation %+v", x)
	}
	if len(x.Policies) != len(e.PolicyIDs()) {
		t.Fatalf("%d policy results, %d policies", len(x.Policies), len(e.PolicyIDs()))
	}
	var satisfied []string
	for _, p := range x.Policies {
		if p.Satisfied {
			satisfied = append(satisfied, p.ID)
		}
		if p.Determining != (p.ID == "sim-no-qpu") {
			t.Errorf("%s determining = %v", p.ID, p.Determining)
		}
	}
	if !slices.Equal(satisfied, []string{"sim-no-qpu"}) {
		t.Fatalf("satisfied = %q", satisfied)
	}

	// A permit that matched but lost to a forbid shows as satisfied, not determining.
	e2 := templateEngine(t, File{Name: "broad.cedar", Data: []byte(`@id("broad") permit(principal, action, resource);`)})
	x = e2.Explain(submit(Agent{ID: "q1", Role: "sim"}, forte(), 10))
	i := slices.IndexFunc(x.Policies, func(p PolicyResult) bool { return p.ID == "broad" })
	if x.Allowed || i < 0 || !x.Policies[i].Satisfied || x.Policies[i].Determining || x.Policies[i].Effect != "permit" || x.Policies[i].File != "broad.cedar" {
		t.Fatalf("broad: %+v", x)
	}

	// Allow, JSON shape.
	x = e.Explain(approved(submit(Agent{ID: "h1", Role: "hw"}, forte(), 10)))
	b, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"decision":"allow"`, `"determining_policies":["hw-submit-qpu-approved"]`, `"errors":[]`, `"satisfied":true`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s: %s", want, b)
		}
	}

	// Evaluation errors are reported per policy.
	e3 := newEngine(t, File{Name: "err.cedar", Data: []byte(
		`@id("overflow") forbid(principal, action, resource) when { context.shots * 9223372036854775807 > 0 };`)})
	x = e3.Explain(submit(demoAgent, simulator(), 2))
	if x.Allowed || len(x.Policies) != 1 || x.Policies[0].Error == "" || len(x.Errors) != 1 {
		t.Fatalf("overflow: %+v", x)
	}

	// Invalid request: denied, no per-policy detail.
	x = e.Explain(Request{Agent: demoAgent, Action: "Nuke"})
	if x.Allowed || len(x.Policies) != 0 || len(x.Errors) != 1 {
		t.Fatalf("invalid: %+v", x)
	}
}

func approved(r Request) Request { r.Context.Approved = true; return r }

// TestOffHoursAcrossDST: hardware only 08:00-20:00 local on weekdays in
// Europe/Berlin, decided from UTC instants around both 2026 DST changes.
func TestOffHoursAcrossDST(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, File{Name: "hours.cedar", Data: []byte(`
@id("hw") permit(principal in Role::"hw", action == Action::"SubmitJob", resource is Device) when { resource.kind == "qpu" };
@id("office-hours") forbid(principal, action == Action::"SubmitJob", resource is Device)
when { resource.kind == "qpu" }
unless { context.hour >= 8 && context.hour < 20 && context.weekday >= 1 && context.weekday <= 5 };
`)})
	agent := Agent{ID: "a", Role: "hw"}
	at := func(utc string) Decision {
		ts, err := time.Parse(time.RFC3339, utc)
		if err != nil {
			t.Fatal(err)
		}
		r := submit(agent, forte(), 1)
		r.Context.Hour, r.Context.Weekday = ClockContext(ts, berlin)
		return e.Decide(r)
	}
	for _, tc := range []struct {
		utc   string
		allow bool
		why   string
	}{
		// Summer time from Sun 2026-03-29 (UTC+2): Monday 03-30.
		{"2026-03-30T05:30:00Z", false, "07:30 CEST Monday"},
		{"2026-03-30T06:30:00Z", true, "08:30 CEST Monday"},
		{"2026-03-30T17:59:00Z", true, "19:59 CEST Monday"},
		{"2026-03-30T18:00:00Z", false, "20:00 CEST Monday"},
		// Winter time from Sun 2026-10-25 (UTC+1): Monday 10-26.
		{"2026-10-26T06:30:00Z", false, "07:30 CET Monday"},
		{"2026-10-26T07:30:00Z", true, "08:30 CET Monday"},
		// The friday before the spring change (UTC+1) and the weekend.
		{"2026-03-27T07:30:00Z", true, "08:30 CET Friday"},
		{"2026-03-28T10:00:00Z", false, "11:00 CET Saturday"},
		{"2026-03-29T10:00:00Z", false, "12:00 CEST Sunday"},
	} {
		if d := at(tc.utc); d.Allowed != tc.allow {
			t.Errorf("%s (%s): allowed = %v, want %v: %s", tc.utc, tc.why, d.Allowed, tc.allow, d.Reason)
		}
	}
	// The helper itself.
	ts := time.Date(2026, 3, 30, 5, 30, 0, 0, time.UTC)
	if h, wd := ClockContext(ts, berlin); h != 7 || wd != 1 {
		t.Fatalf("ClockContext = %d, %d", h, wd)
	}
	if h, wd := ClockContext(ts, nil); h != 5 || wd != 1 {
		t.Fatalf("ClockContext(nil) = %d, %d", h, wd)
	}
}
