package bench

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/server"
)

const testIonQKey = "ionq-bench-test-key-0123456789abcdef"

// startDev starts the real all-in-one stack on loopback.
func startDev(t *testing.T) *server.Dev {
	t.Helper()
	ctx := context.Background()
	d, err := server.StartDev(ctx, server.DevOptions{
		Addr: "127.0.0.1:0", GatewayAddr: "127.0.0.1:0", SimAddr: "127.0.0.1:0",
		DataDir: t.TempDir(), IonQKey: testIonQKey,
	})
	if err != nil {
		t.Fatalf("StartDev: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			t.Logf("close dev stack: %v", err)
		}
	})
	return d
}

func devOptions(d *server.Dev, step string) Options {
	return Options{
		BrokerAddr: d.BrokerURL, GatewayAddr: d.GatewayURL,
		RoleID: d.RoleID, SecretID: d.SecretID,
		Step: step, Concurrency: 4, Duration: 300 * time.Millisecond, Warmup: 50 * time.Millisecond,
		DirectAddr: d.SimURL, DirectKey: testIonQKey,
	}
}

func checkHealthy(t *testing.T, r Result, step string) {
	t.Helper()
	t.Log(r)
	if r.Step != step || r.Concurrency != 4 {
		t.Errorf("result names step %q conc %d, want %q 4", r.Step, r.Concurrency, step)
	}
	if r.Ops <= 0 {
		t.Errorf("ops = %d, want > 0", r.Ops)
	}
	if r.Errors != 0 || r.FirstError != "" {
		t.Errorf("errors = %d (first: %q), want none", r.Errors, r.FirstError)
	}
	if !(0 < r.P50 && r.P50 <= r.P90 && r.P90 <= r.P99 && r.P99 <= r.Max) {
		t.Errorf("percentiles out of order: p50=%v p90=%v p99=%v max=%v", r.P50, r.P90, r.P99, r.Max)
	}
	if r.Elapsed < 300*time.Millisecond || r.Elapsed > 5*time.Second {
		t.Errorf("elapsed = %v, want about the 300ms window", r.Elapsed)
	}
	if got := float64(r.Ops) / r.Elapsed.Seconds(); r.OpsPerSec < got*0.999 || r.OpsPerSec > got*1.001 {
		t.Errorf("ops/s = %v, want ops/elapsed = %v", r.OpsPerSec, got)
	}
}

// TestStepsAgainstDevStack runs every step against one real in-process
// broker, gateway and IonQ emulator.
func TestStepsAgainstDevStack(t *testing.T) {
	d := startDev(t)
	var results []Result
	// jwt-login needs an identity provider; internal/server's
	// TestJWTLoginUnderLoad runs it against one.
	steps := slices.DeleteFunc(Steps(), func(s string) bool { return s == StepJWTLogin })
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			r, err := Run(context.Background(), devOptions(d, step))
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			checkHealthy(t, r, step)
			if step != StepSubmit && r.TokenWait != 0 {
				t.Errorf("token wait %v reported for %s", r.TokenWait, step)
			}
			results = append(results, r)
		})
	}

	var buf bytes.Buffer
	WriteTable(&buf, results)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2+len(steps) {
		t.Fatalf("table has %d lines, want %d:\n%s", len(lines), 2+len(steps), buf.String())
	}
	for i, step := range steps {
		if !strings.HasPrefix(lines[2+i], "| "+step+" | 4 | ") {
			t.Errorf("table row %d = %q, want step %s at concurrency 4", i, lines[2+i], step)
		}
	}
	t.Log("\n" + buf.String())
}

// TestTargetsRoundRobin spreads load over the primary and an extra target
// (the same gateway twice, so every op must still succeed), then over a
// live and a dead broker.
func TestTargetsRoundRobin(t *testing.T) {
	d := startDev(t)
	o := devOptions(d, StepStatus)
	o.Targets = []string{d.GatewayURL + "/"}
	r, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkHealthy(t, r, StepStatus)

	// A dead extra target gets half the ops, and they fail.
	o = devOptions(d, StepLogin)
	o.Targets = []string{"http://127.0.0.1:1"}
	r, err = Run(context.Background(), o)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if r.Ops == 0 || r.Errors == 0 {
		t.Fatalf("ops=%d errors=%d, want both > 0 with one dead target", r.Ops, r.Errors)
	}
	if ratio := float64(r.Errors) / float64(r.Ops+r.Errors); ratio < 0.3 || ratio > 0.7 {
		t.Errorf("error share %.2f, want about half with round robin over two targets", ratio)
	}
}

