package braketsim

import (
	"strings"
	"testing"
)

func TestGlob(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "anything", true},
		{"braket:*", "braket:createquantumtask", true},
		{"braket:*", "s3:getobject", false},
		{"braket:get*", "braket:getdevice", true},
		{"braket:get*", "braket:createquantumtask", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"*x*y", "axxby", true},
		{"*x*y", "axxb", false},
		{"exact", "exact", true},
		{"exact", "exactly", false},
	}
	for _, c := range cases {
		if got := glob(c.pattern, c.s); got != c.want {
			t.Errorf("glob(%q, %q) = %v", c.pattern, c.s, got)
		}
	}
}

func TestMatchARN(t *testing.T) {
	cases := []struct {
		pattern, arn string
		want         bool
	}{
		{"arn:aws:braket:*:*:device/qpu/*", ForteARN, true},
		{"arn:aws:braket:*:*:device/qpu/*", SV1ARN, false},
		{"arn:aws:braket:::device/quantum-simulator/amazon/sv1", SV1ARN, true},
		{"arn:aws:braket:::device/quantum-simulator/amazon/SV1", SV1ARN, false}, // case-sensitive
		{"arn:aws:braket:us-east-1:123456789012:quantum-task/*", taskPrefix + "abc", true},
		{"arn:aws:braket:us-west-1:123456789012:quantum-task/*", taskPrefix + "abc", false},
		// A wildcard does not cross a field boundary.
		{"arn:aws:braket:*:device/qpu/ionq/Forte-1", ForteARN, false},
		{"arn:aws:s3:::amazon-braket-test/tenant-a/*", "arn:aws:s3:::amazon-braket-test/tenant-a/x/results.json", true},
		{"arn:aws:s3:::amazon-braket-test/tenant-a/*", "arn:aws:s3:::amazon-braket-test/tenant-ab/x", false},
		{"*", "arn:aws:s3:::b/k", true},
	}
	for _, c := range cases {
		if got := matchARN(c.pattern, c.arn); got != c.want {
			t.Errorf("matchARN(%q, %q) = %v", c.pattern, c.arn, got)
		}
	}
}

func mustPolicy(t *testing.T, text string) *policyDoc {
	t.Helper()
	d, err := parsePolicy(text)
	if err != nil {
		t.Fatalf("parsePolicy: %v", err)
	}
	return d
}

