// Package spiffe authenticates workloads by their SPIFFE identity: X.509-SVIDs
// presented as TLS client certificates (auth/cert) and JWT-SVIDs posted in a
// login body (auth/spiffe-jwt).
//
// Trust comes from SPIFFE trust bundles, either read from a file
// (LoadBundleFile) or kept current by a SPIRE agent through the Workload API
// (pass workloadapi sources to New). Only the configured trust domains are
// accepted, even when the bundle source knows others (federation). Roles bind
// SPIFFE ID patterns (see the pattern grammar on RoleConfig) to broker roles.
//
// Every refusal is a *LoginError whose Reason is safe to return to the
// client; it never contains a token or key.
package spiffe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// RoleConfig binds SPIFFE IDs to a broker role.
type RoleConfig struct {
	// Name is the role a client asks for ("role" in the login body or query).
	Name string
	// IDPatterns are the SPIFFE IDs the role admits, each one of:
	//   "spiffe://td/a/b"  exactly that ID;
	//   "spiffe://td/a/+"  "spiffe://td/a/" followed by exactly one path segment;
	//   "spiffe://td/a/*"  "spiffe://td/a/" followed by one or more path segments
	//                      ("spiffe://td/*" is every workload of td).
	// A wildcard may only be the last segment. Each pattern's trust domain must
	// be one of Config.TrustDomains. At least one pattern is required.
	IDPatterns []string
	// Audiences are required for JWT-SVID logins: the token's "aud" must
	// contain at least one of them. A role without audiences admits X.509-SVIDs only.
	Audiences []string
	// BrokerRole is the broker role a successful login gets.
	BrokerRole string
}

// Config is the auth/cert and auth/spiffe-jwt configuration.
type Config struct {
	// TrustDomains are the accepted trust domains ("broker.test" or
	// "spiffe://broker.test"). An SVID of any other trust domain is refused,
	// even if its bundle is known.
	TrustDomains []string
	// BundleFile is read by New when no bundle sources are passed; see
	// LoadBundleFile for the format. With exactly one trust domain, a bare
	// SPIFFE bundle (JWKS) or a PEM CA file is also accepted.
	BundleFile string
	// Roles, in order: an X.509 login without a role gets the first whose
	// patterns match.
	Roles []RoleConfig
}

// Identity is an authenticated SPIFFE workload.
type Identity struct {
	ID          string    // "spiffe://broker.test/workload/agent-1"
	TrustDomain string    // "broker.test"
	Path        string    // "/workload/agent-1"
	Role        string    // the RoleConfig.Name that admitted it
	BrokerRole  string    // that role's BrokerRole
	Expires     time.Time // the SVID's expiry: a broker token should not outlive it
}

// Refusal codes: stable, for audit and metrics; LoginError.Reason is the
// human-readable text.
const (
	CodeNoClientCert  = "no_client_certificate"
	CodeInvalidSVID   = "invalid_x509_svid"
	CodeCertValidity  = "certificate_expired"
	CodeUntrusted     = "untrusted_certificate"
	CodeTrustDomain   = "trust_domain_not_accepted"
	CodeNotBound      = "spiffe_id_not_bound"
	CodeUnknownRole   = "unknown_role"
	CodeInvalidJWT    = "invalid_jwt_svid"
	CodeAudience      = "audience_not_allowed"
	CodeJWTNotEnabled = "jwt_svid_not_enabled"
)

// LoginError is a refused login. Reason is safe to show to the client.
type LoginError struct {
	Code   string // one of the Code* constants
	Reason string
	cause  error // detail for server logs; never holds secrets
}

func (e *LoginError) Error() string { return e.Reason }

// Unwrap returns the underlying verification error, if any (for logs).
func (e *LoginError) Unwrap() error { return e.cause }

func refuse(code, reason string, cause error) *LoginError {
	return &LoginError{Code: code, Reason: reason, cause: cause}
}

// ErrNoBundleSource is returned by New when neither bundle sources nor a
// bundle file are given.
var ErrNoBundleSource = errors.New("spiffe: no trust bundle: give Config.BundleFile or bundle sources")

type role struct {
	cfg      RoleConfig
	patterns []idPattern
}

// Authenticator verifies SVIDs against trust bundles and maps them to roles.
// It is safe for concurrent use; it reads the bundle sources on every login,
// so Workload API sources rotate without a restart.
type Authenticator struct {
	tds    map[spiffeid.TrustDomain]struct{}
	roles  []*role
	byName map[string]*role
	x509   x509bundle.Source
	jwt    jwtbundle.Source
}

