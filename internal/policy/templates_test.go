package policy

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// suiteSetup is the template rendering that policies/tests/templates.yaml
// documents in its header.
var suiteSetup = []struct {
	template string
	params   TemplateParams
}{
	{"submit-only", TemplateParams{Role: "submitter", Devices: []string{"ionq/simulator", "ionq/qpu.forte-1"}}},
	{"submit-only", TemplateParams{Role: "blind", Devices: []string{"ionq/simulator"}, NoResults: true}},
	{"monitor", TemplateParams{Role: "monitor"}},
	{"simulator-only", TemplateParams{Role: "sim"}},
	{"hardware-with-approval", TemplateParams{Role: "hw"}},
	{"admin", TemplateParams{Role: "admin"}},
}

func templateEngine(t testing.TB, extra ...File) *Engine {
	t.Helper()
	var files []File
	for _, s := range suiteSetup {
		b, err := Template(s.template, s.params)
		if err != nil {
			t.Fatalf("Template(%s): %v", s.template, err)
		}
		files = append(files, File{Name: s.params.Role + ".cedar", Data: b})
	}
	e := newEngine(t, append(files, extra...)...)
	if w := e.Warnings(); len(extra) == 0 && len(w) != 0 {
		t.Fatalf("templates produce lint warnings: %v", w)
	}
	return e
}

func TestTemplateNames(t *testing.T) {
	want := []string{"admin", "hardware-with-approval", "monitor", "simulator-only", "submit-only"}
	if got := TemplateNames(); !slices.Equal(got, want) {
		t.Fatalf("TemplateNames() = %q, want %q", got, want)
	}
}

func TestTemplatesMatchShippedFiles(t *testing.T) {
	for _, name := range TemplateNames() {
		emb, err := templateFS.ReadFile("templates/" + name + ".cedar.tmpl")
		if err != nil {
			t.Fatal(err)
		}
		disk, err := os.ReadFile(filepath.Join("..", "..", "policies", "templates", name+".cedar.tmpl"))
		if err != nil {
			t.Fatalf("embedded template %s has no copy in policies/templates/: %v", name, err)
		}
		if !bytes.Equal(emb, disk) {
			t.Errorf("policies/templates/%s.cedar.tmpl differs from internal/policy/templates/", name)
		}
	}
	disk, _ := filepath.Glob(filepath.Join("..", "..", "policies", "templates", "*"))
	if len(disk) != len(TemplateNames()) {
		t.Fatalf("policies/templates has %d files, %d templates embedded", len(disk), len(TemplateNames()))
	}
}

func TestTemplateRejectsBadParams(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    TemplateParams
	}{
		{"nope", TemplateParams{Role: "r"}},
		{"../defaults/demo", TemplateParams{Role: "r"}},
		{"monitor", TemplateParams{Role: ""}},
		{"monitor", TemplateParams{Role: `x"); permit(principal, action, resource); //`}},
		{"submit-only", TemplateParams{Role: "r"}}, // no devices
		{"submit-only", TemplateParams{Role: "r", Devices: []string{`ionq/sim"] || true || resource in ["`}}},
		{"simulator-only", TemplateParams{Role: "r", Devices: []string{"no-slash"}}},
	} {
		if b, err := Template(tc.name, tc.p); err == nil || !errors.Is(err, ErrTemplate) {
			t.Errorf("Template(%q, %+v) = %s, %v; want ErrTemplate", tc.name, tc.p, b, err)
		}
	}
}

func TestShippedSuitePasses(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "policies", "tests", "templates.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cases, err := LoadCases(data)
	if err != nil {
		t.Fatal(err)
	}
	// The suite covers every template.
	for _, s := range suiteSetup {
		if !slices.ContainsFunc(cases, func(c Case) bool { return c.Principal.Role == s.params.Role }) {
			t.Errorf("no case for template %s (role %s)", s.template, s.params.Role)
		}
	}
	for _, r := range RunCases(templateEngine(t), cases) {
		if !r.Pass {
			t.Error(r.Diff)
		}
	}
}

