package policy

import (
	"fmt"
	"strings"
	"testing"

	cedar "github.com/cedar-policy/cedar-go"
	"pgregory.net/rapid"
)

// Generators for property tests: small, schema-valid policies and valid
// requests over a handful of roles, agents, devices and actions.

var (
	propRoles     = []string{"r1", "r2"}
	propAgents    = []string{"a1", "a2"}
	propProviders = []string{"ionq", "rigetti"}
)

func genScope(t *rapid.T) (principal, action, resource string) {
	principal = rapid.SampledFrom([]string{
		"principal", `principal in Role::"r1"`, `principal in Role::"r2"`, `principal == Agent::"a1"`, `principal in Team::"t1"`,
	}).Draw(t, "principal")
	action = rapid.SampledFrom(append([]string{"action", `action in Action::"Admin"`},
		func() []string {
			var s []string
			for _, a := range Actions() {
				s = append(s, fmt.Sprintf("action == Action::%q", a))
			}
			return s
		}()...)).Draw(t, "action")
	resource = rapid.SampledFrom([]string{
		"resource", "resource is Device", "resource is Job", `resource in Provider::"ionq"`, `resource == Device::"ionq/qpu.forte-1"`,
	}).Draw(t, "resource")
	return
}

// genCondition returns a condition valid for every action and resource type.
func genCondition(t *rapid.T) string {
	return rapid.SampledFrom([]string{
		"",
		fmt.Sprintf(" when { context.shots <= %d }", rapid.IntRange(0, 2000).Draw(t, "shots")),
		" when { context.approved }",
		" unless { context.approved }",
		fmt.Sprintf(" when { context.hour < %d }", rapid.IntRange(0, 24).Draw(t, "hour")),
		` when { principal.team == "t1" }`,
		` when { resource is Device && resource.kind == "qpu" }`,
		` when { resource is Job && resource.owner == principal }`,
	}).Draw(t, "condition")
}

// genPolicy draws one policy. A scope the schema makes impossible (say,
// Admin actions on a Device) is a load error, so such a draw falls back to
// an unconstrained resource.
func genPolicy(t *rapid.T, effect string, i int) string {
	p, a, r := genScope(t)
	cond := genCondition(t)
	src := fmt.Sprintf("@id(\"%s-%d\") %s(%s, %s, %s)%s;\n", effect, i, effect, p, a, r, cond)
	if _, err := New([]File{{Name: "p.cedar", Data: []byte(src)}}); err != nil {
		src = fmt.Sprintf("@id(\"%s-%d\") %s(%s, %s, resource)%s;\n", effect, i, effect, p, a, cond)
	}
	return src
}

func genPolicies(t *rapid.T) string {
	var b strings.Builder
	for i := range rapid.IntRange(0, 8).Draw(t, "n") {
		b.WriteString(genPolicy(t, rapid.SampledFrom([]string{"permit", "forbid"}).Draw(t, "effect"), i))
	}
	return b.String()
}

func genRequest(t *rapid.T) Request {
	agent := Agent{
		ID:   rapid.SampledFrom(propAgents).Draw(t, "agent"),
		Role: rapid.SampledFrom(propRoles).Draw(t, "role"),
		Team: rapid.SampledFrom([]string{"", "t1", "t2"}).Draw(t, "team"),
	}
	provider := rapid.SampledFrom(propProviders).Draw(t, "provider")
	dev := &Device{
		Provider: provider,
		Name:     rapid.SampledFrom([]string{"simulator", "qpu.forte-1"}).Draw(t, "device"),
		Qubits:   rapid.IntRange(0, 64).Draw(t, "qubits"),
	}
	dev.Kind = KindSimulator
	if strings.HasPrefix(dev.Name, "qpu") {
		dev.Kind = KindQPU
	}
	req := Request{
		Agent:  agent,
		Action: rapid.SampledFrom(Actions()).Draw(t, "action"),
		Context: Context{
			Shots:    rapid.IntRange(0, 2000).Draw(t, "shots"),
			Hour:     rapid.IntRange(0, 23).Draw(t, "hour"),
			Weekday:  rapid.IntRange(0, 6).Draw(t, "weekday"),
			Approved: rapid.Bool().Draw(t, "approved"),
		},
	}
	rule, _ := actionRule(req.Action)
	switch rule {
	case deviceRequired:
		req.Device = dev
	case deviceOptional:
		if rapid.Bool().Draw(t, "withDevice") {
			req.Device = dev
		} else {
			req.Provider = provider
		}
	case deviceForbidden:
		req.Provider = provider
	case jobPreferred:
		req.Job = &Job{ID: "j", Owner: rapid.SampledFrom(propAgents).Draw(t, "owner"), Team: "t1", DeviceID: dev.ID()}
	}
	return req
}

