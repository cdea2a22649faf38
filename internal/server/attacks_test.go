package server

// End-to-end attack tests (acceptance criterion 3): every attack is tried
// over real HTTP against a running `qbroker dev` and must be refused with a
// clear reason and no state change (DESIGN.md invariants 1, 3, 6, 7 and 10).

import (
	"bufio"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/circuit"
	"github.com/qbroker/qbroker/internal/token"
)

// A replayed job token is refused at the gateway, and the emulator sees
// exactly one job.
func TestAttackReplayedJobToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.agent()

	// Against the dev gateway.
	jt := e.mustJobToken(tok, "simulator", 100, "")
	id := e.mustSubmit(jt.Token, bell())
	for range 2 {
		want(t, "replay", e.submit(jt.Token, bell()), http.StatusUnauthorized, "already used")
	}
	want(t, "emulator has the one job", e.simJob(id), http.StatusOK)
	if n := e.redemptions(); n != 1 {
		t.Fatalf("redemptions = %d, want 1", n)
	}
	if n := e.count(func(ev audit.Event) bool {
		return ev.Type == "redeem" && ev.Decision == audit.DecisionDeny && ev.JTI == jt.JTI && ev.Reason == "job token already used"
	}); n != 2 {
		t.Fatalf("audited refused replays = %d, want 2", n)
	}

	// Against a gateway whose upstream is counted: the emulator receives one
	// job, not two.
	gw, posts := e.countingGateway()
	jt2 := e.mustJobToken(tok, "simulator", 100, "")
	want(t, "first use", e.submitTo(gw, jt2.Token, bell()), http.StatusCreated)
	want(t, "replay", e.submitTo(gw, jt2.Token, bell()), http.StatusUnauthorized, "already used")
	// A token spent at one gateway is spent at every gateway.
	want(t, "replay at the other gateway", e.submit(jt2.Token, bell()), http.StatusUnauthorized, "already used")
	if n := posts(); n != 1 {
		t.Fatalf("emulator saw %d job submissions, want exactly 1", n)
	}
	e.wantNotInAudit(e.ionqKey, e.d.RootToken, e.d.SecretID, tok, jt.Token, jt2.Token)
}

// Scope checks at the gateway: shots, device and circuit digest. Each
// refusal leaves the token unredeemed, so it still works once afterwards.
func TestAttackScope(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.agent()
	gw, posts := e.countingGateway()
	digest, err := circuit.Digest([]byte(bellInput))
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name     string
		shots    int // the token's
		digest   string
		body     string
		status   int
		patterns []string
	}{
		{"1000 shots on a 100-shot token", 100, "", ionqBody("simulator", 1000, bellInput), http.StatusForbidden,
			[]string{`\b1000\b`, `\b100\b`, "shots"}},
		{"shots omitted (IonQ's default 100) on a 10-shot token", 10, "",
			`{"type":"ionq.circuit.v1","backend":"simulator","input":` + bellInput + `}`, http.StatusForbidden,
			[]string{`\b100\b`, `\b10\b`, "shots"}},
		{"another device than the token names", 100, "", ionqBody("qpu.forte-1", 100, bellInput), http.StatusForbidden,
			[]string{"simulator", `qpu\.forte-1`, "device"}},
		{"another circuit than the bound digest", 100, digest, ionqBody("simulator", 100, otherInput), http.StatusForbidden,
			[]string{"digest"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, target := range []string{e.d.GatewayURL, gw} {
				before := e.redemptions()
				jt := e.mustJobToken(tok, "simulator", c.shots, c.digest)
				want(t, "attack", e.submitTo(target, jt.Token, c.body), c.status, c.patterns...)
				e.wantUnredeemed(jt.JTI)
				if n := e.redemptions(); n != before {
					t.Fatalf("a refused submission redeemed a token (%d -> %d)", before, n)
				}
				// No state change: the same token is still good, once.
				good := ionqBody("simulator", c.shots, bellInput)
				id := e.mustSubmit(jt.Token, good)
				want(t, "emulator ran it", e.simJob(id), http.StatusOK)
				want(t, "replay", e.submit(jt.Token, good), http.StatusUnauthorized, "already used")
			}
		})
	}
	if n := posts(); n != 0 {
		t.Fatalf("emulator saw %d submissions through the counting gateway, want 0", n)
	}
	// The digest is of the canonical form: the same Bell circuit with other
	// key order and whitespace is accepted under a bound token.
	jt := e.mustJobToken(tok, "simulator", 100, digest)
	reordered := "{ \"circuit\": [ {\"target\":0, \"gate\":\"h\"}, {\"target\":1,\"control\":0,\"gate\":\"cnot\"} ],\n \"gateset\":\"qis\", \"qubits\": 2 }"
	e.mustSubmit(jt.Token, ionqBody("simulator", 100, reordered))

	// The refusals were audited with their reasons.
	if n := e.count(func(ev audit.Event) bool {
		return ev.Type == "submit" && ev.Decision == audit.DecisionDeny && ev.Status == http.StatusForbidden && ev.Reason != ""
	}); n != 2*len(cases) {
		t.Fatalf("audited scope refusals = %d, want %d", n, 2*len(cases))
	}
}

