package broker

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/provider/awsbraket"
)

// Lease ids of AWS credentials are aws/creds/<role>/<nonce>-<tag>: the
// session's RoleSessionName is qbroker-<nonce>-<tag>, so the lease id
// alone names the session to cut off, and <tag> is an HMAC, under a
// broker-held sealed key, of the role, the agent the lease was issued to
// and the nonce — so an agent proves a lease is its own by presenting it,
// and no lease needs storing (nor a schema change) to be revoked.
const (
	leasePrefix    = "aws/creds/"
	secretLeaseKey = "aws-lease-key"
)

var (
	leaseIDRE = regexp.MustCompile(`^aws/creds/([^/]+)/([a-z2-7]{16})-([a-z2-7]{16})$`)
	lower32   = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)
)

// leaseKey returns the key that tags lease ids, creating it (sealed) on
// first use.
func (b *Broker) leaseKey(ctx context.Context) ([]byte, error) {
	cfg := b.cfg.AWS
	cfg.keyMu.Lock()
	defer cfg.keyMu.Unlock()
	if cfg.leaseKey != nil {
		return cfg.leaseKey, nil
	}
	key, err := b.loadOrCreateSecret(ctx, secretLeaseKey, 32)
	if err != nil {
		return nil, fmt.Errorf("aws lease key: %w", err)
	}
	cfg.leaseKey = key
	return key, nil
}

func leaseTag(key []byte, role, agent, nonce string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("qbroker aws lease v1\x00" + role + "\x00" + agent + "\x00" + nonce))
	return lower32.EncodeToString(m.Sum(nil))[:16]
}

// newLeaseID returns the id part of a new lease of AWS role for agent.
func (b *Broker) newLeaseID(ctx context.Context, role, agent string) (string, error) {
	key, err := b.leaseKey(ctx)
	if err != nil {
		return "", err
	}
	var n [10]byte
	if _, err := rand.Read(n[:]); err != nil {
		return "", err
	}
	nonce := lower32.EncodeToString(n[:])
	return nonce + "-" + leaseTag(key, role, agent, nonce), nil
}

// awsRole returns the configured AWS role name.
func (b *Broker) awsRole(name string) (awsbraket.Role, bool) {
	i := slices.IndexFunc(b.cfg.AWS.Roles, func(r awsbraket.Role) bool { return r.Name == name })
	if i < 0 {
		return awsbraket.Role{}, false
	}
	return b.cfg.AWS.Roles[i], true
}

// awsRoot returns the stored AWS root key.
func (b *Broker) awsRoot(ctx context.Context) (aws.Credentials, error) {
	raw, err := b.Credential(ctx, "aws")
	if err != nil {
		return aws.Credentials{}, core.Errorf(core.KindUnavailable, "no AWS root credential is stored (qbroker provider set aws): nothing to revoke with")
	}
	k, err := awsbraket.ParseRootKey(raw)
	if err != nil {
		return aws.Credentials{}, core.Wrap(core.KindUnavailable, err, "the stored AWS root credential is malformed")
	}
	return k, nil
}

// RevokeLease cuts off the STS session of one AWS lease: an explicit Deny
// in the IAM role's inline policy of the session the lease names, issued
// before now. Root may revoke any lease; an agent only a lease issued to
// it (the lease id's tag must be its own). Lease ids this broker did not
// issue, or issued before leases named their session, are refused.
func (b *Broker) RevokeLease(ctx context.Context, c Caller, caller core.Token, leaseID string) (api.LeaseRevocationData, error) {
	ev := &audit.Event{Type: "revoke", Action: "RevokeLease", Agent: caller.AgentID, Role: caller.Role, AuthMethod: caller.AuthMethod,
		Accessor: caller.Accessor, Provider: "aws", ActingFor: caller.ActingFor}
	out := api.LeaseRevocationData{LeaseID: leaseID}
	deny := func(err error) error {
		ev.Reason = "lease " + leaseID + ": " + core.UserMessage(err)
		return b.refuse(ctx, c, ev, err)
	}
	cfg := b.cfg.AWS
	if cfg == nil || cfg.Revoker == nil {
		return out, deny(core.Errorf(core.KindNotFound, "AWS credentials are not configured on this broker (providers.aws): there are no leases to revoke"))
	}
	if !strings.HasPrefix(leaseID, leasePrefix) {
		return out, deny(core.Errorf(core.KindBadRequest, "lease_id %q is not a lease of this broker: leases are aws/creds/<role>/<id>, as GET /v1/aws/creds/<role> returned them", leaseID))
	}
	m := leaseIDRE.FindStringSubmatch(leaseID)
	if m == nil {
		return out, deny(core.Errorf(core.KindBadRequest, "malformed lease_id %q: want aws/creds/<role>/<16 characters>-<16 characters>, as GET /v1/aws/creds/<role> returned it "+
			"(a lease issued before leases named their STS session cannot be revoked alone: revoke the agent, or the role's prefix)", leaseID))
	}
	name, nonce, tag := m[1], m[2], m[3]
	r, ok := b.awsRole(name)
	ev.Device = "aws-role:" + name
	out.AWSRole = name
	if !ok {
		return out, deny(core.Errorf(core.KindBadRequest, "unknown AWS role %q in lease_id %q", name, leaseID))
	}
	if requireRoot(caller) != nil {
		key, err := b.leaseKey(ctx)
		if err != nil {
			return out, err
		}
		if !hmac.Equal([]byte(leaseTag(key, name, caller.AgentID, nonce)), []byte(tag)) {
			return out, deny(core.Errorf(core.KindPermissionDenied, "permission denied: lease %s was not issued to %s (an agent may revoke only its own leases; root may revoke any)", leaseID, caller.AgentID))
		}
	}
	root, err := b.awsRoot(ctx)
	if err != nil {
		return out, deny(err)
	}
	session := awsbraket.LeaseSessionName(nonce + "-" + tag)
	cut, err := cfg.Revoker.DenySessions(ctx, root, r.RoleARN, awsbraket.Scope{Session: session})
	out.AWS = cutoff(r.RoleARN, cut, err)
	ev.Reason = fmt.Sprintf("lease %s: session %s of %s", leaseID, session, r.RoleARN)
	return out, b.recordCutoff(ctx, c, ev, r.RoleARN, cut, err)
}

