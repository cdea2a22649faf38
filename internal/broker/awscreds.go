package broker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/policy"
	"github.com/qbroker/qbroker/internal/provider"
	"github.com/qbroker/qbroker/internal/provider/awsbraket"
)

// AWSCredentials configures GET /v1/aws/creds/<role> and the revocation
// of its leases.
type AWSCredentials struct {
	Minter *awsbraket.Minter
	// Revoker cuts off sessions already issued (IAM PutRolePolicy); nil:
	// leases cannot be revoked.
	Revoker *awsbraket.Revoker
	Roles   []awsbraket.Role

	keyMu    sync.Mutex
	leaseKey []byte // tags lease ids; see leases.go
}

// AWSLease is a minted AWS session with its lease.
type AWSLease struct {
	LeaseID       string
	LeaseDuration int // seconds
	Data          api.AWSCredsData
}

// IssueAWSCredentials mints dynamic AWS credentials for AWS role name:
// the caller's broker role must be one the AWS role lists, Cedar must
// permit IssueCredentials on Provider::"aws", and QPU work must not be
// frozen. The session is scoped by the role's session policy and carries
// the agent, owner and team as SourceIdentity and tags. The secret parts
// reach the audit trail only as HMACs.
func (b *Broker) IssueAWSCredentials(ctx context.Context, c Caller, caller core.Token, name string) (AWSLease, error) {
	ev := &audit.Event{Type: "issue", Action: policy.ActionIssueCredentials, Agent: caller.AgentID, Role: caller.Role, AuthMethod: caller.AuthMethod,
		Accessor: caller.Accessor, Provider: "aws", Device: "aws-role:" + name, ActingFor: caller.ActingFor}
	cfg := b.cfg.AWS
	if cfg == nil || cfg.Minter == nil {
		return AWSLease{}, b.refuse(ctx, c, ev, core.Errorf(core.KindNotFound, "AWS credentials are not configured on this broker (providers.aws)"))
	}
	i := slices.IndexFunc(cfg.Roles, func(r awsbraket.Role) bool { return r.Name == name })
	if i < 0 {
		return AWSLease{}, b.refuse(ctx, c, ev, core.Errorf(core.KindNotFound, "unknown AWS role %q", name))
	}
	r := cfg.Roles[i]
	if !slices.Contains(r.BrokerRoles, caller.Role) {
		return AWSLease{}, b.refuse(ctx, c, ev, core.Errorf(core.KindPermissionDenied, "permission denied: AWS role %q is not for broker role %q", name, caller.Role))
	}
	if b.freeze.Load() != nil && slices.ContainsFunc(r.DeviceARNs, func(a string) bool { return strings.Contains(a, ":device/qpu/") }) {
		return AWSLease{}, b.refuse(ctx, c, ev, core.Errorf(core.KindPermissionDenied, "hardware is frozen: %s", *b.freeze.Load()))
	}
	var owner, team string
	if caller.Role != "" {
		if role, err := b.role(ctx, caller.Role); err == nil {
			owner, team = role.Owner, role.Team
		}
	}
	local := b.now().In(b.cfg.Location)
	dec := b.rules.Load().policy.Decide(policy.Request{
		Agent:    policy.Agent{ID: caller.AgentID, Role: caller.Role, Owner: owner, Team: team, AuthMethod: caller.AuthMethod, ActingFor: caller.ActingFor},
		Action:   policy.ActionIssueCredentials,
		Provider: "aws",
		Context:  policy.Context{SourceIP: hostOf(c.RemoteAddr), Hour: local.Hour(), Weekday: int(local.Weekday())},
	})
	ev.Policies = dec.Policies
	if !dec.Allowed {
		ev.Type = "decision"
		return AWSLease{}, b.refuse(ctx, c, ev, core.Errorf(core.KindPermissionDenied, "permission denied: %s", dec.Reason))
	}
	// Credential export can be held for a person (approval rules on
	// IssueCredentials): a held request is answered 202; the same request
	// with the approval id is served once.
	op := adminOp{Action: policy.ActionIssueCredentials, Op: "IssueCredentials", Target: "aws/creds/" + name,
		Summary: "AWS credentials for role " + name + " (" + strings.Join(r.DeviceARNs, ", ") + ")"}
	if err := b.gateAdmin(ctx, c, caller, op, ev); err != nil {
		return AWSLease{}, b.refuseUnlessPending(ctx, c, ev, err)
	}
	raw, err := b.Credential(ctx, "aws")
	if err != nil {
		return AWSLease{}, b.refuse(ctx, c, ev, core.Errorf(core.KindUnavailable, "no AWS root credential is stored (qbroker provider set aws)"))
	}
	root, err := awsbraket.ParseRootKey(raw)
	if err != nil {
		return AWSLease{}, b.refuse(ctx, c, ev, core.Wrap(core.KindUnavailable, err, "the stored AWS root credential is malformed"))
	}
	// The lease id names the session (and is tagged with the agent), so
	// that the lease can be revoked alone, by root or by its agent.
	id, err := b.newLeaseID(ctx, name, caller.AgentID)
	if err != nil {
		return AWSLease{}, err
	}
	if err := cfg.waitForCutoff(ctx, r.RoleARN, caller.AgentID, caller.Role); err != nil {
		return AWSLease{}, err
	}
	creds, err := cfg.Minter.Mint(ctx, root, r, awsbraket.Identity{Agent: caller.AgentID, Owner: owner, Team: team, Role: caller.Role, Session: awsbraket.LeaseSessionName(id)})
	if err != nil {
		b.log.Warn("aws: AssumeRole failed", "role", name, "err", err)
		return AWSLease{}, b.refuse(ctx, c, ev, core.Wrap(core.KindUnavailable, err, "AWS STS refused or failed to mint credentials for role "+name))
	}
	lease := AWSLease{
		LeaseID:       "aws/creds/" + name + "/" + id,
		LeaseDuration: max(0, int(creds.Expiration.Sub(b.now()).Seconds())),
		Data: api.AWSCredsData{AccessKey: creds.AccessKeyID, SecretKey: creds.SecretAccessKey, SecurityToken: creds.SessionToken,
			ARN: creds.AssumedRoleARN, Expiration: creds.Expiration.UTC()},
	}
	ev.Decision, ev.Owner = audit.DecisionAllow, owner
	ev.Reason = fmt.Sprintf("lease %s: %s until %s", lease.LeaseID, creds.AssumedRoleARN, creds.Expiration.UTC().Format("2006-01-02T15:04:05Z"))
	b.hasher.Add(ev, "secret_key", creds.SecretAccessKey)
	b.hasher.Add(ev, "security_token", creds.SessionToken)
	if err := b.record(ctx, c, ev); err != nil {
		return AWSLease{}, err // never handed out without its audit record
	}
	return lease, nil
}

