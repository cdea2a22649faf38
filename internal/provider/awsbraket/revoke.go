package awsbraket

// This file cuts off STS sessions already issued. AWS cannot revoke an STS
// session: its credentials stay valid until they expire. What AWS offers is
// to deny them: an inline policy on the role with an explicit Deny of
// everything for sessions whose aws:TokenIssueTime is before a date — the
// console's "Revoke active sessions". An explicit Deny in the role's
// identity-based policy wins over every Allow, on every call, within
// seconds (IAM's propagation). qbroker names every session it mints, so it
// can be more precise than the console: one lease's session (aws:userid
// ends ":<RoleSessionName>"), every session of one agent
// (aws:SourceIdentity), or every session of the role (the date alone).

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

const (
	// RevocationPolicy is the inline role policy the broker writes.
	RevocationPolicy = "qbroker-revoked-sessions"
	// MaxSessionLife is the longest an AssumeRole session can live (12 h):
	// a Deny on sessions issued before a date can match nothing once the
	// date is that far in the past, so such statements are dropped.
	MaxSessionLife = 12 * time.Hour
	// MaxRevocationPolicyChars caps the policy (non-whitespace characters,
	// as IAM counts). IAM allows 10,240 for all of a role's inline policies
	// together; the rest is left to the operator's own. Past the cap the
	// statements are folded into one role-wide Deny (see Cutoff.Widened).
	MaxRevocationPolicyChars = 8192
	// sessionPrefix starts the RoleSessionName of every lease.
	sessionPrefix = "qbroker-"
	sidPrefix     = "Qbroker"
)

// LeaseSessionName is the RoleSessionName of the session of lease id
// (the last segment of aws/creds/<role>/<id>): the lease id alone names
// the session, so no lease needs storing to be revoked.
func LeaseSessionName(id string) string { return clean(sessionPrefix+id, 64) }

// SourceIdentity is the SourceIdentity the minter sets for agent.
func SourceIdentity(agent string) string { return clean(agent, 64) }

// Scope is whose sessions a Deny cuts off.
type Scope struct {
	// Session, when set, is one RoleSessionName.
	Session string
	// Agent, when set (and Session is not), is one SourceIdentity.
	Agent string
	// BrokerRole, when set (and neither above is), is the broker role of
	// the session tag qbroker-role.
	BrokerRole string
	// None: every session of the role.
}

func (s Scope) kind() string {
	switch {
	case s.Session != "":
		return "Leases"
	case s.Agent != "":
		return "Agent"
	case s.BrokerRole != "":
		return "BrokerRole"
	default:
		return "Role"
	}
}

// waitKey is the notBefore key of a scope (an agent's SourceIdentity
// cannot contain ':', so the two never collide).
func (s Scope) waitKey() string {
	if s.BrokerRole != "" {
		return "role:" + s.BrokerRole
	}
	return s.Agent
}

// Cutoff is what a revocation wrote.
type Cutoff struct {
	RoleARN string
	Policy  string // RevocationPolicy
	// IssuedBefore is the aws:TokenIssueTime date: sessions issued before
	// it are denied.
	IssuedBefore time.Time
	// Widened reports that the policy was full, so its statements were
	// folded into one Deny of every session of the role issued before
	// IssuedBefore.
	Widened bool
	// Unverified reports that the statement was written (IAM said so)
	// but three reads back did not show it: IAM's eventual consistency,
	// or another writer racing this one.
	Unverified bool
	// Dropped is how many statements older than MaxSessionLife were removed.
	Dropped int
}

// Revoker writes the revocation policy with IAM.
type Revoker struct {
	endpoint string // IAM base URL; "" = AWS's global endpoint
	hc       *http.Client
	mu       sync.Mutex // one read-modify-write of a role's policy at a time
	now      func() time.Time
	// notBefore is, per role ARN ("" agent: every session) or role ARN
	// and SourceIdentity, the local time after which AWS's clock has
	// passed the latest cutoff's date: a session minted earlier would be
	// denied at birth.
	notBefore map[[2]string]time.Time
	// written is, per role ARN, the statements of this Revoker's last
	// write and when: IAM is eventually consistent, so a read just after
	// a write may not show it, and a statement must not be lost by
	// writing back a stale document. Merged into what is read for
	// recentWrite; after that a deliberate deletion of the policy wins.
	written map[string]writtenPolicy
}

type writtenPolicy struct {
	at         time.Time
	statements []denyStmt
}

// recentWrite is how long this Revoker's own last write is merged into
// what IAM returns.
const recentWrite = 2 * time.Minute