// RevokeLeasePrefix cuts off every STS session of an AWS role, of every
// agent and of the gateway: prefix is aws/creds/<role>. Root only.
func (b *Broker) RevokeLeasePrefix(ctx context.Context, c Caller, caller core.Token, prefix string) (api.LeaseRevocationData, error) {
	ev := &audit.Event{Type: "revoke", Action: "RevokeLeasePrefix", Agent: caller.AgentID, Role: caller.Role, AuthMethod: caller.AuthMethod,
		Accessor: caller.Accessor, Provider: "aws", ActingFor: caller.ActingFor}
	out := api.LeaseRevocationData{Prefix: prefix}
	deny := func(err error) error {
		ev.Reason = "prefix " + prefix + ": " + core.UserMessage(err)
		return b.refuse(ctx, c, ev, err)
	}
	if err := requireRoot(caller); err != nil {
		return out, deny(err)
	}
	cfg := b.cfg.AWS
	if cfg == nil || cfg.Revoker == nil {
		return out, deny(core.Errorf(core.KindNotFound, "AWS credentials are not configured on this broker (providers.aws): there are no leases to revoke"))
	}
	name, ok := strings.CutPrefix(strings.TrimSuffix(prefix, "/"), leasePrefix)
	if !ok || name == "" || strings.Contains(name, "/") {
		return out, deny(core.Errorf(core.KindBadRequest, "prefix %q is not one this broker revokes: want aws/creds/<role> (every session of that AWS role); to revoke one lease, PUT /v1/sys/leases/revoke", prefix))
	}
	r, ok := b.awsRole(name)
	ev.Device = "aws-role:" + name
	out.AWSRole = name
	if !ok {
		return out, deny(core.Errorf(core.KindBadRequest, "unknown AWS role %q in prefix %q", name, prefix))
	}
	root, err := b.awsRoot(ctx)
	if err != nil {
		return out, deny(err)
	}
	cut, err := cfg.Revoker.DenySessions(ctx, root, r.RoleARN, awsbraket.Scope{})
	out.AWS = cutoff(r.RoleARN, cut, err)
	if err == nil {
		// The gateway's own sessions of the role are cut off too: mint anew.
		b.dropUpstreams(r.RoleARN)
	}
	ev.Reason = fmt.Sprintf("prefix %s: every session of %s", prefix, r.RoleARN)
	return out, b.recordCutoff(ctx, c, ev, r.RoleARN, cut, err)
}

// cutAgentAWSSessions cuts off every STS session issued to agent, on every
// IAM role the broker assumes, each audited. Failures are in the answer.
// Nothing is done when AWS is not configured or no root key is stored
// (then no session was ever issued).
func (b *Broker) cutAgentAWSSessions(ctx context.Context, c Caller, agent, actor string) []api.AWSCutoff {
	if agent == "" {
		return nil
	}
	who := awsbraket.SourceIdentity(agent)
	return b.cutSessions(ctx, c, awsbraket.Scope{Agent: who}, func(awsbraket.Role) bool { return true }, func(arn string) *audit.Event {
		return &audit.Event{Type: "revoke", Action: "RevokeAgentAWSSessions", Agent: agent,
			Reason: fmt.Sprintf("every session of %s with SourceIdentity %s, by %s", arn, who, actor)}
	})
}

// RevokeRoleAWSSessions cuts off every STS session issued to agents of
// broker role role (session tag qbroker-role), on every IAM role whose AWS
// roles list it, each audited; it follows a role revocation (RevokeRole).
// The gateway's sessions are not touched. Root only.
func (b *Broker) RevokeRoleAWSSessions(ctx context.Context, c Caller, caller core.Token, role string) ([]api.AWSCutoff, error) {
	if err := requireRoot(caller); err != nil {
		return nil, err
	}
	return b.cutSessions(ctx, c, awsbraket.Scope{BrokerRole: role}, func(r awsbraket.Role) bool { return slices.Contains(r.BrokerRoles, role) },
		func(arn string) *audit.Event {
			return &audit.Event{Type: "revoke", Action: "RevokeRoleAWSSessions", Role: role, Agent: caller.AgentID, Accessor: caller.Accessor,
				Reason: fmt.Sprintf("every session of %s tagged %s=%s", arn, awsbraket.RoleTag, role)}
		}), nil
}