// upstreamCache keeps the gateway's minted provider credentials until
// shortly before they expire (memory only). One mint runs at a time, so
// concurrent requests across a refresh share it.
type upstreamCache struct {
	mu      sync.Mutex
	entries map[string]provider.Credential
	forgot  map[string]time.Time // when a rejected credential was last dropped, per key
}

// forgetEvery limits how often a rejected credential is dropped per
// provider and role, so that a client provoking refusals cannot make the
// broker mint in a loop.
const forgetEvery = 10 * time.Second

// ForgetUpstream drops the cached upstream credential of broker role role
// at provider prov if it is still the one whose Digest a gateway reports
// the provider rejected (revoked or expired early), so that the next
// request mints afresh instead of failing until it expires. At most once
// per forgetEvery per key; reports whether it dropped one.
func (b *Broker) ForgetUpstream(prov, role, digest string) bool {
	key := prov + "/" + role
	c := &b.upstreams
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, ok := c.entries[key]
	if !ok || cur.Digest() != digest {
		return false
	}
	now := b.now()
	if last, ok := c.forgot[key]; ok && now.Sub(last) < forgetEvery {
		return false
	}
	if c.forgot == nil {
		c.forgot = map[string]time.Time{}
	}
	c.forgot[key] = now
	delete(c.entries, key)
	b.log.Info("upstream credential rejected by the provider; the next request mints a new one", "provider", prov, "role", role)
	return true
}

// refreshBefore is how long before expiry a cached credential is replaced
// (or half its lifetime, for short-lived ones).
const refreshBefore = 5 * time.Minute

