package broker

import (
	"context"
	"fmt"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/policy"
)

// tokenProviders are the providers whose minted upstream credential is a
// bearer token an agent's own SDK can use: IBM Quantum (IAM) and Azure
// Quantum (Entra).
var tokenProviders = map[string]string{"ibm": "IBM Cloud IAM", "azure": "Entra ID (Azure Quantum)"}

// IssueProviderToken answers GET /v1/<provider>/token/<role>: a fresh
// short-lived bearer token for the provider, minted from the sealed root
// credential, for an agent whose SDK talks to the provider directly rather
// than through the gateway. The caller's token must be for role, role must
// be for provider, Cedar must permit IssueCredentials on the provider, and
// approval rules on IssueCredentials hold it for a person. The token is
// minted for this request (never the gateway's cached one) and reaches the
// trail only as its HMAC. What it can do at the provider is what the root
// credential can (an IBM service ID or an Entra app scoped to one
// instance or workspace); gateway injection remains the narrower path.
func (b *Broker) IssueProviderToken(ctx context.Context, c Caller, caller core.Token, prov, roleName string) (api.ProviderTokenData, error) {
	ev := &audit.Event{Type: "issue", Action: policy.ActionIssueCredentials, Agent: caller.AgentID, Role: roleName, AuthMethod: caller.AuthMethod,
		Accessor: caller.Accessor, Provider: prov, Device: prov + "-token:" + roleName, ActingFor: caller.ActingFor}
	what, ok := tokenProviders[prov]
	m, configured := b.cfg.Minters[prov]
	if !ok || !configured {
		return api.ProviderTokenData{}, b.refuse(ctx, c, ev, core.Errorf(core.KindNotFound, "%s tokens are not configured on this broker (providers.%s)", prov, prov))
	}
	if caller.Role != roleName {
		return api.ProviderTokenData{}, b.refuse(ctx, c, ev, core.Errorf(core.KindPermissionDenied, "permission denied: token is not for role %q", roleName))
	}
	role, err := b.role(ctx, roleName)
	if err != nil {
		return api.ProviderTokenData{}, b.refuse(ctx, c, ev, err)
	}
	if role.Provider != prov {
		return api.ProviderTokenData{}, b.refuse(ctx, c, ev, core.Errorf(core.KindPermissionDenied, "permission denied: role %q is for provider %q, not %q", roleName, role.Provider, prov))
	}
	if b.freeze.Load() != nil && prov == "ibm" { // every IBM backend is a QPU
		return api.ProviderTokenData{}, b.refuse(ctx, c, ev, core.Errorf(core.KindPermissionDenied, "hardware is frozen: %s", *b.freeze.Load()))
	}
	local := b.now().In(b.cfg.Location)
	dec := b.rules.Load().policy.Decide(policy.Request{
		Agent:    policy.Agent{ID: caller.AgentID, Role: caller.Role, Owner: role.Owner, Team: role.Team, AuthMethod: caller.AuthMethod, ActingFor: caller.ActingFor},
		Action:   policy.ActionIssueCredentials,
		Provider: prov,
		Context:  policy.Context{SourceIP: hostOf(c.RemoteAddr), Hour: local.Hour(), Weekday: int(local.Weekday())},
	})
	ev.Policies = dec.Policies
	if !dec.Allowed {
		ev.Type = "decision"
		return api.ProviderTokenData{}, b.refuse(ctx, c, ev, core.Errorf(core.KindPermissionDenied, "permission denied: %s", dec.Reason))
	}
	op := adminOp{Action: policy.ActionIssueCredentials, Op: "IssueCredentials", Target: prov + "/token/" + roleName,
		Summary: what + " token for role " + roleName}
	if err := b.gateAdmin(ctx, c, caller, op, ev); err != nil {
		return api.ProviderTokenData{}, b.refuseUnlessPending(ctx, c, ev, err)
	}
	root, err := b.Credential(ctx, prov)
	if err != nil {
		return api.ProviderTokenData{}, b.refuse(ctx, c, ev, core.Errorf(core.KindUnavailable, "no %s root credential is stored (qbroker provider set %s)", prov, prov))
	}
	cred, _, _, err := m.Mint(ctx, root, roleName)
	if err != nil {
		b.log.Warn("provider token: mint failed", "provider", prov, "role", roleName, "err", err)
		return api.ProviderTokenData{}, b.refuse(ctx, c, ev, core.Wrap(core.KindUnavailable, err, what+" refused or failed to mint a token"))
	}
	out := api.ProviderTokenData{AccessToken: cred.Secret, TokenType: "Bearer", Provider: prov, ExpiresAt: cred.Expires.UTC(),
		ExpiresIn: max(0, int(cred.Expires.Sub(b.now()).Seconds()))}
	ev.Decision, ev.Owner = audit.DecisionAllow, role.Owner
	ev.Reason = fmt.Sprintf("%s token until %s", what, out.ExpiresAt.Format("2006-01-02T15:04:05Z"))
	b.hasher.Add(ev, "access_token", cred.Secret)
	if err := b.record(ctx, c, ev); err != nil {
		return api.ProviderTokenData{}, err // never handed out without its audit record
	}
	return out, nil
}
