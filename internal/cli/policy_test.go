package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qbroker/qbroker/internal/policy"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), args, Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
	return code, out.String(), errb.String()
}

func examplePolicies(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "policies", "examples", "*.cedar"))
	if err != nil || len(files) != 6 {
		t.Fatalf("example policies: %v %v", files, err)
	}
	return files
}

// The shipped suite passes against the shipped examples, through the CLI.
func TestPolicyTestShippedSuite(t *testing.T) {
	code, out, errOut := run(t, "policy", "test", filepath.Join("..", "..", "policies", "tests", "templates.yaml"),
		"--policy", strings.Join(examplePolicies(t), ","))
	if code != 0 || !strings.Contains(out, "0 failed") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
}

// A case that should fail makes the command exit 1 with a readable diff.
func TestPolicyTestMismatchExits1(t *testing.T) {
	cases := filepath.Join(t.TempDir(), "cases.yaml")
	if err := os.WriteFile(cases, []byte(`
- name: demo may use the QPU (wrong on purpose)
  principal: {id: a1, role: demo}
  action: SubmitJob
  resource: {device: ionq/qpu.forte-1, kind: qpu, qubits: 36}
  context: {shots: 10}
  expect: allow
- name: demo may use the simulator
  principal: {id: a1, role: demo}
  action: SubmitJob
  resource: {device: ionq/simulator, kind: simulator, qubits: 29}
  context: {shots: 10}
  expect: allow
`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ := run(t, "policy", "test", cases)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	for _, want := range []string{"FAIL  demo may use the QPU", `want allow, got deny`, "demo-no-qpu", "ok    demo may use the simulator", "2 cases, 1 failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	code, out, _ := run(t, "policy", "validate", examplePolicies(t)[0])
	if code != 0 || !strings.HasPrefix(out, "ok:") {
		t.Fatalf("valid file: exit %d %s", code, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.cedar")
	os.WriteFile(bad, []byte("permit (principal, action, resource)\nwhen { resource.colour == \"red\" };\n"), 0o600)
	code, _, errOut := run(t, "policy", "validate", bad)
	if code != 1 || !strings.Contains(errOut, "bad.cedar:") {
		t.Fatalf("invalid file: exit %d, stderr %q (want file:line)", code, errOut)
	}
	broad := filepath.Join(t.TempDir(), "broad.cedar")
	os.WriteFile(broad, []byte("@id(\"anything-goes\")\npermit (principal, action == Action::\"SubmitJob\", resource);\n"), 0o600)
	code, _, errOut = run(t, "policy", "validate", broad)
	if code != 0 || !strings.Contains(errOut, "warning:") || !strings.Contains(errOut, "anything-goes") {
		t.Fatalf("overbroad policy: exit %d, stderr %q (want a lint warning)", code, errOut)
	}
}

func TestPolicyExplainLocal(t *testing.T) {
	req := filepath.Join(t.TempDir(), "req.yaml")
	os.WriteFile(req, []byte("principal: {id: a1, role: demo}\naction: SubmitJob\nresource: {device: ionq/qpu.forte-1, kind: qpu, qubits: 36}\ncontext: {shots: 10}\n"), 0o600)
	code, out, errOut := run(t, "policy", "explain", req)
	if code != 0 || !strings.Contains(out, `"decision": "deny"`) || !strings.Contains(out, "demo-no-qpu") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
}

// The shipped examples are exactly what the templates render, so the suite
// tests the templates users start from.
func TestExamplesMatchTemplates(t *testing.T) {
	for file, p := range map[string]struct {
		tmpl string
		args policy.TemplateParams
	}{
		"submitter.cedar": {"submit-only", policy.TemplateParams{Role: "submitter", Devices: []string{"ionq/simulator", "ionq/qpu.forte-1"}}},
		"blind.cedar":     {"submit-only", policy.TemplateParams{Role: "blind", Devices: []string{"ionq/simulator"}, NoResults: true}},
		"monitor.cedar":   {"monitor", policy.TemplateParams{Role: "monitor"}},
		"sim.cedar":       {"simulator-only", policy.TemplateParams{Role: "sim"}},
		"hw.cedar":        {"hardware-with-approval", policy.TemplateParams{Role: "hw"}},
		"admin.cedar":     {"admin", policy.TemplateParams{Role: "admin"}},
	} {
		want, err := policy.Template(p.tmpl, p.args)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("..", "..", "policies", "examples", file))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("policies/examples/%s differs from `qbroker policy template %s`: regenerate it", file, p.tmpl)
		}
	}
}
