package server

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/client"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/testidp"
)

// Environment of the real-browser test (set by `make test`, which installs
// Debian's chromium and npm's axe-core with scripts/browser/install.sh).
const (
	envChromium = "QBROKER_CHROMIUM" // the browser binary
	envAxe      = "QBROKER_AXE"      // axe-core's axe.min.js
)

// freeAddr reserves a loopback port and releases it, so the broker's URL
// (the console's OIDC redirect URI) is known before it starts.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// The end-to-end approval: an agent asks for a hardware job and
// waits; a person signs in to the console in real headless Chromium through
// a real OpenID provider (authorization code + PKCE), sees the request with
// its circuit, passes an axe-core accessibility check, clicks Approve; the
// agent's wait ends and its job runs on the emulator. Screenshots go to the
// test's artifact dir.
func TestConsoleApprovalInBrowser(t *testing.T) {
	chromium := os.Getenv(envChromium)
	if chromium == "" {
		t.Skipf("%s not set: the real-browser test runs under `make test`", envChromium)
	}
	axePath := os.Getenv(envAxe)
	axeJS, err := os.ReadFile(axePath)
	if err != nil {
		t.Fatalf("%s=%q: %v (make test installs axe-core)", envAxe, axePath, err)
	}

	op := testidp.Start(t)
	addr := freeAddr(t)
	base := "http://" + addr
	const clientID, secret = "qbroker-console", "console-secret-for-tests"
	op.AddWebClient(testidp.WebClient{ID: clientID, Secret: secret, RedirectURIs: []string{base + "/ui/callback"}})
	t.Setenv("QB_TEST_CONSOLE_SECRET", secret)
	approvals := DevApprovals()
	approvals.Groups[0].People = append(approvals.Groups[0].People, "alice@example.test")
	approvals.Console = config.ConsoleLogin{Issuer: op.Issuer, ClientID: clientID, ClientSecretEnv: "QB_TEST_CONSOLE_SECRET"}
	d, err := StartDev(context.Background(), DevOptions{
		Addr: addr, GatewayAddr: "127.0.0.1:0", SimAddr: "127.0.0.1:0", DataDir: t.TempDir(), Approvals: &approvals,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	e := &env{t: t, d: d, hc: &http.Client{Timeout: 40 * time.Second}}

	// The agent asks for Forte and waits, as qbroker demo does.
	login := e.mustLogin(d.RoleID, d.SecretID)
	agent := client.New(d.BrokerURL, e.hc).WithToken(login.ClientToken)
	req := api.JobTokenRequest{Provider: "ionq", Device: "qpu.forte-1", Shots: 200, Program: json.RawMessage(bellInput), Format: api.FormatIonQ}
	_, err = agent.JobToken(context.Background(), DemoRole, req)
	var pending *client.PendingError
	if !errors.As(err, &pending) {
		t.Fatalf("Forte job token: %v, want held for approval", err)
	}
	held := pending.Approval
	waitDone := make(chan api.Approval, 1)
	waitStart := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		a, err := agent.WaitApproval(ctx, held.ID, nil)
		if err != nil {
			t.Errorf("agent's wait: %v", err)
		}
		waitDone <- a
	}()

	// A person approves in the browser.
	actx, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1400))
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel := context.WithTimeout(bctx, 45*time.Second)
	defer cancel()

	artifacts := t.ArtifactDir()
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			png, err := chromedp.FullScreenshot(100)(ctx, tg) // 100: PNG
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(artifacts, name), png, 0o644)
		})
	}
	err = chromedp.Do(ctx,
		chromedp.Navigate(held.ConsoleURL), // signed out: the console sends the browser to the IdP
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#password"), "pw-alice"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`button.approve`)), // back on the request, signed in
		shot("console-request.png"),
	)
	if err != nil {
		t.Fatalf("browser sign-in: %v", err)
	}
	page, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("body")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{held.ID, "qpu.forte-1", "200", "<svg", "alice"} {
		if !strings.Contains(page, want) {
			t.Errorf("request page lacks %q", want)
		}
	}

	// Accessibility: axe-core's WCAG 2 A/AA rules on the live page, and
	// keyboard reach of the decision buttons.
	type violation struct {
		ID    string `json:"id"`
		Help  string `json:"help"`
		Nodes []struct {
			Target []string `json:"target"`
		} `json:"nodes"`
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](string(axeJS))); err != nil {
		t.Fatalf("load axe-core: %v", err)
	}
	violations, err := chromedp.Run(ctx, chromedp.Evaluate[[]violation](
		`axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa']}}).then(r => r.violations.map(v => ({id: v.id, help: v.help, nodes: v.nodes.map(n => ({target: n.target.map(String)}))})))`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("axe-core: %v", err)
	}
	for _, v := range violations {
		var where []string
		if len(v.Nodes) > 0 {
			where = v.Nodes[0].Target
		}
		t.Errorf("axe: %s: %s (%d nodes, e.g. %v)", v.ID, v.Help, len(v.Nodes), where)
	}
	focusable, err := chromedp.Run(ctx, chromedp.Evaluate[bool](
		`(() => { const b = document.querySelector('button.approve'); b.focus(); return document.activeElement === b && b.tabIndex >= 0; })()`))
	if err != nil || !focusable {
		t.Errorf("the Approve button is not keyboard-focusable (%v)", err)
	}

	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#reason"), "Bell pair on Forte, 200 shots: fine"),
		chromedp.Click(chromedp.CSS(`button.approve`)),
		chromedp.WaitVisible(chromedp.CSS(`[role="status"]`)),
		shot("console-approved.png"),
	)
	if err != nil {
		_ = chromedp.Do(context.WithoutCancel(bctx), shot("console-failure.png"))
		t.Fatalf("approve click: %v (see console-failure.png)", err)
	}
	flash, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`[role="status"]`)))
	if err != nil || !strings.Contains(strings.ToLower(flash), "approved") {
		t.Errorf("after Approve the page says %q (%v)", flash, err)
	}

	// The agent's wait ends on its own and the job runs.
	var decided api.Approval
	select {
	case decided = <-waitDone:
	case <-time.After(30 * time.Second):
		t.Fatal("the agent's wait did not end after the approval")
	}
	if decided.State != api.ApprovalApproved || len(decided.Votes) != 1 || decided.Votes[0].Approver != "alice@example.test" || decided.Votes[0].Via != "console" {
		t.Fatalf("agent saw %+v", decided)
	}
	t.Logf("agent waited %s for the browser approval", time.Since(waitStart).Round(time.Millisecond))
	req.ApprovalID = held.ID
	jt, err := agent.JobToken(context.Background(), DemoRole, req)
	if err != nil {
		t.Fatalf("issue after approval: %v", err)
	}
	id := e.mustSubmit(jt.Token, ionqBody("qpu.forte-1", 200, bellInput))
	if e.count(func(ev audit.Event) bool {
		return ev.Type == "approval" && ev.Action == "Approve" && ev.Approver == "alice@example.test" && ev.ApprovalID == held.ID
	}) != 1 {
		t.Error("the console approval is not in the audit trail")
	}
	t.Logf("job %s submitted; screenshots in %s", id, artifacts)
	if _, err := os.Stat(filepath.Join(artifacts, "console-approved.png")); err != nil {
		t.Error(err)
	}
}
