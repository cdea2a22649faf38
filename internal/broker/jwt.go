package broker

import (
	"context"
	"crypto/tls"
	"fmt"
	"maps"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/store"
)

// JWTIdentity is what a JWT/OIDC auth method proved about a caller.
type JWTIdentity struct {
	Issuer     string            // the issuer's config name
	Subject    string            // "sub"
	Name       string            // the role's user claim: the agent's name
	Role       string            // the JWT role logged in with
	BrokerRole string            // the broker role the login gets
	Metadata   map[string]string // claim mappings
	NotAfter   time.Time         // when set, the broker token expires no later (an SVID's expiry)
}

// SPIFFEAuthenticator verifies SPIFFE SVIDs: X.509 from the TLS connection,
// or JWT-SVIDs.
type SPIFFEAuthenticator interface {
	LoginTLS(ctx context.Context, role string, cs *tls.ConnectionState) (JWTIdentity, error)
	LoginJWT(ctx context.Context, role, token string) (JWTIdentity, error)
}

// LoginSPIFFE is auth/cert (method "cert": the SVID of the TLS connection)
// and auth/spiffe-jwt (method "spiffe-jwt": a JWT-SVID).
func (b *Broker) LoginSPIFFE(ctx context.Context, c Caller, method, role, jwtSVID string, cs *tls.ConnectionState) (*api.Auth, error) {
	defer b.stage("login", time.Now())
	ev := &audit.Event{Type: "login", AuthMethod: method, Action: "Login"}
	if b.cfg.SPIFFE == nil {
		return nil, b.refuse(ctx, c, ev, core.Errorf(core.KindBadRequest, "auth method %s is not configured", method))
	}
	src, start := hostOf(c.RemoteAddr), b.now()
	if err := b.guard.admit(src, start); err != nil {
		return nil, b.refuse(ctx, c, ev, err)
	}
	var id JWTIdentity
	var err error
	if method == "cert" {
		id, err = b.cfg.SPIFFE.LoginTLS(ctx, role, cs)
	} else {
		if jwtSVID == "" {
			return nil, b.refuse(ctx, c, ev, core.Errorf(core.KindBadRequest, "missing jwt"))
		}
		b.hasher.Add(ev, "jwt", jwtSVID)
		id, err = b.cfg.SPIFFE.LoginJWT(ctx, role, jwtSVID)
	}
	if err != nil {
		if core.KindOf(err) == core.KindInternal {
			return nil, fmt.Errorf("%s login: %w", method, err)
		}
		b.guard.failed(src, start)
		return nil, b.refuse(ctx, c, ev, err)
	}
	return b.completeLogin(ctx, c, ev, method, id)
}

// JWTAuthenticator verifies a JWT against a JWT role's bindings. Its
// errors are core.Errors whose messages say which check failed.
type JWTAuthenticator interface {
	LoginJWT(ctx context.Context, role, raw string) (JWTIdentity, error)
}

// LoginJWT is auth/jwt and auth/oidc login: {"role","jwt"} → broker token,
// as in Vault's JWT method. method is "jwt" or "oidc" (the mount path).
func (b *Broker) LoginJWT(ctx context.Context, c Caller, method string, req api.JWTLoginRequest) (*api.Auth, error) {
	defer b.stage("login", time.Now())
	ev := &audit.Event{Type: "login", AuthMethod: method, Action: "Login"}
	if b.cfg.JWT == nil {
		return nil, b.refuse(ctx, c, ev, core.Errorf(core.KindBadRequest, "auth method %s is not configured", method))
	}
	if req.Role == "" || req.JWT == "" {
		missing := "role"
		if req.Role != "" {
			missing = "jwt"
		}
		return nil, b.refuse(ctx, c, ev, core.Errorf(core.KindBadRequest, "missing %s", missing))
	}
	b.hasher.Add(ev, "jwt", req.JWT)
	src, start := hostOf(c.RemoteAddr), b.now()
	if err := b.guard.admit(src, start); err != nil {
		return nil, b.refuse(ctx, c, ev, err)
	}
	if err := b.guard.admitRole("jwt/"+req.Role, start); err != nil {
		return nil, b.refuse(ctx, c, ev, err)
	}
	id, err := b.cfg.JWT.LoginJWT(ctx, req.Role, req.JWT)
	if err != nil {
		if core.KindOf(err) == core.KindInternal {
			return nil, fmt.Errorf("jwt login: %w", err)
		}
		b.guard.failed(src, start)
		return nil, b.refuse(ctx, c, ev, err)
	}
	return b.completeLogin(ctx, c, ev, method, id)
}

// completeLogin issues the broker token for an identity an auth method has
// proved (JWT, OIDC, device flow).
func (b *Broker) completeLogin(ctx context.Context, c Caller, ev *audit.Event, method string, id JWTIdentity) (*api.Auth, error) {
	role, err := b.role(ctx, id.BrokerRole)
	if err != nil {
		ev.Reason = fmt.Sprintf("JWT role %q names broker role %q, which does not exist", id.Role, id.BrokerRole)
		return nil, b.refuse(ctx, c, ev, core.Errorf(core.KindBadRequest, "role %q is not usable: its broker role does not exist", id.Role))
	}
	ev.Role = role.Name
	now := b.now().UTC()
	raw, tok, err := newLoginToken(role, method, now)
	if err != nil {
		return nil, err
	}
	if !id.NotAfter.IsZero() {
		tok.ExpiresAt = minTime(tok.ExpiresAt, id.NotAfter)
		tok.MaxExpiresAt = minTime(tok.MaxExpiresAt, id.NotAfter)
		tok.CreationTTL = tok.ExpiresAt.Sub(now)
	}
	agent := core.Agent{
		ID: method + ":" + id.Issuer + ":" + id.Name, Name: id.Name, Role: role.Name,
		Owner: role.Owner, Team: role.Team, AuthMethod: method, Labels: id.Metadata, CreatedAt: now,
	}
	tok.AgentID = agent.ID
	tok.DisplayName = method + "-" + id.Name
	tok.Meta = maps.Clone(id.Metadata)
	if tok.Meta == nil {
		tok.Meta = map[string]string{}
	}
	tok.Meta["role"] = id.Role
	tok.Meta["issuer"] = id.Issuer
	tok.Meta["subject"] = id.Subject
	wait, err := store.UpdatePipelined(ctx, b.cfg.Store, func(tx store.Aggregates) error {
		return createLogin(ctx, tx, agent, tok)
	})
	if err != nil {
		if core.KindOf(err) == core.KindPermissionDenied {
			return nil, b.refuse(ctx, c, ev, err)
		}
		return nil, fmt.Errorf("jwt login: %w", err)
	}
	ev.Agent, ev.Accessor, ev.Decision = agent.ID, tok.Accessor, audit.DecisionAllow
	commitErr, auditErr := b.commitAndRecord(ctx, c, wait, ev)
	if commitErr != nil {
		return nil, fmt.Errorf("jwt login: %w", commitErr)
	}
	if auditErr != nil {
		_, _ = b.cfg.Store.Tokens().Delete(context.WithoutCancel(ctx), tok.Hash)
		return nil, auditErr
	}
	return authBlock(raw, tok, now), nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