// b64 is unpadded base64url.
func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// handJWT builds a compact JWS by hand from a header and claims, signed by
// sign (nil: empty signature).
func handJWT(t *testing.T, header map[string]any, c token.Claims, sign func(in []byte) []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	p, err := json.Marshal(map[string]any{
		"iss": c.Issuer, "sub": c.Subject, "aud": []string{c.Audience},
		"iat": c.IssuedAt.Unix(), "nbf": c.NotBefore.Unix(), "exp": c.Expiry.Unix(), "jti": c.ID,
		"role": c.Role, "provider": c.Provider, "device": c.Device, "max_shots": c.MaxShots,
	})
	if err != nil {
		t.Fatal(err)
	}
	in := b64(h) + "." + b64(p)
	var sig []byte
	if sign != nil {
		sig = sign([]byte(in))
	}
	return in + "." + b64(sig)
}

// Forged and expired job tokens are refused with 401 before anything is
// redeemed. Each forgery reuses the jti of a real, unredeemed grant, so
// that a verification bug would show up as that grant being spent.
func TestAttackForgedJobTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.agent()
	genuine := e.mustJobToken(tok, "simulator", 100, "")
	realKID := e.d.Broker.KeyRing().ActiveKeyID()
	realPub, err := e.d.Broker.KeyRing().Key(t.Context(), realKID)
	if err != nil {
		t.Fatal(err)
	}
	pub := []byte(realPub)

	foreign, err := token.GenerateKey(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	foreignRing, err := token.NewKeyRing([]token.Key{foreign})
	if err != nil {
		t.Fatal(err)
	}

	base := e.claims()
	base.ID = genuine.JTI
	expired := base
	expired.IssuedAt, expired.NotBefore, expired.Expiry = time.Now().Add(-10*time.Minute), time.Now().Add(-10*time.Minute), time.Now().Add(-6*time.Minute)
	expiredTok, err := e.d.Broker.KeyRing().Sign(expired)
	if err != nil {
		t.Fatal(err)
	}
	// An expired token for a jti the broker never issued: refused just the same.
	unknownExpired := expired
	unknownExpired.ID = "never-issued"
	unknownExpiredTok, err := e.d.Broker.KeyRing().Sign(unknownExpired)
	if err != nil {
		t.Fatal(err)
	}
	foreignTok, err := foreignRing.Sign(base)
	if err != nil {
		t.Fatal(err)
	}
	hdr := func(alg, kid string) map[string]any {
		return map[string]any{"alg": alg, "typ": token.JobTokenType, "kid": kid}
	}
	edSign := func(in []byte) []byte { return ed25519.Sign(foreign.Private, in) }
	hsSign := func(in []byte) []byte { m := hmac.New(sha256.New, pub); m.Write(in); return m.Sum(nil) }
	// Signed by the real key but for another issuer or audience.
	wrongIss := base
	wrongIss.Issuer = "https://evil.example"
	wrongIssTok, err := e.d.Broker.KeyRing().Sign(wrongIss)
	if err != nil {
		t.Fatal(err)
	}
	wrongAud := base
	wrongAud.Audience = "someone-else"
	wrongAudTok, err := e.d.Broker.KeyRing().Sign(wrongAud)
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name, tok, pattern string
	}{
		{"expired", expiredTok, "expired"},
		{"expired, unknown jti", unknownExpiredTok, "expired"},
		{"another key, its own kid", foreignTok, "unknown key"},
		{"another key, the real kid spoofed", handJWT(t, hdr("EdDSA", realKID), base, edSign), "signature"},
		{"alg none", handJWT(t, hdr("none", realKID), base, nil), "algorithm|malformed"},
		{"alg none, no signature part", strings.TrimSuffix(handJWT(t, hdr("none", realKID), base, nil), "."), "algorithm|malformed"},
		{"HS256 keyed with the public key", handJWT(t, hdr("HS256", realKID), base, hsSign), "algorithm"},
		{"wrong issuer", wrongIssTok, "claims"},
		{"wrong audience", wrongAudTok, "claims"},
		{"garbage", "not-a-jwt", "malformed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.submit(c.tok, bell())
			want(t, c.name, r, http.StatusUnauthorized, c.pattern)
			if strings.Contains(string(r.body), c.tok) {
				t.Fatalf("refusal echoes the token: %s", r)
			}
			e.wantUnredeemed(genuine.JTI)
		})
	}
	if n := e.redemptions(); n != 0 {
		t.Fatalf("forged tokens caused %d redemptions", n)
	}
	// The genuine token is untouched by all of that.
	e.mustSubmit(genuine.Token, bell())
}

