package azuresim

import (
	"fmt"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// assertionAlgs are the signature algorithms accepted on external tokens.
var assertionAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.ES256, jose.ES384}

const ficHelp = "Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation"

// verifyAssertion checks a client assertion against the application's
// federated identity credential (workload identity federation): the
// external token must come from FederatedIssuer for FederatedSubject, name
// one of FederatedAudiences, be signed by a key of FederatedKeys (chosen by
// kid) and be within its validity (exp required, nbf honoured, both with
// ClockSkew leeway). Entra matches the credential by issuer, subject and
// audience before it validates the token, and so does the emulator.
// Entra fetches the issuer's keys through OIDC discovery; the emulator
// takes them from its configuration instead.
func (e *Emulator) verifyAssertion(assertion string) *entraError {
	tok, err := jwt.ParseSigned(assertion, assertionAlgs)
	if err != nil {
		return &entraError{err: "invalid_request", code: 50027, msg: "JWT token is invalid or malformed."}
	}
	var c jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil {
		return &entraError{err: "invalid_request", code: 50027, msg: "JWT token is invalid or malformed."}
	}
	if e.cfg.FederatedKeys == nil || c.Issuer != e.cfg.FederatedIssuer {
		return &entraError{err: "invalid_client", code: 700211, msg: fmt.Sprintf("No matching federated identity record found for presented assertion issuer '%s'. %s", clip(c.Issuer), ficHelp)}
	}
	if c.Subject != e.cfg.FederatedSubject {
		return &entraError{err: "invalid_client", code: 700213, msg: fmt.Sprintf("No matching federated identity record found for presented assertion subject '%s'. %s", clip(c.Subject), ficHelp)}
	}
	if !slices.ContainsFunc(c.Audience, func(a string) bool { return slices.Contains(e.cfg.FederatedAudiences, a) }) {
		return &entraError{err: "invalid_client", code: 700212, msg: fmt.Sprintf("No matching federated identity record found for presented assertion audience '%s'. %s", clip(fmt.Sprint([]string(c.Audience))), ficHelp)}
	}
	var verified jwt.Claims
	if err := tok.Claims(e.cfg.FederatedKeys, &verified); err != nil {
		// 700027 is Entra's code for a client assertion whose signature
		// fails; that it is also used for federated tokens is UNCERTAIN.
		return &entraError{err: "invalid_client", code: 700027, msg: "Client assertion failed signature validation."}
	}
	now := e.now()
	skew := e.cfg.ClockSkew
	valid := verified.Expiry != nil && !now.After(verified.Expiry.Time().Add(skew)) &&
		(verified.NotBefore == nil || !now.Add(skew).Before(verified.NotBefore.Time()))
	if !valid {
		from, until := "(none)", "(none)"
		if verified.NotBefore != nil {
			from = verified.NotBefore.Time().UTC().Format(time.DateTime)
		}
		if verified.Expiry != nil {
			until = verified.Expiry.Time().UTC().Format(time.DateTime)
		}
		return &entraError{err: "invalid_client", code: 700024, msg: fmt.Sprintf("Client assertion is not within its valid time range. Current time: %s, assertion valid from %s, expiry time of assertion %s.",
			now.UTC().Format(time.DateTime), from, until)}
	}
	return nil
}