// TestPropertyForbidNeverAllows: adding a forbid to any policy set never
// turns a deny into an allow (nor keeps an allow that it matches).
func TestPropertyForbidNeverAllows(t *testing.T) {
	allowed := 0 // the property is vacuous unless some base sets allow
	rapid.Check(t, func(t *rapid.T) {
		base := genPolicies(t)
		extra := genPolicy(t, "forbid", 99)
		e1, err := New([]File{{Name: "base.cedar", Data: []byte(base)}})
		if err != nil {
			t.Fatalf("generator made invalid policies: %v\n%s", err, base)
		}
		e2, err := New([]File{{Name: "base.cedar", Data: []byte(base)}, {Name: "extra.cedar", Data: []byte(extra)}})
		if err != nil {
			t.Fatalf("generator made an invalid forbid: %v\n%s", err, extra)
		}
		req := genRequest(t)
		d1, d2 := e1.Decide(req), e2.Decide(req)
		if len(d1.Errors) > 0 && strings.Contains(d1.Reason, "invalid request") {
			t.Fatalf("generator made an invalid request: %+v", d1)
		}
		if !d1.Allowed && d2.Allowed {
			t.Fatalf("forbid turned deny into allow:\n%s%s\n%+v\nbefore %+v\nafter %+v", base, extra, req, d1, d2)
		}
		if d1.Allowed {
			allowed++
		}
		// The per-action pre-filter changes nothing: all policies, unfiltered.
		creq, ents, err := e2.buildRequest(req)
		if err != nil {
			t.Fatal(err)
		}
		full, diag := cedar.Authorize(e2.policies, ents, creq)
		if full == cedar.Allow && len(diag.Errors) == 0 && !d2.Allowed {
			t.Fatalf("pre-filtered decision %+v differs from unfiltered %v %+v", d2, full, diag)
		}
		if full != cedar.Allow && d2.Allowed {
			t.Fatalf("pre-filter allowed what the full set denies: %+v", d2)
		}
		if len(diag.Errors) != len(d2.Errors) {
			t.Fatalf("errors differ: filtered %q, full %+v", d2.Errors, diag.Errors)
		}
	})
	if allowed == 0 {
		t.Fatal("no generated policy set allowed any request")
	}
}

// TestPropertyEmptyPolicySetDenies: with no policies every request is denied.
func TestPropertyEmptyPolicySetDenies(t *testing.T) {
	e := newEngine(t)
	rapid.Check(t, func(t *rapid.T) {
		req := genRequest(t)
		if d := e.Decide(req); d.Allowed || len(d.Policies) != 0 {
			t.Fatalf("empty policy set: %+v for %+v", d, req)
		}
	})
}

// TestPropertyOnlyForbidsDeny: a set of forbids alone denies everything.
func TestPropertyOnlyForbidsDeny(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var b strings.Builder
		for i := range rapid.IntRange(1, 6).Draw(t, "n") {
			b.WriteString(genPolicy(t, "forbid", i))
		}
		e, err := New([]File{{Name: "f.cedar", Data: []byte(b.String())}})
		if err != nil {
			t.Fatalf("%v\n%s", err, b.String())
		}
		if d := e.Decide(genRequest(t)); d.Allowed {
			t.Fatalf("forbids alone allowed: %+v", d)
		}
	})
}
