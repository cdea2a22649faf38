package jwtauth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// maxTokenBytes bounds the raw token; real JWTs are a few KiB.
const maxTokenBytes = 64 << 10

// Authenticator verifies JWTs from the configured issuers against the
// configured roles. It is safe for concurrent use.
type Authenticator struct {
	issuers  map[string]*issuerState // by IssuerConfig.Name
	byIss    map[string]string       // "iss" value → IssuerConfig.Name
	roles    map[string]*role
	now      func() time.Time
	log      *slog.Logger
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	closeOne sync.Once
}

type issuerState struct {
	cfg      *issuer
	keys     *keySet
	verifier *oidc.IDTokenVerifier
}

// New validates every issuer and role, reporting all problems at once (joined
// errors). It does not contact any IdP: remote keys are fetched on first use and
// then refreshed every RefreshInterval until Close.
func New(ctx context.Context, issuers []IssuerConfig, roles []RoleConfig, opts Options) (*Authenticator, error) {
	var errs []error
	byName := map[string]*issuer{}
	byIss := map[string]string{}
	for _, c := range issuers {
		is, e := validateIssuer(c)
		errs = append(errs, e...)
		if c.Name != "" {
			if _, dup := byName[c.Name]; dup {
				errs = append(errs, fmt.Errorf("issuer %q: duplicate name", c.Name))
			}
			byName[c.Name] = is
		}
		if c.Issuer != "" {
			if other, dup := byIss[c.Issuer]; dup {
				errs = append(errs, fmt.Errorf("issuers %q and %q: same iss %q", other, c.Name, c.Issuer))
			}
			byIss[c.Issuer] = c.Name
		}
	}
	rs := map[string]*role{}
	for _, c := range roles {
		r, e := validateRole(c, byName)
		errs = append(errs, e...)
		if c.Name != "" {
			if _, dup := rs[c.Name]; dup {
				errs = append(errs, fmt.Errorf("role %q: duplicate name", c.Name))
			}
			rs[c.Name] = r
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("jwtauth: invalid configuration: %w", err)
	}

	a := &Authenticator{byIss: byIss, roles: rs, issuers: map[string]*issuerState{}, now: opts.Now, log: opts.Logger}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	client := opts.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	base, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	for name, is := range byName {
		ks := newKeySet(base, is, client, a.now, a.log)
		algs := make([]string, len(is.algs))
		for i, alg := range is.algs {
			algs[i] = string(alg)
		}
		v := oidc.NewVerifier(is.Issuer, ks, &oidc.Config{
			SkipClientIDCheck:    true, // audiences are per role (bound_audiences), checked below
			SkipExpiryCheck:      true, // go-oidc's fixed 5 min nbf skew is too loose; checked below
			SupportedSigningAlgs: algs,
			Now:                  a.now,
		})
		a.issuers[name] = &issuerState{cfg: is, keys: ks, verifier: v}
		if !ks.static() {
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				ks.run(base)
			}()
		}
	}
	return a, nil
}

// Close stops the scheduled refreshes and cancels in-flight fetches.
func (a *Authenticator) Close() {
	a.closeOne.Do(func() {
		a.cancel()
		a.wg.Wait()
	})
}

// Login verifies raw for the named role. A refusal is a *LoginError with a
// user-safe reason; an unreachable IdP (keys never fetched) is ErrIssuerUnavailable.
func (a *Authenticator) Login(ctx context.Context, roleName, raw string) (Identity, error) {
	r, ok := a.roles[roleName]
	if !ok {
		return Identity{}, refuse(ReasonUnknownRole)
	}
	st := a.issuers[r.Issuer]
	is := st.cfg

	// 1. The header, before anything touches a key: no "none", no MAC, only the
	//    issuer's allow-list.
	raw = strings.TrimSpace(raw)
	if len(raw) > maxTokenBytes || strings.Count(raw, ".") != 2 {
		return Identity{}, refuse(ReasonMalformed)
	}
	alg, err := headerAlg(raw)
	if err != nil {
		return Identity{}, refuse(ReasonMalformed)
	}
	if !algAllowed(alg, is.algs) {
		return Identity{}, refuse(ReasonAlgorithm)
	}
	jws, err := jose.ParseSignedCompact(raw, is.algs)
	if err != nil || len(jws.Signatures) != 1 {
		return Identity{}, refuse(ReasonMalformed)
	}

	// 2. The (not yet verified) issuer picks the key set: it must be the role's.
	var pre struct {
		Iss string `json:"iss"`
	}
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &pre); err != nil {
		return Identity{}, refuse(ReasonMalformed)
	}
	if pre.Iss != is.Issuer {
		if _, known := a.byIss[pre.Iss]; known {
			return Identity{}, refuse(ReasonIssuerMismatch)
		}
		return Identity{}, refuse(ReasonIssuer)
	}

	// 3. Signature (and go-oidc's iss and alg checks) through the key set.
	vs := &verifyState{raw: raw, jws: jws}
	if _, err := st.verifier.Verify(context.WithValue(ctx, verifyStateKey{}, vs), raw); err != nil {
		if vs.err != nil {
			return Identity{}, vs.err
		}
		return Identity{}, refuse(ReasonMalformed)
	}
	// The payload go-oidc verified is this JWS's; decode it with json.Number so
	// large integers stay exact in bound claims and metadata.
	claims, err := decodeClaims(jws.UnsafePayloadWithoutVerification())
	if err != nil {
		return Identity{}, refuse(ReasonMalformed)
	}
	return a.check(r, is, claims)
}

