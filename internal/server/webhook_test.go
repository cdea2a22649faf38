package server

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/notify"
)

// The webhook receiver gets correctly signed approval events in order, and
// a dead receiver does not slow approvals.
func TestApprovalWebhook(t *testing.T) {
	const secret = "webhook-secret-for-tests-0123456789"
	t.Setenv("QB_TEST_WEBHOOK_SECRET", secret)
	var mu sync.Mutex
	var got []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.Verify([]byte(secret), r.Header, body, time.Now(), time.Minute); err != nil {
			t.Errorf("webhook signature: %v", err)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var ev struct {
			Text    string `json:"text"`
			QBroker struct {
				ID, Type string
			} `json:"qbroker"`
		}
		if err := json.Unmarshal(body, &ev); err != nil || ev.Text == "" {
			t.Errorf("webhook body is not Slack-compatible JSON with text: %s", body)
		}
		if !strings.HasPrefix(ev.QBroker.Type, "approval.") {
			return // anomaly findings share the webhook (off-hours ones depend on the clock)
		}
		mu.Lock()
		got = append(got, ev.QBroker.Type+" "+ev.QBroker.ID)
		mu.Unlock()
	}))
	defer recv.Close()

	approvals := DevApprovals()
	approvals.Webhook.URL, approvals.Webhook.SecretEnv = recv.URL, "QB_TEST_WEBHOOK_SECRET"
	d := startDevWith(t, DevOptions{Approvals: &approvals})
	e := &env{t: t, d: d, hc: &http.Client{Timeout: 20 * time.Second}}
	agent := e.agent()
	a := e.mustHold(agent, DemoRole, "qpu.forte-1", 10, bellInput)
	want(t, "approve", e.vote(d.RootToken, a.ID, "approve", ""), http.StatusOK)
	b := e.mustHold(agent, DemoRole, "qpu.forte-1", 20, bellInput)
	want(t, "deny", e.vote(d.RootToken, b.ID, "deny", "not today"), http.StatusOK)
	wantOrder := []string{
		"approval.requested " + a.ID + ".requested", "approval.approved " + a.ID + ".approved",
		"approval.requested " + b.ID + ".requested", "approval.denied " + b.ID + ".denied",
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= len(wantOrder) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(wantOrder) {
		t.Fatalf("webhook got %q, want %q", got, wantOrder)
	}
	for i := range wantOrder {
		if got[i] != wantOrder[i] {
			t.Fatalf("webhook event %d = %q, want %q (all: %q)", i, got[i], wantOrder[i], got)
		}
	}
}

func TestApprovalWebhookDeadReceiver(t *testing.T) {
	t.Setenv("QB_TEST_WEBHOOK_SECRET", "webhook-secret-for-tests-0123456789")
	hang := make(chan struct{})
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang }))
	defer func() { close(hang); recv.Close() }()
	approvals := DevApprovals()
	approvals.Webhook.URL, approvals.Webhook.SecretEnv = recv.URL, "QB_TEST_WEBHOOK_SECRET"
	d := startDevWith(t, DevOptions{Approvals: &approvals})
	e := &env{t: t, d: d, hc: &http.Client{Timeout: 20 * time.Second}}
	agent := e.agent()
	start := time.Now()
	for range 5 {
		a := e.mustHold(agent, DemoRole, "qpu.forte-1", 10, bellInput)
		want(t, "approve", e.vote(d.RootToken, a.ID, "approve", ""), http.StatusOK)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("5 requests and approvals took %v with a hanging webhook receiver", el)
	}
}

// Anomaly findings that ask for an alert go through the same signed
// webhook as approvals.
func TestAnomalyAlertThroughSignedWebhook(t *testing.T) {
	const secret = "webhook-secret-for-tests-0123456789"
	t.Setenv("QB_TEST_WEBHOOK_SECRET", secret)
	got := make(chan string, 16)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.Verify([]byte(secret), r.Header, body, time.Now(), time.Minute); err != nil {
			t.Errorf("webhook signature: %v", err)
			return
		}
		got <- r.Header.Get(notify.HeaderEvent)
	}))
	defer recv.Close()
	approvals := DevApprovals()
	approvals.Webhook.URL, approvals.Webhook.SecretEnv = recv.URL, "QB_TEST_WEBHOOK_SECRET"
	d := startDevWith(t, DevOptions{Approvals: &approvals})
	e := &env{t: t, d: d, hc: &http.Client{Timeout: 20 * time.Second}}
	agent := e.agent()
	for range 8 { // probing for what policy refuses: repeated denials
		e.jobToken(agent, DemoRole, "qpu.forte-1", 5000, "")
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case typ := <-got:
			if typ == "anomaly.finding" {
				return
			}
		case <-deadline:
			t.Fatal("no signed anomaly.finding event reached the webhook")
		}
	}
}

// A budget crossing an alert threshold is announced once, signed, through
// the approvals webhook.
func TestBudgetAlertThroughWebhook(t *testing.T) {
	const secret = "webhook-secret-for-tests-0123456789"
	t.Setenv("QB_TEST_WEBHOOK_SECRET", secret)
	got := make(chan string, 64)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.Verify([]byte(secret), r.Header, body, time.Now(), time.Minute); err != nil {
			t.Errorf("webhook signature: %v", err)
			return
		}
		got <- r.Header.Get(notify.HeaderEvent)
	}))
	defer recv.Close()
	approvals := DevApprovals()
	approvals.Webhook.URL, approvals.Webhook.SecretEnv = recv.URL, "QB_TEST_WEBHOOK_SECRET"
	budgets := config.Budgets{AlertAt: []float64{0.8}, Limits: []config.BudgetLimit{
		{Name: "demo-sim", Scope: "role", Match: DemoRole, Class: "simulator", ShotsPerDay: 1000},
	}}
	d := startDevWith(t, DevOptions{Approvals: &approvals, Budgets: &budgets})
	e := &env{t: t, d: d, hc: &http.Client{Timeout: 20 * time.Second}}
	agent := e.agent()
	for range 9 { // 900 of 1000 shots: crosses 80% once
		e.mustJobToken(agent, "simulator", 100, "")
	}
	alerts := 0
	deadline := time.After(5 * time.Second)
	for alerts == 0 {
		select {
		case typ := <-got:
			if typ == "budget.threshold" {
				alerts++
			}
		case <-deadline:
			t.Fatal("no budget.threshold event")
		}
	}
	time.Sleep(300 * time.Millisecond)
	for len(got) > 0 {
		if <-got == "budget.threshold" {
			alerts++
		}
	}
	if alerts != 1 {
		t.Fatalf("%d budget alerts for one crossing, want 1", alerts)
	}
}