// A device the role lists but policy forbids (the demo policy permits
// Forte only with approval and at most 1000 shots, so 5000 shots cannot be
// approved): refused at issuance with the forbidding policy named, nothing
// held for approval, and the decision is in the audit log.
func TestAttackPolicyForbidsQPU(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.agent()
	r := e.jobToken(tok, DemoRole, "qpu.forte-1", 5000, "")
	want(t, "qpu job token", r, http.StatusForbidden, "demo-no-qpu")
	if strings.Contains(string(r.body), `"token"`) {
		t.Fatalf("refusal carries a token: %s", r)
	}
	n := e.count(func(ev audit.Event) bool {
		return ev.Type == "decision" && ev.Decision == audit.DecisionDeny && ev.Device == "qpu.forte-1" &&
			slices.Contains(ev.Policies, "demo-no-qpu") && strings.Contains(ev.Reason, "demo-no-qpu")
	})
	if n != 1 {
		t.Fatalf("decision events naming demo-no-qpu = %d, want 1", n)
	}
	if n := e.count(func(ev audit.Event) bool {
		return ev.Type == "issue" && ev.Action == "SubmitJob" && ev.Decision == audit.DecisionAllow
	}); n != 0 {
		t.Fatalf("%d job tokens were issued", n)
	}
	// Role ceilings: more shots than the role allows, a device outside the
	// catalogue.
	want(t, "too many shots", e.jobToken(tok, DemoRole, "simulator", DemoMaxShots+1, ""), http.StatusForbidden, `\b10000\b`, `\b10001\b`)
	want(t, "unknown device", e.jobToken(tok, DemoRole, "qpu.nowhere", 1, ""), http.StatusBadRequest, `qpu\.nowhere`)
}

