package broker

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/store"
)

// Token exchange (RFC 8693): an agent that acts for a person presents the
// person's broker token (subject) and its own (actor) and gets a delegated
// token that names both. It carries the actor's role — the agent's limits
// and policies — with principal.acting_for set for Cedar; it never outlives
// either token, and it is revoked with the subject's token (revoking the
// person's session revokes every agent acting for them).

// Token-exchange constants.
const (
	GrantTokenExchange   = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
)

// ExchangeToken implements POST /v1/auth/token/exchange.
func (b *Broker) ExchangeToken(ctx context.Context, c Caller, req api.TokenExchangeRequest) (*api.Auth, error) {
	ev := &audit.Event{Type: "login", AuthMethod: "token-exchange", Action: "ExchangeToken"}
	switch {
	case req.GrantType != GrantTokenExchange:
		return nil, b.refuse(ctx, c, ev, core.Errorf(core.KindBadRequest, "grant_type must be %s", GrantTokenExchange))
	case req.SubjectToken == "" || req.ActorToken == "":
		return nil, b.refuse(ctx, c, ev, core.Errorf(core.KindBadRequest, "subject_token and actor_token are required"))
	case req.SubjectTokenType != TokenTypeAccessToken || req.ActorTokenType != TokenTypeAccessToken:
		return nil, b.refuse(ctx, c, ev, core.Errorf(core.KindBadRequest, "subject_token_type and actor_token_type must be %s (qbroker broker tokens)", TokenTypeAccessToken))
	}
	subject, err := b.Authenticate(ctx, req.SubjectToken)
	if err != nil {
		return nil, b.refuse(ctx, c, ev, core.Errorf(core.KindPermissionDenied, "permission denied: subject_token is invalid, expired or revoked"))
	}
	actor, err := b.Authenticate(ctx, req.ActorToken)
	if err != nil {
		return nil, b.refuse(ctx, c, ev, core.Errorf(core.KindPermissionDenied, "permission denied: actor_token is invalid, expired or revoked"))
	}
	ev.Agent, ev.Role, ev.ActingFor = actor.AgentID, actor.Role, subject.AgentID
	switch {
	case subject.ParentAccessor != "" || actor.ParentAccessor != "":
		return nil, b.refuse(ctx, c, ev, core.Errorf(core.KindBadRequest, "a delegated token cannot be exchanged again"))
	case actor.Role == "" || subject.HasPolicy(PolicyRoot) || actor.HasPolicy(PolicyRoot):
		return nil, b.refuse(ctx, c, ev, core.Errorf(core.KindBadRequest, "both tokens must be agent or person tokens from a login (not root or gateway tokens)"))
	case subject.AgentID == actor.AgentID:
		return nil, b.refuse(ctx, c, ev, core.Errorf(core.KindBadRequest, "subject and actor are the same identity"))
	}
	role, err := b.role(ctx, actor.Role)
	if err != nil {
		return nil, b.refuse(ctx, c, ev, err)
	}
	now := b.now().UTC()
	raw, tok, err := newLoginToken(role, "token-exchange", now)
	if err != nil {
		return nil, err
	}
	for _, limit := range []core.Token{subject, actor} { // never outlive either token
		if !limit.ExpiresAt.IsZero() && limit.ExpiresAt.Before(tok.ExpiresAt) {
			tok.ExpiresAt = limit.ExpiresAt
		}
		if !limit.ExpiresAt.IsZero() && limit.ExpiresAt.Before(tok.MaxExpiresAt) {
			tok.MaxExpiresAt = limit.ExpiresAt
		}
	}
	tok.CreationTTL = tok.ExpiresAt.Sub(now)
	tok.AgentID, tok.ActingFor, tok.ParentAccessor = actor.AgentID, subject.AgentID, subject.Accessor
	tok.DisplayName = "delegated-" + actor.DisplayName
	tok.Meta = maps.Clone(actor.Meta)
	if tok.Meta == nil {
		tok.Meta = map[string]string{}
	}
	tok.Meta["acting_for"] = subject.AgentID
	tok.Meta["actor"] = actor.AgentID
	tok.Meta["actor_accessor"] = actor.Accessor
	if err := b.cfg.Store.Tokens().Create(ctx, tok); err != nil {
		return nil, fmt.Errorf("token exchange: %w", err)
	}
	ev.Accessor, ev.Decision = tok.Accessor, audit.DecisionAllow
	ev.Reason = fmt.Sprintf("%s acting for %s", actor.AgentID, subject.AgentID)
	if err := b.record(ctx, c, ev); err != nil {
		_, _ = b.cfg.Store.Tokens().Delete(context.WithoutCancel(ctx), tok.Hash)
		return nil, err
	}
	auth := authBlock(raw, tok, now)
	return auth, nil
}

// revokeChildren revokes the tokens delegated under the given accessors.
func (b *Broker) revokeChildren(ctx context.Context, accessors ...string) error {
	var errs []error
	for _, acc := range accessors {
		gone, err := b.cfg.Store.Tokens().DeleteByParent(ctx, acc)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			errs = append(errs, err)
		}
		for _, t := range gone {
			b.tokens.drop(t.Hash)
			b.tell(ctx, "tok:"+t.Hash)
		}
	}
	return errors.Join(errs...)
}
