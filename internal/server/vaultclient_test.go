package server

// Acceptance criterion 4: the official HashiCorp Vault Go client works
// against qbroker unmodified.

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// vaultClient returns an official Vault client pointed at the broker, with
// no token and no retries.
func (e *env) vaultClient() *vault.Client {
	e.t.Helper()
	cfg := vault.DefaultConfig()
	if cfg.Error != nil {
		e.t.Fatal(cfg.Error)
	}
	cfg.Address = e.d.BrokerURL
	cfg.MaxRetries = 0
	cfg.Timeout = 20 * time.Second
	c, err := vault.NewClient(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	c.ClearToken() // ignore any VAULT_TOKEN in the environment
	return c
}

// approleLogin logs in with the Vault client and returns the token.
func approleLogin(t *testing.T, c *vault.Client, roleID, secretID string) *vault.Secret {
	t.Helper()
	s, err := c.Logical().Write("auth/approle/login", map[string]any{"role_id": roleID, "secret_id": secretID})
	if err != nil {
		t.Fatalf("approle login: %v", err)
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		t.Fatalf("approle login: no auth block: %+v", s)
	}
	return s
}

// wantResponseError fails unless err is a Vault *ResponseError with status
// and an errors list whose entries contain substr.
func wantResponseError(t *testing.T, what string, err error, status int, substr string) {
	t.Helper()
	var re *vault.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("%s: error %v (%T), want *api.ResponseError", what, err, err)
	}
	if re.StatusCode != status {
		t.Fatalf("%s: status %d, want %d (%v)", what, re.StatusCode, status, re)
	}
	if len(re.Errors) == 0 || !strings.Contains(strings.Join(re.Errors, "; "), substr) {
		t.Fatalf("%s: errors %q, want one containing %q", what, re.Errors, substr)
	}
}

func TestVaultClientTokenLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.vaultClient()

	login := approleLogin(t, c, e.d.RoleID, e.d.SecretID)
	if !login.Auth.Renewable || login.Auth.LeaseDuration <= 0 || login.Auth.LeaseDuration > 3600 {
		t.Fatalf("auth block: renewable %v, lease %d", login.Auth.Renewable, login.Auth.LeaseDuration)
	}
	if !slices.Contains(login.Auth.Policies, DemoRole) {
		t.Fatalf("auth policies %v lack %q", login.Auth.Policies, DemoRole)
	}
	raw := login.Auth.ClientToken
	if !strings.HasPrefix(raw, "qbt_") {
		t.Fatalf("broker token %q... lacks the qbt_ prefix", raw[:min(4, len(raw))])
	}
	c.SetToken(raw)

	self, err := c.Auth().Token().LookupSelf()
	if err != nil {
		t.Fatalf("lookup-self: %v", err)
	}
	if id, err := self.TokenID(); err != nil || id != raw {
		t.Fatalf("TokenID: err %v, matches %v", err, id == raw)
	}
	if acc, err := self.TokenAccessor(); err != nil || acc != login.Auth.Accessor {
		t.Fatalf("TokenAccessor = %q, %v; want %q", acc, err, login.Auth.Accessor)
	}
	pols, err := self.TokenPolicies()
	if err != nil || !slices.Contains(pols, "default") || !slices.Contains(pols, DemoRole) || slices.Contains(pols, "root") {
		t.Fatalf("TokenPolicies = %v, %v; want default and demo, not root", pols, err)
	}
	ttl, err := self.TokenTTL()
	if err != nil || ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("TokenTTL = %s, %v; want about the role's 1h", ttl, err)
	}
	if ok, err := self.TokenIsRenewable(); err != nil || !ok {
		t.Fatalf("TokenIsRenewable = %v, %v", ok, err)
	}

	// RenewSelf on the demo role (1h TTL): a shorter increment never
	// shortens the token.
	renewed, err := c.Auth().Token().RenewSelf(600)
	if err != nil {
		t.Fatalf("renew-self: %v", err)
	}
	if renewed.Auth == nil || renewed.Auth.LeaseDuration < 3590 || renewed.Auth.LeaseDuration > 3600 {
		t.Fatalf("renew-self(600) on a 1h token: %+v", renewed.Auth)
	}

	if err := c.Auth().Token().RevokeSelf(""); err != nil {
		t.Fatalf("revoke-self: %v", err)
	}
	_, err = c.Auth().Token().LookupSelf()
	wantResponseError(t, "lookup-self after revoke", err, http.StatusForbidden, "permission denied")
	_, err = c.Auth().Token().RenewSelf(600)
	wantResponseError(t, "renew-self after revoke", err, http.StatusForbidden, "permission denied")
}

