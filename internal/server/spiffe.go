package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/qbroker/qbroker/internal/auth/spiffe"
	"github.com/qbroker/qbroker/internal/broker"
	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/core"
)

// spiffeMethod adapts internal/auth/spiffe to the broker.
type spiffeMethod struct {
	a      *spiffe.Authenticator
	source *workloadapi.BundleSource // nil with a bundle file
}

var _ broker.SPIFFEAuthenticator = (*spiffeMethod)(nil)

func newSPIFFEMethod(ctx context.Context, c config.SPIFFEAuth) (*spiffeMethod, error) {
	if len(c.TrustDomains) == 0 && len(c.Roles) == 0 {
		return nil, nil
	}
	cfg := spiffe.Config{TrustDomains: c.TrustDomains, BundleFile: c.BundleFile}
	for _, r := range c.Roles {
		if r.BrokerRole == "" {
			return nil, fmt.Errorf("auth.spiffe.roles %q: broker_role is required", r.Name)
		}
		cfg.Roles = append(cfg.Roles, spiffe.RoleConfig{Name: r.Name, IDPatterns: r.IDPatterns, Audiences: r.Audiences, BrokerRole: r.BrokerRole})
	}
	m := &spiffeMethod{}
	var err error
	if c.WorkloadAPISocket != "" {
		if c.BundleFile != "" {
			return nil, errors.New("auth.spiffe: set bundle_file or workload_api_socket, not both")
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		addr := c.WorkloadAPISocket
		if !strings.Contains(addr, "://") {
			addr = "unix://" + addr
		}
		if m.source, err = workloadapi.NewBundleSource(wctx, workloadapi.WithClientOptions(workloadapi.WithAddr(addr))); err != nil {
			return nil, fmt.Errorf("auth.spiffe: workload API: %w", err)
		}
		cfg.BundleFile = ""
		m.a, err = spiffe.New(cfg, m.source, m.source)
	} else {
		m.a, err = spiffe.New(cfg, nil, nil)
	}
	if err != nil {
		m.close()
		return nil, err
	}
	return m, nil
}

func spiffeIdentity(id spiffe.Identity, err error) (broker.JWTIdentity, error) {
	var le *spiffe.LoginError
	switch {
	case errors.As(err, &le):
		return broker.JWTIdentity{}, core.Errorf(core.KindBadRequest, "SPIFFE login refused: %s", le.Reason)
	case err != nil:
		return broker.JWTIdentity{}, err
	}
	return broker.JWTIdentity{
		Issuer: id.TrustDomain, Subject: id.ID, Name: strings.TrimPrefix(id.Path, "/"), Role: id.Role,
		BrokerRole: id.BrokerRole, Metadata: map[string]string{"spiffe_id": id.ID}, NotAfter: id.Expires,
	}, nil
}

func (m *spiffeMethod) LoginTLS(ctx context.Context, role string, cs *tls.ConnectionState) (broker.JWTIdentity, error) {
	return spiffeIdentity(m.a.LoginTLS(ctx, role, cs))
}

func (m *spiffeMethod) LoginJWT(ctx context.Context, role, token string) (broker.JWTIdentity, error) {
	return spiffeIdentity(m.a.LoginJWT(ctx, role, token))
}

func (m *spiffeMethod) close() {
	if m != nil && m.source != nil {
		_ = m.source.Close()
	}
}
