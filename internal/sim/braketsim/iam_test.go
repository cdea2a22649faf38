package braketsim

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

func (h *harness) iamClient(c aws.Credentials) *iam.Client {
	return iam.New(iam.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(h.srv.URL),
		Credentials:      aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return c, nil }),
		HTTPClient:       h.srv.Client(),
		RetryMaxAttempts: 1,
	})
}

// assumeAs issues a session named name with source identity who (no
// session policy: the role's permissions).
func (h *harness) assumeAs(name, who string) aws.Credentials {
	h.t.Helper()
	in := &sts.AssumeRoleInput{RoleArn: aws.String(testRole), RoleSessionName: aws.String(name), SourceIdentity: aws.String(who)}
	out, err := h.stsClient(rootCreds).AssumeRole(context.Background(), in)
	if err != nil {
		h.t.Fatalf("AssumeRole: %v", err)
	}
	cr := out.Credentials
	return aws.Credentials{AccessKeyID: *cr.AccessKeyId, SecretAccessKey: *cr.SecretAccessKey, SessionToken: *cr.SessionToken}
}

func (h *harness) getDevice(c aws.Credentials) response {
	return h.do(c, svcBraket, http.MethodGet, "/device/"+escapeLabel(SV1ARN), nil)
}

// A role inline policy (PutRolePolicy with aws-sdk-go-v2's IAM client)
// with explicit Deny statements conditioned on aws:userid,
// aws:SourceIdentity and aws:TokenIssueTime cuts off exactly the sessions
// it names, issued before its date, on every call — as AWS's "revoke
// active sessions" does — while other sessions and later ones keep working.
func TestRoleInlineDenyCutsSessions(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Roles = []string{testRole} })
	alice := h.assumeAs("qbroker-lease-a", "alice")
	alice2 := h.assumeAs("qbroker-lease-a2", "alice")
	bob := h.assumeAs("qbroker-lease-b", "bob")
	for _, c := range []aws.Credentials{alice, alice2, bob} {
		if r := h.getDevice(c); r.status != http.StatusOK {
			t.Fatalf("before any deny: %d %s", r.status, r.body)
		}
	}
	h.advance(2 * time.Second)
	cut := h.now().UTC().Truncate(time.Second).Add(time.Second).Format(time.RFC3339)
	doc := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[
 {"Sid":"OneSession","Effect":"Deny","Action":"*","Resource":"*","Condition":{"StringLike":{"aws:userid":"*:qbroker-lease-a"},"DateLessThan":{"aws:TokenIssueTime":%q}}}]}`, cut)
	client := h.iamClient(rootCreds)
	if _, err := client.PutRolePolicy(t.Context(), &iam.PutRolePolicyInput{RoleName: aws.String("qbroker-tenant"),
		PolicyName: aws.String("qbroker-revoked-sessions"), PolicyDocument: aws.String(doc)}); err != nil {
		t.Fatal(err)
	}
	r := h.getDevice(alice)
	expectRefusal(t, "the named session", r, http.StatusForbidden, "AccessDeniedException")
	if !strings.Contains(r.message(), "with an explicit deny in an identity-based policy") || !strings.Contains(r.message(), "assumed-role/qbroker-tenant/qbroker-lease-a ") {
		t.Fatalf("refusal message: %s", r.message())
	}
	for what, c := range map[string]aws.Credentials{"another session of the same agent": alice2, "another agent's session": bob} {
		if r := h.getDevice(c); r.status != http.StatusOK {
			t.Fatalf("%s after the lease deny: %d %s", what, r.status, r.body)
		}
	}
	// The document reads back URL-encoded (RFC 3986), as IAM returns it.
	got, err := client.GetRolePolicy(t.Context(), &iam.GetRolePolicyInput{RoleName: aws.String("qbroker-tenant"), PolicyName: aws.String("qbroker-revoked-sessions")})
	if err != nil {
		t.Fatal(err)
	}
	if dec, err := url.QueryUnescape(aws.ToString(got.PolicyDocument)); err != nil || dec != doc || strings.Contains(aws.ToString(got.PolicyDocument), "{") {
		t.Fatalf("GetRolePolicy document %q (%v)", aws.ToString(got.PolicyDocument), err)
	}

	// Every session of an agent: SourceIdentity.
	doc = strings.Replace(doc, `]}`, fmt.Sprintf(`,{"Sid":"OneAgent","Effect":"Deny","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:SourceIdentity":"alice"},"DateLessThan":{"aws:TokenIssueTime":%q}}}]}`, cut), 1)
	if _, err := client.PutRolePolicy(t.Context(), &iam.PutRolePolicyInput{RoleName: aws.String("qbroker-tenant"),
		PolicyName: aws.String("qbroker-revoked-sessions"), PolicyDocument: aws.String(doc)}); err != nil {
		t.Fatal(err)
	}
	expectRefusal(t, "the agent's other session", h.getDevice(alice2), http.StatusForbidden, "AccessDeniedException")
	if r := h.getDevice(bob); r.status != http.StatusOK {
		t.Fatalf("another agent after the agent deny: %d %s", r.status, r.body)
	}
	// S3 refuses too, in its own shape.
	expectRefusal(t, "S3 with the cut session", h.do(alice2, svcS3, http.MethodGet, "/"+testBucket+"/x", nil), http.StatusForbidden, "AccessDenied")

	// A session issued after the date works, even for the same agent.
	h.advance(2 * time.Second)
	later := h.assumeAs("qbroker-lease-a3", "alice")
	if r := h.getDevice(later); r.status != http.StatusOK {
		t.Fatalf("a session issued after the deny: %d %s", r.status, r.body)
	}

	// Every session of the role: TokenIssueTime alone.
	cut = h.now().UTC().Truncate(time.Second).Add(time.Second).Format(time.RFC3339)
	doc = strings.Replace(doc, `]}`, fmt.Sprintf(`,{"Sid":"Role","Effect":"Deny","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":%q}}}]}`, cut), 1)
	if _, err := client.PutRolePolicy(t.Context(), &iam.PutRolePolicyInput{RoleName: aws.String("qbroker-tenant"),
		PolicyName: aws.String("qbroker-revoked-sessions"), PolicyDocument: aws.String(doc)}); err != nil {
		t.Fatal(err)
	}
	for what, c := range map[string]aws.Credentials{"bob": bob, "the later session": later} {
		expectRefusal(t, what+" after the role deny", h.getDevice(c), http.StatusForbidden, "AccessDeniedException")
	}
	// Deleting the policy lifts every deny.
	if _, err := client.DeleteRolePolicy(t.Context(), &iam.DeleteRolePolicyInput{RoleName: aws.String("qbroker-tenant"),
		PolicyName: aws.String("qbroker-revoked-sessions")}); err != nil && apiCode(err) != "NoSuchEntity" {
		t.Fatal(err)
	}
	if r := h.getDevice(bob); r.status != http.StatusOK {
		t.Fatalf("after DeleteRolePolicy: %d %s", r.status, r.body)
	}
}

// IAM refuses as AWS does: unknown role, unknown policy, a malformed
// document, the inline-policy quota, a session policy without iam:*, a
// caller whose identity policy lacks the action, a region other than
// us-east-1.
func TestIAMRefusals(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Roles = []string{testRole}
		c.RootDeniedActions = []string{"iam:DeleteRolePolicy"}
	})
	client := h.iamClient(rootCreds)
	put := func(c *iam.Client, role, doc string) error {
		_, err := c.PutRolePolicy(t.Context(), &iam.PutRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String("p"), PolicyDocument: aws.String(doc)})
		return err
	}
	ok := `{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2020-01-01T00:00:00Z"}}}}`
	for _, c := range []struct {
		what, role, doc, code string
	}{
		{"unknown role", "nobody", ok, "NoSuchEntity"},
		{"bad role name", "a/b", ok, "ValidationError"},
		{"not JSON", "qbroker-tenant", "{", "MalformedPolicyDocument"},
		{"principal", "qbroker-tenant", `{"Statement":{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*"}}`, "MalformedPolicyDocument"},
		{"unknown operator", "qbroker-tenant", `{"Statement":{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"DateBefore":{"aws:TokenIssueTime":"x"}}}}`, "MalformedPolicyDocument"},
		{"over the quota", "qbroker-tenant", `{"Statement":{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"StringLike":{"aws:userid":["` + strings.Repeat("x", 10300) + `"]}}}}`, "LimitExceeded"},
	} {
		if err := put(client, c.role, c.doc); apiCode(err) != c.code {
			t.Errorf("%s: %v, want %s", c.what, err, c.code)
		}
	}
	if err := put(client, "qbroker-tenant", ok); err != nil {
		t.Fatal(err)
	}
	if _, err := client.GetRolePolicy(t.Context(), &iam.GetRolePolicyInput{RoleName: aws.String("qbroker-tenant"), PolicyName: aws.String("other")}); apiCode(err) != "NoSuchEntity" {
		t.Errorf("unknown policy: %v", err)
	}
	_, err := client.DeleteRolePolicy(t.Context(), &iam.DeleteRolePolicyInput{RoleName: aws.String("qbroker-tenant"), PolicyName: aws.String("p")})
	if apiCode(err) != "AccessDenied" || !strings.Contains(err.Error(), "because no identity-based policy allows the iam:DeleteRolePolicy action") {
		t.Errorf("a denied action for the key's user: %v", err)
	}
	// The key's user may still do what it is not denied.
	sess := h.assume(tenantPolicy, 900)
	if err := put(h.iamClient(sess), "qbroker-tenant", ok); apiCode(err) != "AccessDenied" {
		t.Errorf("a session whose policy has no iam:*: %v", err)
	}
	r := h.do(rootCreds, svcIAM, http.MethodPost, "/", []byte("Action=ListRolePolicies&Version=2010-05-08&RoleName=qbroker-tenant"),
		func(o *reqOpts) { o.region = "eu-west-1"; o.contentType = "application/x-www-form-urlencoded" })
	expectRefusal(t, "IAM signed for another region", r, http.StatusForbidden, "SignatureDoesNotMatch")
	r = h.do(rootCreds, svcIAM, http.MethodPost, "/", []byte("Action=ListRolePolicies&Version=2010-05-08&RoleName=qbroker-tenant"),
		func(o *reqOpts) { o.contentType = "application/x-www-form-urlencoded" })
	if r.status != http.StatusOK || !strings.Contains(string(r.body), "<member>p</member>") {
		t.Errorf("ListRolePolicies: %d %s", r.status, r.body)
	}
}