// RenewSelf moves the TTL, and never past the role's max TTL.
func TestVaultClientRenewBoundedByMaxTTL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.putRole("short", `{"provider":"ionq","devices":["simulator"],"max_shots":10,"token_ttl":"30s","token_max_ttl":"90s"}`)
	c := e.vaultClient()
	login := approleLogin(t, c, e.roleID("short"), e.newSecretID("short", "renewer", "").SecretID)
	if d := login.Auth.LeaseDuration; d < 28 || d > 30 {
		t.Fatalf("initial lease %d, want about 30", d)
	}
	c.SetToken(login.Auth.ClientToken)

	ttlOf := func() time.Duration {
		s, err := c.Auth().Token().LookupSelf()
		if err != nil {
			t.Fatalf("lookup-self: %v", err)
		}
		ttl, err := s.TokenTTL()
		if err != nil {
			t.Fatal(err)
		}
		return ttl
	}
	if ttl := ttlOf(); ttl < 28*time.Second || ttl > 30*time.Second {
		t.Fatalf("TTL %s, want about 30s", ttl)
	}
	s, err := c.Auth().Token().RenewSelf(60)
	if err != nil {
		t.Fatalf("renew-self(60): %v", err)
	}
	if d := s.Auth.LeaseDuration; d < 58 || d > 60 {
		t.Fatalf("lease after renew-self(60) = %d, want about 60", d)
	}
	if ttl := ttlOf(); ttl < 58*time.Second || ttl > 60*time.Second {
		t.Fatalf("TTL after renew-self(60) = %s", ttl)
	}
	s, err = c.Auth().Token().RenewSelf(600)
	if err != nil {
		t.Fatalf("renew-self(600): %v", err)
	}
	if d := s.Auth.LeaseDuration; d < 85 || d > 90 {
		t.Fatalf("lease after renew-self(600) = %d, want capped at the 90s max", d)
	}
	if ttl := ttlOf(); ttl > 90*time.Second {
		t.Fatalf("TTL %s exceeds the role's max 90s", ttl)
	}
}

// Refusals reach the Vault client as *api.ResponseError with Vault's
// status and errors list.
func TestVaultClientErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.vaultClient()

	_, err := c.Logical().Write("auth/approle/login", map[string]any{"role_id": e.d.RoleID, "secret_id": "00000000-0000-4000-8000-000000000000"})
	wantResponseError(t, "bad secret_id", err, http.StatusBadRequest, "invalid role_id or secret_id")
	_, err = c.Logical().Write("auth/approle/login", map[string]any{"role_id": e.d.RoleID, "secret_id": e.d.SecretID, "extra": true})
	wantResponseError(t, "unknown field", err, http.StatusBadRequest, "extra")

	c.SetToken("qbt_not-a-real-token")
	_, err = c.Auth().Token().LookupSelf()
	wantResponseError(t, "bogus token", err, http.StatusForbidden, "permission denied")

	// An agent token writing a role through the Vault client: 403.
	c.SetToken(e.agent())
	_, err = c.Logical().Write("sys/roles/demo", map[string]any{"provider": "ionq", "devices": []string{"simulator"}, "max_shots": 1})
	wantResponseError(t, "agent writes a role", err, http.StatusForbidden, "permission denied")

	// And a job token through the Vault client, the quantum path.
	s, err := c.Logical().Write("quantum/jobtoken/demo", map[string]any{"provider": "ionq", "device": "simulator", "shots": 10})
	if err != nil {
		t.Fatalf("job token via the Vault client: %v", err)
	}
	if tok, _ := s.Data["token"].(string); tok == "" {
		t.Fatalf("job token via the Vault client: no token in %v", s.Data)
	}
	_, err = c.Logical().Write("quantum/jobtoken/demo", map[string]any{"provider": "ionq", "device": "qpu.forte-1", "shots": 5000})
	wantResponseError(t, "qpu via the Vault client", err, http.StatusForbidden, "demo-no-qpu")
}
