package jwtauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// jwtStorage makes the example OP issue JWT (not opaque) access tokens for the
// client-credentials service user.
type jwtStorage struct{ *storage.Storage }

func (s jwtStorage) ClientCredentials(ctx context.Context, id, secret string) (op.Client, error) {
	c, err := s.Storage.ClientCredentials(ctx, id, secret)
	if err != nil {
		return nil, err
	}
	return jwtClient{c}, nil
}

type jwtClient struct{ op.Client }

func (jwtClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }

// startOP runs zitadel/oidc's example OpenID provider on 127.0.0.1 and returns
// its issuer URL.
func startOP(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String() + "/"
	st := jwtStorage{storage.NewStorage(storage.NewUserStore(issuer))}
	srv := &http.Server{Handler: exampleop.SetupServer(issuer, st, nil, false)}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return issuer
}

// clientCredentialsToken asks the OP for a JWT access token as the built-in
// service user sid1.
func clientCredentialsToken(t *testing.T, issuer string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"custom_scope"}}
	req, err := http.NewRequest(http.MethodPost, issuer+"oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("sid1", "verysecret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		Error       string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || strings.Count(out.AccessToken, ".") != 2 {
		t.Fatalf("token endpoint: %s %+v", resp.Status, out.Error)
	}
	return out.AccessToken
}

// TestRealOpenIDProvider: a client-credentials JWT from a real OP (discovery,
// JWKS, signing all its own) logs in for a role bound to its audience, with
// claim mappings; a role bound to another audience is refused.
func TestRealOpenIDProvider(t *testing.T) {
	issuer := startOP(t)
	a, err := New(context.Background(), []IssuerConfig{{Name: "corp", Issuer: issuer, DiscoveryURL: issuer}},
		[]RoleConfig{
			{Name: "svc", Issuer: "corp", BoundAudiences: []string{"sid1"}, BoundSubject: "sid1", BrokerRole: "monitor",
				BoundClaims:   map[string][]string{"/custom_claim/other": {"stuff"}},
				ClaimMappings: map[string]string{"client_id": "client_id", "/custom_claim/client": "client", "scope": "scope"}},
			{Name: "elsewhere", Issuer: "corp", BoundAudiences: []string{"another-api"}},
			{Name: "wrong-claim", Issuer: "corp", BoundAudiences: []string{"sid1"},
				BoundClaims: map[string][]string{"/custom_claim/client": {"sid2"}}},
		}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	raw := clientCredentialsToken(t, issuer)

	id, err := a.Login(context.Background(), "svc", raw)
	if err != nil {
		t.Fatal(err)
	}
	if id.Issuer != issuer || id.Subject != "sid1" || id.Name != "sid1" || id.BrokerRole != "monitor" || id.ExpiresAt.IsZero() {
		t.Fatalf("identity %+v", id)
	}
	if id.Metadata["client"] != "sid1" || id.Metadata["client_id"] != "sid1" {
		t.Fatalf("metadata %v", id.Metadata)
	}
	_, err = a.Login(context.Background(), "elsewhere", raw)
	wantRefused(t, err, ReasonAudience)
	_, err = a.Login(context.Background(), "wrong-claim", raw)
	wantRefused(t, err, ReasonBoundClaim+": /custom_claim/client")

	// The real OP's token with its subject rewritten (signature kept) is refused.
	parts := strings.Split(raw, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	forged := strings.Replace(string(payload), `"sub":"sid1"`, `"sub":"sid2"`, 1)
	if forged == string(payload) {
		t.Fatalf("no sub in %s", payload)
	}
	_, err = a.Login(context.Background(), "svc", parts[0]+"."+base64.RawURLEncoding.EncodeToString([]byte(forged))+"."+parts[2])
	wantRefused(t, err, ReasonSignature)
}
