package policy

import (
	"bytes"
	"go/parser"
	"go/token"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func cedarFile(name, src string) File { return File{Name: name, Data: []byte(src)} }

func TestLabelsAreTags(t *testing.T) {
	e := newEngine(t, cedarFile("l.cedar", `@id("prod-only") permit(principal, action, resource)
		when { principal.hasTag("env") && principal.getTag("env") == "prod" };`))
	a := demoAgent
	wantDeny(t, e.Decide(submit(a, simulator(), 1)), "")
	a.Labels = map[string]string{"env": "dev"}
	wantDeny(t, e.Decide(submit(a, simulator(), 1)), "")
	a.Labels = map[string]string{"env": "prod", "x": "y"}
	wantAllow(t, e.Decide(submit(a, simulator(), 1)), "prod-only")
}

func TestAgentAttributesAndParents(t *testing.T) {
	e := newEngine(t,
		cedarFile("t.cedar", `@id("team") permit(principal in Team::"research", action == Action::"ListDevices", resource == Provider::"ibm");`),
		cedarFile("o.cedar", `@id("owner") permit(principal, action == Action::"ReadJob", resource in Provider::"ionq")
			when { principal.owner == "alice" && principal.auth_method == "oidc" && principal.role == "demo" && principal.team == "research" };`),
		cedarFile("a.cedar", `@id("one-agent") permit(principal == Agent::"agent-7", action == Action::"IssueCredentials", resource);`),
	)
	a := Agent{ID: "agent-1", Role: "demo", Owner: "alice", Team: "research", AuthMethod: "oidc"}
	list := Request{Agent: a, Action: ActionListDevices, Provider: "ibm"}
	wantAllow(t, e.Decide(list), "team")
	list.Provider = "ionq"
	wantDeny(t, e.Decide(list), `no policy permits ListDevices on Provider "ionq"`)
	noTeam := a
	noTeam.Team = ""
	wantDeny(t, e.Decide(Request{Agent: noTeam, Action: ActionListDevices, Provider: "ibm"}), "")

	// Device in Provider: the hierarchy is built from the device's provider.
	read := Request{Agent: a, Action: ActionReadJob, Device: forte()}
	wantAllow(t, e.Decide(read), "owner")
	b := a
	b.AuthMethod = "approle"
	read.Agent = b
	wantDeny(t, e.Decide(read), "")

	wantAllow(t, e.Decide(Request{Agent: Agent{ID: "agent-7"}, Action: ActionIssueCredentials, Provider: "aws"}), "one-agent")
	wantDeny(t, e.Decide(Request{Agent: Agent{ID: "agent-8"}, Action: ActionIssueCredentials, Provider: "aws"}), "")
}

func TestDeviceAttributes(t *testing.T) {
	e := newEngine(t, cedarFile("d.cedar", `@id("small-sims") permit(principal, action == Action::"SubmitJob", resource)
		when { resource.kind == "simulator" && resource.qubits >= context.qubits && resource.provider == "ionq" && resource.name like "sim*" };`))
	r := submit(demoAgent, simulator(), 10)
	wantAllow(t, e.Decide(r), "small-sims")
	r.Context.Qubits = 30 // more than the simulator's 29
	wantDeny(t, e.Decide(r), "")
	wantDeny(t, e.Decide(submit(demoAgent, forte(), 10)), "")
}

func TestContextCostDecimal(t *testing.T) {
	e := newEngine(t, cedarFile("c.cedar", `@id("cheap") permit(principal, action, resource)
		when { context.estimated_cost_usd.lessThanOrEqual(decimal("0.2900")) };`))
	for _, tc := range []struct {
		usd   float64
		allow bool
	}{{0, true}, {0.29, true}, {0.1 + 0.19, true}, {0.28999, true}, {0.29001, false}, {0.2901, false}, {5, false}} {
		r := submit(demoAgent, simulator(), 1)
		r.Context.EstimatedCostUSD = tc.usd
		if d := e.Decide(r); d.Allowed != tc.allow {
			t.Errorf("cost %v: allowed=%v, want %v (%+v)", tc.usd, d.Allowed, tc.allow, d)
		}
	}
}

func TestCostUnitsRoundsUp(t *testing.T) {
	for usd, want := range map[float64]int64{0: 0, 0.29: 2900, 0.1: 1000, 0.12341: 1235, 0.00001: 1, 12.5: 125000, 1e9: 1e13} {
		if got := costUnits(usd); got != want {
			t.Errorf("costUnits(%v) = %d, want %d", usd, got, want)
		}
	}
}

func TestContextSourceIPHourWeekday(t *testing.T) {
	e := newEngine(t, cedarFile("n.cedar", `@id("office") permit(principal, action, resource)
		when { context has source_ip && context.source_ip.isInRange(ip("10.0.0.0/8"))
		       && context.hour >= 9 && context.hour < 17 && context.weekday != 0 && context.weekday != 6
		       && context.program_sha256 == "abc" };`))
	base := submit(demoAgent, simulator(), 1)
	base.Context = Context{SourceIP: "10.1.2.3", Hour: 10, Weekday: 3, ProgramSHA256: "abc"}
	wantAllow(t, e.Decide(base), "office")
	mapped := base
	mapped.Context.SourceIP = "::ffff:10.1.2.3"
	wantAllow(t, e.Decide(mapped), "office")
	for name, mod := range map[string]func(*Context){
		"outside range": func(c *Context) { c.SourceIP = "192.168.1.1" },
		"unparseable":   func(c *Context) { c.SourceIP = "not-an-ip" },
		"prefix":        func(c *Context) { c.SourceIP = "10.0.0.0/8" },
		"empty":         func(c *Context) { c.SourceIP = "" },
		"early":         func(c *Context) { c.Hour = 8 },
		"sunday":        func(c *Context) { c.Weekday = 0 },
		"other program": func(c *Context) { c.ProgramSHA256 = "abd" },
	} {
		r := base
		mod(&r.Context)
		if d := e.Decide(r); d.Allowed || len(d.Errors) != 0 {
			t.Errorf("%s: %+v", name, d)
		}
	}
}

func TestEvaluationErrorsNeverAllow(t *testing.T) {
	// Both policies validate but overflow at runtime for huge shot counts.
	permitErr := cedarFile("p.cedar", `@id("overflowing-permit") permit(principal, action, resource) when { context.shots + 1 > 0 };`)
	forbidErr := cedarFile("f.cedar", `@id("overflowing-forbid") forbid(principal, action, resource) when { context.shots * 2 > 100 };`)
	r := submit(demoAgent, simulator(), math.MaxInt64)

	// A permit that errors does not permit.
	d := newEngine(t, permitErr).Decide(r)
	wantDeny(t, d, `no policy permits SubmitJob on Device "ionq/simulator" (1 policy failed to evaluate)`)
	if len(d.Errors) != 1 || !strings.Contains(d.Errors[0], `"overflowing-permit" (p.cedar:1:1)`) {
		t.Fatalf("errors = %q", d.Errors)
	}

	// A forbid that errors denies even though another permit matched (fail closed).
	d = newEngine(t, allowAll, forbidErr).Decide(r)
	wantDeny(t, d, `denied: forbid policy "overflowing-forbid" could not be evaluated`, "overflowing-forbid")
	if len(d.Errors) != 1 || !strings.Contains(d.Errors[0], "overflow") {
		t.Fatalf("errors = %q", d.Errors)
	}
	// Without the overflow the same set allows.
	wantAllow(t, newEngine(t, allowAll, forbidErr).Decide(submit(demoAgent, simulator(), 10)), "all")
}

func TestDefaultFilesMatchShippedPolicies(t *testing.T) {
	shipped, err := filepath.Glob(filepath.Join("..", "..", "policies", "*.cedar"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range DefaultFiles() {
		names = append(names, f.Name)
		disk, err := os.ReadFile(filepath.Join("..", "..", "policies", f.Name))
		if err != nil {
			t.Fatalf("embedded %s has no copy in policies/: %v", f.Name, err)
		}
		if !bytes.Equal(disk, f.Data) {
			t.Errorf("policies/%s differs from internal/policy/defaults/%s", f.Name, f.Name)
		}
	}
	var disk []string
	for _, p := range shipped {
		disk = append(disk, filepath.Base(p))
	}
	if !slices.Equal(names, disk) || len(names) == 0 {
		t.Fatalf("embedded %q, shipped %q", names, disk)
	}
}

func TestLoadFiles(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.cedar")
	if err := os.WriteFile(a, []byte(`permit(principal, action == Action::"ListDevices", resource);`), 0o600); err != nil {
		t.Fatal(err)
	}
	e, err := LoadFiles([]string{a, filepath.Join("..", "..", "policies", "demo.cedar")})
	if err != nil {
		t.Fatal(err)
	}
	if ids := e.PolicyIDs(); len(ids) != 6 || ids[0] != "a.cedar#0" || !slices.Contains(ids, "demo-no-qpu") {
		t.Fatalf("ids = %q", ids)
	}
	wantDeny(t, e.Decide(submit(demoAgent, forte(), 1)), `denied by policy "demo-no-qpu"`, "demo-no-qpu")

	bad := filepath.Join(dir, "bad.cedar")
	if err := os.WriteFile(bad, []byte(`permit(`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadFiles([]string{filepath.Join(dir, "missing.cedar"), bad})
	if err == nil || !strings.Contains(err.Error(), "missing.cedar") || !strings.Contains(err.Error(), "bad.cedar") {
		t.Fatalf("err = %v", err)
	}
}

func TestSchemaEmbedded(t *testing.T) {
	disk, err := os.ReadFile("schema.cedarschema")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(Schema(), disk) {
		t.Fatal("Schema() differs from schema.cedarschema")
	}
	if _, err := resolvedSchema(); err != nil {
		t.Fatal(err)
	}
}

// TestPure keeps the decision path free of I/O: only load.go may touch the
// file system, and nothing may import networking or process packages.
func TestPure(t *testing.T) {
	forbidden := []string{"net", "net/http", "os/exec", "io/ioutil", "syscall", "database/sql", "log", "log/slog"}
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if slices.Contains(forbidden, path) {
				t.Errorf("%s imports %s", name, path)
			}
			if (path == "os" || path == "path/filepath") && name != "load.go" {
				t.Errorf("%s imports %s; only load.go may do file I/O", name, path)
			}
		}
	}
}

// TestDocExamplesValidate keeps the Cedar examples in docs/policies.md
// loadable against the schema.
func TestDocExamplesValidate(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "policies.md"))
	if err != nil {
		t.Fatal(err)
	}
	var files []File
	for i, block := range strings.Split(string(doc), "```cedar\n")[1:] {
		src, _, ok := strings.Cut(block, "```")
		if !ok {
			t.Fatalf("unterminated cedar block %d", i)
		}
		files = append(files, File{Name: "doc" + strconv.Itoa(i) + ".cedar", Data: []byte(src)})
	}
	if len(files) < 3 {
		t.Fatalf("found %d cedar blocks", len(files))
	}
	// The demo block repeats the shipped ids, so load each block alone.
	for _, f := range files {
		if _, err := New([]File{f}); err != nil {
			t.Errorf("%s: %v", f.Name, err)
		}
	}
}