// Revoked broker tokens: refused at the broker API (403), at the gateway's
// status read (401), and job tokens issued under them are refused at
// redemption (401) although their signatures are valid.
func TestAttackRevokedBrokerToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	// revoke-self
	a := e.agent()
	id := e.mustSubmit(e.mustJobToken(a, "simulator", 100, "").Token, bell())
	pending := e.mustJobToken(a, "simulator", 100, "")
	want(t, "read before revoke", e.readJob("apiKey", a, id), http.StatusOK)
	want(t, "lookup before revoke", e.broker(http.MethodGet, "/v1/auth/token/lookup-self", a, ""), http.StatusOK)
	want(t, "revoke-self", e.broker(http.MethodPost, "/v1/auth/token/revoke-self", a, ""), http.StatusNoContent)
	want(t, "lookup-self after revoke", e.broker(http.MethodGet, "/v1/auth/token/lookup-self", a, ""), http.StatusForbidden, "permission denied")
	want(t, "renew-self after revoke", e.broker(http.MethodPost, "/v1/auth/token/renew-self", a, ""), http.StatusForbidden)
	want(t, "job token after revoke", e.jobToken(a, DemoRole, "simulator", 100, ""), http.StatusForbidden)
	for _, scheme := range []string{"apiKey", "Bearer"} {
		want(t, "gateway read after revoke ("+scheme+")", e.readJob(scheme, a, id), http.StatusUnauthorized, "revoked")
	}
	v, err := token.NewVerifier(token.VerifierConfig{Issuer: e.d.Broker.Issuer(), Audience: e.d.Broker.Audience(), Keys: e.d.Broker.KeyRing()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), pending.Token); err != nil {
		t.Fatalf("the pending job token should still verify: %v", err)
	}
	want(t, "job token of a revoked broker token", e.submit(pending.Token, bell()), http.StatusUnauthorized, "revoked")
	e.wantUnredeemed(pending.JTI)

	// revoke-accessor, by root
	b := e.mustLogin(e.d.RoleID, e.d.SecretID)
	pendingB := e.mustJobToken(b.ClientToken, "simulator", 100, "")
	want(t, "revoke-accessor", e.broker(http.MethodPost, "/v1/auth/token/revoke-accessor", e.d.RootToken,
		fmt.Sprintf(`{"accessor":%q}`, b.Accessor)), http.StatusNoContent)
	want(t, "lookup-self after revoke-accessor", e.broker(http.MethodGet, "/v1/auth/token/lookup-self", b.ClientToken, ""), http.StatusForbidden)
	want(t, "gateway read after revoke-accessor", e.readJob("Bearer", b.ClientToken, id), http.StatusUnauthorized)
	want(t, "job token after revoke-accessor", e.submit(pendingB.Token, bell()), http.StatusUnauthorized, "revoked")
	if n := e.redemptions(); n != 1 {
		t.Fatalf("redemptions = %d, want 1 (the job before revocation)", n)
	}

	// An agent cannot revoke another agent's token by accessor.
	c := e.mustLogin(e.d.RoleID, e.d.SecretID)
	other := e.newSecretID(DemoRole, "agent-other", "")
	o := e.mustLogin(e.d.RoleID, other.SecretID)
	want(t, "revoke someone else's accessor", e.broker(http.MethodPost, "/v1/auth/token/revoke-accessor", o.ClientToken,
		fmt.Sprintf(`{"accessor":%q}`, c.Accessor)), http.StatusForbidden, "own")
	want(t, "victim still live", e.broker(http.MethodGet, "/v1/auth/token/lookup-self", c.ClientToken, ""), http.StatusOK)
}

// Login attacks all get the same generic 400, and a refused login spends
// no use of a secret_id.
func TestAttackLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const generic = "^invalid role_id or secret_id$"

	expiring := e.newSecretID(DemoRole, "short-lived", `,"ttl":"1s"`)
	once := e.newSecretID(DemoRole, "once", `,"num_uses":1`)
	twice := e.newSecretID(DemoRole, "twice", `,"num_uses":2`)

	// Wrong secret_id and wrong role_id (several times, with the real other
	// half): refused, and twice's two uses are untouched.
	for range 3 {
		want(t, "wrong secret_id", e.login(e.d.RoleID, "00000000-0000-4000-8000-000000000000"), http.StatusBadRequest, generic)
		want(t, "wrong role_id", e.login("00000000-0000-4000-8000-000000000000", twice.SecretID), http.StatusBadRequest, generic)
	}
	// A secret_id of role demo presented with another role's role_id.
	e.putRole("other", `{"provider":"ionq","devices":["simulator"],"max_shots":100}`)
	want(t, "secret_id of another role", e.login(e.roleID("other"), twice.SecretID), http.StatusBadRequest, generic)

	e.mustLogin(e.d.RoleID, twice.SecretID)
	e.mustLogin(e.d.RoleID, twice.SecretID)
	want(t, "third use of a 2-use secret_id", e.login(e.d.RoleID, twice.SecretID), http.StatusBadRequest, generic)

	e.mustLogin(e.d.RoleID, once.SecretID)
	want(t, "second use of a 1-use secret_id", e.login(e.d.RoleID, once.SecretID), http.StatusBadRequest, generic)

	// Missing halves name what is missing (not a secret).
	want(t, "missing secret_id", e.login(e.d.RoleID, ""), http.StatusBadRequest, "secret_id")

	time.Sleep(1100 * time.Millisecond)
	want(t, "expired secret_id", e.login(e.d.RoleID, expiring.SecretID), http.StatusBadRequest, generic)
	e.wantNotInAudit(e.d.SecretID, expiring.SecretID, once.SecretID, twice.SecretID, e.ionqKey, e.d.RootToken)

	// The audit log knows the difference; the caller does not.
	reasons := map[string]bool{}
	for _, ev := range e.events() {
		if ev.Type == "login" && ev.Decision == audit.DecisionDeny {
			reasons[ev.Reason] = true
		}
	}
	for _, r := range []string{"unknown role_id", "secret_id unknown", "secret_id expired"} {
		if !reasons[r] {
			t.Errorf("no login refusal audited with reason %q (have %v)", r, reasons)
		}
	}
}