// Upstream returns the credential and scope the gateway uses for broker
// role role at provider prov, minted by the provider's Minter from the
// sealed root credential and cached until shortly before it expires. A
// root credential the provider rotated is stored, sealed, before the new
// credential is used.
func (b *Broker) Upstream(ctx context.Context, prov, role string) (provider.Credential, provider.Scope, error) {
	m, ok := b.cfg.Minters[prov]
	if !ok {
		return provider.Credential{}, provider.Scope{}, fmt.Errorf("no upstream credentials are configured for provider %q", prov)
	}
	key := prov + "/" + role
	c := &b.upstreams
	c.mu.Lock()
	defer c.mu.Unlock()
	now := b.now()
	if cur, ok := c.entries[key]; ok && now.Add(refreshBefore).Before(cur.Expires) {
		return cur, b.scopes[key], nil
	}
	root, err := b.Credential(ctx, prov)
	if err != nil {
		return provider.Credential{}, provider.Scope{}, fmt.Errorf("no %s root credential is stored", prov)
	}
	cur, scope, rotated, err := m.Mint(ctx, root, role)
	if err != nil && rotated == "" {
		// Another replica may have rotated the root since this one read
		// it: read the stored one again and try once more.
		b.credMu.Lock()
		delete(b.creds, prov)
		b.credMu.Unlock()
		if again, rerr := b.Credential(ctx, prov); rerr == nil && again != root {
			root = again
			cur, scope, rotated, err = m.Mint(ctx, root, role)
		}
	}
	if rotated != "" && rotated != root {
		// Persist the rotation first: losing it would lock the account out.
		if perr := b.storeRoot(ctx, prov, rotated); perr != nil {
			return provider.Credential{}, provider.Scope{}, fmt.Errorf("store the rotated %s credential: %w", prov, perr)
		}
	}
	if err != nil {
		return provider.Credential{}, provider.Scope{}, err
	}
	if c.entries == nil {
		c.entries, b.scopes = map[string]provider.Credential{}, map[string]provider.Scope{}
	}
	if life := cur.Expires.Sub(now); life < 2*refreshBefore {
		// Short-lived: renew at half-life instead.
		cur.Expires = now.Add(life/2 + refreshBefore)
	}
	c.entries[key], b.scopes[key] = cur, scope
	return cur, scope, nil
}

// dropUpstreams forgets the gateway's cached sessions of IAM role arn
// (after they were cut off), so that the next request mints anew.
func (b *Broker) dropUpstreams(arn string) {
	if b.cfg.AWS == nil {
		return
	}
	c := &b.upstreams
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range b.cfg.AWS.Roles {
		if r.RoleARN == arn {
			for _, br := range r.BrokerRoles {
				delete(c.entries, "aws/"+br)
			}
		}
	}
}

// awsRoleMinter mints the gateway's STS sessions: the AWS role bound to
// the broker role, with the gateway as the session's identity.
type awsRoleMinter struct{ cfg *AWSCredentials }

func (m awsRoleMinter) Mint(ctx context.Context, root, role string) (provider.Credential, provider.Scope, string, error) {
	i := slices.IndexFunc(m.cfg.Roles, func(r awsbraket.Role) bool { return slices.Contains(r.BrokerRoles, role) })
	if i < 0 {
		return provider.Credential{}, provider.Scope{}, "", fmt.Errorf("no AWS role is bound to broker role %q", role)
	}
	r := m.cfg.Roles[i]
	key, err := awsbraket.ParseRootKey(root)
	if err != nil {
		return provider.Credential{}, provider.Scope{}, "", err
	}
	if err := m.cfg.waitForCutoff(ctx, r.RoleARN, "qbroker-gateway."+role, ""); err != nil {
		return provider.Credential{}, provider.Scope{}, "", err
	}
	creds, err := m.cfg.Minter.Mint(ctx, key, r, awsbraket.Identity{Agent: "qbroker-gateway." + role})
	if err != nil {
		return provider.Credential{}, provider.Scope{}, "", err
	}
	return provider.Credential{AccessKeyID: creds.AccessKeyID, Secret: creds.SecretAccessKey, SessionToken: creds.SessionToken, Expires: creds.Expiration},
		provider.Scope{Bucket: r.S3Bucket, Prefix: r.S3Prefix}, "", nil
}
