package e2e

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	reHeld         = regexp.MustCompile(`held for approval as (apr_[a-z0-9]+)`)
	reWaiting      = regexp.MustCompile(`waiting for approval apr_[a-z0-9]+: 0 of 1 from admins, \d+s elapsed`)
	reConsoleLogin = regexp.MustCompile(`(?m)^  (http://127\.0\.0\.1:\d+/ui/login/once\?token=\S+)$`)
)

// The human-in-the-loop flow across processes: `qbroker demo` asks for
// Forte, shows a live waiting line with the console URL and waits; a person
// approves with `qbroker approvals approve` (the dev admin token from the
// exports); the demo goes on by itself and gets Bell counts from the
// emulated Forte. The dev console link signs in once.
func TestDevDemoHardwareApproval(t *testing.T) {
	t.Parallel()
	dev := startDev(t, baseEnv())
	env := dev.envFromExports()
	demo := startProc(t, "qbroker demo", env, "demo", "--device", "qpu.forte-1", "--shots", "1000", "--json")
	id := demo.waitLine(reHeld)[1]
	demo.waitLine(reWaiting)
	if !strings.Contains(demo.stdout.String(), "/ui/approvals/"+id) {
		t.Fatalf("demo does not show the console URL:\n%s", demo.stdout)
	}

	list, _ := runCmd(t, env, "", "approvals", "list")
	if !strings.Contains(list, id) || !strings.Contains(list, "qpu.forte-1") {
		t.Fatalf("approvals list lacks the request:\n%s", list)
	}
	out, _ := runCmd(t, env, "", "approvals", "approve", id, "--reason", "e2e: bell on forte")
	if !strings.Contains(out, id+": approved (1 of 1 approvals)") {
		t.Fatalf("approve printed %q", out)
	}
	select {
	case <-demo.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("demo did not finish after the approval:\n%s", demo.stdout)
	}
	if demo.err != nil {
		t.Fatalf("demo: %v\n%s\n%s", demo.err, demo.stdout, demo.stderr)
	}
	r := parseDemoResult(t, demo.stdout.String())
	if r.JobID == "" || r.Device != "qpu.forte-1" || r.Shots != 1000 {
		t.Fatalf("demo ran %s with %d shots, want qpu.forte-1 and 1000", r.Device, r.Shots)
	}
	assertBell(t, r.Counts)

	// The console link printed by qbroker dev signs the dev admin in, once.
	m := reConsoleLogin.FindStringSubmatch(dev.proc.stdout.String())
	if m == nil {
		t.Fatalf("qbroker dev printed no console login link:\n%s", dev.proc.stdout)
	}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := hc.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "dev-admin") || !strings.Contains(body, id) {
		t.Fatalf("console after the login link: %d\n%s", resp.StatusCode, body)
	}
	again, err := (&http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	again.Body.Close()
	if again.StatusCode < 400 {
		t.Fatalf("the one-time link worked twice: %d", again.StatusCode)
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
