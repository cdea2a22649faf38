package broker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/store"
	"github.com/qbroker/qbroker/internal/token"
)

// Policies carried by broker tokens.
const (
	PolicyRoot    = "root"    // administrators: everything
	PolicyGateway = "gateway" // gateways: redeem, record jobs, read credentials
	PolicyDefault = "default" // every token: its own lookup/renew/revoke
)

var (
	errBadLogin       = core.Errorf(core.KindBadRequest, "invalid role_id or secret_id")
	errAgentSuspended = core.Errorf(core.KindPermissionDenied, "permission denied: agent is suspended")
)

// LoginAppRole exchanges an AppRole role_id and secret_id for a broker token.
func (b *Broker) LoginAppRole(ctx context.Context, c Caller, req api.AppRoleLoginRequest) (*api.Auth, error) {
	defer b.stage("login", time.Now())
	ev := &audit.Event{Type: "login", AuthMethod: "approle", Action: "Login"}
	src, start := hostOf(c.RemoteAddr), b.now()
	if err := b.guard.admit(src, start); err != nil {
		return nil, b.refuse(ctx, c, ev, err)
	}
	// A failed credential counts against the source's failure budget.
	fail := func(err error) error {
		b.guard.failed(src, start)
		return b.refuse(ctx, c, ev, err)
	}
	if req.RoleID == "" || req.SecretID == "" {
		missing := "role_id"
		if req.RoleID != "" {
			missing = "secret_id"
		}
		return nil, b.refuse(ctx, c, ev, core.Errorf(core.KindBadRequest, "missing %s", missing))
	}
	b.hasher.Add(ev, "secret_id", req.SecretID)
	role, err := b.roleByID(ctx, req.RoleID)
	if errors.Is(err, store.ErrNotFound) {
		ev.Reason = "unknown role_id"
		return nil, fail(errBadLogin)
	}
	if err != nil {
		return nil, err
	}
	ev.Role = role.Name
	if err := b.guard.admitRole(role.Name, start); err != nil {
		return nil, b.refuse(ctx, c, ev, err)
	}
	now := b.now().UTC()
	raw, tok, err := newLoginToken(role, "approle", now)
	if err != nil {
		return nil, err
	}
	wait, err := store.UpdatePipelined(ctx, b.cfg.Store, func(tx store.Aggregates) error {
		sid, err := tx.SecretIDs().Consume(ctx, role.Name, token.Hash(req.SecretID), now)
		if err != nil {
			return err
		}
		name := sid.Agent
		if name == "" {
			name = sid.Accessor
		}
		agent := core.Agent{
			ID: "approle:" + role.Name + ":" + name, Name: name, Role: role.Name,
			Owner: role.Owner, Team: role.Team, AuthMethod: "approle", Labels: sid.Meta, CreatedAt: now,
		}
		tok.AgentID = agent.ID
		tok.DisplayName = "approle-" + name
		tok.Meta = map[string]string{"role_name": role.Name, "agent": name}
		return createLogin(ctx, tx, agent, tok)
	})
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrExpired), errors.Is(err, store.ErrExhausted):
		ev.Reason = "secret_id " + reasonOf(err)
		return nil, fail(errBadLogin)
	case errors.Is(err, errAgentSuspended):
		return nil, b.refuse(ctx, c, ev, err)
	case err != nil:
		return nil, fmt.Errorf("login: %w", err)
	}
	ev.Agent, ev.Accessor, ev.Decision = tok.AgentID, tok.Accessor, "allow"
	commitErr, auditErr := b.commitAndRecord(ctx, c, wait, ev)
	if commitErr != nil {
		return nil, fmt.Errorf("login: %w", commitErr)
	}
	if auditErr != nil {
		// Fail closed: the caller never learns the token, so take it back.
		_, _ = b.cfg.Store.Tokens().Delete(context.WithoutCancel(ctx), tok.Hash)
		return nil, auditErr
	}
	return authBlock(raw, tok, now), nil
}

