package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/qbroker/qbroker/internal/auth/device"
	"github.com/qbroker/qbroker/internal/auth/jwtauth"
	"github.com/qbroker/qbroker/internal/broker"
	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/core"
)

// jwtMethod adapts jwtauth to the broker's JWT auth-method contract.
type jwtMethod struct {
	a        *jwtauth.Authenticator
	issuerOf map[string]string // JWT role → issuer config name
}

var _ broker.JWTAuthenticator = jwtMethod{}

func newJWTMethod(ctx context.Context, c config.JWTAuth, log *slog.Logger) (*jwtMethod, error) {
	if len(c.Issuers) == 0 && len(c.Roles) == 0 {
		return nil, nil
	}
	m := &jwtMethod{issuerOf: map[string]string{}}
	var issuers []jwtauth.IssuerConfig
	for _, i := range c.Issuers {
		issuers = append(issuers, jwtauth.IssuerConfig{
			Name: i.Name, Issuer: i.Issuer, DiscoveryURL: i.DiscoveryURL, JWKSURL: i.JWKSURL, PublicKeys: i.PublicKeys,
			Algorithms: i.Algorithms, Leeway: i.Leeway, RefreshInterval: i.RefreshInterval, MinRefreshInterval: i.MinRefreshInterval,
		})
	}
	var roles []jwtauth.RoleConfig
	for _, r := range c.Roles {
		m.issuerOf[r.Name] = r.Issuer
		roles = append(roles, jwtauth.RoleConfig{
			Name: r.Name, Issuer: r.Issuer, BoundAudiences: r.BoundAudiences, BoundSubject: r.BoundSubject,
			BoundClaims: r.BoundClaims, BoundClaimsType: r.BoundClaimsType, ClaimMappings: r.ClaimMappings,
			UserClaim: r.UserClaim, MaxAge: r.MaxAge, BrokerRole: r.BrokerRole,
		})
		if r.BrokerRole == "" {
			return nil, fmt.Errorf("auth.jwt.roles %q: broker_role is required", r.Name)
		}
	}
	a, err := jwtauth.New(ctx, issuers, roles, jwtauth.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	m.a = a
	return m, nil
}

// LoginJWT implements broker.JWTAuthenticator.
func (m jwtMethod) LoginJWT(ctx context.Context, role, raw string) (broker.JWTIdentity, error) {
	id, err := m.a.Login(ctx, role, raw)
	var le *jwtauth.LoginError
	switch {
	case err == nil:
	case errors.As(err, &le) && le.Reason == jwtauth.ReasonUnknownRole:
		return broker.JWTIdentity{}, core.Errorf(core.KindBadRequest, "role %q not found", role)
	case errors.As(err, &le):
		return broker.JWTIdentity{}, core.Errorf(core.KindBadRequest, "invalid JWT: %s", le.Reason)
	case errors.Is(err, jwtauth.ErrIssuerUnavailable):
		return broker.JWTIdentity{}, core.Wrap(core.KindUnavailable, err, "the identity provider's signing keys are unavailable; try again")
	default:
		return broker.JWTIdentity{}, err
	}
	return broker.JWTIdentity{
		Issuer: m.issuerOf[role], Subject: id.Subject, Name: id.Name, Role: role, BrokerRole: id.BrokerRole, Metadata: id.Metadata,
	}, nil
}

func (m *jwtMethod) close() {
	if m != nil && m.a != nil {
		m.a.Close()
	}
}

// newDeviceFlow builds the device authorization grant, if configured.
func newDeviceFlow(ctx context.Context, c config.DeviceAuth, getenv func(string) string) (*device.Flow, error) {
	if c.ClientID == "" {
		return nil, nil
	}
	secret := ""
	if c.ClientSecretEnv != "" {
		if secret = getenv(c.ClientSecretEnv); secret == "" {
			return nil, fmt.Errorf("auth.device: %s is empty", c.ClientSecretEnv)
		}
	}
	return device.New(ctx, device.Config{Issuer: c.Issuer, DiscoveryURL: c.DiscoveryURL, ClientID: c.ClientID, ClientSecret: secret, Scopes: c.Scopes})
}
