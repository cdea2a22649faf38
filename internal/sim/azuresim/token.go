package azuresim

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// accessClaims are the claims of the access tokens the emulator issues,
// shaped as Entra's v1.0 application tokens (first-party resources such as
// Azure Quantum and ARM get v1.0 tokens; that Quantum does is UNCERTAIN).
type accessClaims struct {
	Aud      string `json:"aud"`
	Iss      string `json:"iss"`
	Iat      int64  `json:"iat"`
	Nbf      int64  `json:"nbf"`
	Exp      int64  `json:"exp"`
	AppID    string `json:"appid"`
	AppIDACR string `json:"appidacr"`
	IdP      string `json:"idp"`
	OID      string `json:"oid"`
	Sub      string `json:"sub"`
	TID      string `json:"tid"`
	UTI      string `json:"uti"`
	Ver      string `json:"ver"`
}

func issuerFor(tenant string) string {
	return "https://sts.windows.net/" + strings.ToLower(tenant) + "/"
}

// issueToken signs an access token for resource.
func (e *Emulator) issueToken(resource, acr string) (string, time.Time, error) {
	now := e.now()
	exp := now.Add(e.cfg.TokenTTL)
	c := accessClaims{
		Aud: resource, Iss: e.Issuer(), Iat: now.Unix(), Nbf: now.Unix(), Exp: exp.Unix(),
		AppID: strings.ToLower(e.cfg.ClientID), AppIDACR: acr, IdP: e.Issuer(),
		OID: e.cfg.ObjectID, Sub: e.cfg.ObjectID, TID: strings.ToLower(e.cfg.TenantID),
		UTI: randomB64(16), Ver: "1.0",
	}
	return e.sign(c, exp)
}

func (e *Emulator) sign(c accessClaims, exp time.Time) (string, time.Time, error) {
	s, err := jwt.Signed(e.signer).Claims(c).Serialize()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("azuresim: sign token: %w", err)
	}
	return s, exp, nil
}

// principal is who a workspace request acts for.
type principal struct {
	appID string
	oid   string
	kind  string // createdByType: Application or Key
}

// authenticate checks the credential of a workspace request: a bearer
// token issued by this emulator for Azure Quantum in this tenant to the
// workspace's service principal, or the workspace API key. Refusals use
// ARM's codes (UNCERTAIN for the Quantum data plane).
func (e *Emulator) authenticate(r *http.Request) (*principal, *apiError) {
	authz := r.Header.Values("Authorization")
	if len(authz) == 0 {
		keys := r.Header.Values(APIKeyHeader)
		if len(keys) == 0 {
			return nil, &apiError{status: http.StatusUnauthorized, code: "AuthenticationFailed",
				msg: "Authentication failed. The 'Authorization' header is missing.", bearer: "The 'Authorization' header is missing."}
		}
		return e.authenticateKey(keys)
	}
	invalid := func(why string) *apiError {
		return &apiError{status: http.StatusUnauthorized, code: "InvalidAuthenticationToken", msg: "The access token is invalid. " + why, bearer: "The access token is invalid."}
	}
	if len(authz) > 1 {
		return nil, invalid("More than one Authorization header was sent.")
	}
	scheme, raw, ok := strings.Cut(authz[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "" {
		return nil, &apiError{status: http.StatusUnauthorized, code: "AuthenticationFailed",
			msg: "Authentication failed. The 'Authorization' header is provided in an invalid format.", bearer: "The 'Authorization' header is provided in an invalid format."}
	}
	tok, err := jwt.ParseSigned(strings.TrimSpace(raw), []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, invalid("It is not a signed JWT.")
	}
	if len(tok.Headers) != 1 || tok.Headers[0].KeyID != e.kid {
		return nil, invalid("It was not signed by a known key.")
	}
	var c accessClaims
	if err := tok.Claims(&e.signKey.PublicKey, &c); err != nil {
		return nil, invalid("Its signature does not verify.")
	}
	now := e.now()
	skew := e.cfg.ClockSkew
	if c.Exp == 0 || now.After(time.Unix(c.Exp, 0).Add(skew)) {
		msg := fmt.Sprintf("The access token expiry UTC time '%s' is earlier than current UTC time '%s'.", dotnetTime(time.Unix(c.Exp, 0)), dotnetTime(now))
		return nil, &apiError{status: http.StatusUnauthorized, code: "ExpiredAuthenticationToken", msg: msg, bearer: "The access token has expired."}
	}
	if c.Nbf != 0 && now.Add(skew).Before(time.Unix(c.Nbf, 0)) {
		return nil, invalid("It is not valid yet (nbf).")
	}
	if strings.TrimSuffix(c.Aud, "/") != QuantumResource {
		msg := fmt.Sprintf("The access token has been obtained for wrong audience or resource '%s'. It should exactly match with one of the allowed audiences '%s','%s/'.", clip(c.Aud), QuantumResource, QuantumResource)
		return nil, &apiError{status: http.StatusUnauthorized, code: "InvalidAuthenticationTokenAudience", msg: msg, bearer: "The access token has an invalid audience."}
	}
	if !strings.EqualFold(c.TID, e.cfg.TenantID) || c.Iss != e.Issuer() {
		msg := fmt.Sprintf("The access token is from the wrong issuer '%s'. It must match the tenant '%s' associated with this subscription. Please use the authority (URL) 'https://login.windows.net/%s' to get the token.",
			clip(c.Iss), e.Issuer(), strings.ToLower(e.cfg.TenantID))
		return nil, &apiError{status: http.StatusUnauthorized, code: "InvalidAuthenticationTokenTenant", msg: msg, bearer: "The access token is from the wrong issuer."}
	}
	if !strings.EqualFold(c.AppID, e.cfg.ClientID) || !strings.EqualFold(c.OID, e.cfg.ObjectID) {
		msg := fmt.Sprintf("The client '%s' with object id '%s' does not have authorization to perform this action over scope '%s' or the scope is invalid.",
			clip(c.AppID), clip(c.OID), e.WorkspacePath())
		return nil, &apiError{status: http.StatusForbidden, code: "AuthorizationFailed", msg: msg}
	}
	return &principal{appID: c.AppID, oid: c.OID, kind: "Application"}, nil
}

// authenticateKey checks x-ms-quantum-api-key. The refusal code is
// UNCERTAIN.
func (e *Emulator) authenticateKey(keys []string) (*principal, *apiError) {
	if len(keys) == 1 && e.cfg.APIKey != "" && equalHash(keys[0], e.apiKeyHash) {
		return &principal{appID: "", oid: "", kind: "Key"}, nil
	}
	return nil, &apiError{status: http.StatusUnauthorized, code: "AuthenticationFailed",
		msg: "Authentication failed. The API key is invalid.", bearer: "The API key is invalid."}
}

// dotnetTime formats t as .NET's general date pattern, as ARM's messages do.
func dotnetTime(t time.Time) string { return t.UTC().Format("1/2/2006 3:04:05 PM") }
