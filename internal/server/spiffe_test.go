package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	mathbig "math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/config"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t *testing.T, td string) testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse("spiffe://" + td)
	tmpl := &x509.Certificate{SerialNumber: mathbig.NewInt(1), Subject: pkix.Name{CommonName: td + " CA"}, NotBefore: time.Now().Add(-time.Minute),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, URIs: []*url.URL{u}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return testCA{cert: cert, key: key}
}

// svid issues an X.509-SVID for id, valid for ttl.
func (ca testCA) svid(t *testing.T, id string, ttl time.Duration) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse(id)
	tmpl := &x509.Certificate{SerialNumber: mathbig.NewInt(time.Now().UnixNano()), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(ttl),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, URIs: []*url.URL{u}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// serverCert is the broker's own TLS certificate for 127.0.0.1.
func serverCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: mathbig.NewInt(7), Subject: pkix.Name{CommonName: "broker"}, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	c, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return certFile, keyFile, pool
}

// SPIFFE logins against a real TLS listener: an X.509-SVID from the trusted
// domain logs in (token no longer than the SVID), a JWT-SVID too; another
// trust domain is refused at the handshake; token clients are unaffected.
func TestSPIFFELogins(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "broker.test")
	other := newCA(t, "other.test")
	jwtKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	bundle := spiffebundle.New(spiffeid.RequireTrustDomainFromString("broker.test"))
	bundle.AddX509Authority(ca.cert)
	if err := bundle.AddJWTAuthority("jwt-k1", &jwtKey.PublicKey); err != nil {
		t.Fatal(err)
	}
	raw, err := bundle.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	bundleFile := filepath.Join(dir, "bundle.json")
	os.WriteFile(bundleFile, raw, 0o600)
	certFile, keyFile, pool := serverCert(t, dir)

	d, err := StartDev(context.Background(), DevOptions{
		Addr: "127.0.0.1:0", GatewayAddr: "127.0.0.1:0", SimAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		TLS: config.TLS{CertFile: certFile, KeyFile: keyFile},
		Auth: config.Auth{SPIFFE: config.SPIFFEAuth{TrustDomains: []string{"broker.test"}, BundleFile: bundleFile,
			Roles: []config.SPIFFERole{{Name: "workloads", IDPatterns: []string{"spiffe://broker.test/workload/*"}, Audiences: []string{"qbroker"}, BrokerRole: DemoRole}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	if !strings.HasPrefix(d.BrokerURL, "https://") {
		t.Fatalf("broker URL %s is not https", d.BrokerURL)
	}
	clientWith := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs}}}
	}
	post := func(c *http.Client, path, body string) (int, []byte, error) {
		resp, err := c.Post(d.BrokerURL+path, "application/json", bytes.NewBufferString(body))
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.Bytes(), nil
	}

	// X.509-SVID over mTLS.
	st, body, err := post(clientWith(ca.svid(t, "spiffe://broker.test/workload/agent-1", 10*time.Minute)), "/v1/auth/cert/login", "")
	var resp struct {
		Auth api.Auth `json:"auth"`
	}
	if err != nil || st != http.StatusOK || json.Unmarshal(body, &resp) != nil {
		t.Fatalf("cert login: %d %s %v", st, body, err)
	}
	if resp.Auth.EntityID != "cert:broker.test:workload/agent-1" || resp.Auth.LeaseDuration > 600 {
		t.Fatalf("cert login auth %+v (the token must not outlive the 10-minute SVID)", resp.Auth)
	}
	// An ID outside the role's pattern.
	st, body, _ = post(clientWith(ca.svid(t, "spiffe://broker.test/admin/x", time.Hour)), "/v1/auth/cert/login", "")
	if st != http.StatusBadRequest || !strings.Contains(string(body), "not bound") {
		t.Fatalf("unbound SPIFFE ID: %d %s", st, body)
	}
	// Another trust domain: refused at the handshake.
	if _, _, err := post(clientWith(other.svid(t, "spiffe://other.test/workload/agent-1", time.Hour)), "/v1/auth/cert/login", ""); err == nil {
		t.Fatal("an SVID from other.test completed the TLS handshake")
	}
	// No client certificate: token clients still work, cert login says why.
	plain := clientWith()
	st, body, _ = post(plain, "/v1/auth/cert/login", "")
	if st != http.StatusBadRequest || !strings.Contains(string(body), "no client certificate") {
		t.Fatalf("cert login without a certificate: %d %s", st, body)
	}
	st, _, _ = post(plain, "/v1/auth/approle/login", `{"role_id":"`+d.RoleID+`","secret_id":"`+d.SecretID+`"}`)
	if st != http.StatusOK {
		t.Fatalf("AppRole over TLS without a client certificate: %d", st)
	}

	// JWT-SVID.
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jwtKey}, (&jose.SignerOptions{}).WithHeader("kid", "jwt-k1").WithType("JWT"))
	mint := func(sub string, aud string) string {
		tok, _ := jwt.Signed(signer).Claims(map[string]any{"sub": sub, "aud": []string{aud}, "exp": time.Now().Add(5 * time.Minute).Unix()}).Serialize()
		return tok
	}
	st, body, _ = post(plain, "/v1/auth/spiffe-jwt/login", `{"role":"workloads","jwt":"`+mint("spiffe://broker.test/workload/agent-2", "qbroker")+`"}`)
	if st != http.StatusOK || !strings.Contains(string(body), "spiffe-jwt:broker.test:workload/agent-2") {
		t.Fatalf("JWT-SVID login: %d %s", st, body)
	}
	st, body, _ = post(plain, "/v1/auth/spiffe-jwt/login", `{"role":"workloads","jwt":"`+mint("spiffe://broker.test/workload/agent-2", "someone-else")+`"}`)
	if st != http.StatusBadRequest || !strings.Contains(string(body), "audience") {
		t.Fatalf("JWT-SVID with the wrong audience: %d %s", st, body)
	}
}
