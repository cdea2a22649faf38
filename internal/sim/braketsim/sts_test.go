package braketsim

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/aws-sdk-go-v2/service/sts/types"
)

func assumeInput(name string) *sts.AssumeRoleInput {
	return &sts.AssumeRoleInput{RoleArn: aws.String(testRole), RoleSessionName: aws.String(name)}
}

func TestAssumeRoleWithSDK(t *testing.T) {
	h := newHarness(t, nil)
	client := h.stsClient(rootCreds)
	in := assumeInput("tenant-a.job-7")
	in.DurationSeconds = aws.Int32(900)
	in.Policy = aws.String(tenantPolicy)
	in.SourceIdentity = aws.String("alice@example.com")
	in.Tags = []types.Tag{{Key: aws.String("tenant"), Value: aws.String("a")}, {Key: aws.String("job"), Value: aws.String("7")}}
	before := h.now()
	out, err := client.AssumeRole(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	cr := out.Credentials
	if !strings.HasPrefix(*cr.AccessKeyId, "ASIA") || len(*cr.AccessKeyId) != 20 || len(*cr.SecretAccessKey) != 40 || len(*cr.SessionToken) < 100 {
		t.Fatalf("credentials shape: %s / %d / %d", *cr.AccessKeyId, len(*cr.SecretAccessKey), len(*cr.SessionToken))
	}
	if d := cr.Expiration.Sub(before); d < 899*time.Second || d > 901*time.Second {
		t.Fatalf("expiration %s is %s after the request, want 900s", cr.Expiration, d)
	}
	wantARN := "arn:aws:sts::123456789012:assumed-role/qbroker-tenant/tenant-a.job-7"
	if *out.AssumedRoleUser.Arn != wantARN || !strings.HasPrefix(*out.AssumedRoleUser.AssumedRoleId, "AROA") ||
		!strings.HasSuffix(*out.AssumedRoleUser.AssumedRoleId, ":tenant-a.job-7") {
		t.Fatalf("assumed role user %+v", out.AssumedRoleUser)
	}
	if aws.ToInt32(out.SessionTokenSize) != int32(len(*cr.SessionToken)) || aws.ToInt32(out.SessionTokenUtilization) < 1 ||
		aws.ToString(out.SourceIdentity) != "alice@example.com" {
		t.Fatalf("token size %v / %v, source identity %v", out.SessionTokenSize, out.SessionTokenUtilization, out.SourceIdentity)
	}
	info, ok := h.e.Session(*cr.AccessKeyId)
	if !ok || info.Policy != tenantPolicy || info.SourceIdentity != "alice@example.com" || len(info.Tags) != 2 ||
		info.Tags[0] != (Tag{"tenant", "a"}) || info.ARN != wantARN || info.RoleARN != testRole {
		t.Fatalf("session info %+v", info)
	}

	sess := aws.Credentials{AccessKeyID: *cr.AccessKeyId, SecretAccessKey: *cr.SecretAccessKey, SessionToken: *cr.SessionToken}
	id, err := h.stsClient(sess).GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if *id.Arn != wantARN || *id.Account != "123456789012" || *id.UserId != *out.AssumedRoleUser.AssumedRoleId {
		t.Fatalf("caller identity %+v", id)
	}
	root, err := client.GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{})
	if err != nil || *root.Arn != "arn:aws:iam::123456789012:user/qbroker" {
		t.Fatalf("root identity %v %v", root, err)
	}

	// Default duration one hour; MinimumSessionTokenSize pads the token.
	pin := assumeInput("plain")
	pin.MinimumSessionTokenSize = aws.Int32(2000)
	plain, err := client.AssumeRole(t.Context(), pin)
	if err != nil || len(*plain.Credentials.SessionToken) != 2000 {
		t.Fatalf("plain AssumeRole: %v %v", plain, err)
	}
	if d := plain.Credentials.Expiration.Sub(before); d < 3599*time.Second || d > 3601*time.Second {
		t.Fatalf("default duration %s", d)
	}
}

