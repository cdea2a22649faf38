package azuresim

import (
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

func TestNewRejectsBadConfig(t *testing.T) {
	base, fed := testConfig(t)
	cases := []struct {
		name string
		mut  func(*Config)
		want string
	}{
		{"tenant", func(c *Config) { c.TenantID = "contoso" }, "tenant id"},
		{"client", func(c *Config) { c.ClientID = "" }, "client id"},
		{"subscription upper case", func(c *Config) { c.SubscriptionID = strings.ToUpper("abcdef00-0000-0000-0000-000000000001") }, "subscription id"},
		{"resource group", func(c *Config) { c.ResourceGroup = "9rg" }, "resource group"},
		{"workspace", func(c *Config) { c.Workspace = "w" }, "workspace"},
		{"storage account", func(c *Config) { c.StorageAccount = "Bad_Name" }, "storage account"},
		{"half federated", func(c *Config) { c.FederatedKeys = nil }, "set together"},
		{"private federated key", func(c *Config) {
			c.FederatedKeys = &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: fed, KeyID: "k"}}}
		}, "public key"},
		{"federated key without kid", func(c *Config) {
			c.FederatedKeys = &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &fed.PublicKey}}}
		}, "kid"},
		{"no api versions", func(c *Config) { c.APIVersions = []string{} }, "api-version"},
		{"duplicate target", func(c *Config) { c.Targets = append(DefaultTargets(), DefaultTargets()[0]) }, "duplicate"},
		{"unrunnable target", func(c *Config) {
			c.Targets = []Target{{ID: "rigetti.sim.qvm", ProviderID: "rigetti", Qubits: 8, InputFormat: "qir.v1", OutputFormat: FormatIonQResults}}
		}, "input format"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.mut(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want mention of %q", err, tc.want)
			}
		})
	}
	// Every problem is reported at once.
	cfg := base
	cfg.TenantID, cfg.Workspace = "x", "y"
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "tenant id") || !strings.Contains(err.Error(), "workspace") {
		t.Errorf("err = %v", err)
	}
}

func TestSecretsNeverLogged(t *testing.T) {
	var buf syncBuffer
	h := newHarness(t, func(c *Config) { c.Logger = newTextLogger(&buf) })
	tok := h.token(QuantumScope)
	f := secretForm(QuantumScope)
	f.Set("client_secret", "wrong-"+testSecret)
	h.tokenRequest(testTenant, f)
	h.wait(tok, h.submit(tok, "ionq.simulator", "ionq", FormatIonQCircuit, bellIonQ, `{"shots":5}`)["id"].(string))
	out := buf.String()
	if out == "" {
		t.Fatal("nothing logged; the test proves nothing")
	}
	if strings.Contains(out, testSecret) || strings.Contains(out, tok) || strings.Contains(out, "sig=") {
		t.Errorf("log leaks a secret:\n%s", out)
	}
}
