package awsbraket

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/qbroker/qbroker/internal/sim/braketsim"
)

func stmtBySid(p *policy, sid string) *denyStmt {
	for i := range p.Statement {
		if p.Statement[i].Sid == sid {
			return &p.Statement[i]
		}
	}
	return nil
}

// Lease Denies of one hour share a statement (session names are never
// reused, so the latest date serves all); an agent gets its own; a
// role-wide Deny replaces what it covers; statements older than the
// longest session are dropped; statements qbroker did not write are kept.
func TestRevocationPolicyStatements(t *testing.T) {
	foreign := `{"Sid":"OperatorsOwn","Effect":"Deny","Action":"s3:DeleteObject","Resource":"*"}`
	p, err := parseRevocationPolicy(`{"Version":"2012-10-17","Statement":[` + foreign + `]}`)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 26, 10, 0, 1, 0, time.UTC)
	sid1, _ := p.add(Scope{Session: "qbroker-a"}, t0, t0)
	sid2, _ := p.add(Scope{Session: "qbroker-b"}, t0.Add(time.Minute), t0.Add(time.Minute))
	if sid1 != sid2 || len(p.Statement) != 1 {
		t.Fatalf("two leases of one hour: sids %s %s, %d statements", sid1, sid2, len(p.Statement))
	}
	if s := stmtBySid(p, sid1); !s.issued.Equal(t0.Add(time.Minute)) || len(s.values) != 2 {
		t.Fatalf("lease statement: %+v", s)
	}
	agentSid, _ := p.add(Scope{Agent: "alice"}, t0.Add(2*time.Minute), t0.Add(2*time.Minute))
	if agentSid == sid1 || len(p.Statement) != 2 {
		t.Fatalf("agent statement: %s, %d statements", agentSid, len(p.Statement))
	}
	doc, err := p.marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(doc, foreign) || !strings.Contains(doc, `"StringLike":{"aws:userid":["*:qbroker-a","*:qbroker-b"]}`) ||
		!strings.Contains(doc, `"StringEquals":{"aws:SourceIdentity":"alice"}`) || !strings.Contains(doc, `"aws:TokenIssueTime":"2026-11-26T10:02:01Z"`) {
		t.Fatalf("policy: %s", doc)
	}
	// Read back, as from IAM: ours are recognised again, the foreign one kept.
	if p, err = parseRevocationPolicy(doc); err != nil || len(p.Statement) != 2 || len(p.foreign) != 1 {
		t.Fatalf("re-read: %v, %d ours, %d foreign", err, len(p.Statement), len(p.foreign))
	}
	// A broker role's sessions: by their qbroker-role tag.
	brSid, _ := p.add(Scope{BrokerRole: "lab"}, t0.Add(2*time.Minute), t0.Add(2*time.Minute))
	if doc, _ = p.marshal(); !strings.Contains(doc, `"StringEquals":{"aws:PrincipalTag/qbroker-role":"lab"}`) || !strings.HasPrefix(brSid, "QbrokerBrokerRole") {
		t.Fatalf("broker role statement %s: %s", brSid, doc)
	}
	if p, err = parseRevocationPolicy(doc); err != nil || len(p.Statement) != 3 || stmtBySid(p, brSid).kind() != "BrokerRole" {
		t.Fatalf("re-read with the broker role statement: %v %+v", err, p.Statement)
	}
	// A role-wide Deny covers every earlier one.
	roleSid, _ := p.add(Scope{}, t0.Add(3*time.Minute), t0.Add(3*time.Minute))
	if len(p.Statement) != 1 || p.Statement[0].Sid != roleSid || len(p.foreign) != 1 {
		t.Fatalf("after the role-wide Deny: %+v", p.Statement)
	}
	// Thirteen hours on, it can match nothing and goes.
	later := t0.Add(13 * time.Hour)
	_, dropped := p.add(Scope{Agent: "bob"}, later, later)
	if dropped != 1 || len(p.Statement) != 1 || p.Statement[0].values[0] != "bob" {
		t.Fatalf("pruning: dropped %d, %+v", dropped, p.Statement)
	}
	// widen folds everything into one role-wide Deny at the latest date.
	p.add(Scope{Session: "qbroker-c"}, later.Add(time.Hour), later.Add(time.Hour))
	p.widen(later)
	if len(p.Statement) != 1 || p.Statement[0].kind() != "Role" || !p.Statement[0].issued.Equal(later.Add(time.Hour)) {
		t.Fatalf("widened: %+v", p.Statement)
	}
}

