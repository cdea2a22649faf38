package azure

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// DefaultFederatedAudience is the aud Entra expects in a federated
// credential's assertion unless the credential names another.
const DefaultFederatedAudience = "api://AzureADTokenExchange"

var (
	guidRE   = regexp.MustCompile(`^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$`)
	tenantRE = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,253}[A-Za-z0-9])?$`)
)

// Root is the Azure root credential the broker keeps sealed: a service
// principal (application) of one Entra tenant, with either a client
// secret or a federated identity credential. For the federated form the
// broker holds the private key of an issuer the application trusts and
// signs a fresh client assertion for every token request, so no
// long-lived secret crosses the network. Its String method never shows
// the secret or the key.
type Root struct {
	TenantID string
	ClientID string

	secret    string
	federated *federated
}

// federated is a federated identity credential: Entra accepts an assertion
// from Issuer about Subject for Audience, verified with the issuer's
// published keys, of which key is the private half (with its kid).
type federated struct {
	issuer, subject, audience string
	key                       jose.JSONWebKey
	alg                       jose.SignatureAlgorithm
}

// Federated reports whether r authenticates with a federated credential
// (a signed client assertion) rather than a client secret.
func (r *Root) Federated() bool { return r.federated != nil }

// String implements fmt.Stringer without the secret or the key.
func (r Root) String() string {
	kind := "client secret"
	if r.federated != nil {
		kind = "federated credential " + r.federated.issuer + " " + r.federated.subject
	}
	return fmt.Sprintf("azure root tenant %s client %s (%s)", r.TenantID, r.ClientID, kind)
}

// GoString keeps %#v from printing the secret.
func (r Root) GoString() string { return r.String() }

// rootJSON is the JSON form of a root credential.
type rootJSON struct {
	TenantID     string         `json:"tenant_id"`
	ClientID     string         `json:"client_id"`
	ClientSecret string         `json:"client_secret,omitempty"`
	Federated    *federatedJSON `json:"federated,omitempty"`
}

type federatedJSON struct {
	Issuer   string          `json:"issuer"`
	Subject  string          `json:"subject"`
	Audience string          `json:"audience,omitempty"`
	Key      json.RawMessage `json:"private_key"`
}

// ParseRoot reads a stored root credential in one of two forms:
//
//   - "TENANT:CLIENT_ID:CLIENT_SECRET" (the secret may contain colons);
//   - a JSON object {"tenant_id","client_id","client_secret"}, or
//     {"tenant_id","client_id","federated":{"issuer","subject","audience",
//     "private_key"}} where private_key is a private JWK (RSA or EC P-256/
//     P-384) with a kid and audience defaults to api://AzureADTokenExchange.
//
// The tenant is a GUID or a domain name; the client id is a GUID. Unknown
// JSON members are refused. Errors never contain the secret or the key.
func ParseRoot(s string) (*Root, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "{") {
		return parseRootJSON([]byte(s))
	}
	parts := strings.SplitN(s, ":", 3)
	if len(parts) != 3 || parts[2] == "" {
		return nil, errors.New("azure root credential must be TENANT:CLIENT_ID:CLIENT_SECRET or a JSON object")
	}
	r := &Root{TenantID: parts[0], ClientID: parts[1], secret: parts[2]}
	return r, r.check()
}

func parseRootJSON(b []byte) (*Root, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var j rootJSON
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("azure root credential: %s", jsonProblem(err))
	}
	if dec.More() {
		return nil, errors.New("azure root credential: data after the JSON object")
	}
	r := &Root{TenantID: j.TenantID, ClientID: j.ClientID, secret: j.ClientSecret}
	switch {
	case j.ClientSecret != "" && j.Federated != nil:
		return nil, errors.New("azure root credential: give client_secret or federated, not both")
	case j.ClientSecret == "" && j.Federated == nil:
		return nil, errors.New("azure root credential: client_secret or federated is required")
	case j.Federated != nil:
		f, err := parseFederated(j.Federated)
		if err != nil {
			return nil, err
		}
		r.federated = f
	}
	return r, r.check()
}

func parseFederated(j *federatedJSON) (*federated, error) {
	if j.Issuer == "" || j.Subject == "" {
		return nil, errors.New("azure root credential: federated.issuer and federated.subject are required")
	}
	var key jose.JSONWebKey
	if err := key.UnmarshalJSON(j.Key); err != nil {
		return nil, errors.New("azure root credential: federated.private_key is not a JWK")
	}
	if key.IsPublic() || !key.Valid() {
		return nil, errors.New("azure root credential: federated.private_key must be a private key")
	}
	if key.KeyID == "" {
		return nil, errors.New("azure root credential: federated.private_key needs a kid (Entra picks the issuer's key by it)")
	}
	alg, err := algFor(key)
	if err != nil {
		return nil, err
	}
	aud := j.Audience
	if aud == "" {
		aud = DefaultFederatedAudience
	}
	return &federated{issuer: j.Issuer, subject: j.Subject, audience: aud, key: key, alg: alg}, nil
}

// algFor picks the signature algorithm for key, honouring its alg member
// when it names one Entra accepts for the key type.
func algFor(key jose.JSONWebKey) (jose.SignatureAlgorithm, error) {
	var allowed []jose.SignatureAlgorithm
	switch k := key.Key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return "", errors.New("azure root credential: federated.private_key: RSA keys must have at least 2048 bits")
		}
		allowed = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256}
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			allowed = []jose.SignatureAlgorithm{jose.ES256}
		case elliptic.P384():
			allowed = []jose.SignatureAlgorithm{jose.ES384}
		}
	}
	if len(allowed) == 0 {
		return "", errors.New("azure root credential: federated.private_key must be RSA or EC P-256/P-384")
	}
	if key.Algorithm == "" {
		return allowed[0], nil
	}
	if !slices.Contains(allowed, jose.SignatureAlgorithm(key.Algorithm)) {
		return "", fmt.Errorf("azure root credential: algorithm %q does not fit the key", key.Algorithm)
	}
	return jose.SignatureAlgorithm(key.Algorithm), nil
}

func (r *Root) check() error {
	var problems []error
	if !tenantRE.MatchString(r.TenantID) {
		problems = append(problems, errors.New("tenant must be a GUID or a domain name"))
	}
	if !guidRE.MatchString(r.ClientID) {
		problems = append(problems, errors.New("client id must be a GUID"))
	}
	if len(problems) > 0 {
		return fmt.Errorf("azure root credential: %w", errors.Join(problems...))
	}
	return nil
}

// jsonProblem describes a decoding error without quoting input values.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at offset %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("member %q must be %s", typ.Field, typ.Type)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown member " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "malformed JSON"
}
