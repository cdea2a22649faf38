// Package awsbraket is qbroker's AWS Braket adapter. This file mints
// dynamic credentials: STS AssumeRole with an inline session policy that
// allows only the role's Braket actions on the role's devices and S3 reads
// and writes under the role's result prefix, a SourceIdentity and session
// tags naming the agent, its owner and its team (so CloudTrail shows who
// ran what, and IAM conditions can use them), and a lease as long as the
// role allows (at least STS's 900 s).
package awsbraket

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
)

// RoleTag is the session tag naming the broker role.
const RoleTag = "qbroker-role"

// MinDuration is STS's shortest session.
const MinDuration = 900 * time.Second

// Role is an AWS credential role: which IAM role the broker assumes, what
// the session may do, and which broker roles may ask for it.
type Role struct {
	Name        string
	RoleARN     string        // the IAM role the broker assumes
	DeviceARNs  []string      // devices the session may run tasks on
	S3Bucket    string        // results bucket
	S3Prefix    string        // results prefix inside the bucket (the session's only S3 space)
	Duration    time.Duration // session length; at least MinDuration
	BrokerRoles []string      // broker roles whose agents may ask for it
}

// Identity is who the credentials are for: it becomes the SourceIdentity
// and the session tags.
type Identity struct {
	Agent, Owner, Team string
	// Role is the broker role the agent asked as (tag qbroker-role), so
	// that revoking the broker role can cut off its sessions.
	Role string
	// Session is the RoleSessionName ("" = "qb-" and the agent); a lease's
	// is LeaseSessionName of its id, so that it can be cut off alone.
	Session string
}

// Credentials are a minted STS session. SecretAccessKey and SessionToken
// are secret.
type Credentials struct {
	AccessKeyID, SecretAccessKey, SessionToken string
	Expiration                                 time.Time
	AssumedRoleARN                             string
}

// Minter assumes roles with the broker's root AWS key.
type Minter struct {
	region   string
	endpoint string // STS base URL; "" = the regional AWS endpoint
	hc       *http.Client
}

// NewMinter builds a Minter for region; endpoint overrides the STS URL
// (tests point it at the emulator).
func NewMinter(region, endpoint string, hc *http.Client) *Minter {
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	return &Minter{region: region, endpoint: endpoint, hc: hc}
}

// ParseRootKey reads the stored root credential, "ACCESS_KEY_ID:SECRET".
func ParseRootKey(s string) (aws.Credentials, error) {
	id, secret, ok := strings.Cut(s, ":")
	if !ok || id == "" || secret == "" {
		return aws.Credentials{}, errors.New("aws root credential must be ACCESS_KEY_ID:SECRET_ACCESS_KEY")
	}
	return aws.Credentials{AccessKeyID: id, SecretAccessKey: secret, Source: "qbroker"}, nil
}

// Mint assumes r's IAM role for who, with r's session policy.
func (m *Minter) Mint(ctx context.Context, root aws.Credentials, r Role, who Identity) (Credentials, error) {
	policy, err := SessionPolicy(r)
	if err != nil {
		return Credentials{}, err
	}
	opts := sts.Options{Region: m.region, Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return root, nil }), HTTPClient: m.hc}
	if m.endpoint != "" {
		opts.BaseEndpoint = aws.String(m.endpoint)
	}
	client := sts.New(opts)
	in := &sts.AssumeRoleInput{
		RoleArn:         aws.String(r.RoleARN),
		RoleSessionName: aws.String(cmp.Or(who.Session, sessionName(who.Agent))),
		DurationSeconds: aws.Int32(int32(max(r.Duration, MinDuration) / time.Second)),
		Policy:          aws.String(string(policy)),
		SourceIdentity:  aws.String(SourceIdentity(who.Agent)),
	}
	for _, t := range []struct{ k, v string }{{"qbroker-agent", who.Agent}, {"qbroker-owner", who.Owner}, {"qbroker-team", who.Team}, {RoleTag, who.Role}} {
		if t.v != "" {
			in.Tags = append(in.Tags, ststypes.Tag{Key: aws.String(t.k), Value: aws.String(tagValue(t.v))})
		}
	}
	out, err := client.AssumeRole(ctx, in)
	if err != nil {
		return Credentials{}, fmt.Errorf("sts AssumeRole %s: %w", r.RoleARN, err)
	}
	if out.Credentials == nil {
		return Credentials{}, errors.New("sts AssumeRole: no credentials in the answer")
	}
	c := Credentials{
		AccessKeyID: aws.ToString(out.Credentials.AccessKeyId), SecretAccessKey: aws.ToString(out.Credentials.SecretAccessKey),
		SessionToken: aws.ToString(out.Credentials.SessionToken), Expiration: aws.ToTime(out.Credentials.Expiration),
	}
	if out.AssumedRoleUser != nil {
		c.AssumedRoleARN = aws.ToString(out.AssumedRoleUser.Arn)
	}
	return c, nil
}