// big returns a JSON object of more than 1 MiB whose first members are
// prefix (a valid object body without braces).
func big(prefix string) string {
	return "{" + prefix + `,"pad":"` + strings.Repeat("a", 1<<20) + `"}`
}

// Malformed bodies are refused before anything changes, at the broker API
// and at the gateway.
func TestAttackMalformedInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.agent()

	type bad struct {
		name, body, pattern string
		status              int
	}
	badBodies := func(valid string) []bad {
		inner := strings.TrimSuffix(strings.TrimPrefix(valid, "{"), "}")
		return []bad{
			{"malformed JSON", valid[:len(valid)/2], "invalid JSON|malformed", http.StatusBadRequest},
			{"not an object", `[1,2,3]`, "", http.StatusBadRequest},
			{"unknown field", "{" + inner + `,"bogus_field":1}`, "bogus_field", http.StatusBadRequest},
			{"trailing garbage", valid + "garbage", "after|trailing|single|malformed", http.StatusBadRequest},
			{"two values", valid + valid, "after|trailing|single|malformed", http.StatusBadRequest},
			{"over 1 MiB", big(inner), "larger|exceeds", http.StatusRequestEntityTooLarge},
		}
	}

	t.Run("login", func(t *testing.T) {
		once := e.newSecretID(DemoRole, "once", `,"num_uses":1`)
		for _, b := range badBodies(loginBody(e.d.RoleID, once.SecretID)) {
			r := e.broker(http.MethodPost, "/v1/auth/approle/login", "", b.body)
			want(t, b.name, r, b.status, b.pattern)
		}
		e.mustLogin(e.d.RoleID, once.SecretID) // its single use was never spent
	})

	t.Run("jobtoken", func(t *testing.T) {
		for _, b := range badBodies(jobTokenBody("simulator", 100, "")) {
			want(t, b.name, e.broker(http.MethodPost, "/v1/quantum/jobtoken/demo", tok, b.body), b.status, b.pattern)
		}
		if n := e.count(func(ev audit.Event) bool {
			return ev.Type == "issue" && ev.Action == "SubmitJob" && ev.Decision == audit.DecisionAllow
		}); n != 0 {
			t.Fatalf("%d job tokens issued from malformed requests", n)
		}
	})

	t.Run("role write", func(t *testing.T) {
		before := e.getRole(DemoRole)
		valid := `{"provider":"ionq","devices":["simulator","qpu.forte-1"],"max_shots":1}`
		for _, b := range badBodies(valid) {
			want(t, b.name, e.broker(http.MethodPost, "/v1/sys/roles/demo", e.d.RootToken, b.body), b.status, b.pattern)
			want(t, b.name+" (PUT)", e.broker(http.MethodPut, "/v1/sys/roles/demo", e.d.RootToken, b.body), b.status, b.pattern)
		}
		want(t, "invalid role", e.broker(http.MethodPost, "/v1/sys/roles/demo", e.d.RootToken,
			`{"provider":"ionq","devices":["qpu.nowhere"],"max_shots":-1}`), http.StatusBadRequest, `qpu\.nowhere`, "max_shots")
		if after := e.getRole(DemoRole); after != before {
			t.Fatalf("role changed by refused writes:\nbefore %s\nafter  %s", before, after)
		}
	})

	t.Run("gateway submission", func(t *testing.T) {
		jt := e.mustJobToken(tok, "simulator", 100, "")
		for _, b := range badBodies(bell()) {
			r := e.submit(jt.Token, b.body)
			want(t, b.name, r, b.status, b.pattern)
			e.wantUnredeemed(jt.JTI)
		}
		// Parser-differential attempts: whatever the gateway checked must be
		// what the provider would run, so ambiguity is refused.
		for _, b := range []bad{
			{"duplicate shots key", `{"type":"ionq.circuit.v1","backend":"simulator","shots":100,"shots":1000,"input":` + bellInput + `}`, "duplicate|malformed", http.StatusBadRequest},
			{"case-variant shots key", `{"type":"ionq.circuit.v1","backend":"simulator","shots":100,"Shots":1000,"input":` + bellInput + `}`, "Shots", http.StatusBadRequest},
			{"duplicate backend key", `{"type":"ionq.circuit.v1","backend":"simulator","backend":"qpu.forte-1","shots":100,"input":` + bellInput + `}`, "duplicate|malformed", http.StatusBadRequest},
			{"unknown field inside input", ionqBody("simulator", 100, `{"qubits":2,"gateset":"qis","bogus_inner":1,"circuit":[{"gate":"h","target":0}]}`), "bogus_inner", http.StatusBadRequest},
			{"shots as a string", `{"type":"ionq.circuit.v1","backend":"simulator","shots":"1000","input":` + bellInput + `}`, "shots", http.StatusBadRequest},
		} {
			want(t, b.name, e.submit(jt.Token, b.body), b.status, b.pattern)
			e.wantUnredeemed(jt.JTI)
		}
		e.mustSubmit(jt.Token, bell()) // still good, once
	})
}

