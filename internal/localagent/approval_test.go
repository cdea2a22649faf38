package localagent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/client"
	"github.com/qbroker/qbroker/internal/server"
)

// A QPU job needs the person's consent here and, behind it, the broker's
// approver (qbroker dev: the dev admin). The daemon waits for the
// approval and then redeems it, so the agent just gets its job token; a
// denied approval is a refusal, and with ApprovalWait 0 the agent gets a
// 409 naming the approval at once.
func TestBrokerApprovalAfterConsent(t *testing.T) {
	dev := startDev(t, server.DevOptions{})
	allow := askerFunc(func(context.Context, Request) (Answer, error) { return Allow, nil })
	h := startDaemon(t, dev, func(c *Config) {
		c.Consent = NewConsent(Rules{Hardware: true, CostAboveUSD: -1}, allow, c.Logger)
		c.ApprovalWait = 20 * time.Second
	})
	ctx := context.Background()
	root := client.New(dev.BrokerURL, nil).WithToken(dev.RootToken)
	req := api.JobTokenRequest{Provider: "ionq", Device: "qpu.forte-1", Shots: 10, Program: json.RawMessage(bellIonQ)}
	decide := func(approve bool) {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			pending, err := root.Approvals(ctx, api.ApprovalPending)
			if err == nil && len(pending) > 0 {
				if approve {
					_, err = root.Approve(ctx, pending[0].ID, "ok")
				} else {
					_, err = root.Deny(ctx, pending[0].ID, "not today")
				}
				if err != nil {
					t.Error(err)
				}
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Error("no held request")
	}
	go decide(true)
	jt, err := h.client().JobToken(ctx, server.DemoRole, req)
	if err != nil || jt.Token == "" || jt.Device != "qpu.forte-1" {
		t.Fatalf("after the approval: %+v %v", jt, err)
	}
	go decide(false)
	_, err = h.client().JobToken(ctx, server.DemoRole, req)
	var le *Error
	if !errors.As(err, &le) || le.Status != http.StatusForbidden || !strings.Contains(err.Error(), "was denied") {
		t.Fatalf("a denied approval: %v", err)
	}
	h.d.cfg.ApprovalWait = 0
	_, err = h.client().JobToken(ctx, server.DemoRole, req)
	if !errors.As(err, &le) || le.Status != http.StatusConflict || !strings.Contains(err.Error(), "held for approval") {
		t.Fatalf("without waiting: %v", err)
	}
}
