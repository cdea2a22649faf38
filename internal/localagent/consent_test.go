package localagent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func qpuRequest() Request {
	return Request{Program: DescribeProcess(int32(os.Getpid())), What: "a job token", Role: "demo", Provider: "ionq",
		Device: "qpu.forte-1", Kind: "qpu", Shots: 100, CostUSD: 8.30}
}

// Issue 9, criterion 3 (terminal): the prompt is answered through a real
// pseudo-terminal with allow, deny, allow-for-10-minutes and no answer;
// no answer denies at the timeout. The prompt shows the program (pid,
// executable, command line), what it asks for and the cost estimate.
func TestTerminalConsentThroughPTY(t *testing.T) {
	m, s := openPTY(t)
	if !IsTerminal(s.Fd()) || !CanPrompt(s.Fd()) {
		t.Fatal("the pty's slave side is not a terminal this process may read")
	}
	if f, err := os.Open(os.DevNull); err == nil {
		if CanPrompt(f.Fd()) {
			t.Fatal("/dev/null can prompt")
		}
		f.Close()
	}
	screen := readPTY(m)
	log := slog.New(slog.DiscardHandler)
	c := NewConsent(Rules{Hardware: true, CostAboveUSD: 5, Timeout: 1500 * time.Millisecond}, NewTerminal(s, s), log)
	prompts := 0
	check := func(r Request, answer string) error {
		t.Helper()
		errc := make(chan error, 1)
		go func() { errc <- c.Check(context.Background(), r) }()
		if answer != "" {
			prompts++
			screen.waitFor(t, "[N] deny", prompts)
			if _, err := io.WriteString(m, answer+"\n"); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case err := <-errc:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("consent never returned")
			return nil
		}
	}
	r := qpuRequest()
	if err := check(r, "y"); err != nil {
		t.Fatalf("answered y: %v", err)
	}
	out := screen.waitFor(t, "allowed once", 1)
	self, _ := os.Executable()
	for _, want := range []string{"pid " + itoa(os.Getpid()), self, "-test.", "a job token (role demo, ionq/qpu.forte-1, qpu, 100 shots)",
		"Estimated cost: $8.30", "hardware device; estimated cost above $5.00"} {
		if !strings.Contains(out, want) {
			t.Fatalf("the prompt does not show %q:\n%s", want, out)
		}
	}
	if err := check(r, "n"); !errors.Is(err, ErrDenied) {
		t.Fatalf("answered n: %v", err)
	}
	// No answer: denied at the timeout.
	prompts++
	start := time.Now()
	if err := check(r, ""); !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "no answer within 1.5s") {
		t.Fatalf("no answer: %v", err)
	}
	if d := time.Since(start); d < 1400*time.Millisecond || d > 5*time.Second {
		t.Fatalf("the timeout took %s", d)
	}
	screen.waitFor(t, "no answer: denied", 1)
	// An answer typed late does not answer the next question.
	io.WriteString(m, "y\n")
	time.Sleep(100 * time.Millisecond)
	if err := check(r, "nonsense"); !errors.Is(err, ErrDenied) {
		t.Fatalf("a stale y answered a later question: %v", err)
	}
	// Allow for 10 minutes: the same program is not asked again, another is.
	if err := check(r, "a"); err != nil {
		t.Fatalf("answered a: %v", err)
	}
	if err := check(r, ""); err != nil {
		t.Fatalf("within the grant: %v", err)
	}
	other := r
	other.Program.Exe = "/usr/bin/other-agent"
	if err := check(other, "n"); !errors.Is(err, ErrDenied) {
		t.Fatalf("another program under the first one's grant: %v", err)
	}
	// The same executable with another command line is another program
	// (`qbroker mcp` and `qbroker exec -- python x.py` are one binary).
	otherCmd := r
	otherCmd.Program.Cmdline = append(append([]string(nil), r.Program.Cmdline...), "--something-else")
	if err := check(otherCmd, "n"); !errors.Is(err, ErrDenied) {
		t.Fatalf("another command line under the first one's grant: %v", err)
	}
	// The grant ends after 10 minutes.
	c.now = func() time.Time { return time.Now().Add(GrantTTL + time.Second) }
	if err := check(r, "n"); !errors.Is(err, ErrDenied) {
		t.Fatalf("after the grant: %v", err)
	}
	if got := strings.Count(screen.waitFor(t, "[N] deny", prompts), "[N] deny"); got != prompts {
		t.Fatalf("%d prompts, want %d", got, prompts)
	}
	// A request no rule selects is not asked about.
	sim := r
	sim.Device, sim.Kind, sim.CostUSD = "simulator", "simulator", 0
	if err := check(sim, ""); err != nil {
		t.Fatalf("a free simulator job: %v", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// The rules: first use of a device, credential export, unknown devices.
func TestConsentRules(t *testing.T) {
	c := NewConsent(Rules{FirstDevice: true, CredentialExport: true, Hardware: true, CostAboveUSD: -1}, nil, slog.New(slog.DiscardHandler))
	sim := Request{What: "a job token", Provider: "ionq", Device: "simulator", Kind: "simulator", CostUSD: 0}
	if got := c.reasons(sim); len(got) != 1 || got[0] != "first use of this device" {
		t.Fatalf("first use: %v", got)
	}
	c.markSeen(sim)
	if got := c.reasons(sim); len(got) != 0 {
		t.Fatalf("second use: %v", got)
	}
	if got := c.reasons(Request{Export: true}); len(got) != 1 || got[0] != "credential export" {
		t.Fatalf("export: %v", got)
	}
	if got := c.reasons(Request{Provider: "ionq", Device: "made-up", Kind: "unknown"}); len(got) < 1 || got[0] != "a device the catalogue does not know" {
		t.Fatalf("unknown device: %v", got)
	}
	// Without a way to ask, what needs consent is denied.
	if err := c.Check(context.Background(), Request{Export: true}); !errors.Is(err, ErrDenied) {
		t.Fatalf("no prompt configured: %v", err)
	}
}

// Issue 9, criterion 3 (page): the one-time consent page on 127.0.0.1.
func TestConsentPage(t *testing.T) {
	urls := make(chan string, 8)
	p, err := NewPage("127.0.0.1:0", slog.New(slog.DiscardHandler), func(u string, _ Request) { urls <- u })
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := NewConsent(Rules{Hardware: true, CostAboveUSD: -1, Timeout: 5 * time.Second}, p, slog.New(slog.DiscardHandler))
	r := qpuRequest()
	r.Program.Cmdline = []string{"agent", "<script>alert(1)</script>"}
	hc := &http.Client{Timeout: 5 * time.Second}
	do := func(method, u, host, origin, answer string) (int, string) {
		t.Helper()
		var body io.Reader
		if answer != "" {
			body = strings.NewReader(url.Values{"answer": {answer}}.Encode())
		}
		req, _ := http.NewRequest(method, u, body)
		if answer != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if host != "" {
			req.Host = host
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	ask := func(r Request) (string, chan error) {
		errc := make(chan error, 1)
		go func() { errc <- c.Check(context.Background(), r) }()
		select {
		case u := <-urls:
			return u, errc
		case <-time.After(5 * time.Second):
			t.Fatal("no consent URL")
			return "", nil
		}
	}

	u, errc := ask(r)
	if !strings.HasPrefix(u, "http://"+p.Addr()+"/consent/") || len(strings.TrimPrefix(u, "http://"+p.Addr()+"/consent/")) < 40 {
		t.Fatalf("consent URL %q", u)
	}
	status, page := do(http.MethodGet, u, "", "", "")
	if status != http.StatusOK || !strings.Contains(page, "qpu.forte-1") || !strings.Contains(page, "$8.30") || !strings.Contains(page, "pid "+itoa(os.Getpid())) {
		t.Fatalf("page: %d\n%s", status, page)
	}
	if strings.Contains(page, "<script>alert") || !strings.Contains(page, "&lt;script&gt;") {
		t.Fatal("the program's command line is not escaped")
	}
	if s, _ := do(http.MethodGet, u, "evil.example:80", "", ""); s != http.StatusForbidden {
		t.Fatalf("another Host (DNS rebinding): %d", s)
	}
	if s, _ := do(http.MethodPost, u, "", "http://evil.example", "allow"); s != http.StatusForbidden {
		t.Fatalf("a cross-origin POST: %d", s)
	}
	if s, _ := do(http.MethodPost, "http://"+p.Addr()+"/consent/guess", "", "", "allow"); s != http.StatusNotFound {
		t.Fatalf("a guessed id: %d", s)
	}
	if s, b := do(http.MethodPost, u, "", "http://"+p.Addr(), "allow"); s != http.StatusOK || !strings.Contains(b, "Allowed once") {
		t.Fatalf("allow: %d %s", s, b)
	}
	if err := <-errc; err != nil {
		t.Fatalf("allowed: %v", err)
	}
	if s, _ := do(http.MethodPost, u, "", "", "allow"); s != http.StatusNotFound {
		t.Fatalf("the URL worked twice: %d", s)
	}

	u, errc = ask(r)
	if s, _ := do(http.MethodPost, u, "", "", "deny"); s != http.StatusOK {
		t.Fatalf("deny: %d", s)
	}
	if err := <-errc; !errors.Is(err, ErrDenied) {
		t.Fatalf("denied: %v", err)
	}

	// Allow for 10 minutes: the same program is not asked again.
	u, errc = ask(r)
	if s, b := do(http.MethodPost, u, "", "", "allow10"); s != http.StatusOK || !strings.Contains(b, "10 minutes") {
		t.Fatalf("allow10: %d %s", s, b)
	}
	if err := <-errc; err != nil {
		t.Fatalf("allowed for 10 minutes: %v", err)
	}
	if err := c.Check(context.Background(), r); err != nil {
		t.Fatalf("within the grant: %v", err)
	}
	select {
	case u := <-urls:
		t.Fatalf("asked again within the grant: %s", u)
	default:
	}
	c.grants = map[string]time.Time{}

	c.rules.Timeout = 300 * time.Millisecond
	u, errc = ask(r)
	if err := <-errc; !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "no answer") {
		t.Fatalf("no answer: %v", err)
	}
	if s, _ := do(http.MethodGet, u, "", "", ""); s != http.StatusNotFound {
		t.Fatalf("the page of a timed-out question: %d", s)
	}

	if _, err := NewPage("0.0.0.0:0", slog.New(slog.DiscardHandler), nil); err == nil {
		t.Fatal("the consent page listened on a non-loopback address")
	}
}

// notify-send, where present, is told that a question waits, never the
// one-time URL (other users can read a process's command line).
func TestNotifySendNeverCarriesTheURL(t *testing.T) {
	dir := t.TempDir()
	argsFile := filepath.Join(dir, "args")
	script := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + argsFile + "\n"
	if err := os.WriteFile(filepath.Join(dir, "notify-send"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	r := qpuRequest()
	NotifySend(context.Background(), r)
	b, err := os.ReadFile(argsFile)
	if err != nil {
		t.Fatalf("notify-send was not run: %v", err)
	}
	if got := string(b); !strings.Contains(got, "consent needed") || !strings.Contains(got, "pid "+itoa(os.Getpid())) || strings.Contains(got, "http") {
		t.Fatalf("notify-send got %q", got)
	}
}