// TestWrongSecretID: every op that needs a login fails, is counted, and the
// first error is kept without the secret in it.
func TestWrongSecretID(t *testing.T) {
	d := startDev(t)
	const wrong = "wrong-secret-id-must-not-leak-4242"
	for _, step := range []string{StepLogin, StepJobToken, StepSubmit, StepFlow} {
		t.Run(step, func(t *testing.T) {
			o := devOptions(d, step)
			o.SecretID = wrong
			o.Duration = 150 * time.Millisecond
			r, err := Run(context.Background(), o)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			t.Log(r)
			if r.Errors == 0 || r.FirstError == "" {
				t.Fatalf("errors=%d first=%q, want errors and a first error", r.Errors, r.FirstError)
			}
			if r.Ops != 0 {
				t.Errorf("ops = %d with a wrong secret ID, want 0", r.Ops)
			}
			if r.P50 != 0 || r.Max != 0 {
				t.Errorf("latency reported without successful ops: p50=%v max=%v", r.P50, r.Max)
			}
			// The broker answers a bad AppRole login 400, as Vault does, and
			// 429 once the source has failed too often (brute-force guard).
			if !strings.Contains(r.FirstError, "approle login") ||
				!(strings.Contains(r.FirstError, "400") || strings.Contains(r.FirstError, "429 Too Many Requests: too many failed logins")) {
				t.Errorf("first error %q does not show the broker's refusal", r.FirstError)
			}
			if strings.Contains(r.FirstError, wrong) || strings.Contains(r.String(), wrong) {
				t.Errorf("secret ID leaked: %q", r.FirstError)
			}
		})
	}

	// The status steps need a job before the clock starts: setup fails.
	o := devOptions(d, StepStatus)
	o.SecretID = wrong
	_, err := Run(context.Background(), o)
	if !errors.Is(err, ErrSetup) {
		t.Fatalf("status with a wrong secret ID: err = %v, want ErrSetup", err)
	}
	if strings.Contains(err.Error(), wrong) {
		t.Errorf("secret ID leaked in %q", err)
	}
}

// TestWrongDirectKey: the emulator refuses a wrong key, and the key never
// shows in the result.
func TestWrongDirectKey(t *testing.T) {
	d := startDev(t)
	const wrong = "ionq-wrong-key-must-not-leak-9999"
	o := devOptions(d, StepSubmitDirect)
	o.DirectKey = wrong
	o.Duration = 100 * time.Millisecond
	r, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if r.Errors == 0 || r.Ops != 0 || !strings.Contains(r.FirstError, "401") {
		t.Fatalf("ops=%d errors=%d first=%q, want only 401 errors", r.Ops, r.Errors, r.FirstError)
	}
	if strings.Contains(r.String(), wrong) {
		t.Errorf("key leaked: %s", r)
	}

	o = devOptions(d, StepStatusDirect)
	o.DirectKey = wrong
	if _, err := Run(context.Background(), o); !errors.Is(err, ErrSetup) || strings.Contains(err.Error(), wrong) {
		t.Fatalf("status-direct with a wrong key: err = %v, want ErrSetup without the key", err)
	}
}

// TestGatewayRefusesDirectKeyAsJobToken: the gateway does not accept the
// provider's real key in place of a job token (the baseline's credential
// is useless at the gateway).
func TestGatewayRefusesDirectKeyAsJobToken(t *testing.T) {
	d := startDev(t)
	o := devOptions(d, StepSubmitDirect)
	o.DirectAddr = d.GatewayURL + "/ionq"
	o.Duration = 100 * time.Millisecond
	r, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if r.Ops != 0 || r.Errors == 0 {
		t.Fatalf("gateway accepted the provider key as a job token: %s", r)
	}
	if strings.Contains(r.String(), testIonQKey) {
		t.Errorf("key leaked: %s", r)
	}
}

func TestRunCanceled(t *testing.T) {
	d := startDev(t)
	ctx, cancel := context.WithCancel(context.Background())
	o := devOptions(d, StepLogin)
	o.Duration = time.Minute
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	_, err := Run(ctx, o)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("Run took %v after cancel", time.Since(start))
	}
}

