package awsbraket

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

const sv1 = "arn:aws:braket:::device/quantum-simulator/amazon/sv1"

func TestSessionPolicyAllowsOnlyTheRole(t *testing.T) {
	r := Role{Name: "r", DeviceARNs: []string{sv1}, S3Bucket: "amazon-braket-x", S3Prefix: "/tenants/a/"}
	b, err := SessionPolicy(r)
	if err != nil {
		t.Fatal(err)
	}
	var doc policyDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	actions := map[string][]string{}
	for _, s := range doc.Statement {
		if s.Effect != "Allow" {
			t.Fatalf("unexpected %s statement", s.Effect)
		}
		for _, a := range s.Action {
			actions[a] = append(actions[a], s.Resource...)
		}
	}
	if got := actions["braket:CreateQuantumTask"]; len(got) != 2 || got[0] != sv1 || !strings.HasSuffix(got[1], ":quantum-task/*") {
		t.Fatalf("CreateQuantumTask resources %v: want the device and the task pattern only", got)
	}
	if got := actions["s3:GetObject"]; len(got) != 1 || got[0] != "arn:aws:s3:::amazon-braket-x/tenants/a/*" {
		t.Fatalf("s3 resources %v: want the prefix only", got)
	}
	for a := range actions {
		if !strings.HasPrefix(a, "braket:") && !strings.HasPrefix(a, "s3:") || strings.Contains(a, "*") {
			t.Fatalf("action %q is wider than Braket and S3 object access", a)
		}
	}
}

func TestSessionPolicyRefusesWildcardsAndOversize(t *testing.T) {
	for _, r := range []Role{
		{Name: "no devices", S3Bucket: "b"},
		{Name: "wild device", DeviceARNs: []string{"arn:aws:braket:*:*:device/qpu/*"}, S3Bucket: "b"},
		{Name: "not braket", DeviceARNs: []string{"arn:aws:s3:::bucket"}, S3Bucket: "b"},
		{Name: "wild prefix", DeviceARNs: []string{sv1}, S3Bucket: "b", S3Prefix: "a/*"},
		{Name: "no bucket", DeviceARNs: []string{sv1}},
	} {
		if _, err := SessionPolicy(r); err == nil {
			t.Errorf("%s: accepted", r.Name)
		}
	}
	many := Role{Name: "many", S3Bucket: "b"}
	for i := range 40 {
		many.DeviceARNs = append(many.DeviceARNs, fmt.Sprintf("arn:aws:braket:us-east-1::device/qpu/vendor/Device-%02d", i))
	}
	if _, err := SessionPolicy(many); err == nil || !strings.Contains(err.Error(), "2048") {
		t.Fatalf("oversized policy: %v", err)
	}
}

func TestNamesFitSTS(t *testing.T) {
	if got := sessionName("approle:demo:agent/one two"); got != "qb-approle-demo-agent-one-two" {
		t.Fatalf("session name %q", got)
	}
	if got := sessionName(strings.Repeat("a", 100)); len(got) != 64 {
		t.Fatalf("session name length %d", len(got))
	}
	if got := clean("", 64); len(got) < 2 {
		t.Fatalf("clean(\"\") = %q: STS needs 2 characters", got)
	}
	if _, err := ParseRootKey("AKIA"); err == nil {
		t.Fatal("a key without a secret was accepted")
	}
}