// Administrative endpoints refuse a non-root token and change nothing.
func TestAttackAdminWithAgentToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.agent()
	roleBefore := e.getRole(DemoRole)
	jwksBefore := e.do(http.MethodGet, e.d.BrokerURL+"/.well-known/jwks.json", "").body
	admins := func() int {
		return e.count(func(ev audit.Event) bool { return ev.Type == "admin" && ev.Decision == audit.DecisionAllow })
	}
	adminBefore := admins()

	calls := []struct{ method, path, body string }{
		{http.MethodPost, "/v1/sys/roles/demo", `{"provider":"ionq","devices":["simulator","qpu.forte-1"],"max_shots":1000000}`},
		{http.MethodPut, "/v1/sys/roles/evil", `{"provider":"ionq","devices":["qpu.forte-1"],"max_shots":1000000}`},
		{http.MethodDelete, "/v1/sys/roles/demo", ""},
		{http.MethodGet, "/v1/sys/roles/demo", ""},
		{http.MethodGet, "/v1/sys/roles", ""},
		{http.MethodPost, "/v1/auth/approle/role/demo/secret-id", `{"agent":"evil"}`},
		{http.MethodGet, "/v1/auth/approle/role/demo/role-id", ""},
		{http.MethodPost, "/v1/sys/keys/rotate", ""},
		{http.MethodPost, "/v1/sys/providers/ionq/credential", `{"api_key":"attacker-key"}`},
		{http.MethodGet, "/v1/sys/gateway/credentials/ionq", ""},
		{http.MethodPost, "/v1/sys/gateway/redeem", `{"jti":"x"}`},
		{http.MethodPost, "/v1/auth/token/create", `{"policies":["gateway"]}`},
		{http.MethodPost, "/v1/auth/token/lookup", fmt.Sprintf(`{"token":%q}`, e.d.RootToken)},
	}
	for _, c := range calls {
		r := e.broker(c.method, c.path, tok, c.body)
		want(t, c.method+" "+c.path, r, http.StatusForbidden, "permission denied")
		if strings.Contains(string(r.body), e.ionqKey) || strings.Contains(string(r.body), e.d.RootToken) {
			t.Fatalf("%s %s leaked a secret: %s", c.method, c.path, r)
		}
	}
	if after := e.getRole(DemoRole); after != roleBefore {
		t.Fatalf("role changed:\nbefore %s\nafter  %s", roleBefore, after)
	}
	want(t, "evil role absent", e.broker(http.MethodGet, "/v1/sys/roles/evil", e.d.RootToken, ""), http.StatusNotFound)
	if jwks := e.do(http.MethodGet, e.d.BrokerURL+"/.well-known/jwks.json", "").body; string(jwks) != string(jwksBefore) {
		t.Fatalf("signing keys changed:\nbefore %s\nafter  %s", jwksBefore, jwks)
	}
	if n := admins(); n != adminBefore {
		t.Fatalf("admin actions allowed: %d -> %d", adminBefore, n)
	}
	// The provider credential is unchanged: a job still reaches the
	// emulator, which accepts only the real key.
	if k, err := e.d.Broker.Credential(t.Context(), "ionq"); err != nil || k != e.ionqKey {
		t.Fatalf("provider credential changed (err %v)", err)
	}
	id := e.mustSubmit(e.mustJobToken(tok, "simulator", 100, "").Token, bell())
	want(t, "emulator ran it", e.simJob(id), http.StatusOK)
}

