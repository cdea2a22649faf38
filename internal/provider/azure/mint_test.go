package azure

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/provider"
	"github.com/qbroker/qbroker/internal/sim/azuresim"
)

// listJobs calls the workspace directly with a minted credential.
func listJobs(t *testing.T, s *sim, c provider.Credential) (int, string) {
	t.Helper()
	code, body := call(t, http.MethodGet, s.url+wsPath+"/jobs?"+apiVersion, map[string]string{"Authorization": "Bearer " + c.Secret}, nil)
	return code, string(body)
}

func TestMintClientSecretWorksOnTheWorkspace(t *testing.T) {
	s := startSim(t, nil)
	for _, root := range []string{
		testTenant + ":" + testClient + ":" + testSecret,
		fmt.Sprintf(`{"tenant_id":%q,"client_id":%q,"client_secret":%q}`, testTenant, testClient, testSecret),
	} {
		before := s.now()
		c, scope, rotated, err := s.minter().Mint(context.Background(), root, "any-role")
		if err != nil {
			t.Fatal(err)
		}
		if rotated != "" || scope != (provider.Scope{}) || c.AccessKeyID != "" || c.SessionToken != "" {
			t.Fatalf("mint gave rotated %q scope %+v", rotated, scope)
		}
		if d := c.Expires.Sub(before); d < azuresim.DefaultTokenTTL-time.Second || d > azuresim.DefaultTokenTTL+time.Second {
			t.Fatalf("expires in %v; Entra said %v", d, azuresim.DefaultTokenTTL)
		}
		if code, body := listJobs(t, s, c); code != http.StatusOK {
			t.Fatalf("workspace with the minted token: %d %s", code, body)
		}
	}
}

func TestMintFederatedCredential(t *testing.T) {
	s := startSim(t, nil)
	c, _, _, err := s.minter().Mint(context.Background(), fedRoot(t, s.fed, testKID, testSubject), "lab")
	if err != nil {
		t.Fatal(err)
	}
	if code, body := listJobs(t, s, c); code != http.StatusOK {
		t.Fatalf("workspace with the federated token: %d %s", code, body)
	}

	// A key the issuer does not publish, and a subject the credential does
	// not name, are refused by Entra with its codes.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, tc := range []struct {
		what, root string
		aadsts     int
	}{
		{"foreign key", fedRoot(t, other, testKID, testSubject), 700027},
		{"other subject", fedRoot(t, s.fed, testKID, "someone-else"), 700213},
	} {
		_, _, _, err := s.minter().Mint(context.Background(), tc.root, "lab")
		var te *TokenError
		if !errors.As(err, &te) || te.Code != "invalid_client" || len(te.AADSTS) != 1 || te.AADSTS[0] != tc.aadsts {
			t.Fatalf("%s: %v, want invalid_client AADSTS%d", tc.what, err, tc.aadsts)
		}
	}
}

func TestMintWrongSecretIsATypedErrorWithoutTheSecret(t *testing.T) {
	s := startSim(t, nil)
	wrong := "not-the-secret-Zq9"
	_, _, _, err := s.minter().Mint(context.Background(), testTenant+":"+testClient+":"+wrong, "lab")
	var te *TokenError
	if !errors.As(err, &te) || te.Status != http.StatusUnauthorized || te.Code != "invalid_client" || te.AADSTS[0] != 7000215 {
		t.Fatalf("wrong secret: %v", err)
	}
	if strings.Contains(err.Error(), wrong) {
		t.Fatal("the error quotes the secret")
	}
	// Another tenant: 400 AADSTS90002.
	_, _, _, err = s.minter().Mint(context.Background(), "11111111-1111-1111-1111-111111111111:"+testClient+":"+testSecret, "lab")
	if !errors.As(err, &te) || te.AADSTS[0] != 90002 {
		t.Fatalf("other tenant: %v", err)
	}
}

// The minted token stops working when the emulator's clock passes its
// expiry (plus Entra's clock skew), and the broker's Expires says so first.
func TestMintedTokenExpires(t *testing.T) {
	s := startSim(t, func(c *azuresim.Config) { c.TokenTTL = 10 * time.Minute })
	c := s.token(t)
	if code, body := listJobs(t, s, c); code != http.StatusOK {
		t.Fatalf("fresh token: %d %s", code, body)
	}
	s.advance(c.Expires.Sub(s.now()) + azuresim.DefaultClockSkew + time.Second)
	if !s.now().After(c.Expires) {
		t.Fatal("the clock did not pass Expires")
	}
	code, body := listJobs(t, s, c)
	if code != http.StatusUnauthorized || !strings.Contains(body, "ExpiredAuthenticationToken") {
		t.Fatalf("expired token: %d %s", code, body)
	}
	// A new mint works again.
	if code, body := listJobs(t, s, s.token(t)); code != http.StatusOK {
		t.Fatalf("new token: %d %s", code, body)
	}
}

func TestParseRoot(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good := []string{
		testTenant + ":" + testClient + ":sec:ret:with:colons",
		"contoso.onmicrosoft.com:" + testClient + ":x",
		fedRoot(t, key, "k1", "s"),
	}
	for _, s := range good {
		r, err := ParseRoot(s)
		if err != nil {
			t.Fatalf("%.40s…: %v", s, err)
		}
		if strings.Contains(r.String(), "colons") || strings.Contains(fmt.Sprintf("%v %+v %#v %v %+v", r, r, r, *r, *r), "sec:ret") {
			t.Fatal("a root credential prints its secret")
		}
	}
	if r, _ := ParseRoot(good[0]); r.Federated() || r.secret != "sec:ret:with:colons" {
		t.Fatalf("compact form: %+v", r)
	}
	if r, _ := ParseRoot(good[2]); !r.Federated() || r.federated.audience != DefaultFederatedAudience || r.federated.alg != "ES256" {
		t.Fatal("federated form not read")
	}
	pub := strings.Replace(fedRoot(t, key, "k1", "s"), `"d":`, `"x-d":`, 1)
	for what, s := range map[string]string{
		"two parts":      testTenant + ":" + testClient,
		"empty secret":   testTenant + ":" + testClient + ":",
		"client not id":  testTenant + ":app:secret",
		"tenant path":    "a/b:" + testClient + ":s",
		"unknown member": fmt.Sprintf(`{"tenant_id":%q,"client_id":%q,"client_secret":"s","authority":"https://evil"}`, testTenant, testClient),
		"both":           strings.Replace(fedRoot(t, key, "k1", "s"), `"federated"`, `"client_secret":"s","federated"`, 1),
		"neither":        fmt.Sprintf(`{"tenant_id":%q,"client_id":%q}`, testTenant, testClient),
		"no kid":         fedRoot(t, key, "", "s"),
		"public key":     pub,
		"trailing":       fmt.Sprintf(`{"tenant_id":%q,"client_id":%q,"client_secret":"s"} {}`, testTenant, testClient),
	} {
		if _, err := ParseRoot(s); err == nil {
			t.Errorf("%s: accepted", what)
		} else if strings.Contains(err.Error(), `"s"`) {
			t.Errorf("%s: error quotes input: %v", what, err)
		}
	}
}