// New validates cfg as a whole and returns an Authenticator. x509Bundles and
// jwtBundles may be workloadapi sources (a *workloadapi.BundleSource serves
// both; a *workloadapi.X509Source serves X.509 bundles). When both are nil,
// cfg.BundleFile is loaded; giving both sources and a file is an error.
func New(cfg Config, x509Bundles x509bundle.Source, jwtBundles jwtbundle.Source) (*Authenticator, error) {
	var errs []error
	a := &Authenticator{
		tds:    make(map[spiffeid.TrustDomain]struct{}),
		byName: make(map[string]*role),
		x509:   x509Bundles,
		jwt:    jwtBundles,
	}
	if len(cfg.TrustDomains) == 0 {
		errs = append(errs, errors.New("no trust domains"))
	}
	var first spiffeid.TrustDomain
	for _, s := range cfg.TrustDomains {
		td, err := parseTrustDomain(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := a.tds[td]; dup {
			errs = append(errs, fmt.Errorf("trust domain %q given twice", td))
		}
		a.tds[td] = struct{}{}
		first = td
	}
	if len(cfg.Roles) == 0 {
		errs = append(errs, errors.New("no roles"))
	}
	for i, rc := range cfg.Roles {
		errs = append(errs, a.addRole(i, rc)...)
	}
	switch {
	case x509Bundles != nil || jwtBundles != nil:
		if cfg.BundleFile != "" {
			errs = append(errs, errors.New("both bundle_file and bundle sources given"))
		}
	case cfg.BundleFile != "":
		single := spiffeid.TrustDomain{}
		if len(a.tds) == 1 {
			single = first
		}
		set, err := loadBundleFile(cfg.BundleFile, single)
		if err != nil {
			errs = append(errs, err)
			break
		}
		for td := range a.tds {
			if !set.Has(td) {
				errs = append(errs, fmt.Errorf("bundle file %s has no bundle for trust domain %q", cfg.BundleFile, td))
			}
		}
		a.x509, a.jwt = set, set
	default:
		errs = append(errs, ErrNoBundleSource)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("spiffe auth config: %w", err)
	}
	return a, nil
}

func (a *Authenticator) addRole(i int, rc RoleConfig) []error {
	var errs []error
	where := fmt.Sprintf("role %d (%q)", i, rc.Name)
	if rc.Name == "" {
		errs = append(errs, fmt.Errorf("role %d: no name", i))
	} else if _, dup := a.byName[rc.Name]; dup {
		errs = append(errs, fmt.Errorf("%s: name given twice", where))
	}
	if rc.BrokerRole == "" {
		errs = append(errs, fmt.Errorf("%s: no broker_role", where))
	}
	if len(rc.IDPatterns) == 0 {
		errs = append(errs, fmt.Errorf("%s: no SPIFFE ID patterns", where))
	}
	for _, aud := range rc.Audiences {
		if strings.TrimSpace(aud) == "" {
			errs = append(errs, fmt.Errorf("%s: empty audience", where))
		}
	}
	r := &role{cfg: rc}
	r.cfg.IDPatterns = slices.Clone(rc.IDPatterns)
	r.cfg.Audiences = slices.Clone(rc.Audiences)
	for _, raw := range rc.IDPatterns {
		p, err := parsePattern(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		if _, ok := a.tds[p.td]; !ok {
			errs = append(errs, fmt.Errorf("%s: pattern %q is outside the accepted trust domains", where, raw))
			continue
		}
		r.patterns = append(r.patterns, p)
	}
	if rc.Name != "" {
		if _, dup := a.byName[rc.Name]; !dup {
			a.byName[rc.Name] = r
		}
	}
	a.roles = append(a.roles, r)
	return errs
}

func (r *role) admits(id spiffeid.ID) bool {
	for _, p := range r.patterns {
		if p.match(id) {
			return true
		}
	}
	return false
}

// identity builds the Identity for id admitted by r.
func identity(id spiffeid.ID, r *role, expires time.Time) Identity {
	return Identity{
		ID:          id.String(),
		TrustDomain: id.TrustDomain().Name(),
		Path:        id.Path(),
		Role:        r.cfg.Name,
		BrokerRole:  r.cfg.BrokerRole,
		Expires:     expires.UTC(),
	}
}

// bindRole picks the role for id: the named one (which must admit id), or
// with name "" the first role, in config order, that admits it.
func (a *Authenticator) bindRole(name string, id spiffeid.ID) (*role, *LoginError) {
	if name != "" {
		r, ok := a.byName[name]
		if !ok {
			return nil, refuse(CodeUnknownRole, "unknown role", nil)
		}
		if !r.admits(id) {
			return nil, refuse(CodeNotBound, "SPIFFE ID not bound to role", nil)
		}
		return r, nil
	}
	for _, r := range a.roles {
		if r.admits(id) {
			return r, nil
		}
	}
	return nil, refuse(CodeNotBound, "SPIFFE ID not bound to role", nil)
}

// verifyChain checks that chain (leaf first, then intermediates, as in
// tls.ConnectionState.PeerCertificates) is a valid X.509-SVID of an accepted
// trust domain, chaining to that trust domain's bundle.
func (a *Authenticator) verifyChain(chain []*x509.Certificate) (spiffeid.ID, *LoginError) {
	if len(chain) == 0 || chain[0] == nil {
		return spiffeid.ID{}, refuse(CodeNoClientCert, "no client certificate", nil)
	}
	leaf := chain[0]
	id, err := x509svid.IDFromCert(leaf)
	if err != nil {
		return spiffeid.ID{}, refuse(CodeInvalidSVID, "certificate is not an X.509-SVID", err)
	}
	if _, ok := a.tds[id.TrustDomain()]; !ok {
		return spiffeid.ID{}, refuse(CodeTrustDomain, "trust domain not accepted", nil)
	}
	now := time.Now()
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return spiffeid.ID{}, refuse(CodeCertValidity, "certificate expired or not yet valid", nil)
	}
	if _, _, err := x509svid.Verify(chain, a.x509); err != nil {
		return spiffeid.ID{}, refuse(CodeUntrusted, "certificate not issued by a trusted SPIFFE trust domain", err)
	}
	return id, nil
}

// LoginX509 authenticates an X.509-SVID client certificate chain (leaf
// first; pass r.TLS.PeerCertificates). It verifies the chain itself, against
// the bundle of the leaf's trust domain as the source holds it now, so it is
// correct even for resumed TLS sessions or a listener that did not verify.
// role may be "" to take the first role whose patterns match.
func (a *Authenticator) LoginX509(ctx context.Context, role string, chain []*x509.Certificate) (Identity, error) {
	if err := ctx.Err(); err != nil {
		return Identity{}, err
	}
	id, lerr := a.verifyChain(chain)
	if lerr != nil {
		return Identity{}, lerr
	}
	r, lerr := a.bindRole(role, id)
	if lerr != nil {
		return Identity{}, lerr
	}
	return identity(id, r, chain[0].NotAfter), nil
}

// LoginTLS is LoginX509 on a request's connection state (r.TLS, which is nil
// for plain HTTP).
func (a *Authenticator) LoginTLS(ctx context.Context, role string, cs *tls.ConnectionState) (Identity, error) {
	if cs == nil {
		return Identity{}, refuse(CodeNoClientCert, "no client certificate", nil)
	}
	return a.LoginX509(ctx, role, cs.PeerCertificates)
}

// LoginJWT authenticates a JWT-SVID for the named role. The token must be
// signed (RS/ES/PS 256-512; "none" and HMAC are refused) by a JWT authority,
// found by "kid", in the bundle of its subject's trust domain; unexpired; with
// an "aud" containing one of the role's audiences; and its subject must match
// the role's patterns.
func (a *Authenticator) LoginJWT(ctx context.Context, role, token string) (Identity, error) {
	if err := ctx.Err(); err != nil {
		return Identity{}, err
	}
	r, ok := a.byName[role]
	if !ok {
		return Identity{}, refuse(CodeUnknownRole, "unknown role", nil)
	}
	if len(r.cfg.Audiences) == 0 {
		return Identity{}, refuse(CodeJWTNotEnabled, "role does not accept JWT-SVIDs", nil)
	}
	// Unverified first pass: the structural checks (algorithm, subject, exp)
	// and the trust domain and audience, so each refusal has its own reason
	// and no foreign trust domain's keys are ever consulted.
	claims, err := jwtsvid.ParseInsecure(token, nil)
	if err != nil {
		return Identity{}, refuse(CodeInvalidJWT, "invalid JWT-SVID: "+jwtReason(err), err)
	}
	if _, ok := a.tds[claims.ID.TrustDomain()]; !ok {
		return Identity{}, refuse(CodeTrustDomain, "trust domain not accepted", nil)
	}
	if !slices.ContainsFunc(claims.Audience, func(aud string) bool { return slices.Contains(r.cfg.Audiences, aud) }) {
		return Identity{}, refuse(CodeAudience, "audience not allowed", nil)
	}
	svid, err := jwtsvid.ParseAndValidate(token, a.jwt, r.cfg.Audiences)
	if err != nil {
		return Identity{}, refuse(CodeInvalidJWT, "invalid JWT-SVID: "+jwtReason(err), err)
	}
	if !r.admits(svid.ID) {
		return Identity{}, refuse(CodeNotBound, "SPIFFE ID not bound to role", nil)
	}
	return identity(svid.ID, r, svid.Expiry), nil
}

// jwtReason turns a go-spiffe/go-jose validation error into a short,
// user-safe reason. Those messages name at most the kid, trust domain and
// audiences, never the token or a key.
func jwtReason(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "jwtsvid: ")
	msg = strings.TrimPrefix(msg, "go-jose/go-jose/jwt: ")
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return msg
}
