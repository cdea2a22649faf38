package spiffe

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func pemOf(ca *testCA) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

func TestLoadBundleFileMap(t *testing.T) {
	broker, other := newCA(t, "broker.test", "k1"), newCA(t, "other.test", "k2")
	jwks, err := broker.bundle().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(map[string]any{
		"spiffe://broker.test": json.RawMessage(jwks),
		"other.test":           string(pemOf(other)),
	})
	path := writeFile(t, "bundles.json", doc)

	x5, jw, err := LoadBundleFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := x5.GetX509BundleForTrustDomain(other.td); err != nil || len(b.X509Authorities()) != 1 {
		t.Fatalf("other.test X.509 bundle: %v", err)
	}
	if b, err := jw.GetJWTBundleForTrustDomain(broker.td); err != nil || !b.HasJWTAuthority("k1") {
		t.Fatalf("broker.test JWT bundle: %v", err)
	}

	cfg := testConfig()
	cfg.TrustDomains = []string{"broker.test", "other.test"}
	cfg.Roles = append(cfg.Roles, RoleConfig{Name: "partners", IDPatterns: []string{"spiffe://other.test/*"}, BrokerRole: "partner"})
	cfg.BundleFile = path
	a, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, chain := broker.svid(t, "spiffe://broker.test/workload/agent-1")
	if id, err := a.LoginX509(ctx, "", chain); err != nil || id.BrokerRole != "agent" {
		t.Fatalf("x509 from file: %+v %v", id, err)
	}
	_, oc := other.svid(t, "spiffe://other.test/team/a")
	if id, err := a.LoginX509(ctx, "", oc); err != nil || id.Role != "partners" {
		t.Fatalf("PEM trust domain: %+v %v", id, err)
	}
	tok := broker.jwt(t, "spiffe://broker.test/workload/agent-1", []string{aud}, time.Now().Add(time.Minute))
	if _, err := a.LoginJWT(ctx, "agents", tok); err != nil {
		t.Fatalf("jwt from file: %v", err)
	}
	// The PEM-only trust domain has no JWT authorities.
	otok := other.jwt(t, "spiffe://other.test/team/a", []string{aud}, time.Now().Add(time.Minute))
	cfg.Roles[3].Audiences = []string{aud}
	a, err = New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.LoginJWT(ctx, "partners", otok)
	wantRefused(t, err, CodeInvalidJWT, `no JWT authority "k2"`)

	// A configured trust domain missing from the file is a config error.
	cfg.TrustDomains = append(cfg.TrustDomains, "third.test")
	if _, err := New(cfg, nil, nil); err == nil || !strings.Contains(err.Error(), `no bundle for trust domain "third.test"`) {
		t.Fatalf("missing trust domain: %v", err)
	}
}

func TestLoadBundleFileBare(t *testing.T) {
	broker := newCA(t, "broker.test", "k1")
	jwks, _ := broker.bundle().Marshal()
	ctx := context.Background()
	_, chain := broker.svid(t, "spiffe://broker.test/workload/agent-1")
	for name, data := range map[string][]byte{"bundle.jwks": jwks, "ca.pem": pemOf(broker)} {
		path := writeFile(t, name, data)
		if _, _, err := LoadBundleFile(path); err == nil || !strings.Contains(err.Error(), "exactly one configured trust domain") {
			t.Fatalf("%s without a trust domain: %v", name, err)
		}
		cfg := testConfig()
		cfg.BundleFile = path
		a, err := New(cfg, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := a.LoginX509(ctx, "", chain); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// With two trust domains a bare file is ambiguous.
		cfg.TrustDomains = []string{"broker.test", "other.test"}
		if _, err := New(cfg, nil, nil); err == nil {
			t.Fatalf("%s: ambiguous bare bundle accepted", name)
		}
	}
}

func TestLoadBundleFileErrors(t *testing.T) {
	for name, data := range map[string]string{
		"not json":       "hello",
		"empty map":      "{}",
		"bad td":         `{"Not A Domain!": "x"}`,
		"td with path":   `{"spiffe://broker.test/x": "x"}`,
		"bad pem":        `{"broker.test": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}`,
		"key not cert":   `{"broker.test": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}`,
		"bad jwks":       `{"broker.test": {"keys": [{"kty": "EC", "use": "x509-svid"}]}}`,
		"duplicate td":   `{"broker.test": {"keys": []}, "spiffe://broker.test": {"keys": []}}`,
		"no certificate": `{"broker.test": ""}`,
	} {
		_, _, err := LoadBundleFile(writeFile(t, "b.json", []byte(data)))
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		t.Logf("%s: %v", name, err)
	}
	if _, _, err := LoadBundleFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing file accepted")
	}
	if _, err := parseTrustDomain("spiffe://broker.test"); err != nil {
		t.Error(err)
	}
	if td, _ := parseTrustDomain("broker.test"); td != spiffeid.RequireTrustDomainFromString("broker.test") {
		t.Error("trust domain parse")
	}
}
