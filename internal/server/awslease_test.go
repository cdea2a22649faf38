package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/gateway"
	"github.com/qbroker/qbroker/internal/provider/awsbraket"
	"github.com/qbroker/qbroker/internal/sim/braketsim"
)

// awsLeaseEnv is a dev broker whose AWS role braket-sv1 (for broker roles
// demo and lab) is assumed on the emulator, which also serves IAM; the root key is
// stored.
func awsLeaseEnv(t *testing.T, mutate func(*braketsim.Config)) (*env, *awsSim) {
	t.Helper()
	sim := startAWSSimWith(t, mutate)
	path := filepath.Join(t.TempDir(), "policies.cedar")
	writeAtomic(t, path, demoPolicy(t)+awsPolicyTmpl+`
@id("lab-aws-creds")
permit (principal in Role::"lab", action == Action::"IssueCredentials", resource == Provider::"aws");
`)
	d := startDevWith(t, DevOptions{PolicyFiles: []string{path}, AWS: config.AWS{
		Region: "us-east-1", STSEndpoint: sim.url, IAMEndpoint: sim.url,
		Roles: []config.AWSRole{{Name: "braket-sv1", RoleARN: awsRoleARN, DeviceARNs: []string{braketsim.SV1ARN},
			S3Bucket: awsBucket, S3Prefix: awsPrefix, BrokerRoles: []string{DemoRole, "lab"}}},
	}})
	e := &env{t: t, d: d, hc: &http.Client{Timeout: 20 * time.Second}}
	want(t, "store the root key", e.broker(http.MethodPost, "/v1/sys/providers/aws/credential", d.RootToken, fmt.Sprintf(`{"api_key":%q}`, awsRootID+":"+sim.secret)), http.StatusNoContent)
	return e, sim
}

type awsLease struct {
	LeaseID string           `json:"lease_id"`
	Data    api.AWSCredsData `json:"data"`
}

func (l awsLease) creds() aws.Credentials {
	return aws.Credentials{AccessKeyID: l.Data.AccessKey, SecretAccessKey: l.Data.SecretKey, SessionToken: l.Data.SecurityToken}
}

func (e *env) awsLease(tok string) awsLease {
	e.t.Helper()
	r := e.broker(http.MethodGet, "/v1/aws/creds/braket-sv1", tok, "")
	want(e.t, "aws creds", r, http.StatusOK)
	var l awsLease
	if err := json.Unmarshal(r.body, &l); err != nil {
		e.t.Fatal(err)
	}
	return l
}

// works runs a Bell pair on SV1 with the lease's credentials, straight at
// the emulator (as an agent's own AWS SDK would).
func (s *awsSim) works(t *testing.T, l awsLease) (bool, string) {
	t.Helper()
	status, body := s.braketCall(t, l.creds(), http.MethodPost, "/quantum-task", createTask(braketsim.SV1ARN))
	switch {
	case status == http.StatusCreated:
		return true, body
	case status == http.StatusForbidden && strings.Contains(body, "AccessDeniedException") && strings.Contains(body, "with an explicit deny in an identity-based policy"):
		return false, body
	}
	t.Fatalf("Braket answered neither 201 nor the explicit deny: %d %s", status, body)
	return false, ""
}

func (s *awsSim) mustWork(t *testing.T, what string, l awsLease) {
	t.Helper()
	if ok, body := s.works(t, l); !ok {
		t.Fatalf("%s: refused: %s", what, body)
	}
}

func (s *awsSim) mustBeCut(t *testing.T, what string, l awsLease) {
	t.Helper()
	if ok, _ := s.works(t, l); ok {
		t.Fatalf("%s: still works", what)
	}
}

// gatewayUpstream is the STS session the broker gives its gateway for
// broker role demo, as a lease.
func (e *env) gatewayUpstream() awsLease {
	e.t.Helper()
	r := e.broker(http.MethodPost, "/v1/auth/token/create", e.d.RootToken, `{"policies":["gateway"]}`)
	want(e.t, "gateway token", r, http.StatusOK)
	var created struct {
		Auth api.Auth `json:"auth"`
	}
	if err := json.Unmarshal(r.body, &created); err != nil {
		e.t.Fatal(err)
	}
	c, _, err := gateway.NewRemoteBroker(e.d.BrokerURL, created.Auth.ClientToken, e.hc).Upstream(e.t.Context(), "aws", DemoRole)
	if err != nil {
		e.t.Fatal(err)
	}
	return awsLease{Data: api.AWSCredsData{AccessKey: c.AccessKeyID, SecretKey: c.Secret, SecurityToken: c.SessionToken}}
}