// A long-term key whose user lacks sts:AssumeRole cannot mint sessions.
func TestRootDeniedAssumeRole(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.RootDeniedActions = []string{"sts:*"} })
	_, err := h.stsClient(rootCreds).AssumeRole(t.Context(), assumeInput("x1"))
	if apiCode(err) != "AccessDenied" || !strings.Contains(err.Error(), "because no identity-based policy allows the sts:AssumeRole action") {
		t.Fatalf("AssumeRole by a user without sts:AssumeRole: %v", err)
	}
}

// Conditions the emulator can evaluate decide; the ones it cannot fail
// closed (a Deny applies, an Allow does not).
func TestConditionEvaluation(t *testing.T) {
	issued := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rc := &requestContext{keys: map[string]string{"aws:tokenissuetime": issued.Format(time.RFC3339), "aws:userid": "AROAX:qbroker-1",
		"aws:sourceidentity": "alice", "aws:principaltag/team": "red"}}
	cases := []struct {
		cond string
		want tri
	}{
		{`{"DateLessThan":{"aws:TokenIssueTime":"2026-01-02T03:04:06Z"}}`, condTrue},
		{`{"DateLessThan":{"aws:TokenIssueTime":"2026-01-02T03:04:05Z"}}`, condFalse},
		{`{"DateLessThan":{"aws:TokenIssueTime":"1767323046"}}`, condTrue},
		{`{"StringLike":{"aws:userid":"*:qbroker-1"}}`, condTrue},
		{`{"StringLike":{"aws:userid":["*:qbroker-2","*:qbroker-1"]}}`, condTrue},
		{`{"StringLike":{"aws:userid":"*:qbroker-10"}}`, condFalse},
		{`{"StringEquals":{"aws:SourceIdentity":"alice"},"DateLessThan":{"aws:TokenIssueTime":"2027-01-01T00:00:00Z"}}`, condTrue},
		{`{"StringEquals":{"aws:SourceIdentity":"alice"},"DateLessThan":{"aws:TokenIssueTime":"2025-01-01T00:00:00Z"}}`, condFalse},
		{`{"StringNotEquals":{"aws:PrincipalTag/Team":"blue"}}`, condTrue},
		{`{"StringEquals":{"aws:PrincipalTag/missing":"x"}}`, condFalse},
		{`{"StringEqualsIfExists":{"aws:PrincipalTag/missing":"x"}}`, condTrue},
		{`{"Null":{"aws:PrincipalTag/missing":"true"}}`, condTrue},
		{`{"Bool":{"aws:SecureTransport":"true"}}`, condUnknown},
		{`{"NumericLessThan":{"aws:MultiFactorAuthAge":"3600"}}`, condUnknown},
		{`{"ForAnyValue:StringEquals":{"aws:TagKeys":"x"}}`, condUnknown},
		{`{"StringEquals":{"aws:SourceIdentity":"alice"},"Bool":{"aws:SecureTransport":"true"}}`, condUnknown},
		{`{"StringEquals":{"aws:SourceIdentity":"bob"},"Bool":{"aws:SecureTransport":"true"}}`, condFalse},
	}
	for _, c := range cases {
		cs, err := parseConditions([]byte(c.cond))
		if err != nil {
			t.Fatalf("%s: %v", c.cond, err)
		}
		if got := conditionsHold(cs, rc); got != c.want {
			t.Errorf("%s: %v, want %v", c.cond, got, c.want)
		}
	}
}