// newLoginToken builds the broker token a login under role receives.
func newLoginToken(role core.Role, method string, now time.Time) (string, core.Token, error) {
	raw, err := token.NewBrokerToken()
	if err != nil {
		return "", core.Token{}, err
	}
	accessor, err := token.NewAccessor()
	if err != nil {
		return "", core.Token{}, err
	}
	maxTTL := orDefault(role.TokenMaxTTL, 24*time.Hour)
	ttl := min(orDefault(role.TokenTTL, time.Hour), maxTTL)
	return raw, core.Token{
		Hash:         token.Hash(raw),
		Accessor:     accessor,
		Role:         role.Name,
		Policies:     []string{PolicyDefault, role.Name},
		AuthMethod:   method,
		IssuedAt:     now,
		ExpiresAt:    now.Add(ttl),
		MaxExpiresAt: now.Add(maxTTL),
		CreationTTL:  ttl,
		Renewable:    true,
	}, nil
}

// createLogin records the agent (only when it is new or changed: a read is
// far cheaper than a write on the login path, and created_at must keep the
// first login's time) and the token, inside tx. A suspended agent is
// refused.
func createLogin(ctx context.Context, tx store.Aggregates, agent core.Agent, tok core.Token) error {
	old, err := tx.Agents().Get(ctx, agent.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return err
	case old.Suspended:
		return errAgentSuspended
	case sameAgent(old, agent):
		return tx.Tokens().Create(ctx, tok)
	default:
		agent.CreatedAt = old.CreatedAt
	}
	if err := tx.Agents().Upsert(ctx, agent); err != nil {
		return err
	}
	return tx.Tokens().Create(ctx, tok)
}

func sameAgent(a, b core.Agent) bool {
	return a.Name == b.Name && a.Role == b.Role && a.Owner == b.Owner && a.Team == b.Team &&
		a.AuthMethod == b.AuthMethod && a.Suspended == b.Suspended && maps.Equal(a.Labels, b.Labels)
}

func reasonOf(err error) string {
	switch {
	case errors.Is(err, store.ErrExpired):
		return "expired"
	case errors.Is(err, store.ErrExhausted):
		return "used up"
	default:
		return "unknown"
	}
}

// refuse audits a refusal and returns err (or the audit failure).
func (b *Broker) refuse(ctx context.Context, c Caller, ev *audit.Event, err error) error {
	ev.Decision = "deny"
	if ev.Reason == "" {
		ev.Reason = core.UserMessage(err)
	}
	if aerr := b.record(ctx, c, ev); aerr != nil {
		return aerr
	}
	return err
}

func authBlock(raw string, t core.Token, now time.Time) *api.Auth {
	return &api.Auth{
		ClientToken:   raw,
		Accessor:      t.Accessor,
		Policies:      t.Policies,
		TokenPolicies: t.Policies,
		Metadata:      t.Meta,
		LeaseDuration: ttlSeconds(t, now),
		Renewable:     t.Renewable,
		EntityID:      t.AgentID,
		TokenType:     "service",
		Orphan:        true,
	}
}