func leaseData(t *testing.T, r result) api.LeaseRevocationData {
	t.Helper()
	var out api.LeaseRevocationData
	decodeData(t, r, &out)
	return out
}

// Issue 8, revocation of a provider lease: an agent revokes its own AWS
// lease and the very credentials it holds are refused by AWS (the
// emulator, enforcing the role's inline Deny) well within a second, while
// another agent's session of the same role — and the agent's own other
// lease — still work; an agent cannot revoke another's lease; bad lease
// ids are refused naming what is wrong, with nothing written; revoke-prefix
// (root only) cuts every session of the role; a session issued after the
// revocation works; everything is audited.
func TestAWSLeaseRevocation(t *testing.T) {
	e, sim := awsLeaseEnv(t, nil)
	alice := e.mustLogin(e.d.RoleID, e.d.SecretID)
	bob := e.mustLogin(e.d.RoleID, e.newSecretID(DemoRole, "bob-agent", "").SecretID)
	if alice.EntityID == bob.EntityID {
		t.Fatal("two logins, one agent")
	}
	a1, a2, b1 := e.awsLease(alice.ClientToken), e.awsLease(alice.ClientToken), e.awsLease(bob.ClientToken)
	sess, _ := sim.e.Session(a1.Data.AccessKey)
	if want := awsbraket.LeaseSessionName(strings.TrimPrefix(a1.LeaseID, "aws/creds/braket-sv1/")); sess.SessionName != want {
		t.Fatalf("the lease %s names session %q, want %q", a1.LeaseID, sess.SessionName, want)
	}
	for what, l := range map[string]awsLease{"alice's first lease": a1, "alice's second lease": a2, "bob's lease": b1} {
		sim.mustWork(t, what+" before any revocation", l)
	}

	// Refused, with nothing written at AWS.
	for _, c := range []struct {
		what, tok, body string
		status          int
		msg             string
	}{
		{"bob revokes alice's lease", bob.ClientToken, fmt.Sprintf(`{"lease_id":%q}`, a1.LeaseID), http.StatusForbidden, "was not issued to"},
		{"a lease id with another tag", alice.ClientToken, fmt.Sprintf(`{"lease_id":%q}`, a1.LeaseID[:len(a1.LeaseID)-1]+"a"), http.StatusForbidden, "was not issued to"},
		{"malformed lease id", alice.ClientToken, `{"lease_id":"aws/creds/braket-sv1/not-a-lease"}`, http.StatusBadRequest, "malformed lease_id"},
		{"not an AWS lease", e.d.RootToken, `{"lease_id":"database/creds/x/1"}`, http.StatusBadRequest, "not a lease of this broker"},
		{"unknown AWS role", e.d.RootToken, fmt.Sprintf(`{"lease_id":%q}`, strings.Replace(a1.LeaseID, "braket-sv1", "nope", 1)), http.StatusBadRequest, `unknown AWS role "nope"`},
		{"no lease id", alice.ClientToken, `{}`, http.StatusBadRequest, "lease_id is required"},
		{"unknown field", alice.ClientToken, `{"lease":"x"}`, http.StatusBadRequest, ""},
		{"no token", "", fmt.Sprintf(`{"lease_id":%q}`, a1.LeaseID), http.StatusForbidden, ""},
	} {
		want(t, c.what, e.broker(http.MethodPut, "/v1/sys/leases/revoke", c.tok, c.body), c.status, c.msg)
	}
	for _, c := range []struct {
		what, tok, prefix string
		status            int
		msg               string
	}{
		{"an agent revokes a prefix", alice.ClientToken, "aws/creds/braket-sv1", http.StatusForbidden, "root policy"},
		{"unknown role prefix", e.d.RootToken, "aws/creds/nope", http.StatusBadRequest, `unknown AWS role "nope"`},
		{"a lease as a prefix", e.d.RootToken, "aws/creds/braket-sv1/x", http.StatusBadRequest, "want aws/creds/<role>"},
		{"another prefix", e.d.RootToken, "aws", http.StatusBadRequest, "want aws/creds/<role>"},
	} {
		want(t, c.what, e.broker(http.MethodPost, "/v1/sys/leases/revoke-prefix/"+c.prefix, c.tok, ""), c.status, c.msg)
	}
	if doc, ok := sim.e.RolePolicy("qbroker-braket", awsbraket.RevocationPolicy); ok {
		t.Fatalf("a refused revocation wrote the role policy: %s", doc)
	}
	for what, l := range map[string]awsLease{"alice's first lease": a1, "bob's lease": b1} {
		sim.mustWork(t, what+" after the refused revocations", l)
	}

	// Alice revokes her first lease: those credentials stop at AWS.
	start := time.Now()
	r := e.broker(http.MethodPut, "/v1/sys/leases/revoke", alice.ClientToken, fmt.Sprintf(`{"lease_id":%q}`, a1.LeaseID))
	want(t, "alice revokes her lease", r, http.StatusOK)
	var cutAfter time.Duration
	for {
		ok, _ := sim.works(t, a1)
		if !ok {
			cutAfter = time.Since(start)
			break
		}
		if time.Since(start) > time.Second {
			t.Fatal("the revoked lease's credentials still work a second after the revocation")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("revoked lease refused by AWS %v after the revocation request was sent", cutAfter.Round(time.Millisecond))
	out := leaseData(t, r)
	if out.LeaseID != a1.LeaseID || out.AWSRole != "braket-sv1" || out.AWS.RoleARN != awsRoleARN || out.AWS.Policy != awsbraket.RevocationPolicy ||
		out.AWS.IssuedBefore == nil || out.AWS.Error != "" || out.AWS.Widened {
		t.Fatalf("revocation answer: %+v", out)
	}
	doc, _ := sim.e.RolePolicy("qbroker-braket", awsbraket.RevocationPolicy)
	if !strings.Contains(doc, `"aws:userid":"*:`+awsbraket.LeaseSessionName(strings.TrimPrefix(a1.LeaseID, "aws/creds/braket-sv1/"))+`"`) ||
		!strings.Contains(doc, `"aws:TokenIssueTime":"`+out.AWS.IssuedBefore.UTC().Format(time.RFC3339)+`"`) {
		t.Fatalf("the role's revocation policy: %s", doc)
	}
	sim.mustWork(t, "alice's other lease", a2)
	sim.mustWork(t, "bob's lease of the same role", b1)
	// Root revokes bob's lease.
	want(t, "root revokes bob's lease", e.broker(http.MethodPost, "/v1/sys/leases/revoke", e.d.RootToken, fmt.Sprintf(`{"lease_id":%q}`, b1.LeaseID)), http.StatusOK)
	sim.mustBeCut(t, "bob's revoked lease", b1)
	sim.mustWork(t, "alice's other lease after bob's revocation", a2)

	// Every session of the role, the gateway's included.
	b2 := e.awsLease(bob.ClientToken)
	gw := e.gatewayUpstream()
	sim.mustWork(t, "the gateway's session", gw)
	r = e.broker(http.MethodPost, "/v1/sys/leases/revoke-prefix/aws/creds/braket-sv1", e.d.RootToken, "")
	want(t, "revoke-prefix", r, http.StatusOK)
	if p := leaseData(t, r); p.Prefix != "aws/creds/braket-sv1" || p.AWS.IssuedBefore == nil || p.AWS.Error != "" {
		t.Fatalf("revoke-prefix answer: %+v", p)
	}
	sim.mustBeCut(t, "alice's other lease after revoke-prefix", a2)
	sim.mustBeCut(t, "bob's new lease after revoke-prefix", b2)
	sim.mustBeCut(t, "the gateway's cached session after revoke-prefix", gw)

	// A session asked for right after the revocation works: the broker
	// waits until AWS's clock has passed the Deny's date (the next whole
	// second) before minting it. So does the gateway's next one.
	asked := time.Now()
	a3 := e.awsLease(alice.ClientToken)
	t.Logf("a lease asked for right after revoke-prefix was minted %v later", time.Since(asked).Round(time.Millisecond))
	sim.mustWork(t, "a lease issued right after the revocations", a3)
	gw2 := e.gatewayUpstream()
	if gw2.Data.AccessKey == gw.Data.AccessKey {
		t.Fatal("the gateway kept its cut-off session")
	}
	sim.mustWork(t, "the gateway's new session", gw2)
	sim.offset.Store(int64(5 * time.Second))
	sim.mustBeCut(t, "the revoked lease, later", a1)
	sim.mustWork(t, "the new lease, later", a3)

	// The trail: each revocation with its lease and the AWS role; the refusals too.
	for _, c := range []struct {
		what string
		n    int
		f    func(audit.Event) bool
	}{
		{"alice's revocation", 1, func(ev audit.Event) bool {
			return ev.Type == "revoke" && ev.Action == "RevokeLease" && ev.Decision == "allow" && ev.Agent == alice.EntityID &&
				strings.Contains(ev.Reason, a1.LeaseID) && strings.Contains(ev.Reason, awsRoleARN) && ev.Device == "aws-role:braket-sv1"
		}},
		{"bob's refused attempt", 1, func(ev audit.Event) bool {
			return ev.Type == "revoke" && ev.Action == "RevokeLease" && ev.Decision == "deny" && ev.Agent == bob.EntityID && strings.Contains(ev.Reason, "was not issued to")
		}},
		{"the prefix", 1, func(ev audit.Event) bool {
			return ev.Type == "revoke" && ev.Action == "RevokeLeasePrefix" && ev.Decision == "allow" && strings.Contains(ev.Reason, awsRoleARN)
		}},
	} {
		if got := e.count(c.f); got != c.n {
			t.Errorf("audit: %s: %d events, want %d", c.what, got, c.n)
		}
	}
	e.wantNotInAudit(sim.secret)
}

// Revoking an agent cuts off its AWS sessions (SourceIdentity), not
// another agent's; the answer and the trail say so.
func TestAWSRevokeAgentCutsSessions(t *testing.T) {
	e, sim := awsLeaseEnv(t, nil)
	alice := e.mustLogin(e.d.RoleID, e.d.SecretID)
	bob := e.mustLogin(e.d.RoleID, e.newSecretID(DemoRole, "bob-agent", "").SecretID)
	a1, a2, b1 := e.awsLease(alice.ClientToken), e.awsLease(alice.ClientToken), e.awsLease(bob.ClientToken)

	r := e.broker(http.MethodPost, "/v1/sys/agents/"+alice.EntityID+"/revoke", e.d.RootToken, `{"reason":"test"}`)
	want(t, "revoke alice", r, http.StatusOK)
	var out api.RevokeAgentData
	decodeData(t, r, &out)
	if len(out.AWSSessions) != 1 || out.AWSSessions[0].RoleARN != awsRoleARN || out.AWSSessions[0].Error != "" || out.AWSSessions[0].IssuedBefore == nil {
		t.Fatalf("revoke agent answer: %+v", out)
	}
	sim.mustBeCut(t, "alice's first session", a1)
	sim.mustBeCut(t, "alice's second session", a2)
	sim.mustWork(t, "bob's session", b1)
	if e.count(func(ev audit.Event) bool {
		return ev.Type == "revoke" && ev.Action == "RevokeAgentAWSSessions" && ev.Decision == "allow" && ev.Agent == alice.EntityID &&
			strings.Contains(ev.Reason, awsRoleARN) && strings.Contains(ev.Reason, awsbraket.SourceIdentity(alice.EntityID))
	}) != 1 {
		t.Fatal("the AWS cutoff of the agent is not audited")
	}
}

// Revoking a broker role cuts off its agents' AWS sessions (session tag
// qbroker-role), not another role's agents' sessions of the same IAM role,
// nor the gateway's; a new lease after the revocation works.
func TestAWSRevokeRoleCutsSessions(t *testing.T) {
	e, sim := awsLeaseEnv(t, nil)
	e.putRole("lab", `{"provider":"aws","devices":["sv1"],"max_shots":1000}`)
	demo := e.mustLogin(e.d.RoleID, e.d.SecretID)
	lab := e.mustLogin(e.roleID("lab"), e.newSecretID("lab", "lab-agent", "").SecretID)
	d1, l1, gw := e.awsLease(demo.ClientToken), e.awsLease(lab.ClientToken), e.gatewayUpstream()
	if sess, _ := sim.e.Session(d1.Data.AccessKey); !slices.Contains(sess.Tags, braketsim.Tag{Key: awsbraket.RoleTag, Value: DemoRole}) {
		t.Fatalf("the session does not carry its broker role: %+v", sess.Tags)
	}

	r := e.broker(http.MethodPost, "/v1/sys/roles/"+DemoRole+"/revoke", e.d.RootToken, `{"reason":"test"}`)
	want(t, "revoke role demo", r, http.StatusOK)
	var out struct {
		Revoked     int             `json:"revoked_tokens"`
		AWSSessions []api.AWSCutoff `json:"aws_sessions"`
	}
	decodeData(t, r, &out)
	if out.Revoked == 0 || len(out.AWSSessions) != 1 || out.AWSSessions[0].Error != "" || out.AWSSessions[0].IssuedBefore == nil {
		t.Fatalf("revoke role answer: %+v", out)
	}
	sim.mustBeCut(t, "the demo agent's session", d1)
	sim.mustWork(t, "the lab agent's session", l1)
	sim.mustWork(t, "the gateway's session", gw)
	demo = e.mustLogin(e.d.RoleID, e.d.SecretID)
	sim.mustWork(t, "a demo lease after the revocation", e.awsLease(demo.ClientToken))
	if e.count(func(ev audit.Event) bool {
		return ev.Type == "revoke" && ev.Action == "RevokeRoleAWSSessions" && ev.Decision == "allow" && ev.Role == DemoRole && strings.Contains(ev.Reason, awsRoleARN)
	}) != 1 {
		t.Fatal("the AWS cutoff of the role is not audited")
	}
}

// When IAM refuses (the broker's key lacks iam:PutRolePolicy, a permission
// operators must now grant), the lease revocation fails loudly, naming the
// permission, and is audited as an error; the agent revocation revokes the
// tokens and reports the AWS failure in its answer. The session honestly
// still works.
func TestAWSRevocationIAMFailure(t *testing.T) {
	e, sim := awsLeaseEnv(t, func(c *braketsim.Config) { c.RootDeniedActions = []string{"iam:PutRolePolicy"} })
	alice := e.mustLogin(e.d.RoleID, e.d.SecretID)
	a1 := e.awsLease(alice.ClientToken)

	want(t, "revoke with IAM refusing", e.broker(http.MethodPut, "/v1/sys/leases/revoke", alice.ClientToken, fmt.Sprintf(`{"lease_id":%q}`, a1.LeaseID)),
		http.StatusServiceUnavailable, "not cut off", "AccessDenied", "iam:PutRolePolicy on "+awsRoleARN)
	sim.mustWork(t, "the lease IAM did not cut off", a1)
	if e.count(func(ev audit.Event) bool {
		return ev.Type == "revoke" && ev.Action == "RevokeLease" && ev.Decision == "error" && strings.Contains(ev.Error, "iam:PutRolePolicy") && strings.Contains(ev.Reason, a1.LeaseID)
	}) != 1 {
		t.Fatal("the failed revocation is not audited as an error")
	}

	r := e.broker(http.MethodPost, "/v1/sys/agents/"+alice.EntityID+"/revoke", e.d.RootToken, "")
	want(t, "revoke the agent with IAM refusing", r, http.StatusOK)
	var out api.RevokeAgentData
	decodeData(t, r, &out)
	if out.Revoked == 0 || len(out.AWSSessions) != 1 || !strings.Contains(out.AWSSessions[0].Error, "iam:PutRolePolicy") || out.AWSSessions[0].IssuedBefore != nil {
		t.Fatalf("revoke agent answer: %+v", out)
	}
	if e.count(func(ev audit.Event) bool {
		return ev.Type == "revoke" && ev.Action == "RevokeAgentAWSSessions" && ev.Decision == "error" && ev.Agent == alice.EntityID
	}) != 1 {
		t.Fatal("the failed AWS cutoff of the agent is not audited as an error")
	}
}