func (a *Authenticator) check(r *role, is *issuer, claims map[string]any) (Identity, error) {
	now := a.now()
	id := Identity{Role: r.Name, BrokerRole: r.BrokerRole, Issuer: is.Issuer}

	// 4. Time: exp required; nbf and iat within the leeway; max age.
	exp, present, ok := numericDate(claims, "exp")
	switch {
	case !ok:
		return Identity{}, refuse(ReasonMalformed)
	case !present:
		return Identity{}, refuse(ReasonMissingExpiry)
	}
	id.ExpiresAt = unixTime(exp)
	if now.After(id.ExpiresAt.Add(is.Leeway)) {
		return Identity{}, refuse(ReasonExpired)
	}
	if nbf, present, ok := numericDate(claims, "nbf"); !ok {
		return Identity{}, refuse(ReasonMalformed)
	} else if present && now.Add(is.Leeway).Before(unixTime(nbf)) {
		return Identity{}, refuse(ReasonNotYetValid)
	}
	iat, present, ok := numericDate(claims, "iat")
	switch {
	case !ok:
		return Identity{}, refuse(ReasonMalformed)
	case present:
		id.IssuedAt = unixTime(iat)
		if now.Add(is.Leeway).Before(id.IssuedAt) {
			return Identity{}, refuse(ReasonIssuedInFuture)
		}
		if r.MaxAge > 0 && now.Sub(id.IssuedAt) > r.MaxAge+is.Leeway {
			return Identity{}, refuse(ReasonTooOld)
		}
	case r.MaxAge > 0:
		return Identity{}, refuse(ReasonMissingIssuedAt)
	}

	// 5. Audience, subject, bound claims.
	if !slices.ContainsFunc(audiences(claims["aud"]), func(s string) bool {
		return slices.Contains(r.BoundAudiences, s)
	}) {
		return Identity{}, refuse(ReasonAudience)
	}
	sub, _ := claims["sub"].(string)
	id.Subject = sub
	if r.BoundSubject != "" && sub != r.BoundSubject {
		return Identity{}, refuse(ReasonSubject)
	}
	for _, name := range r.boundNames {
		v, ok := lookupClaim(claims, name)
		if !ok || !claimMatches(v, r.BoundClaims[name], r.glob) {
			return Identity{}, refuse(ReasonBoundClaim + ": " + name)
		}
	}

	// 6. Who, and the metadata.
	uv, ok := lookupClaim(claims, r.UserClaim)
	if !ok {
		return Identity{}, refuse(ReasonUserClaim)
	}
	if id.Name, ok = scalarString(uv); !ok || id.Name == "" {
		return Identity{}, refuse(ReasonUserClaim)
	}
	if len(r.ClaimMappings) > 0 {
		id.Metadata = make(map[string]string, len(r.ClaimMappings))
		for claim, key := range r.ClaimMappings {
			v, ok := lookupClaim(claims, claim)
			if !ok {
				continue // absent claims are skipped, as in Vault
			}
			s, ok := scalarString(v)
			if !ok {
				return Identity{}, refuse(ReasonClaimMapping)
			}
			id.Metadata[key] = s
		}
	}
	return id, nil
}

func decodeClaims(payload []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after claims")
	}
	return claims, nil
}

// headerAlg reads "alg" from the protected header without parsing anything else.
func headerAlg(raw string) (string, error) {
	h, err := base64.RawURLEncoding.DecodeString(raw[:strings.IndexByte(raw, '.')])
	if err != nil {
		return "", err
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(h, &hdr); err != nil {
		return "", err
	}
	return hdr.Alg, nil
}

func algAllowed(alg string, allowed []jose.SignatureAlgorithm) bool {
	if alg == "" || strings.EqualFold(alg, "none") || strings.HasPrefix(strings.ToUpper(alg), "HS") {
		return false
	}
	return slices.Contains(allowed, jose.SignatureAlgorithm(alg))
}

func unixTime(secs float64) time.Time {
	secs = math.Max(-1e11, math.Min(secs, 1e11)) // beyond ±3000 years; keeps int64 safe
	whole, frac := math.Modf(secs)
	return time.Unix(int64(whole), int64(frac*1e9))
}