func TestWrongCaseReportedWithDiff(t *testing.T) {
	cases, err := LoadCases([]byte(`
- name: qpu refused for sim-only
  principal: {id: a1, role: sim}
  action: SubmitJob
  resource: {device: ionq/qpu.forte-1, kind: qpu, qubits: 36}
  expect: allow
- name: right outcome, wrong policy
  principal: {id: a1, role: sim}
  action: SubmitJob
  resource: {device: ionq/simulator, kind: simulator}
  expect: allow
  policies: [sim-no-qpu]
- name: correct
  principal: {id: a1, role: sim}
  action: SubmitJob
  resource: {device: ionq/simulator, kind: simulator}
  expect: allow
  policies: [sim-submit-simulators]
`))
	if err != nil {
		t.Fatal(err)
	}
	res := RunCases(templateEngine(t), cases)
	want := `case "qpu refused for sim-only": want allow, got deny (policies: ["sim-no-qpu"]; reason: denied by policy "sim-no-qpu")`
	if res[0].Pass || res[0].Diff != want {
		t.Errorf("diff = %q\nwant   %q", res[0].Diff, want)
	}
	want = `case "right outcome, wrong policy": want policies ["sim-no-qpu"], got ["sim-submit-simulators"] (policies: ["sim-submit-simulators"]; reason: permitted by policy "sim-submit-simulators")`
	if res[1].Pass || res[1].Diff != want {
		t.Errorf("diff = %q\nwant   %q", res[1].Diff, want)
	}
	if !res[2].Pass || res[2].Diff != "" {
		t.Errorf("correct case failed: %+v", res[2])
	}
}

func TestLoadCasesRejectsBadSuites(t *testing.T) {
	for name, src := range map[string]string{
		"unknown field":   "- {name: a, action: ListDevices, resource: {provider: ionq}, expect: deny, colour: red}",
		"bad expect":      "- {name: a, action: ListDevices, resource: {provider: ionq}, expect: maybe}",
		"no name":         "- {action: ListDevices, resource: {provider: ionq}, expect: deny}",
		"two resources":   "- {name: a, action: ReadJob, resource: {provider: ionq, job: {id: j, owner: o, device: ionq/x}}, expect: deny}",
		"no resource":     "- {name: a, action: ReadJob, resource: {}, expect: deny}",
		"device no kind":  "- {name: a, action: SubmitJob, resource: {device: ionq/simulator}, expect: deny}",
		"duplicate names": "- {name: a, action: ListDevices, resource: {provider: ionq}, expect: deny}\n- {name: a, action: ListDevices, resource: {provider: ionq}, expect: deny}",
		"not a list":      "name: a",
		"empty":           "",
		"bad broker":      "- {name: a, action: AdminKeys, resource: {broker: other}, expect: deny}",
	} {
		if _, err := LoadCases([]byte(src)); err == nil || !errors.Is(err, ErrCases) {
			t.Errorf("%s: err = %v, want ErrCases", name, err)
		}
	}
	// All problems at once.
	_, err := LoadCases([]byte("- {name: a, action: ListDevices, resource: {provider: ionq}, expect: maybe}\n- {name: b, action: ListDevices, resource: {}, expect: deny}"))
	if err == nil || !strings.Contains(err.Error(), `"a"`) || !strings.Contains(err.Error(), `"b"`) {
		t.Errorf("err = %v, want both cases named", err)
	}
}

// job is a job on the IonQ simulator owned by owner.
func job(id, owner, team string) *Job {
	return &Job{ID: id, Owner: owner, Team: team, DeviceID: "ionq/simulator"}
}