func TestOptionsValidation(t *testing.T) {
	good := Options{BrokerAddr: "http://127.0.0.1:8200", GatewayAddr: "http://127.0.0.1:8300", RoleID: "r", SecretID: "s", Step: StepFlow}
	o, err := good.withDefaults()
	if err != nil {
		t.Fatalf("good options: %v", err)
	}
	if o.Role != "demo" || o.Provider != "ionq" || o.Device != "simulator" || o.Shots != 100 ||
		o.Concurrency != 8 || o.Duration != 10*time.Second || o.Warmup != time.Second {
		t.Errorf("defaults not applied: %+v", o)
	}
	nw := good
	nw.Warmup = -1
	if o, _ := nw.withDefaults(); o.Warmup != 0 {
		t.Errorf("negative warmup = %v, want none", o.Warmup)
	}

	for name, mut := range map[string]func(*Options){
		"no step":        func(o *Options) { o.Step = "" },
		"unknown step":   func(o *Options) { o.Step = "teleport" },
		"no broker":      func(o *Options) { o.BrokerAddr = "" },
		"bad scheme":     func(o *Options) { o.GatewayAddr = "ftp://x" },
		"userinfo":       func(o *Options) { o.BrokerAddr = "http://u:p@host" },
		"no secret":      func(o *Options) { o.SecretID = "" },
		"negative conc":  func(o *Options) { o.Concurrency = -1 },
		"negative shots": func(o *Options) { o.Shots = -5 },
		"bad target":     func(o *Options) { o.Targets = []string{"nonsense"} },
		"direct no key":  func(o *Options) { o.Step, o.DirectAddr = StepSubmitDirect, "http://127.0.0.1:8400" },
		"direct no addr": func(o *Options) { o.Step, o.DirectKey = StepStatusDirect, "k" },
	} {
		o := good
		mut(&o)
		if _, err := Run(context.Background(), o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: err = %v, want ErrInvalidOptions", name, err)
		}
	}

	// Every problem is reported at once.
	_, err = Options{Step: StepStatus, Concurrency: -1}.withDefaults()
	for _, want := range []string{"broker address", "gateway address", "secret ID", "concurrency"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
}

func TestPercentiles(t *testing.T) {
	var s []time.Duration
	for i := 100; i >= 1; i-- { // 1..100 ms, shuffled by reversal
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	p50, p90, p99, mx := percentiles(s)
	if p50 != 50*time.Millisecond || p90 != 90*time.Millisecond || p99 != 99*time.Millisecond || mx != 100*time.Millisecond {
		t.Errorf("got %v %v %v %v, want 50ms 90ms 99ms 100ms", p50, p90, p99, mx)
	}
	if a, b, c, m := percentiles([]time.Duration{7}); a != 7 || b != 7 || c != 7 || m != 7 {
		t.Errorf("one sample: %v %v %v %v", a, b, c, m)
	}
	if a, _, _, m := percentiles(nil); a != 0 || m != 0 {
		t.Errorf("no samples: %v %v", a, m)
	}
	// Three samples: nearest rank puts p50 on the 2nd and p90/p99 on the 3rd.
	if a, b, c, _ := percentiles([]time.Duration{3, 1, 2}); a != 2 || b != 3 || c != 3 {
		t.Errorf("three samples: %v %v %v", a, b, c)
	}
}

func TestResultString(t *testing.T) {
	r := Result{Step: "submit", Concurrency: 8, Ops: 1000, Errors: 2, Elapsed: time.Second, OpsPerSec: 1000,
		P50: 850 * time.Microsecond, P90: 1500 * time.Microsecond, P99: 12 * time.Millisecond, Max: 12 * time.Second,
		FirstError: "POST /ionq/v0.4/jobs: 401", TokenWait: 800 * time.Millisecond}
	s := r.String()
	for _, want := range []string{"submit", "conc=8", "ops/s=1000.0", "p50=850µs", "p90=1.50ms", "p99=12.00ms", "max=12.00s", "errors=2", "token-wait=10.0%", `first-error="POST /ionq/v0.4/jobs: 401"`} {
		if !strings.Contains(s, want) {
			t.Errorf("String() = %q, missing %q", s, want)
		}
	}
	if strings.Contains(s, "\n") {
		t.Errorf("String() is not one line: %q", s)
	}
}

func TestRedact(t *testing.T) {
	if got := redact("bad key abc and abc", "abc", ""); got != "bad key [redacted] and [redacted]" {
		t.Errorf("redact = %q", got)
	}
}
