package policy

import (
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
)

// demoAgent is an agent holding the dev demo role.
var demoAgent = Agent{ID: "agent-1", Role: "demo", Owner: "alice", AuthMethod: "approle"}

func simulator() *Device {
	return &Device{Provider: "ionq", Name: "simulator", Kind: KindSimulator, Qubits: 29}
}

func forte() *Device {
	return &Device{Provider: "ionq", Name: "qpu.forte-1", Kind: KindQPU, Qubits: 36}
}

func submit(a Agent, d *Device, shots int) Request {
	return Request{Agent: a, Action: ActionSubmitJob, Provider: d.Provider, Device: d, Context: Context{Shots: shots, Qubits: 2}}
}

func newEngine(t testing.TB, files ...File) *Engine {
	t.Helper()
	e, err := New(files)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

func demoEngine(t testing.TB, extra ...File) *Engine {
	t.Helper()
	return newEngine(t, append(DefaultFiles(), extra...)...)
}

func wantAllow(t *testing.T, d Decision, policies ...string) {
	t.Helper()
	if !d.Allowed || !slices.Equal(d.Policies, policies) || len(d.Errors) != 0 {
		t.Fatalf("want allow by %v, got %+v", policies, d)
	}
}

func wantDeny(t *testing.T, d Decision, reason string, policies ...string) {
	t.Helper()
	if d.Allowed {
		t.Fatalf("want deny, got allow: %+v", d)
	}
	if !slices.Equal(d.Policies, policies) {
		t.Fatalf("policies = %q, want %q (%+v)", d.Policies, policies, d)
	}
	if reason != "" && d.Reason != reason {
		t.Fatalf("reason = %q, want %q", d.Reason, reason)
	}
}

func TestDemoAllowsSimulatorNamingPermit(t *testing.T) {
	e := demoEngine(t)
	d := e.Decide(submit(demoAgent, simulator(), 1000))
	wantAllow(t, d, "demo-submit-simulator")
	if d.Reason != `permitted by policy "demo-submit-simulator"` {
		t.Fatalf("reason = %q", d.Reason)
	}
}

func TestDemoForbidsQPUNamingForbid(t *testing.T) {
	e := demoEngine(t)
	wantDeny(t, e.Decide(submit(demoAgent, forte(), 100)), `denied by policy "demo-no-qpu"`, "demo-no-qpu")
}

func TestForbidWinsOverPermit(t *testing.T) {
	// An operator adds a broad permit; the demo forbid still refuses the QPU.
	e := demoEngine(t, File{Name: "broad.cedar", Data: []byte(
		`@id("demo-anything") permit(principal in Role::"demo", action, resource);`)})
	wantDeny(t, e.Decide(submit(demoAgent, forte(), 100)), `denied by policy "demo-no-qpu"`, "demo-no-qpu")
	// And the broad permit does allow what nothing forbids.
	wantAllow(t, e.Decide(submit(demoAgent, simulator(), 1)), "demo-submit-simulator", "demo-anything")
}

func TestDefaultDenyNamesActionAndResource(t *testing.T) {
	e := demoEngine(t)
	other := Agent{ID: "agent-2", Role: "ops"}
	wantDeny(t, e.Decide(submit(other, simulator(), 10)),
		`no policy permits SubmitJob on Device "ionq/simulator"`)
	// The demo role only has the IonQ simulator.
	sv1 := &Device{Provider: "braket", Name: "sv1", Kind: KindSimulator, Qubits: 34}
	wantDeny(t, e.Decide(submit(demoAgent, sv1, 10)),
		`no policy permits SubmitJob on Device "braket/sv1"`)
	// Provider-level resource.
	wantDeny(t, e.Decide(Request{Agent: demoAgent, Action: ActionIssueCredentials, Provider: "ionq"}),
		`no policy permits IssueCredentials on Provider "ionq"`)
	// An empty policy set denies everything.
	empty := newEngine(t)
	wantDeny(t, empty.Decide(submit(demoAgent, simulator(), 1)),
		`no policy permits SubmitJob on Device "ionq/simulator"`)
}

func TestDemoReadAndList(t *testing.T) {
	e := demoEngine(t)
	wantAllow(t, e.Decide(Request{Agent: demoAgent, Action: ActionListDevices, Provider: "ionq"}), "demo-list-devices")
	own := &Job{ID: "job-1", Owner: demoAgent.ID, Provider: "ionq", DeviceID: "ionq/simulator"}
	for _, a := range []string{ActionReadJob, ActionReadResult, ActionCancelJob} {
		wantAllow(t, e.Decide(Request{Agent: demoAgent, Action: a, Job: own, Device: simulator()}), "demo-read-jobs")
	}
	// Someone else's job, or a read without the job, is not the demo role's.
	other := &Job{ID: "job-2", Owner: "agent-2", Provider: "ionq", DeviceID: "ionq/simulator"}
	wantDeny(t, e.Decide(Request{Agent: demoAgent, Action: ActionReadResult, Job: other, Device: simulator()}), "")
	wantDeny(t, e.Decide(Request{Agent: demoAgent, Action: ActionReadJob, Provider: "ionq"}), "")
}

func TestShotsLimit(t *testing.T) {
	e := demoEngine(t)
	wantAllow(t, e.Decide(submit(demoAgent, simulator(), 10000)), "demo-submit-simulator")
	wantDeny(t, e.Decide(submit(demoAgent, simulator(), 10001)),
		`no policy permits SubmitJob on Device "ionq/simulator"`)
}

// allowAll permits everything; requests refused under it are refused by
// the engine's input checks, not by policy.
var allowAll = File{Name: "all.cedar", Data: []byte(`@id("all") permit(principal, action, resource);`)}

func TestUnknownActionRefused(t *testing.T) {
	e := newEngine(t, allowAll)
	for _, action := range []string{"DeleteEverything", "", "submitjob", `SubmitJob"`} {
		d := e.Decide(Request{Agent: demoAgent, Action: action, Provider: "ionq", Device: simulator()})
		if d.Allowed || len(d.Policies) != 0 || len(d.Errors) != 1 || !strings.Contains(d.Errors[0], "unknown action") {
			t.Fatalf("action %q: %+v", action, d)
		}
		if !strings.HasPrefix(d.Reason, "invalid request: unknown action") {
			t.Fatalf("reason = %q", d.Reason)
		}
	}
}

func TestInvalidRequestsRefused(t *testing.T) {
	e := newEngine(t, allowAll)
	ok := submit(demoAgent, simulator(), 10)
	wantAllow(t, e.Decide(ok), "all")
	tests := []struct {
		name string
		mod  func(r *Request)
		want string
	}{
		{"no agent id", func(r *Request) { r.Agent.ID = "" }, "agent id is empty"},
		{"submit without device", func(r *Request) { r.Device = nil }, "requires a device"},
		{"list with device", func(r *Request) { r.Action = ActionListDevices }, "not a device"},
		{"provider mismatch", func(r *Request) { r.Provider = "braket" }, "does not match"},
		{"slash in provider", func(r *Request) { r.Provider = "ionq/x"; r.Device.Provider = "ionq/x" }, "contains '/'"},
		{"no provider", func(r *Request) { r.Provider = ""; r.Device.Provider = "" }, "provider is empty"},
		{"no device name", func(r *Request) { r.Device.Name = "" }, "device name is empty"},
		{"bad kind", func(r *Request) { r.Device.Kind = "QPU" }, "device kind"},
		{"negative device qubits", func(r *Request) { r.Device.Qubits = -1 }, "negative"},
		{"negative shots", func(r *Request) { r.Context.Shots = -5 }, "shots -5"},
		{"negative qubits", func(r *Request) { r.Context.Qubits = -1 }, "qubits -1"},
		{"NaN cost", func(r *Request) { r.Context.EstimatedCostUSD = math.NaN() }, "estimated cost"},
		{"negative cost", func(r *Request) { r.Context.EstimatedCostUSD = -1 }, "estimated cost"},
		{"huge cost", func(r *Request) { r.Context.EstimatedCostUSD = math.Inf(1) }, "estimated cost"},
		{"hour", func(r *Request) { r.Context.Hour = 24 }, "hour 24"},
		{"weekday", func(r *Request) { r.Context.Weekday = 7 }, "weekday 7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := submit(demoAgent, simulator(), 10)
			tc.mod(&r)
			d := e.Decide(r)
			if d.Allowed || len(d.Policies) != 0 || len(d.Errors) != 1 || !strings.Contains(d.Errors[0], tc.want) {
				t.Fatalf("got %+v, want error containing %q", d, tc.want)
			}
		})
	}
	// The provider may be left empty when the device names it.
	r := submit(demoAgent, simulator(), 10)
	r.Provider = ""
	wantAllow(t, e.Decide(r), "all")
}