// policyDoc is an IAM policy document.
type policyDoc struct {
	Version   string      `json:"Version"`
	Statement []statement `json:"Statement"`
}

type statement struct {
	Sid      string   `json:"Sid"`
	Effect   string   `json:"Effect"`
	Action   []string `json:"Action"`
	Resource []string `json:"Resource"`
}

// SessionPolicy is r's inline session policy: Braket task actions on the
// role's devices and on quantum tasks, device discovery, and S3 object
// access under the role's prefix only. The effective permissions are the
// IAM role's intersected with this, so it can only narrow.
func SessionPolicy(r Role) ([]byte, error) {
	if len(r.DeviceARNs) == 0 {
		return nil, fmt.Errorf("aws role %s: no device ARNs", r.Name)
	}
	for _, d := range r.DeviceARNs {
		if !strings.HasPrefix(d, "arn:aws:braket:") || !strings.Contains(d, ":device/") || strings.ContainsAny(d, "*?") {
			return nil, fmt.Errorf("aws role %s: %q is not a Braket device ARN", r.Name, d)
		}
	}
	if r.S3Bucket == "" || strings.ContainsAny(r.S3Bucket+r.S3Prefix, "*?") {
		return nil, fmt.Errorf("aws role %s: an S3 bucket (and a prefix without wildcards) is required", r.Name)
	}
	prefix := strings.Trim(r.S3Prefix, "/")
	object := "arn:aws:s3:::" + r.S3Bucket + "/" + prefix + "/*"
	if prefix == "" {
		object = "arn:aws:s3:::" + r.S3Bucket + "/*"
	}
	devices := slices.Clone(r.DeviceARNs)
	slices.Sort(devices)
	doc := policyDoc{Version: "2012-10-17", Statement: []statement{
		{Sid: "RunOnTheRolesDevices", Effect: "Allow", Action: []string{"braket:CreateQuantumTask"},
			Resource: append(devices, "arn:aws:braket:*:*:quantum-task/*")},
		{Sid: "ReadAndCancelTasks", Effect: "Allow", Action: []string{"braket:GetQuantumTask", "braket:CancelQuantumTask"},
			Resource: []string{"arn:aws:braket:*:*:quantum-task/*"}},
		{Sid: "SeeTheRolesDevices", Effect: "Allow", Action: []string{"braket:GetDevice"}, Resource: devices},
		{Sid: "SearchDevices", Effect: "Allow", Action: []string{"braket:SearchDevices"}, Resource: []string{"*"}},
		{Sid: "ResultsUnderThePrefix", Effect: "Allow", Action: []string{"s3:GetObject", "s3:PutObject"}, Resource: []string{object}},
	}}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	if len(b) > 2048 {
		return nil, fmt.Errorf("aws role %s: session policy is %d characters; STS takes at most 2048 (fewer devices)", r.Name, len(b))
	}
	return b, nil
}

var unsafeRE = regexp.MustCompile(`[^\w+=,.@-]`)

// clean maps s into STS's [\w+=,.@-] alphabet, at most n characters.
func clean(s string, n int) string {
	s = unsafeRE.ReplaceAllString(s, "-")
	if len(s) > n {
		s = s[:n]
	}
	if len(s) < 2 {
		s += "--"[:2-len(s)]
	}
	return s
}

// sessionName is "qb-" plus the agent, in STS's alphabet (≤ 64).
func sessionName(agent string) string { return clean("qb-"+agent, 64) }

var tagRE = regexp.MustCompile(`[^\p{L}\p{Z}\p{N}_.:/=+\-@]`)

// tagValue keeps a session tag value in IAM's alphabet (≤ 256).
func tagValue(s string) string {
	s = tagRE.ReplaceAllString(s, "-")
	if len(s) > 256 {
		s = s[:256]
	}
	return s
}