func TestAssumeRoleValidation(t *testing.T) {
	h := newHarness(t, nil)
	client := h.stsClient(rootCreds)
	with := func(f func(*sts.AssumeRoleInput)) *sts.AssumeRoleInput {
		in := assumeInput("valid-name")
		f(in)
		return in
	}
	longPolicy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"braket:GetDevice","Resource":"arn:aws:braket:::device/` + strings.Repeat("x", 2048) + `"}]}`
	cases := []struct {
		name string
		in   *sts.AssumeRoleInput
		code string
		msg  string
	}{
		{"duration 899", with(func(i *sts.AssumeRoleInput) { i.DurationSeconds = aws.Int32(899) }), "ValidationError", "greater than or equal to 900"},
		{"duration 43201", with(func(i *sts.AssumeRoleInput) { i.DurationSeconds = aws.Int32(43201) }), "ValidationError", "less than or equal to 43200"},
		{"duration above the role's max", with(func(i *sts.AssumeRoleInput) { i.DurationSeconds = aws.Int32(7200) }), "ValidationError", "MaxSessionDuration"},
		{"session name too short", with(func(i *sts.AssumeRoleInput) { i.RoleSessionName = aws.String("a") }), "ValidationError", "roleSessionName"},
		{"session name bad char", with(func(i *sts.AssumeRoleInput) { i.RoleSessionName = aws.String("bad name!") }), "ValidationError", "regular expression"},
		{"session name too long", with(func(i *sts.AssumeRoleInput) { i.RoleSessionName = aws.String(strings.Repeat("a", 65)) }), "ValidationError", "64"},
		{"policy too long", with(func(i *sts.AssumeRoleInput) { i.Policy = aws.String(longPolicy) }), "ValidationError", "2048"},
		{"policy not JSON", with(func(i *sts.AssumeRoleInput) { i.Policy = aws.String("{") }), "MalformedPolicyDocument", "JSON"},
		{"policy with principal", with(func(i *sts.AssumeRoleInput) {
			i.Policy = aws.String(`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}}`)
		}), "MalformedPolicyDocument", "principal"},
		{"policy without resource", with(func(i *sts.AssumeRoleInput) {
			i.Policy = aws.String(`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"braket:*"}}`)
		}), "MalformedPolicyDocument", "resources"},
		{"managed policy", with(func(i *sts.AssumeRoleInput) {
			i.PolicyArns = []types.PolicyDescriptorType{{Arn: aws.String("arn:aws:iam::aws:policy/AmazonBraketFullAccess")}}
		}), "ValidationError", "PolicyArns"},
		{"token size above 4096", with(func(i *sts.AssumeRoleInput) { i.MinimumSessionTokenSize = aws.Int32(4097) }), "ValidationError", "minimumSessionTokenSize"},
		{"reserved source identity", with(func(i *sts.AssumeRoleInput) { i.SourceIdentity = aws.String("aws:me") }), "ValidationError", "aws:"},
		{"duplicate tag keys", with(func(i *sts.AssumeRoleInput) {
			i.Tags = []types.Tag{{Key: aws.String("K"), Value: aws.String("1")}, {Key: aws.String("k"), Value: aws.String("2")}}
		}), "InvalidParameterValue", "Duplicate"},
		{"role of another account", with(func(i *sts.AssumeRoleInput) { i.RoleArn = aws.String("arn:aws:iam::999999999999:role/x") }), "AccessDenied", "sts:AssumeRole"},
		{"not a role", with(func(i *sts.AssumeRoleInput) { i.RoleArn = aws.String("arn:aws:iam::123456789012:user/x") }), "AccessDenied", "sts:AssumeRole"},
	}
	for _, tc := range cases {
		_, err := client.AssumeRole(t.Context(), tc.in)
		if apiCode(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: got %v, want %s containing %q", tc.name, err, tc.code, tc.msg)
		}
	}

	// A role configured for 12 hours accepts 43200 seconds.
	long := newHarness(t, func(c *Config) { c.MaxSessionDuration = 12 * time.Hour; c.Roles = []string{testRole} })
	in := assumeInput("long")
	in.DurationSeconds = aws.Int32(43200)
	if _, err := long.stsClient(rootCreds).AssumeRole(t.Context(), in); err != nil {
		t.Fatalf("43200 s on a 12 h role: %v", err)
	}
	other := assumeInput("other")
	other.RoleArn = aws.String("arn:aws:iam::123456789012:role/not-listed")
	if _, err := long.stsClient(rootCreds).AssumeRole(t.Context(), other); apiCode(err) != "AccessDenied" {
		t.Fatalf("unlisted role: %v", err)
	}
}

// Session credentials may not chain into AssumeRole even when their policy
// allows it: the emulated roles trust only the account's IAM user.
func TestAssumeRoleChainingRefused(t *testing.T) {
	h := newHarness(t, nil)
	sess := h.assume(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:*","Resource":"*"}]}`, 900)
	_, err := h.stsClient(sess).AssumeRole(t.Context(), assumeInput("chained"))
	if apiCode(err) != "AccessDenied" || !strings.Contains(err.Error(), "is not authorized to perform: sts:AssumeRole") {
		t.Fatalf("chained AssumeRole: %v", err)
	}
}

// PackedPolicySize (deprecated in the SDK, still in the response) is sent
// only when a policy or tags were.
func TestPackedPolicySize(t *testing.T) {
	h := newHarness(t, nil)
	call := func(extra string) string {
		res := h.do(rootCreds, svcSTS, "POST", "/", []byte("Action=AssumeRole&Version=2011-06-15&RoleArn="+url.QueryEscape(testRole)+
			"&RoleSessionName=packed"+extra), func(o *reqOpts) { o.contentType = "application/x-www-form-urlencoded" })
		if res.status != 200 {
			t.Fatalf("AssumeRole: %d %s", res.status, res.body)
		}
		return string(res.body)
	}
	if body := call(""); strings.Contains(body, "PackedPolicySize") {
		t.Errorf("PackedPolicySize without a policy: %s", body)
	}
	if body := call("&Policy=" + url.QueryEscape(tenantPolicy)); !strings.Contains(body, "<PackedPolicySize>") {
		t.Errorf("no PackedPolicySize with a policy: %s", body)
	}
	if body := call("&Tags.member.1.Key=a&Tags.member.1.Value=b"); !strings.Contains(body, "<PackedPolicySize>") {
		t.Errorf("no PackedPolicySize with tags: %s", body)
	}
	// A tag without a value, and tags numbered with a gap, are refused.
	for _, tags := range []string{"&Tags.member.1.Key=a", "&Tags.member.1.Key=a&Tags.member.1.Value=b&Tags.member.3.Key=c&Tags.member.3.Value=d"} {
		res := h.do(rootCreds, svcSTS, "POST", "/", []byte("Action=AssumeRole&Version=2011-06-15&RoleArn="+url.QueryEscape(testRole)+
			"&RoleSessionName=packed"+tags), func(o *reqOpts) { o.contentType = "application/x-www-form-urlencoded" })
		expectRefusal(t, "tags "+tags, res, 400, "ValidationError")
	}
}
