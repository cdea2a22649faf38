package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/broker"
	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/gateway"
	"github.com/qbroker/qbroker/internal/provider"
)

// inProcess adapts the broker to the gateway's Broker contract without a
// network hop (qbroker dev, or a server with gateway.listen set).
type inProcess struct{ b *broker.Broker }

var _ gateway.Broker = inProcess{}

var gatewayCaller = broker.Caller{Path: "gateway"}

func (p inProcess) Redeem(ctx context.Context, jti string) error {
	err := p.b.Redeem(ctx, gatewayCaller, jti)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, broker.ErrTokenUsed):
		return gateway.ErrTokenUsed
	case errors.Is(err, broker.ErrTokenExpired):
		return gateway.ErrTokenExpired
	case errors.Is(err, broker.ErrTokenRevoked):
		return gateway.ErrTokenRevoked
	case errors.Is(err, broker.ErrTokenUnknown):
		return gateway.ErrUnknownToken
	}
	return err
}

func (p inProcess) RecordJob(ctx context.Context, j api.JobRecord) error {
	return p.b.RecordJob(ctx, gatewayCaller, j)
}

func (p inProcess) Job(ctx context.Context, provider, id string) (api.JobRecord, error) {
	j, err := p.b.Job(ctx, provider, id)
	if core.KindOf(err) == core.KindNotFound {
		return api.JobRecord{}, gateway.ErrNotFound
	}
	return j, err
}

// ForgetUpstream implements gateway.UpstreamForgetter.
func (p inProcess) ForgetUpstream(_ context.Context, prov, role, digest string) {
	p.b.ForgetUpstream(prov, role, digest)
}

var _ gateway.UpstreamForgetter = inProcess{}

// RoleForToken implements gateway.RoleResolver.
func (p inProcess) RoleForToken(ctx context.Context, raw string) (string, string, error) {
	t, err := p.b.Authenticate(ctx, raw)
	if core.KindOf(err) == core.KindUnauthenticated {
		return "", "", gateway.ErrBadBrokerToken
	}
	if err != nil {
		return "", "", err
	}
	return t.AgentID, t.Role, nil
}

var _ gateway.RoleResolver = inProcess{}

func (p inProcess) AgentForToken(ctx context.Context, raw string) (string, error) {
	t, err := p.b.Authenticate(ctx, raw)
	if core.KindOf(err) == core.KindUnauthenticated {
		return "", gateway.ErrBadBrokerToken
	}
	if err != nil {
		return "", err
	}
	return t.AgentID, nil
}

func (p inProcess) Authorize(ctx context.Context, raw, action string, job api.JobRecord) error {
	err := p.b.AuthorizeJob(ctx, gatewayCaller, raw, action, job)
	switch core.KindOf(err) {
	case core.KindPermissionDenied:
		return fmt.Errorf("%w: %s", gateway.ErrForbidden, strings.TrimPrefix(core.UserMessage(err), "permission denied: "))
	case core.KindUnauthenticated:
		return gateway.ErrBadBrokerToken
	}
	return err
}

func (p inProcess) Credential(ctx context.Context, provider string) (string, error) {
	return p.b.Credential(ctx, provider)
}

func (p inProcess) Audit(ctx context.Context, e *audit.Event) error {
	return p.b.Audit(ctx, gatewayCaller, e)
}

// Upstream implements gateway.UpstreamSource.
func (p inProcess) Upstream(ctx context.Context, prov, role string) (provider.Credential, provider.Scope, error) {
	return p.b.Upstream(ctx, prov, role)
}

var _ gateway.UpstreamSource = inProcess{}

// Settle implements gateway.Settler.
func (p inProcess) Settle(ctx context.Context, s api.SettleRequest) error {
	return p.b.SettleJob(ctx, gatewayCaller, s)
}

var _ gateway.Settler = inProcess{}
