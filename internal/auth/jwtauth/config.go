package jwtauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/qbroker/qbroker/internal/auth/authutil"
)

// Defaults and limits for IssuerConfig.
const (
	DefaultLeeway             = 10 * time.Second
	MaxLeeway                 = 2 * time.Minute
	DefaultRefreshInterval    = time.Hour
	DefaultMinRefreshInterval = 10 * time.Second
	wellKnownSuffix           = "/.well-known/openid-configuration"
)

// DefaultAlgorithms returns the signing-algorithm allow-list used when an issuer
// lists none.
func DefaultAlgorithms() []string { return []string{"RS256", "ES256", "EdDSA"} }

// supportedAlgorithms returns the asymmetric JWS algorithms an issuer may allow.
// "none" and every HS* (MAC) algorithm are deliberately absent.
func supportedAlgorithms() []string {
	return []string{
		"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
		"ES256", "ES384", "ES512", "EdDSA",
	}
}

// IssuerConfig is one trusted token issuer. Exactly one of DiscoveryURL, JWKSURL
// and PublicKeys supplies its keys.
type IssuerConfig struct {
	Name               string        // config handle, e.g. "corp", "kubernetes", "github-actions"
	Issuer             string        // the exact expected "iss"
	DiscoveryURL       string        // OIDC discovery base (or the full …/.well-known/openid-configuration URL)
	JWKSURL            string        // a static JWKS URL
	PublicKeys         []string      // PEM public keys (no network)
	Algorithms         []string      // allow-list; default RS256, ES256, EdDSA; "none" and HS* are refused
	Leeway             time.Duration // clock skew for exp/nbf/iat; default 10 s, at most 2 min
	RefreshInterval    time.Duration // scheduled JWKS refresh; default 1 h
	MinRefreshInterval time.Duration // at most one fetch per this on unknown kids; default 10 s
}

// RoleConfig is a login role with Vault's JWT-method semantics.
type RoleConfig struct {
	Name            string              // the "role" in the login body
	Issuer          string              // IssuerConfig.Name
	BoundAudiences  []string            // token must carry one of these in "aud" (required)
	BoundSubject    string              // exact "sub", when set
	BoundClaims     map[string][]string // claim (name or JSON pointer) → allowed values
	BoundClaimsType string              // "string" (exact, default) or "glob" (* wildcards)
	ClaimMappings   map[string]string   // claim (name or JSON pointer) → metadata key
	UserClaim       string              // claim naming the agent; default "sub"
	MaxAge          time.Duration       // refuse tokens whose iat is older; 0 = no limit
	BrokerRole      string              // the qbroker role a successful login gets
}

// Identity is the verified result of a login.
type Identity struct {
	Issuer     string            // the token's "iss"
	Subject    string            // the token's "sub"
	Name       string            // the value of the role's UserClaim
	Role       string            // the login role (RoleConfig.Name)
	BrokerRole string            // RoleConfig.BrokerRole
	Metadata   map[string]string // from ClaimMappings
	IssuedAt   time.Time         // zero when the token has no "iat"
	ExpiresAt  time.Time
}

// Options are the Authenticator's collaborators; all are optional.
type Options struct {
	HTTPClient *http.Client     // for discovery and JWKS; default: 10 s timeout
	Logger     *slog.Logger     // default: discard
	Now        func() time.Time // default: time.Now; also drives the refresh rate limit
}

// issuer is a validated IssuerConfig with defaults applied.
type issuer struct {
	IssuerConfig
	algs       []jose.SignatureAlgorithm
	staticKeys []jose.JSONWebKey
}

// role is a validated RoleConfig.
type role struct {
	RoleConfig
	glob       bool
	boundNames []string // BoundClaims keys, sorted: deterministic first failure
}