// NewRevoker builds a Revoker; endpoint overrides the IAM URL (tests point
// it at the emulator).
func NewRevoker(endpoint string, hc *http.Client) *Revoker {
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	return &Revoker{endpoint: endpoint, hc: hc, now: time.Now, notBefore: map[[2]string]time.Time{}, written: map[string]writtenPolicy{}}
}

// MintNotBefore is the local time before which a new session of roleARN
// for SourceIdentity who, asked as brokerRole, would fall under a cutoff
// just written (its date is up to a second in IAM's future): the minter
// waits until then. It is this broker's memory only; zero when there is
// nothing to wait for.
func (r *Revoker) MintNotBefore(roleARN, who, brokerRole string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	nb := r.notBefore[[2]string{roleARN, ""}]
	for _, k := range []string{who, Scope{BrokerRole: brokerRole}.waitKey()} {
		if t := r.notBefore[[2]string{roleARN, k}]; k != "" && t.After(nb) {
			nb = t
		}
	}
	return nb
}

// IAMError is a refusal or failure of an IAM call, with what the operator
// must fix.
type IAMError struct {
	Op, RoleARN string
	Err         error
}

func (e *IAMError) Error() string {
	return fmt.Sprintf("iam %s on %s: %v", e.Op, e.RoleARN, e.Err)
}

func (e *IAMError) Unwrap() error { return e.Err }

// roleName is the name of a role ARN (the last path segment).
func roleName(arn string) (string, error) {
	_, res, ok := strings.Cut(arn, ":role/")
	if !ok || !strings.HasPrefix(arn, "arn:aws") || res == "" {
		return "", fmt.Errorf("%q is not an IAM role ARN", arn)
	}
	return res[strings.LastIndex(res, "/")+1:], nil
}

func (r *Revoker) client(root aws.Credentials) *iam.Client {
	// IAM is global: its signing region is us-east-1 in the aws partition.
	opts := iam.Options{Region: "us-east-1", Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return root, nil }),
		HTTPClient: r.hc, RetryMaxAttempts: 2}
	if r.endpoint != "" {
		opts.BaseEndpoint = aws.String(r.endpoint)
	}
	return iam.New(opts)
}

// policy is the revocation policy document.
type policy struct {
	Statement []denyStmt
	foreign   []json.RawMessage // statements not written by qbroker, kept as they are
}

type denyStmt struct {
	Sid       string                    `json:"Sid"`
	Effect    string                    `json:"Effect"`
	Action    string                    `json:"Action"`
	Resource  string                    `json:"Resource"`
	Condition map[string]map[string]any `json:"Condition"`
	issued    time.Time                 // the aws:TokenIssueTime date
	values    []string                  // userid patterns or source identities
}

const tokenIssueTime = "aws:TokenIssueTime"

func (s *denyStmt) parse() bool {
	if !strings.HasPrefix(s.Sid, sidPrefix) || s.Effect != "Deny" {
		return false
	}
	d, ok := s.Condition["DateLessThan"][tokenIssueTime].(string)
	if !ok {
		return false
	}
	t, err := time.Parse(time.RFC3339, d)
	if err != nil {
		return false
	}
	s.issued = t
	for _, c := range s.Condition {
		for k, v := range c {
			if k == tokenIssueTime {
				continue
			}
			switch x := v.(type) {
			case string:
				s.values = append(s.values, x)
			case []any:
				for _, y := range x {
					if str, ok := y.(string); ok {
						s.values = append(s.values, str)
					}
				}
			}
		}
	}
	return true
}

func (s *denyStmt) kind() string {
	rest := strings.TrimPrefix(s.Sid, sidPrefix)
	for _, k := range []string{"Leases", "Agent", "BrokerRole", "Role"} {
		if strings.HasPrefix(rest, k) {
			return k
		}
	}
	return ""
}

func newStmt(kind, suffix string, issued time.Time, values []string) denyStmt {
	cond := map[string]map[string]any{"DateLessThan": {tokenIssueTime: issued.UTC().Format(time.RFC3339)}}
	var v any = values
	if len(values) == 1 {
		v = values[0]
	}
	switch kind {
	case "Leases":
		cond["StringLike"] = map[string]any{"aws:userid": v}
	case "Agent":
		cond["StringEquals"] = map[string]any{"aws:SourceIdentity": v}
	case "BrokerRole":
		cond["StringEquals"] = map[string]any{"aws:PrincipalTag/" + RoleTag: v}
	}
	return denyStmt{Sid: sidPrefix + kind + suffix, Effect: "Deny", Action: "*", Resource: "*", Condition: cond, issued: issued, values: values}
}