func ttlSeconds(t core.Token, now time.Time) int {
	if t.ExpiresAt.IsZero() {
		return 0
	}
	return max(0, int(t.ExpiresAt.Sub(now)/time.Second))
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

var errBadToken = core.Errorf(core.KindUnauthenticated, "permission denied: invalid, expired or revoked token")

// Authenticate resolves a broker token. Every failure is the same
// KindUnauthenticated error, so callers learn nothing about why.
func (b *Broker) Authenticate(ctx context.Context, raw string) (core.Token, error) {
	if raw == "" {
		return core.Token{}, core.Errorf(core.KindUnauthenticated, "permission denied: missing token")
	}
	if token.CheckFormat(raw) != nil {
		return core.Token{}, errBadToken
	}
	h := token.Hash(raw)
	now := b.now()
	if t, ok := b.tokens.get(h); ok {
		if t.Live(now) {
			return t, nil
		}
		b.tokens.drop(h)
		return core.Token{}, errBadToken
	}
	gen := b.tokens.generation() // before the read: see putIfCurrent
	t, err := b.cfg.Store.Tokens().Get(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return core.Token{}, errBadToken
	}
	if err != nil {
		return core.Token{}, fmt.Errorf("token lookup: %w", err)
	}
	if !t.Live(now) {
		return core.Token{}, errBadToken
	}
	b.tokens.putIfCurrent(t, gen)
	return t, nil
}

// LookupSelf describes the caller's own token.
func (b *Broker) LookupSelf(ctx context.Context, c Caller, raw string, t core.Token) (api.TokenInfo, error) {
	info := tokenInfo(t, b.now())
	info.ID = raw
	return info, nil
}

// LookupToken describes another token; gateways use it to find the agent
// behind a status read. Only root and gateway tokens may call it.
func (b *Broker) LookupToken(ctx context.Context, c Caller, caller core.Token, raw string) (api.TokenInfo, error) {
	if !caller.HasPolicy(PolicyRoot) && !caller.HasPolicy(PolicyGateway) {
		return api.TokenInfo{}, core.Errorf(core.KindPermissionDenied, "permission denied: token lookup needs the gateway or root policy")
	}
	t, err := b.Authenticate(ctx, raw)
	if err != nil {
		return api.TokenInfo{}, err
	}
	return tokenInfo(t, b.now()), nil
}

func tokenInfo(t core.Token, now time.Time) api.TokenInfo {
	info := api.TokenInfo{
		Accessor:     t.Accessor,
		CreationTime: t.IssuedAt.Unix(),
		CreationTTL:  int(t.CreationTTL / time.Second),
		DisplayName:  t.DisplayName,
		EntityID:     t.AgentID,
		IssueTime:    t.IssuedAt,
		Meta:         t.Meta,
		Orphan:       true,
		Path:         "auth/" + t.AuthMethod + "/login",
		Policies:     t.Policies,
		Renewable:    t.Renewable,
		TTL:          ttlSeconds(t, now),
		Type:         "service",
		Role:         t.Role,
	}
	if !t.ExpiresAt.IsZero() {
		e := t.ExpiresAt
		info.ExpireTime = &e
	}
	if !t.MaxExpiresAt.IsZero() {
		info.ExplicitMaxTTL = int(t.MaxExpiresAt.Sub(t.IssuedAt) / time.Second)
	}
	return info
}

// RenewSelf extends the caller's token by increment (or its creation TTL),
// never past its max TTL.
func (b *Broker) RenewSelf(ctx context.Context, c Caller, raw string, t core.Token, increment time.Duration) (*api.Auth, error) {
	ev := &audit.Event{Type: "renew", Agent: t.AgentID, Role: t.Role, Accessor: t.Accessor, AuthMethod: t.AuthMethod}
	if !t.Renewable || t.ExpiresAt.IsZero() {
		return nil, b.refuse(ctx, c, ev, core.Errorf(core.KindBadRequest, "token is not renewable"))
	}
	now := b.now().UTC()
	if increment <= 0 {
		increment = t.CreationTTL
	}
	exp := now.Add(increment)
	if !t.MaxExpiresAt.IsZero() && exp.After(t.MaxExpiresAt) {
		exp = t.MaxExpiresAt
	}
	if exp.Before(t.ExpiresAt) {
		exp = t.ExpiresAt // renewal never shortens
	}
	if err := b.cfg.Store.Tokens().SetExpiry(ctx, t.Hash, exp); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			b.tokens.drop(t.Hash)
			return nil, errBadToken
		}
		return nil, err
	}
	b.tokens.drop(t.Hash)
	b.tell(ctx, "tok:"+t.Hash)
	t.ExpiresAt = exp
	ev.Decision = "allow"
	if err := b.record(ctx, c, ev); err != nil {
		return nil, err
	}
	return authBlock(raw, t, now), nil
}

// RevokeSelf revokes the caller's token.
func (b *Broker) RevokeSelf(ctx context.Context, c Caller, t core.Token) error {
	if _, err := b.cfg.Store.Tokens().Delete(ctx, t.Hash); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	b.tokens.drop(t.Hash)
	b.tell(ctx, "tok:"+t.Hash)
	if err := b.revokeChildren(ctx, t.Accessor); err != nil {
		return err
	}
	return b.record(ctx, c, &audit.Event{Type: "revoke", Action: "RevokeSelf", Agent: t.AgentID, Role: t.Role, Accessor: t.Accessor, Decision: "allow"})
}

