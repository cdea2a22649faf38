package token

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// KeySource resolves a kid to an Ed25519 public key. It returns an error
// wrapping [ErrUnknownKey] when the kid is not (or no longer) trusted; other
// errors mean the lookup itself failed.
type KeySource interface {
	Key(ctx context.Context, kid string) (ed25519.PublicKey, error)
}

// Defaults and limits for [VerifierConfig].
const (
	DefaultLeeway = 5 * time.Second
	MaxLeeway     = 30 * time.Second
	DefaultMaxTTL = 5 * time.Minute
	// maxTokenLen bounds the work done on attacker input before any check.
	maxTokenLen = 8 << 10
)

// VerifierConfig configures a [Verifier].
type VerifierConfig struct {
	Issuer   string    // required: exact iss
	Audience string    // required: exact aud
	Keys     KeySource // required
	// Leeway tolerates clock skew on exp, nbf and iat. Default 5 s, at most 30 s.
	Leeway time.Duration
	// MaxTTL refuses tokens whose exp-iat exceeds it. Default 5 min.
	MaxTTL time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Verifier checks job tokens. It is safe for concurrent use.
type Verifier struct {
	issuer, audience string
	keys             KeySource
	leeway, maxTTL   time.Duration
	now              func() time.Time
}

// NewVerifier validates cfg and applies defaults.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	var errs []error
	if cfg.Issuer == "" {
		errs = append(errs, errors.New("issuer is required"))
	}
	if cfg.Audience == "" {
		errs = append(errs, errors.New("audience is required"))
	}
	if cfg.Keys == nil {
		errs = append(errs, errors.New("key source is required"))
	}
	switch {
	case cfg.Leeway == 0:
		cfg.Leeway = DefaultLeeway
	case cfg.Leeway < 0 || cfg.Leeway > MaxLeeway:
		errs = append(errs, fmt.Errorf("leeway %s outside (0, %s]", cfg.Leeway, MaxLeeway))
	}
	switch {
	case cfg.MaxTTL == 0:
		cfg.MaxTTL = DefaultMaxTTL
	case cfg.MaxTTL < 0:
		errs = append(errs, fmt.Errorf("max TTL %s is negative", cfg.MaxTTL))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("token: verifier config: %w", errors.Join(errs...))
	}
	return &Verifier{
		issuer: cfg.Issuer, audience: cfg.Audience, keys: cfg.Keys,
		leeway: cfg.Leeway, maxTTL: cfg.MaxTTL, now: cfg.Now,
	}, nil
}

// Verify checks raw and returns its claims. It refuses any algorithm but EdDSA
// before looking up a key, requires a kid and the qbroker-job+jwt type, then
// checks the signature and the claims. Errors wrap the package's typed errors
// and never include the token.
//
// Verify does not enforce single use: the caller redeems the jti.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	if len(raw) > maxTokenLen {
		return nil, fmt.Errorf("%w: too long", ErrMalformed)
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		var algErr *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &algErr) {
			return nil, fmt.Errorf("%w: only EdDSA is accepted", ErrUnsupportedAlg)
		}
		return nil, fmt.Errorf("%w: not a compact JWS", ErrMalformed)
	}
	if len(tok.Headers) != 1 {
		return nil, fmt.Errorf("%w: expected one signature", ErrMalformed)
	}
	hdr := tok.Headers[0]
	if hdr.KeyID == "" {
		return nil, fmt.Errorf("%w: missing kid", ErrMalformed)
	}
	if typ, _ := hdr.ExtraHeaders[jose.HeaderType].(string); typ != JobTokenType {
		return nil, fmt.Errorf("%w: typ is not %s", ErrMalformed, JobTokenType)
	}
	if hdr.JSONWebKey != nil || hdr.ExtraHeaders["jku"] != nil || hdr.ExtraHeaders["x5u"] != nil {
		// Keys come only from the KeySource, never from the token.
		return nil, fmt.Errorf("%w: embedded or remote key headers are not accepted", ErrMalformed)
	}

	pub, err := v.keys.Key(ctx, hdr.KeyID)
	if err != nil {
		if errors.Is(err, ErrUnknownKey) {
			return nil, err
		}
		return nil, fmt.Errorf("token: key lookup: %w", err)
	}

	var w wireClaims
	if err := tok.Claims(pub, &w); err != nil {
		if errors.Is(err, jose.ErrCryptoFailure) {
			return nil, ErrBadSignature
		}
		// Signature verified but the payload is not our claims JSON.
		return nil, fmt.Errorf("%w: claims do not decode", ErrMalformed)
	}
	if err := v.checkClaims(w); err != nil {
		return nil, err
	}
	return w.claims(), nil
}

func (v *Verifier) checkClaims(w wireClaims) error {
	if w.Issuer != v.issuer {
		return fmt.Errorf("%w: iss not accepted", ErrClaims)
	}
	if len(w.Audience) != 1 || w.Audience[0] != v.audience {
		return fmt.Errorf("%w: aud not accepted", ErrClaims)
	}
	if w.Expiry == nil {
		return fmt.Errorf("%w: exp is missing", ErrClaims)
	}
	if w.IssuedAt == nil {
		return fmt.Errorf("%w: iat is missing", ErrClaims)
	}
	now := v.now()
	exp, iat := w.Expiry.Time(), w.IssuedAt.Time()
	if now.After(exp.Add(v.leeway)) {
		return ErrExpired
	}
	if w.NotBefore != nil && now.Add(v.leeway).Before(w.NotBefore.Time()) {
		return fmt.Errorf("%w: nbf in the future", ErrNotYetValid)
	}
	if now.Add(v.leeway).Before(iat) {
		return fmt.Errorf("%w: iat in the future", ErrNotYetValid)
	}
	if exp.Sub(iat) > v.maxTTL {
		return fmt.Errorf("%w: lifetime exceeds %s", ErrClaims, v.maxTTL)
	}
	return w.claims().checkContent()
}