func TestLoadReportsEveryProblemWithFileAndPosition(t *testing.T) {
	_, err := New([]File{
		{Name: "good.cedar", Data: []byte(`permit(principal, action, resource);`)},
		{Name: "syntax.cedar", Data: []byte("permit(principal, action, resource);\n\npermit(principal, action, resource) when { context.shots <= };")},
		{Name: "schema.cedar", Data: []byte("// comment\n@id(\"colour\")\npermit(principal, action, resource) when { resource.colour == \"red\" };")},
	})
	if err == nil {
		t.Fatal("want error")
	}
	if !errors.Is(err, ErrLoad) {
		t.Fatalf("not ErrLoad: %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"syntax.cedar:3:", "parse error", `schema.cedar:2:1: policy "colour"`, "colour"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "<input>") || strings.Contains(msg, "good.cedar") {
		t.Errorf("unexpected text in %q", msg)
	}
	var le *LoadError
	if !errors.As(err, &le) || le.File != "syntax.cedar" || le.Line != 3 {
		t.Fatalf("first LoadError = %+v", le)
	}
}

func TestSchemaViolationsRejected(t *testing.T) {
	bad := map[string]string{
		"unknown action":        `permit(principal, action == Action::"Nuke", resource);`,
		"unknown attribute":     `permit(principal, action, resource) when { principal.clearance == "top" };`,
		"unknown entity type":   `permit(principal == User::"bob", action, resource);`,
		"tag without hasTag":    `permit(principal, action, resource) when { principal.getTag("env") == "prod" };`,
		"optional without has":  `permit(principal, action, resource) when { context.source_ip.isLoopback() };`,
		"type mismatch":         `permit(principal, action, resource) when { context.shots == "many" };`,
		"kind on provider only": `permit(principal, action == Action::"ListDevices", resource) when { resource.kind == "qpu" };`,
	}
	for name, src := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := New([]File{{Name: "bad.cedar", Data: []byte(src)}})
			if err == nil || !errors.Is(err, ErrLoad) || !strings.Contains(err.Error(), "bad.cedar:1:1") {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestDuplicateIDs(t *testing.T) {
	_, err := New([]File{
		{Name: "a.cedar", Data: []byte(`@id("same") permit(principal, action, resource);`)},
		{Name: "b.cedar", Data: []byte("\n@id(\"same\") forbid(principal, action, resource);")},
	})
	if err == nil || !errors.Is(err, ErrLoad) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{`b.cedar:2:1: policy "same": duplicate policy id`, "a.cedar:1:1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// Default ids collide when the same file name is loaded twice.
	f := File{Name: "x.cedar", Data: []byte(`permit(principal, action, resource);`)}
	if _, err := New([]File{f, f}); err == nil || !strings.Contains(err.Error(), `"x.cedar#0": duplicate`) {
		t.Fatalf("err = %v", err)
	}
	// An explicit @id may not shadow another file's default id either.
	g := File{Name: "y.cedar", Data: []byte(`@id("x.cedar#0") permit(principal, action, resource);`)}
	if _, err := New([]File{f, g}); err == nil {
		t.Fatal("want duplicate error")
	}
	if _, err := New([]File{{Name: "e.cedar", Data: []byte(`@id("") permit(principal, action, resource);`)}}); err == nil {
		t.Fatal("empty @id accepted")
	}
}

func TestPolicyIDs(t *testing.T) {
	e := newEngine(t,
		File{Name: "f.cedar", Data: []byte(`permit(principal, action, resource); @id("named") forbid(principal, action, resource) when { context.shots > 5 }; permit(principal, action, resource);`)},
		File{Name: "g.cedar", Data: []byte(`permit(principal, action, resource);`)},
	)
	want := []string{"f.cedar#0", "named", "f.cedar#2", "g.cedar#0"}
	if got := e.PolicyIDs(); !slices.Equal(got, want) {
		t.Fatalf("PolicyIDs = %q, want %q", got, want)
	}
	got := e.PolicyIDs()
	got[0] = "mutated"
	if e.PolicyIDs()[0] != "f.cedar#0" {
		t.Fatal("PolicyIDs exposes internal state")
	}
	// Multiple determining permits are all named, in load order.
	d := e.Decide(submit(demoAgent, simulator(), 1))
	wantAllow(t, d, "f.cedar#0", "f.cedar#2", "g.cedar#0")
	if d.Reason != `permitted by policies "f.cedar#0", "f.cedar#2", "g.cedar#0"` {
		t.Fatalf("reason = %q", d.Reason)
	}
}

func TestConcurrentDecide(t *testing.T) {
	e := demoEngine(t)
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				allow := (g+i)%2 == 0
				dev := forte()
				if allow {
					dev = simulator()
				}
				d := e.Decide(submit(demoAgent, dev, 100+i))
				if d.Allowed != allow {
					errs <- d.Reason
					return
				}
				if !allow && (len(d.Policies) != 1 || d.Policies[0] != "demo-no-qpu") {
					errs <- d.Reason
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
}