func parseRevocationPolicy(text string) (*policy, error) {
	var top struct {
		Version   string            `json:"Version"`
		Statement []json.RawMessage `json:"Statement"`
	}
	if err := json.Unmarshal([]byte(text), &top); err != nil {
		return nil, fmt.Errorf("the role's %s policy is not one qbroker can read: %w", RevocationPolicy, err)
	}
	p := &policy{}
	for _, raw := range top.Statement {
		var s denyStmt
		if err := json.Unmarshal(raw, &s); err == nil && s.parse() && s.kind() != "" {
			p.Statement = append(p.Statement, s)
			continue
		}
		p.foreign = append(p.foreign, raw)
	}
	return p, nil
}

func (p *policy) marshal() (string, error) {
	out := make([]json.RawMessage, 0, len(p.Statement)+len(p.foreign))
	for _, s := range p.Statement {
		b, err := json.Marshal(s)
		if err != nil {
			return "", err
		}
		out = append(out, b)
	}
	out = append(out, p.foreign...)
	b, err := json.Marshal(struct {
		Version   string            `json:"Version"`
		Statement []json.RawMessage `json:"Statement"`
	}{"2012-10-17", out})
	return string(b), err
}

// size counts characters as IAM does against its quota: whitespace excluded.
func size(s string) int {
	n := 0
	for _, r := range s {
		if !unicode.IsSpace(r) {
			n++
		}
	}
	return n
}

// add puts a Deny for scope issued before t into p: lease sessions share
// one statement per hour of revocation (a session name is never reused,
// so the latest date serves them all); an agent gets its own statement; a
// role-wide Deny replaces every statement it covers. Statements that can
// no longer match anything are dropped. It returns the Sid that carries
// the cutoff.
func (p *policy) add(scope Scope, t, now time.Time) (sid string, dropped int) {
	keep := p.Statement[:0]
	for _, s := range p.Statement {
		if s.issued.Add(MaxSessionLife).Before(now) {
			dropped++
			continue
		}
		keep = append(keep, s)
	}
	p.Statement = keep
	switch scope.kind() {
	case "Leases":
		pattern := "*:" + scope.Session
		sid = sidPrefix + "Leases" + t.UTC().Format("2006010215")
		for i := range p.Statement {
			s := &p.Statement[i]
			if s.Sid == sid {
				if !slices.Contains(s.values, pattern) {
					s.values = append(s.values, pattern)
				}
				*s = newStmt("Leases", strings.TrimPrefix(sid, sidPrefix+"Leases"), maxTime(s.issued, t), s.values)
				return sid, dropped
			}
		}
		p.Statement = append(p.Statement, newStmt("Leases", t.UTC().Format("2006010215"), t, []string{pattern}))
	case "Agent", "BrokerRole":
		kind, who := scope.kind(), cmp.Or(scope.Agent, scope.BrokerRole)
		var suffix string
		for n := len(p.Statement); ; n++ {
			suffix = t.UTC().Format("20060102150405") + fmt.Sprintf("%04d", n)
			if !slices.ContainsFunc(p.Statement, func(s denyStmt) bool { return s.Sid == sidPrefix+kind+suffix }) {
				break
			}
		}
		p.Statement = append(p.Statement, newStmt(kind, suffix, t, []string{who}))
		sid = sidPrefix + kind + suffix
	default:
		keep := p.Statement[:0]
		for _, s := range p.Statement {
			if s.issued.After(t) {
				keep = append(keep, s)
			}
		}
		p.Statement = append(keep, newStmt("Role", t.UTC().Format("20060102150405"), t, nil))
		sid = p.Statement[len(p.Statement)-1].Sid
	}
	return sid, dropped
}