func validateIssuer(c IssuerConfig) (*issuer, []error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("issuer %q: "+format, append([]any{c.Name}, args...)...))
	}
	if c.Name == "" {
		bad("name is required")
	}
	if c.Issuer == "" {
		bad("issuer (the expected iss) is required")
	}
	sources := 0
	if c.DiscoveryURL != "" {
		sources++
		if err := authutil.CheckIdPURL(c.DiscoveryURL); err != nil {
			bad("discovery_url: %v", err)
		}
	}
	if c.JWKSURL != "" {
		sources++
		if err := authutil.CheckIdPURL(c.JWKSURL); err != nil {
			bad("jwks_url: %v", err)
		}
	}
	if len(c.PublicKeys) > 0 {
		sources++
	}
	if sources != 1 {
		bad("exactly one of discovery_url, jwks_url and public_keys is required (got %d)", sources)
	}
	is := &issuer{IssuerConfig: c}
	for i, p := range c.PublicKeys {
		k, err := parsePublicKeyPEM(p)
		if err != nil {
			bad("public_keys[%d]: %v", i, err)
			continue
		}
		jwk := jose.JSONWebKey{Key: k, Use: "sig"}
		tp, err := jwk.Thumbprint(crypto.SHA256)
		if err != nil {
			bad("public_keys[%d]: %v", i, err)
			continue
		}
		jwk.KeyID = base64URL(tp)
		is.staticKeys = append(is.staticKeys, jwk)
	}
	algs := c.Algorithms
	if len(algs) == 0 {
		algs = DefaultAlgorithms()
	}
	for _, a := range algs {
		switch {
		case strings.EqualFold(a, "none"):
			bad("algorithm %q is never allowed", a)
		case strings.HasPrefix(strings.ToUpper(a), "HS"):
			bad("algorithm %q (shared-secret MAC) is never allowed", a)
		case !slices.Contains(supportedAlgorithms(), a):
			bad("unknown algorithm %q (supported: %s)", a, strings.Join(supportedAlgorithms(), ", "))
		default:
			if !slices.Contains(is.algs, jose.SignatureAlgorithm(a)) {
				is.algs = append(is.algs, jose.SignatureAlgorithm(a))
			}
		}
	}
	switch {
	case c.Leeway < 0:
		bad("leeway must not be negative")
	case c.Leeway > MaxLeeway:
		bad("leeway %s exceeds the maximum %s", c.Leeway, MaxLeeway)
	case c.Leeway == 0:
		is.Leeway = DefaultLeeway
	}
	switch {
	case c.RefreshInterval < 0:
		bad("refresh_interval must not be negative")
	case c.RefreshInterval == 0:
		is.RefreshInterval = DefaultRefreshInterval
	}
	switch {
	case c.MinRefreshInterval < 0:
		bad("min_refresh_interval must not be negative")
	case c.MinRefreshInterval == 0:
		is.MinRefreshInterval = DefaultMinRefreshInterval
	}
	return is, errs
}

func validateRole(c RoleConfig, issuers map[string]*issuer) (*role, []error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("role %q: "+format, append([]any{c.Name}, args...)...))
	}
	if c.Name == "" {
		bad("name is required")
	}
	if c.Issuer == "" {
		bad("issuer is required")
	} else if _, ok := issuers[c.Issuer]; !ok {
		bad("unknown issuer %q", c.Issuer)
	}
	if len(c.BoundAudiences) == 0 {
		bad("bound_audiences is required")
	}
	if slices.Contains(c.BoundAudiences, "") {
		bad("bound_audiences contains an empty value")
	}
	r := &role{RoleConfig: c}
	switch c.BoundClaimsType {
	case "", "string":
	case "glob":
		r.glob = true
	default:
		bad("bound_claims_type must be \"string\" or \"glob\", not %q", c.BoundClaimsType)
	}
	for claim := range c.BoundClaims {
		r.boundNames = append(r.boundNames, claim)
	}
	slices.Sort(r.boundNames)
	for claim, vals := range c.BoundClaims {
		if err := checkClaimName(claim); err != nil {
			bad("bound_claims %q: %v", claim, err)
		}
		if len(vals) == 0 {
			bad("bound_claims %q: at least one value is required", claim)
		}
	}
	seen := map[string]string{}
	for claim, key := range c.ClaimMappings {
		if err := checkClaimName(claim); err != nil {
			bad("claim_mappings %q: %v", claim, err)
		}
		if key == "" {
			bad("claim_mappings %q: empty metadata key", claim)
		} else if other, dup := seen[key]; dup {
			bad("claim_mappings %q and %q both map to metadata key %q", other, claim, key)
		}
		seen[key] = claim
	}
	if c.UserClaim == "" {
		r.UserClaim = "sub"
	} else if err := checkClaimName(c.UserClaim); err != nil {
		bad("user_claim: %v", err)
	}
	if c.MaxAge < 0 {
		bad("max_age must not be negative")
	}
	return r, errs
}

// checkClaimName accepts a top-level claim name or a JSON pointer (RFC 6901).
func checkClaimName(s string) error {
	if s == "" {
		return errors.New("empty claim name")
	}
	if strings.HasPrefix(s, "/") {
		if _, err := parsePointer(s); err != nil {
			return err
		}
	}
	return nil
}

func parsePublicKeyPEM(p string) (crypto.PublicKey, error) {
	block, _ := pem.Decode([]byte(strings.TrimSpace(p)))
	if block == nil {
		return nil, errors.New("not PEM")
	}
	var key any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		cert, err = x509.ParseCertificate(block.Bytes)
		if err == nil {
			key = cert.PublicKey
		}
	default:
		return nil, fmt.Errorf("unsupported PEM block %q (want PUBLIC KEY)", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, errors.New("RSA key shorter than 2048 bits")
		}
		return k, nil
	case *ecdsa.PublicKey, ed25519.PublicKey:
		return k, nil
	default:
		return nil, fmt.Errorf("unsupported key type %T", key)
	}
}