// DenySessions against the emulator's IAM: it creates the policy, adds to
// it, dates the Deny by IAM's clock, and folds it into one role-wide Deny
// when it would outgrow the cap.
func TestDenySessionsWithIAM(t *testing.T) {
	clock := time.Now().Add(-3 * time.Minute) // IAM's clock differs from ours
	e, err := braketsim.New(braketsim.Config{RootAccessKeyID: "AKIATESTROOT00000001", RootSecretAccessKey: "secret", Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e)
	t.Cleanup(func() { srv.Close(); e.Close() })
	root := aws.Credentials{AccessKeyID: "AKIATESTROOT00000001", SecretAccessKey: "secret"}
	r := NewRevoker(srv.URL, srv.Client())
	const arn = "arn:aws:iam::123456789012:role/path/qbroker-braket"

	cut, err := r.DenySessions(context.Background(), root, arn, Scope{Session: LeaseSessionName("abc-def")})
	if err != nil {
		t.Fatal(err)
	}
	if want := clock.UTC().Truncate(time.Second).Add(time.Second); !cut.IssuedBefore.Equal(want) || cut.Widened {
		t.Fatalf("cutoff %+v, want issued before %s (IAM's clock, next second)", cut, want)
	}
	doc, ok := e.RolePolicy("qbroker-braket", RevocationPolicy)
	if !ok || !strings.Contains(doc, `"*:qbroker-abc-def"`) {
		t.Fatalf("role policy: %v %s", ok, doc)
	}
	if _, err := r.DenySessions(context.Background(), root, "not-an-arn", Scope{}); err == nil {
		t.Fatal("a malformed role ARN was accepted")
	}
	widened := false
	for i := 0; i < 400 && !widened; i++ {
		cut, err := r.DenySessions(context.Background(), root, arn, Scope{Session: LeaseSessionName(fmt.Sprintf("%016d-%016d", i, i))})
		if err != nil {
			t.Fatal(err)
		}
		widened = cut.Widened
	}
	if !widened {
		t.Fatal("the policy never reached the cap")
	}
	doc, _ = e.RolePolicy("qbroker-braket", RevocationPolicy)
	var got struct{ Statement []json.RawMessage }
	if err := json.Unmarshal([]byte(doc), &got); err != nil || len(got.Statement) != 1 || strings.Contains(doc, "aws:userid") {
		t.Fatalf("widened policy: %s", doc)
	}
	// The role's policy as IAM holds it reads back through the SDK too.
	out, err := iam.New(iam.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), HTTPClient: srv.Client(),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return root, nil })}).
		GetRolePolicy(context.Background(), &iam.GetRolePolicyInput{RoleName: aws.String("qbroker-braket"), PolicyName: aws.String(RevocationPolicy)})
	if err != nil || aws.ToString(out.PolicyName) != RevocationPolicy {
		t.Fatalf("GetRolePolicy: %v", err)
	}
}

// staleReads answers every GetRolePolicy with NoSuchEntity, as an
// eventually consistent IAM may just after a write; other calls go through.
type staleReads struct{ next http.RoundTripper }

func (s staleReads) RoundTrip(req *http.Request) (*http.Response, error) {
	body, _ := io.ReadAll(req.Body)
	req.Body = io.NopCloser(bytes.NewReader(body))
	if !strings.Contains(string(body), "Action=GetRolePolicy") {
		return s.next.RoundTrip(req)
	}
	msg := `<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>NoSuchEntity</Code>` +
		`<Message>The role policy with name qbroker-revoked-sessions cannot be found.</Message></Error><RequestId>r</RequestId></ErrorResponse>`
	return &http.Response{StatusCode: http.StatusNotFound, Header: http.Header{"Content-Type": {"text/xml"}}, Body: io.NopCloser(strings.NewReader(msg)),
		ContentLength: int64(len(msg)), Request: req}, nil
}

// With reads that lag behind writes, a second revocation does not write
// back a document without the first (the Revoker merges its own recent
// write), and a write it cannot see again is reported Unverified, not
// failed.
func TestDenySessionsStaleReads(t *testing.T) {
	e, err := braketsim.New(braketsim.Config{RootAccessKeyID: "AKIATESTROOT00000001", RootSecretAccessKey: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e)
	t.Cleanup(func() { srv.Close(); e.Close() })
	root := aws.Credentials{AccessKeyID: "AKIATESTROOT00000001", SecretAccessKey: "secret"}
	hc := &http.Client{Transport: staleReads{next: srv.Client().Transport}}
	r := NewRevoker(srv.URL, hc)
	const arn = "arn:aws:iam::123456789012:role/qbroker-braket"
	for _, id := range []string{"first-1", "second-2"} {
		cut, err := r.DenySessions(context.Background(), root, arn, Scope{Session: LeaseSessionName(id)})
		if err != nil || !cut.Unverified {
			t.Fatalf("%s: %+v %v, want an unverified cutoff", id, cut, err)
		}
	}
	cut, err := r.DenySessions(context.Background(), root, arn, Scope{Agent: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := e.RolePolicy("qbroker-braket", RevocationPolicy)
	for _, want := range []string{"*:qbroker-first-1", "*:qbroker-second-2", `"aws:SourceIdentity":"alice"`} {
		if !strings.Contains(doc, want) {
			t.Fatalf("%s was lost to a stale read: %s (%+v)", want, doc, cut)
		}
	}
}