// cutSessions denies scope's sessions on the IAM role of every configured
// AWS role that matches, each audited (by the event event makes).
func (b *Broker) cutSessions(ctx context.Context, c Caller, scope awsbraket.Scope, match func(awsbraket.Role) bool, event func(arn string) *audit.Event) []api.AWSCutoff {
	cfg := b.cfg.AWS
	if cfg == nil || cfg.Revoker == nil {
		return nil
	}
	if _, err := b.Credential(ctx, "aws"); err != nil {
		return nil
	}
	root, err := b.awsRoot(ctx)
	var arns []string
	names := map[string][]string{}
	for _, r := range cfg.Roles {
		if !match(r) {
			continue
		}
		if !slices.Contains(arns, r.RoleARN) {
			arns = append(arns, r.RoleARN)
		}
		names[r.RoleARN] = append(names[r.RoleARN], r.Name)
	}
	var out []api.AWSCutoff
	for _, arn := range arns {
		ev := event(arn)
		ev.Provider, ev.Device = "aws", "aws-role:"+strings.Join(names[arn], ",")
		var cut awsbraket.Cutoff
		cerr := err
		if cerr == nil {
			cut, cerr = cfg.Revoker.DenySessions(ctx, root, arn, scope)
		}
		out = append(out, cutoff(arn, cut, cerr))
		if rerr := b.recordCutoff(ctx, c, ev, arn, cut, cerr); rerr != nil && cerr == nil {
			b.log.Error("aws: audit of a session cutoff failed", "role", arn, "err", rerr)
		}
	}
	return out
}

// cutoff is the answer's view of a DenySessions result.
func cutoff(arn string, cut awsbraket.Cutoff, err error) api.AWSCutoff {
	out := api.AWSCutoff{RoleARN: arn, Policy: awsbraket.RevocationPolicy, Widened: cut.Widened, Unverified: cut.Unverified}
	if err != nil {
		out.Error = iamMessage(arn, err)
		return out
	}
	t := cut.IssuedBefore
	out.IssuedBefore = &t
	return out
}

// iamMessage says why IAM did not take a Deny, and what to fix.
func iamMessage(arn string, err error) string {
	var ce *core.Error
	if errors.As(err, &ce) {
		return core.UserMessage(err)
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		msg := fmt.Sprintf("AWS IAM refused (%s: %s)", ae.ErrorCode(), ae.ErrorMessage())
		if ae.ErrorCode() == "AccessDenied" || ae.ErrorCode() == "AccessDeniedException" {
			msg += "; the broker's AWS key needs iam:GetRolePolicy and iam:PutRolePolicy on " + arn
		}
		return msg + ": sessions already issued still work until they expire"
	}
	return fmt.Sprintf("could not reach AWS IAM (%v): sessions already issued still work until they expire", err)
}

// recordCutoff audits a cutoff (decision "error" with the cause when IAM
// did not take it) and returns the caller's error.
func (b *Broker) recordCutoff(ctx context.Context, c Caller, ev *audit.Event, arn string, cut awsbraket.Cutoff, err error) error {
	if err != nil {
		b.log.Warn("aws: session cutoff failed", "role", arn, "err", err)
		ev.Decision, ev.Error = audit.DecisionError, iamMessage(arn, err)
		if rerr := b.record(ctx, c, ev); rerr != nil {
			return rerr
		}
		var ce *core.Error
		if errors.As(err, &ce) {
			return err
		}
		return core.Wrap(core.KindUnavailable, err, "the sessions are not cut off: "+iamMessage(arn, err))
	}
	ev.Decision = audit.DecisionAllow
	ev.Reason += fmt.Sprintf(": denied if issued before %s (inline policy %s)", cut.IssuedBefore.UTC().Format(time.RFC3339), awsbraket.RevocationPolicy)
	if cut.Widened {
		ev.Reason += "; the policy was full, so every session of the role issued before then is denied"
	}
	if cut.Unverified {
		ev.Reason += "; IAM took the write but did not show it on reading back (eventual consistency or a concurrent writer): check the policy"
		b.log.Warn("aws: session cutoff written but not seen on reading back", "role", arn)
	}
	return b.record(ctx, c, ev)
}

// waitForCutoff holds a new session of roleARN for agent (in brokerRole)
// until AWS's clock has passed the date of a cutoff just written for the
// role, the agent or the broker role
// (at most about a second), so that it is not denied at birth.
func (cfg *AWSCredentials) waitForCutoff(ctx context.Context, roleARN, agent, brokerRole string) error {
	if cfg.Revoker == nil {
		return nil
	}
	wait := time.Until(cfg.Revoker.MintNotBefore(roleARN, awsbraket.SourceIdentity(agent), brokerRole))
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(min(wait, 3*time.Second))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