// TestTemplateIntents shows each template's intent, attack by attack.
func TestTemplateIntents(t *testing.T) {
	e := templateEngine(t)
	submitter := Agent{ID: "s1", Role: "submitter"}
	mon := Agent{ID: "m1", Role: "monitor", Team: "research"}
	sim := Agent{ID: "q1", Role: "sim"}
	hw := Agent{ID: "h1", Role: "hw"}
	admin := Agent{ID: "ad1", Role: "admin"}
	rigetti := &Device{Provider: "rigetti", Name: "Ankaa-3", Kind: KindQPU, Qubits: 84}
	approved := func(r Request) Request { r.Context.Approved = true; return r }
	for _, tc := range []struct {
		name  string
		req   Request
		allow bool
	}{
		{"submit-only: own job readable", Request{Agent: submitter, Action: ActionReadJob, Job: job("j1", "s1", "")}, true},
		{"submit-only: other's job unreadable", Request{Agent: submitter, Action: ActionReadJob, Job: job("j2", "s2", "")}, false},
		{"submit-only: other's result unreadable", Request{Agent: submitter, Action: ActionReadResult, Job: job("j2", "s2", "")}, false},
		{"submit-only: other's job not cancellable", Request{Agent: submitter, Action: ActionCancelJob, Job: job("j2", "s2", "")}, false},
		{"submit-only: listed device", submit(submitter, forte(), 10), true},
		{"submit-only: unlisted device", submit(submitter, rigetti, 10), false},
		{"submit-only: unlisted device even approved", approved(submit(submitter, rigetti, 10)), false},
		{"submit-only: no admin", approved(Request{Agent: submitter, Action: ActionAdminKeys}), false},
		{"monitor: cannot submit", submit(mon, simulator(), 1), false},
		{"monitor: cannot submit even approved", approved(submit(mon, simulator(), 1)), false},
		{"monitor: cannot reserve", Request{Agent: mon, Action: ActionReserve, Device: simulator()}, false},
		{"monitor: reads team job", Request{Agent: mon, Action: ActionReadJob, Job: job("j3", "x", "research")}, true},
		{"monitor: no other team's job", Request{Agent: mon, Action: ActionReadJob, Job: job("j4", "y", "finance")}, false},
		{"monitor: no team results", Request{Agent: mon, Action: ActionReadResult, Job: job("j3", "x", "research")}, false},
		{"monitor without team: no empty-team match", Request{Agent: Agent{ID: "m2", Role: "monitor"}, Action: ActionReadJob, Job: job("j5", "z", "")}, false},
		{"simulator-only: simulator", submit(sim, simulator(), 10), true},
		{"simulator-only: QPU refused", submit(sim, forte(), 10), false},
		{"simulator-only: other QPU refused", submit(sim, rigetti, 10), false},
		{"simulator-only: QPU refused when approved", approved(submit(sim, forte(), 10)), false},
		{"simulator-only: QPU reservation refused", approved(Request{Agent: sim, Action: ActionReserve, Device: forte()}), false},
		{"hardware-with-approval: simulator", submit(hw, simulator(), 10), true},
		{"hardware-with-approval: QPU refused until approved", submit(hw, forte(), 10), false},
		{"hardware-with-approval: QPU once approved", approved(submit(hw, forte(), 10)), true},
		{"admin: refused without approval", Request{Agent: admin, Action: ActionAdminRoles}, false},
		{"admin: allowed approved", approved(Request{Agent: admin, Action: ActionAdminAudit}), true},
		{"admin: not a submitter", approved(submit(admin, simulator(), 1)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := e.Decide(tc.req)
			if d.Allowed != tc.allow || len(d.Errors) != 0 {
				t.Fatalf("allowed = %v, want %v: %+v", d.Allowed, tc.allow, d)
			}
		})
	}
}

// TestForbidOverridesTemplatePermits adds an operator's broad permit on top
// of the templates: every template forbid still holds.
func TestForbidOverridesTemplatePermits(t *testing.T) {
	e := templateEngine(t, File{Name: "broad.cedar", Data: []byte(
		`@id("broad") permit(principal, action, resource);`)})
	for _, tc := range []struct {
		req    Request
		forbid string
	}{
		{submit(Agent{ID: "q1", Role: "sim"}, forte(), 1), "sim-no-qpu"},
		{submit(Agent{ID: "h1", Role: "hw"}, forte(), 1), "hw-qpu-needs-approval"},
		{submit(Agent{ID: "m1", Role: "monitor"}, simulator(), 1), "monitor-no-changes"},
		{Request{Agent: Agent{ID: "b1", Role: "blind"}, Action: ActionReadResult, Job: job("j", "b1", "")}, "blind-no-results"},
		{Request{Agent: Agent{ID: "ad", Role: "admin"}, Action: ActionAdminKeys}, "admin-admin-needs-approval"},
	} {
		wantDeny(t, e.Decide(tc.req), "", tc.forbid)
	}
	// The broad permit does allow what no forbid covers.
	wantAllow(t, e.Decide(submit(Agent{ID: "x", Role: "other"}, forte(), 1)), "broad")
}

