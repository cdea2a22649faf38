package broker

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/policy"
	"github.com/qbroker/qbroker/internal/seal"
	"github.com/qbroker/qbroker/internal/store/sqlstore"
)

func ptr[T any](v T) *T { return &v }

// Each approval-rule condition holds the request exactly when it should.
func TestApprovalRuleConditions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlstore.OpenSQLite(ctx, filepath.Join(dir, "q.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sealer, _ := seal.New(ctx, zeroKEK{})
	pol, _ := policy.New(policy.DefaultFiles())
	sink, _ := audit.OpenFile(filepath.Join(dir, "audit.log"), audit.FileOptions{})
	defer sink.Close()
	berlin, _ := time.LoadLocation("Europe/Berlin")
	var now time.Time
	b, err := New(ctx, Config{Store: st, Sealer: sealer, Policy: pol, Audit: sink, Issuer: "http://b", Audience: "g",
		Location: berlin, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	qpu := Device{Provider: "ionq", Name: "qpu.forte-1", Kind: "qpu", Qubits: 36, Price: Price{PerTaskUSD: 0.3, PerShotUSD: 0.08}}
	sim := Device{Provider: "ionq", Name: "simulator", Kind: "simulator", Qubits: 29}
	agent := core.Token{AgentID: "approle:lab:a1", Role: "lab"}
	if err := st.Jobs().Create(ctx, core.Job{Provider: "ionq", ID: "j1", AgentID: agent.AgentID, Device: "simulator", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	monday10 := time.Date(2026, 11, 23, 10, 0, 0, 0, berlin)
	monday22 := time.Date(2026, 11, 23, 22, 0, 0, 0, berlin)
	saturday10 := time.Date(2026, 11, 28, 10, 0, 0, 0, berlin)
	for _, c := range []struct {
		name  string
		rule  config.ApprovalRule
		dev   Device
		shots int
		at    time.Time
		want  bool
		why   string
	}{
		{"kind matches", config.ApprovalRule{DeviceKind: "qpu"}, qpu, 10, monday10, true, "qpu device"},
		{"kind differs", config.ApprovalRule{DeviceKind: "qpu"}, sim, 10, monday10, false, ""},
		{"listed device", config.ApprovalRule{Devices: []string{"ionq/qpu.forte-1"}}, qpu, 10, monday10, true, "device ionq/qpu.forte-1"},
		{"unlisted device", config.ApprovalRule{Devices: []string{"ionq/qpu.forte-1"}}, sim, 10, monday10, false, ""},
		{"cost over", config.ApprovalRule{CostOverUSD: ptr(5.0)}, qpu, 100, monday10, true, "estimated cost $8.30 over $5.00"},
		{"cost under", config.ApprovalRule{CostOverUSD: ptr(5.0)}, qpu, 10, monday10, false, ""},
		{"any paid job", config.ApprovalRule{CostOverUSD: ptr(0.0)}, qpu, 1, monday10, true, "over $0.00"},
		{"free job", config.ApprovalRule{CostOverUSD: ptr(0.0)}, sim, 1, monday10, false, ""},
		{"shots over", config.ApprovalRule{ShotsOver: 1000}, sim, 1001, monday10, true, "1001 shots over 1000"},
		{"shots at the limit", config.ApprovalRule{ShotsOver: 1000}, sim, 1000, monday10, false, ""},
		{"business hours", config.ApprovalRule{OffHours: &config.OffHours{Start: 8, End: 19, Weekends: true}}, sim, 1, monday10, false, ""},
		{"night", config.ApprovalRule{OffHours: &config.OffHours{Start: 8, End: 19, Weekends: true}}, sim, 1, monday22, true, "outside business hours"},
		{"weekend", config.ApprovalRule{OffHours: &config.OffHours{Start: 8, End: 19, Weekends: true}}, sim, 1, saturday10, true, "outside business hours"},
		{"weekend allowed", config.ApprovalRule{OffHours: &config.OffHours{Start: 8, End: 19}}, sim, 1, saturday10, false, ""},
		{"first use of a device", config.ApprovalRule{NewDevice: true}, qpu, 1, monday10, true, "first use of ionq/qpu.forte-1"},
		{"device used before", config.ApprovalRule{NewDevice: true}, sim, 1, monday10, false, ""},
		{"all conditions must hold", config.ApprovalRule{DeviceKind: "qpu", ShotsOver: 1000}, qpu, 10, monday10, false, ""},
		{"other role", config.ApprovalRule{Roles: []string{"ops"}, Always: true}, sim, 1, monday10, false, ""},
		{"always", config.ApprovalRule{Always: true}, sim, 1, monday10, true, "always"},
	} {
		t.Run(c.name, func(t *testing.T) {
			now = c.at
			r := c.rule
			r.Name, r.Actions = "r", []string{"SubmitJob"}
			got, why, err := b.ruleMatches(ctx, r, agent, c.dev, api.JobTokenRequest{Shots: c.shots}, c.dev.EstimateUSD(c.shots), c.at.In(berlin))
			if err != nil || got != c.want || !strings.Contains(why, c.why) {
				t.Fatalf("match = %v (%q, %v), want %v with %q", got, why, err, c.want, c.why)
			}
		})
	}
}