// RevokeAccessor revokes the token with the given accessor. Root may revoke
// any token; an agent only its own.
func (b *Broker) RevokeAccessor(ctx context.Context, c Caller, caller core.Token, accessor string) error {
	ev := &audit.Event{Type: "revoke", Action: "RevokeAccessor", Agent: caller.AgentID, Accessor: accessor}
	if accessor == "" {
		return b.refuse(ctx, c, ev, core.Errorf(core.KindBadRequest, "missing accessor"))
	}
	target, err := b.cfg.Store.Tokens().GetByAccessor(ctx, accessor)
	if errors.Is(err, store.ErrNotFound) {
		return b.refuse(ctx, c, ev, core.Errorf(core.KindBadRequest, "invalid accessor"))
	}
	if err != nil {
		return err
	}
	if !caller.HasPolicy(PolicyRoot) && (caller.AgentID == "" || target.AgentID != caller.AgentID) {
		return b.refuse(ctx, c, ev, core.Errorf(core.KindPermissionDenied, "permission denied: may only revoke your own tokens"))
	}
	if _, err := b.cfg.Store.Tokens().DeleteByAccessor(ctx, accessor); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	b.tokens.drop(target.Hash)
	b.tell(ctx, "tok:"+target.Hash)
	if err := b.revokeChildren(ctx, accessor); err != nil {
		return err
	}
	ev.Decision = "allow"
	return b.record(ctx, c, ev)
}

// CreateRootToken mints a token with the root policy (no expiry). It is
// used once at initialisation and by `qbroker dev`.
func (b *Broker) CreateRootToken(ctx context.Context, c Caller, display string) (string, error) {
	return b.createToken(ctx, c, display, []string{PolicyRoot}, 0)
}

// CreateGatewayToken mints a token for a gateway process.
func (b *Broker) CreateGatewayToken(ctx context.Context, c Caller, caller core.Token, ttl time.Duration) (string, error) {
	if err := requireRoot(caller); err != nil {
		return "", err
	}
	return b.createToken(ctx, c, "gateway", []string{PolicyGateway}, ttl)
}

func (b *Broker) createToken(ctx context.Context, c Caller, display string, policies []string, ttl time.Duration) (string, error) {
	raw, err := token.NewBrokerToken()
	if err != nil {
		return "", err
	}
	accessor, err := token.NewAccessor()
	if err != nil {
		return "", err
	}
	now := b.now().UTC()
	t := core.Token{Hash: token.Hash(raw), Accessor: accessor, AgentID: "token:" + display, Policies: policies, DisplayName: display, AuthMethod: "token", IssuedAt: now, CreationTTL: ttl}
	if ttl > 0 {
		t.ExpiresAt = now.Add(ttl)
		t.MaxExpiresAt = t.ExpiresAt
	}
	if err := b.cfg.Store.Tokens().Create(ctx, t); err != nil {
		return "", err
	}
	if err := b.record(ctx, c, &audit.Event{Type: "issue", Action: "CreateToken", Agent: t.AgentID, Accessor: accessor, Decision: "allow", Reason: fmt.Sprintf("policies %v", policies)}); err != nil {
		_, _ = b.cfg.Store.Tokens().Delete(context.WithoutCancel(ctx), t.Hash)
		return "", err
	}
	return raw, nil
}

func requireRoot(t core.Token) error {
	if !t.HasPolicy(PolicyRoot) {
		return core.Errorf(core.KindPermissionDenied, "permission denied: this operation needs the root policy")
	}
	return nil
}

const secretInitialized = "sys/initialized"

// Initialize creates the first root token on a new store. On later starts
// it does nothing: the root token is shown once and stored only hashed.
func (b *Broker) Initialize(ctx context.Context, c Caller) (root string, created bool, err error) {
	if _, err := b.cfg.Store.Secrets().Get(ctx, secretInitialized); err == nil {
		return "", false, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return "", false, err
	}
	if root, err = b.CreateRootToken(ctx, c, "initial-root"); err != nil {
		return "", false, err
	}
	if err := b.putSealed(ctx, b.cfg.Store, secretInitialized, []byte(b.now().UTC().Format(time.RFC3339))); err != nil {
		return "", false, err
	}
	b.healthCache.Store(nil)
	return root, true, nil
}

// MarkInitialized records that the store is in use without minting the
// initial root token (qbroker dev makes its own admin token).
func (b *Broker) MarkInitialized(ctx context.Context) error {
	if _, err := b.cfg.Store.Secrets().Get(ctx, secretInitialized); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	b.healthCache.Store(nil)
	return b.putSealed(ctx, b.cfg.Store, secretInitialized, []byte(b.now().UTC().Format(time.RFC3339)))
}
