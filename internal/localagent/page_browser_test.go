package localagent

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Issue 9, criterion 3 (page, real browser): a person opens the one-time
// consent URL in headless Chromium, sees who asks and for what, and clicks
// Allow; a second question is denied with the Deny button. Runs when
// QBROKER_CHROMIUM names the browser (make test sets it).
func TestConsentPageInChromium(t *testing.T) {
	chromium := os.Getenv("QBROKER_CHROMIUM")
	if chromium == "" {
		t.Skip("QBROKER_CHROMIUM not set: the real-browser test runs under `make test`")
	}
	urls := make(chan string, 4)
	p, err := NewPage("127.0.0.1:0", slog.New(slog.DiscardHandler), func(u string, _ Request) { urls <- u })
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := NewConsent(Rules{Hardware: true, CostAboveUSD: -1, Timeout: 40 * time.Second}, p, slog.New(slog.DiscardHandler))

	actx, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()))
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel := context.WithTimeout(bctx, 45*time.Second)
	defer cancel()

	for _, tc := range []struct {
		button, result string
		allowed        bool
	}{{"#allow", "Allowed once.", true}, {"#deny", "Denied.", false}} {
		errc := make(chan error, 1)
		go func() { errc <- c.Check(context.Background(), qpuRequest()) }()
		var u string
		select {
		case u = <-urls:
		case <-time.After(10 * time.Second):
			t.Fatal("no consent URL")
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(u), chromedp.WaitVisible(chromedp.CSS(tc.button))); err != nil {
			t.Fatalf("open the consent page: %v", err)
		}
		what, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("what")))
		if err != nil {
			t.Fatal(err)
		}
		prog, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("program")))
		if err != nil {
			t.Fatal(err)
		}
		cost, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("cost")))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(what, "qpu.forte-1") || !strings.Contains(prog, "pid "+itoa(os.Getpid())) || cost != "$8.30" {
			t.Fatalf("the page shows what=%q program=%q cost=%q", what, prog, cost)
		}
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(tc.button)), chromedp.WaitVisible(chromedp.ID("result"))); err != nil {
			t.Fatalf("click %s: %v", tc.button, err)
		}
		res, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("result")))
		if err != nil || res != tc.result {
			t.Fatalf("result %q %v, want %q", res, err, tc.result)
		}
		err = <-errc
		if tc.allowed && err != nil || !tc.allowed && !errors.Is(err, ErrDenied) {
			t.Fatalf("after %s: %v", tc.button, err)
		}
	}
}