// widen folds every statement into one role-wide Deny at the latest date.
func (p *policy) widen(t time.Time) string {
	for _, s := range p.Statement {
		t = maxTime(t, s.issued)
	}
	p.Statement = []denyStmt{newStmt("Role", t.UTC().Format("20060102150405"), t, nil)}
	return p.Statement[0].Sid
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// DenySessions adds to roleARN's revocation policy an explicit Deny of
// every action for the sessions of scope issued up to now, and returns
// what it wrote. The date is the next whole second after IAM's own clock
// (the Date of its answer; the local clock if it sent none), so a session
// issued in the same second as the revocation is cut off too — at most a
// second of later sessions along with it. The policy is read, changed and
// written back (read again to check that a concurrent writer did not drop
// the statement); root needs iam:GetRolePolicy and iam:PutRolePolicy on
// the role.
func (r *Revoker) DenySessions(ctx context.Context, root aws.Credentials, roleARN string, scope Scope) (Cutoff, error) {
	name, err := roleName(roleARN)
	if err != nil {
		return Cutoff{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.client(root)
	out := Cutoff{RoleARN: roleARN, Policy: RevocationPolicy}
	for attempt := 0; attempt < 3; attempt++ {
		text, serverNow, err := r.read(ctx, c, name, roleARN)
		if err != nil {
			return out, err
		}
		local := r.now()
		now := serverNow
		if now.IsZero() {
			now = local
		}
		t := now.UTC().Truncate(time.Second).Add(time.Second)
		p := &policy{}
		if text != "" {
			if p, err = parseRevocationPolicy(text); err != nil {
				return out, err
			}
		}
		if w, ok := r.written[roleARN]; ok && local.Sub(w.at) < recentWrite {
			p.merge(w.statements)
		}
		sid, dropped := p.add(scope, t, now)
		doc, err := p.marshal()
		if err != nil {
			return out, err
		}
		out.Widened = false
		if size(doc) > MaxRevocationPolicyChars {
			sid, out.Widened = p.widen(t), true
			if doc, err = p.marshal(); err != nil {
				return out, err
			}
		}
		_, err = c.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String(RevocationPolicy), PolicyDocument: aws.String(doc)})
		var limit *iamtypes.LimitExceededException
		if errors.As(err, &limit) && !out.Widened {
			// The role's other inline policies leave less room than the cap.
			sid, out.Widened = p.widen(t), true
			if doc, err = p.marshal(); err != nil {
				return out, err
			}
			_, err = c.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String(RevocationPolicy), PolicyDocument: aws.String(doc)})
		}
		if err != nil {
			return out, &IAMError{Op: "PutRolePolicy", RoleARN: roleARN, Err: err}
		}
		out.IssuedBefore, out.Dropped = t, dropped
		r.written[roleARN] = writtenPolicy{at: local, statements: slices.Clone(p.Statement)}
		if scope.Session == "" {
			// IAM's Date is rounded down, so t-now bounds from above how
			// long until AWS's clock reaches t.
			key := [2]string{roleARN, scope.waitKey()}
			if nb := local.Add(t.Sub(now)); nb.After(r.notBefore[key]) {
				r.notBefore[key] = nb
			}
			for k, v := range r.notBefore {
				if v.Before(local) {
					delete(r.notBefore, k)
				}
			}
		}
		// Another broker replica may have written in between: check that
		// the statement survived (else do it again on what is there now).
		check, _, err := r.read(ctx, c, name, roleARN)
		if err != nil {
			return out, err
		}
		if cp, err := parseRevocationPolicy(check); err == nil && slices.ContainsFunc(cp.Statement, func(s denyStmt) bool {
			covers := scope.Session == "" || slices.Contains(s.values, "*:"+scope.Session)
			return s.Sid == sid && !s.issued.Before(t) && covers || s.kind() == "Role" && !s.issued.Before(t)
		}) {
			return out, nil
		}
	}
	out.Unverified = true
	return out, nil
}

// merge adds statements this Revoker wrote that a (stale) read lacks; a
// lease statement present in both gets the union of its sessions.
func (p *policy) merge(mine []denyStmt) {
	for _, m := range mine {
		i := slices.IndexFunc(p.Statement, func(s denyStmt) bool { return s.Sid == m.Sid })
		switch {
		case i < 0:
			p.Statement = append(p.Statement, m)
		case m.kind() == "Leases":
			s := &p.Statement[i]
			values := slices.Clone(s.values)
			for _, v := range m.values {
				if !slices.Contains(values, v) {
					values = append(values, v)
				}
			}
			*s = newStmt("Leases", strings.TrimPrefix(s.Sid, sidPrefix+"Leases"), maxTime(s.issued, m.issued), values)
		}
	}
}

// read returns the revocation policy of role name ("" if it has none) and
// IAM's clock.
func (r *Revoker) read(ctx context.Context, c *iam.Client, name, roleARN string) (string, time.Time, error) {
	got, err := c.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String(RevocationPolicy)})
	if err != nil {
		var missing *iamtypes.NoSuchEntityException
		var re *smithyhttp.ResponseError
		if errors.As(err, &missing) && errors.As(err, &re) && strings.Contains(missing.ErrorMessage(), "role policy") {
			t, _ := http.ParseTime(re.Response.Header.Get("Date"))
			return "", t, nil
		}
		return "", time.Time{}, &IAMError{Op: "GetRolePolicy", RoleARN: roleARN, Err: err}
	}
	t, _ := awsmiddleware.GetServerTime(got.ResultMetadata)
	// IAM returns the document URL-encoded (RFC 3986).
	doc, err := url.PathUnescape(aws.ToString(got.PolicyDocument))
	if err != nil {
		return "", time.Time{}, &IAMError{Op: "GetRolePolicy", RoleARN: roleARN, Err: fmt.Errorf("the document is not URL-encoded: %w", err)}
	}
	return doc, t, nil
}