// Agent B cannot read, fetch results of or cancel agent A's job; it gets
// the same 404 as for a job that does not exist.
func TestAttackCrossAgentJobRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.agent()
	b := e.mustLogin(e.d.RoleID, e.newSecretID(DemoRole, "agent-b", "").SecretID).ClientToken
	id := e.mustSubmit(e.mustJobToken(a, "simulator", 100, "").Token, bell())

	want(t, "owner reads (apiKey)", e.readJob("apiKey", a, id), http.StatusOK)
	want(t, "owner reads (Bearer)", e.readJob("Bearer", a, id), http.StatusOK)
	missing := e.readJob("apiKey", b, "00000000-0000-4000-8000-000000000000")
	want(t, "no such job", missing, http.StatusNotFound)
	for _, scheme := range []string{"apiKey", "Bearer"} {
		r := e.readJob(scheme, b, id)
		want(t, "other agent reads ("+scheme+")", r, http.StatusNotFound)
		if string(r.body) != string(missing.body) {
			t.Fatalf("someone else's job (%s) answers differently from a missing one (%s)", r, missing)
		}
	}
	want(t, "other agent reads results", e.do(http.MethodGet, e.d.GatewayURL+"/ionq/v0.4/jobs/"+id+"/results/probabilities", "",
		"Authorization", "apiKey "+b), http.StatusNotFound)
	want(t, "other agent cancels", e.do(http.MethodPut, e.d.GatewayURL+"/ionq/v0.4/jobs/"+id+"/status/cancel", "",
		"Authorization", "apiKey "+b), http.StatusNotFound)
	if n := e.count(func(ev audit.Event) bool { return ev.Type == "cancel" }); n != 0 {
		t.Fatalf("%d cancels recorded", n)
	}
	// The job is untouched at the emulator.
	r := e.simJob(id)
	want(t, "emulator job", r, http.StatusOK)
	if strings.Contains(string(r.body), `"canceled"`) {
		t.Fatalf("job was canceled: %s", r)
	}
	// A job token (not a broker token) is no key to a status read either.
	want(t, "job token as read key", e.readJob("apiKey", e.mustJobToken(a, "simulator", 100, "").Token, id), http.StatusUnauthorized)
}

// A token of one role cannot get job tokens for another, and a role no
// policy permits gets nothing (default deny, with the reason).
func TestAttackOtherRole(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.putRole("other", `{"provider":"ionq","devices":["simulator"],"max_shots":100}`)
	o := e.mustLogin(e.roleID("other"), e.newSecretID("other", "outsider", "").SecretID).ClientToken

	want(t, "job token for demo with an other-role token", e.jobToken(o, DemoRole, "simulator", 10, ""), http.StatusForbidden, `"demo"`)
	want(t, "job token for other (no permit)", e.jobToken(o, "other", "simulator", 10, ""), http.StatusForbidden, "no policy permits")
	want(t, "demo token for role other", e.jobToken(e.agent(), "other", "simulator", 10, ""), http.StatusForbidden, `"other"`)
	if n := e.count(func(ev audit.Event) bool {
		return ev.Type == "issue" && ev.Action == "SubmitJob" && ev.Decision == audit.DecisionAllow
	}); n != 0 {
		t.Fatalf("%d job tokens issued", n)
	}
	if n := e.count(func(ev audit.Event) bool {
		return ev.Type == "decision" && ev.Role == "other" && ev.Decision == audit.DecisionDeny
	}); n != 1 {
		t.Fatalf("default-deny decisions audited = %d, want 1", n)
	}
}

// Neither the Host header nor an absolute-form request target makes the
// gateway forward anywhere but its configured upstream.
func TestAttackGatewayHostPick(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var decoyHits atomic.Int64
	decoy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		decoyHits.Add(1)
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id":"decoy-job","status":"submitted"}`))
	}))
	t.Cleanup(decoy.Close)
	decoyHost := strings.TrimPrefix(decoy.URL, "http://")

	jt := e.mustJobToken(e.agent(), "simulator", 100, "")
	body := bell()
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.d.GatewayURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(conn, "POST http://%s/ionq/v0.4/jobs HTTP/1.1\r\nHost: %s\r\nAuthorization: apiKey %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		decoyHost, decoyHost, jt.Token, len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("submission: %d %v", resp.StatusCode, err)
	}
	if n := decoyHits.Load(); n != 0 {
		t.Fatalf("the decoy host named by the request got %d requests", n)
	}
	if out.ID == "decoy-job" {
		t.Fatal("answer came from the decoy")
	}
	want(t, "job is at the configured emulator", e.simJob(out.ID), http.StatusOK)
}