func TestJobAndAdminRequestsValidated(t *testing.T) {
	e := newEngine(t, File{Name: "all.cedar", Data: []byte(`@id("all") permit(principal, action, resource);`)})
	a := Agent{ID: "a1", Role: "r"}
	for name, req := range map[string]Request{
		"job on SubmitJob":         {Agent: a, Action: ActionSubmitJob, Device: simulator(), Job: job("j", "a1", "")},
		"job without owner":        {Agent: a, Action: ActionReadJob, Job: &Job{ID: "j", DeviceID: "ionq/simulator"}},
		"job without id":           {Agent: a, Action: ActionReadJob, Job: &Job{Owner: "a1", DeviceID: "ionq/simulator"}},
		"job device malformed":     {Agent: a, Action: ActionReadJob, Job: &Job{ID: "j", Owner: "a1", DeviceID: "ionq"}},
		"job device no name":       {Agent: a, Action: ActionReadJob, Job: &Job{ID: "j", Owner: "a1", DeviceID: "ionq/"}},
		"job provider mismatch":    {Agent: a, Action: ActionReadJob, Job: &Job{ID: "j", Owner: "a1", Provider: "ibm", DeviceID: "ionq/simulator"}},
		"request provider differs": {Agent: a, Action: ActionReadJob, Provider: "ibm", Job: job("j", "a1", "")},
		"device is not the job's":  {Agent: a, Action: ActionReadJob, Device: forte(), Job: job("j", "a1", "")},
		"admin with provider":      {Agent: a, Action: ActionAdminKeys, Provider: "ionq"},
		"admin with device":        {Agent: a, Action: ActionAdminKeys, Device: simulator()},
		"admin group as action":    {Agent: a, Action: ActionGroupAdmin},
		"reserve without device":   {Agent: a, Action: ActionReserve, Provider: "ionq"},
	} {
		if d := e.Decide(req); d.Allowed || len(d.Errors) == 0 || !strings.HasPrefix(d.Reason, "invalid request: ") {
			t.Errorf("%s: %+v", name, d)
		}
	}
	// Valid shapes are allowed by the catch-all permit.
	for name, req := range map[string]Request{
		"job":                {Agent: a, Action: ActionCancelJob, Job: job("j", "a1", "")},
		"job with device":    {Agent: a, Action: ActionReadResult, Device: simulator(), Job: job("j", "a1", "")},
		"read by device":     {Agent: a, Action: ActionReadJob, Device: simulator()},
		"read by provider":   {Agent: a, Action: ActionReadJob, Provider: "ionq"},
		"admin":              {Agent: a, Action: ActionAdminProviders},
		"unwrap on provider": {Agent: a, Action: ActionUnwrapSecret, Provider: "ionq"},
	} {
		if d := e.Decide(req); !d.Allowed {
			t.Errorf("%s: %+v", name, d)
		}
	}
}

func TestJobEntityAttributes(t *testing.T) {
	e := newEngine(t, File{Name: "j.cedar", Data: []byte(`
@id("team-ionq-qpu") permit(principal, action == Action::"ReadJob", resource is Job)
when { resource.team == "t1" && resource.provider == "ionq" && resource in Provider::"ionq" && resource in Device::"ionq/qpu.forte-1" && resource.device.kind == "qpu" };
@id("env-vendor") permit(principal, action == Action::"SubmitJob", resource)
when { principal.environment == "prod" && resource.vendor == "ionq" && resource.arn == "arn:x" && resource.kind == "qpu" };
`)})
	a := Agent{ID: "a1", Environment: "prod"}
	j := &Job{ID: "j", Owner: "a2", Team: "t1", DeviceID: "ionq/qpu.forte-1"}
	wantAllow(t, e.Decide(Request{Agent: a, Action: ActionReadJob, Job: j, Device: forte()}), "team-ionq-qpu")
	// Without the device, resource.device.kind cannot be read: an error, never an allow.
	if d := e.Decide(Request{Agent: a, Action: ActionReadJob, Job: j}); d.Allowed || len(d.Errors) != 1 {
		t.Fatalf("job without device: %+v", d)
	}
	dev := &Device{Provider: "braket", Name: "Aria-1", Kind: KindQPU, Qubits: 25, Vendor: "ionq", ARN: "arn:x"}
	wantAllow(t, e.Decide(submit(a, dev, 1)), "env-vendor")
	// Vendor defaults to the provider.
	dev2 := &Device{Provider: "ionq", Name: "qpu.aria-1", Kind: KindQPU, ARN: "arn:x"}
	wantAllow(t, e.Decide(submit(a, dev2, 1)), "env-vendor")
	a.Environment = "dev"
	wantDeny(t, e.Decide(submit(a, dev, 1)), "")
	// The device cache keys on every field: a changed kind is seen.
	dev3 := *dev
	dev3.Kind = KindSimulator
	wantDeny(t, e.Decide(submit(Agent{ID: "a1", Environment: "prod"}, &dev3, 1)), "")
}