func TestPolicyEvaluation(t *testing.T) {
	task := taskPrefix + "11111111-1111-4111-8111-111111111111"
	cases := []struct {
		name             string
		policy           string
		action, resource string
		want             decision
	}{
		{"wildcard action", `{"Statement":{"Effect":"Allow","Action":"braket:*","Resource":"*"}}`,
			"braket:CreateQuantumTask", SV1ARN, decisionAllow},
		{"actions are case-insensitive", `{"Statement":{"Effect":"Allow","Action":"BRAKET:createquantumtask","Resource":"*"}}`,
			"braket:CreateQuantumTask", SV1ARN, decisionAllow},
		{"default deny", `{"Statement":{"Effect":"Allow","Action":"braket:GetDevice","Resource":"*"}}`,
			"braket:CreateQuantumTask", SV1ARN, decisionImplicitDeny},
		{"deny wins", `{"Statement":[{"Effect":"Allow","Action":"braket:*","Resource":"*"},
			{"Effect":"Deny","Action":"braket:CreateQuantumTask","Resource":"arn:aws:braket:*:*:device/qpu/*"}]}`,
			"braket:CreateQuantumTask", ForteARN, decisionExplicitDeny},
		{"deny elsewhere does not touch", `{"Statement":[{"Effect":"Allow","Action":"braket:*","Resource":"*"},
			{"Effect":"Deny","Action":"braket:CreateQuantumTask","Resource":"arn:aws:braket:*:*:device/qpu/*"}]}`,
			"braket:CreateQuantumTask", SV1ARN, decisionAllow},
		{"NotAction", `{"Statement":{"Effect":"Allow","NotAction":"braket:CancelQuantumTask","Resource":"*"}}`,
			"braket:CancelQuantumTask", task, decisionImplicitDeny},
		{"NotAction allows others", `{"Statement":{"Effect":"Allow","NotAction":"braket:CancelQuantumTask","Resource":"*"}}`,
			"braket:GetQuantumTask", task, decisionAllow},
		{"NotResource", `{"Statement":{"Effect":"Allow","Action":"braket:*","NotResource":"arn:aws:braket:*:*:device/qpu/*"}}`,
			"braket:CreateQuantumTask", ForteARN, decisionImplicitDeny},
		{"Deny NotResource", `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"s3:*","NotResource":"arn:aws:s3:::b/t/*"}]}`,
			"s3:GetObject", "arn:aws:s3:::b/other", decisionExplicitDeny},
		// Conditions are not evaluated: they fail closed.
		{"Allow with a condition never applies", `{"Statement":{"Effect":"Allow","Action":"braket:*","Resource":"*","Condition":{"StringEquals":{"aws:RequestTag/t":"1"}}}}`,
			"braket:CreateQuantumTask", SV1ARN, decisionImplicitDeny},
		{"Deny with a condition always applies", `{"Statement":[{"Effect":"Allow","Action":"braket:*","Resource":"*"},
			{"Effect":"Deny","Action":"braket:CreateQuantumTask","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}`,
			"braket:CreateQuantumTask", SV1ARN, decisionExplicitDeny},
		{"Deny with a condition on another action", `{"Statement":[{"Effect":"Allow","Action":"braket:*","Resource":"*"},
			{"Effect":"Deny","Action":"braket:CancelQuantumTask","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}`,
			"braket:CreateQuantumTask", SV1ARN, decisionAllow},
		{"Allow with a policy variable never applies", `{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/${aws:username}/*"}}`,
			"s3:GetObject", "arn:aws:s3:::b/alice/x", decisionImplicitDeny},
		{"Deny with a policy variable always applies", `{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"},{"Effect":"Deny","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/${aws:username}/*"}]}`,
			"s3:GetObject", "arn:aws:s3:::b/alice/x", decisionExplicitDeny},
	}
	for _, c := range cases {
		if got := mustPolicy(t, c.policy).evaluate(c.action, c.resource); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestPolicyParseErrors(t *testing.T) {
	cases := map[string]string{
		"not JSON":          `{`,
		"not an object":     `[]`,
		"trailing data":     `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}} {}`,
		"duplicate key":     `{"Statement":{"Effect":"Allow","Effect":"Deny","Action":"*","Resource":"*"}}`,
		"unknown top key":   `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"},"Extra":1}`,
		"lower-case key":    `{"Statement":{"effect":"Allow","Action":"*","Resource":"*"}}`,
		"bad version":       `{"Version":"2020-01-01","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}`,
		"no statement":      `{"Version":"2012-10-17"}`,
		"empty statement":   `{"Statement":[]}`,
		"bad effect":        `{"Statement":{"Effect":"allow","Action":"*","Resource":"*"}}`,
		"principal":         `{"Statement":{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"*","Resource":"*"}}`,
		"both actions":      `{"Statement":{"Effect":"Allow","Action":"*","NotAction":"s3:*","Resource":"*"}}`,
		"no action":         `{"Statement":{"Effect":"Allow","Resource":"*"}}`,
		"action no vendor":  `{"Statement":{"Effect":"Allow","Action":"GetObject","Resource":"*"}}`,
		"empty action list": `{"Statement":{"Effect":"Allow","Action":[],"Resource":"*"}}`,
		"no resource":       `{"Statement":{"Effect":"Allow","Action":"*"}}`,
		"resource not ARN":  `{"Statement":{"Effect":"Allow","Action":"*","Resource":"bucket/*"}}`,
		"short ARN":         `{"Statement":{"Effect":"Allow","Action":"*","Resource":"arn:aws:braket:*"}}`,
		"condition string":  `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":"x"}}`,
	}
	for name, text := range cases {
		if _, err := parsePolicy(text); err == nil {
			t.Errorf("%s: accepted %s", name, text)
		} else if strings.TrimSpace(err.Error()) == "" {
			t.Errorf("%s: empty message", name)
		}
	}
}
