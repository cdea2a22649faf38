package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
	"github.com/qbroker/qbroker/internal/config"
	"github.com/qbroker/qbroker/internal/gateway"
	"github.com/qbroker/qbroker/internal/token"
)

// startReplica starts a broker on the shared PostgreSQL schema (dsnEnv)
// with its own data dir (audit file) and the shared seal key (QB_TEST_SEAL).
func startReplica(t *testing.T, dsnEnv string) *Server {
	t.Helper()
	return startReplicaWith(t, dsnEnv, 0)
}

func startReplicaWith(t *testing.T, dsnEnv string, sweep time.Duration) *Server {
	t.Helper()
	return startReplicaFull(t, dsnEnv, sweep, "")
}

// startReplicaFull starts a replica; public, when set, is the URL every
// replica shares (what a load balancer would be): the job tokens' issuer.
func startReplicaFull(t *testing.T, dsnEnv string, sweep time.Duration, public string) *Server {
	t.Helper()
	listen := "127.0.0.1:0"
	if public != "" { // the replica's own address is not its public URL: pick it here
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		listen = l.Addr().String()
		l.Close()
	}
	cfg := &config.Config{Listen: listen, DataDir: t.TempDir(),
		Seal:  config.Seal{Type: "env", Env: "QB_TEST_SEAL"},
		Store: config.Store{Type: "postgres", DSNEnv: dsnEnv}}
	if err := cfg.Finish(); err != nil {
		t.Fatal(err)
	}
	cfg.PublicURL = public // "": from the bound listener
	s, err := Start(context.Background(), Options{Config: cfg, SweepInterval: sweep})
	if err != nil {
		t.Fatal(err)
	}
	if public != "" {
		s.BrokerURL = "http://" + listen // where this test reaches it (the issuer stays public)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// Issue 11, criterion 3 (brokers): a token revoked on replica A is refused
// by replica B — which had it cached — within a second, measured over 100
// trials (p99).
func TestRevocationReachesOtherReplica(t *testing.T) {
	t.Setenv("QB_TEST_PG_DSN", postgresDSN(t))
	key := make([]byte, 32)
	rand.Read(key)
	t.Setenv("QB_TEST_SEAL", base64.StdEncoding.EncodeToString(key))
	a := startReplica(t, "QB_TEST_PG_DSN")
	root, created, err := a.Initialize(context.Background())
	if err != nil || !created {
		t.Fatalf("initialize: %v %v", created, err)
	}
	b := startReplica(t, "QB_TEST_PG_DSN")
	ea := &env{t: t, d: &Dev{Server: a, RootToken: root}, hc: &http.Client{Timeout: 10 * time.Second}}
	eb := &env{t: t, d: &Dev{Server: b, RootToken: root}, hc: ea.hc}
	ea.putRole("lab", `{"provider":"ionq","devices":["simulator"],"max_shots":10}`)
	roleID := ea.roleID("lab")

	// Two standalone gateways, one per replica, each caching token lookups.
	gwTok := func(e *env) string {
		r := e.broker(http.MethodPost, "/v1/auth/token/create", root, `{"policies":["gateway"]}`)
		var out struct {
			Auth api.Auth `json:"auth"`
		}
		json.Unmarshal(r.body, &out)
		return out.Auth.ClientToken
	}
	gateways := []string{standaloneGateway(t, a.BrokerURL, gwTok(ea)), standaloneGateway(t, b.BrokerURL, gwTok(eb))}
	// A broker token is live at a gateway while a job read says 404 (no
	// such job) and revoked once it says 401.
	gwStatus := func(gw, tok string) int {
		return ea.do(http.MethodGet, gw+"/ionq/v0.4/jobs/no-such-job", "", "Authorization", "apiKey "+tok).status
	}

	const trials = 100
	lat := map[string][]time.Duration{}
	for i := range trials {
		sid := ea.newSecretID("lab", fmt.Sprintf("agent-%d", i), "")
		tok := ea.mustLogin(roleID, sid.SecretID).ClientToken
		// B and both gateways cache the token.
		want(t, "lookup on B", eb.broker(http.MethodGet, "/v1/auth/token/lookup-self", tok, ""), http.StatusOK)
		for _, gw := range gateways {
			if st := gwStatus(gw, tok); st != http.StatusNotFound {
				t.Fatalf("live token at a gateway: %d", st)
			}
		}
		start := time.Now()
		want(t, "revoke on A", ea.broker(http.MethodPost, "/v1/auth/token/revoke-self", tok, ""), http.StatusNoContent)
		refused := map[string]bool{}
		for len(refused) < 3 {
			if !refused["replica B"] && eb.broker(http.MethodGet, "/v1/auth/token/lookup-self", tok, "").status == http.StatusForbidden {
				refused["replica B"] = true
				lat["replica B"] = append(lat["replica B"], time.Since(start))
			}
			for j, gw := range gateways {
				name := fmt.Sprintf("gateway %d", j+1)
				if !refused[name] && gwStatus(gw, tok) == http.StatusUnauthorized {
					refused[name] = true
					lat[name] = append(lat[name], time.Since(start))
				}
			}
			if time.Since(start) > 5*time.Second {
				t.Fatalf("trial %d: still accepted after 5 s by some of %v", i, []string{"replica B", "gateway 1", "gateway 2"})
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	for _, name := range []string{"replica B", "gateway 1", "gateway 2"} {
		l := lat[name]
		slices.Sort(l)
		p50, p99 := l[trials/2], l[trials*99/100]
		t.Logf("revocation on replica A refused at %s: p50 %v, p99 %v, max %v over %d trials", name, p50, p99, l[trials-1], trials)
		if p99 > time.Second {
			t.Fatalf("%s: p99 %v; revocation must be refused everywhere within a second", name, p99)
		}
	}

	// A role change on A is seen on B at once (no 5 s role-cache staleness).
	want(t, "role on B", eb.broker(http.MethodGet, "/v1/sys/roles/lab", root, ""), http.StatusOK)
	want(t, "delete on A", ea.broker(http.MethodDelete, "/v1/sys/roles/lab", root, ""), http.StatusNoContent)
	deadline := time.Now().Add(time.Second)
	for eb.broker(http.MethodGet, "/v1/sys/roles/lab", root, "").status != http.StatusNotFound {
		if time.Now().After(deadline) {
			t.Fatal("replica B still has the deleted role after a second")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// And the hardware freeze.
	want(t, "freeze on A", ea.broker(http.MethodPost, "/v1/sys/freeze", root, `{"hardware":true,"reason":"replica test"}`), http.StatusOK, "")
	deadline = time.Now().Add(time.Second)
	for {
		var f api.FreezeData
		decodeData(t, eb.broker(http.MethodGet, "/v1/sys/freeze", root, ""), &f)
		if f.HardwareFrozen {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("replica B does not see the freeze after a second")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Background sweeps run on one replica at a time, and move to another when
// that one goes away.
func TestSweeperRunsOnOneReplica(t *testing.T) {
	t.Setenv("QB_TEST_PG_DSN", postgresDSN(t))
	key := make([]byte, 32)
	rand.Read(key)
	t.Setenv("QB_TEST_SEAL", base64.StdEncoding.EncodeToString(key))
	const tick = 30 * time.Millisecond
	a := startReplicaWith(t, "QB_TEST_PG_DSN", tick)
	b := startReplicaWith(t, "QB_TEST_PG_DSN", tick)
	leaders := func() int {
		n := 0
		for _, s := range []*Server{a, b} {
			if s.Leading() {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(3 * time.Second)
	for leaders() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d replicas lead the sweeper, want 1", leaders())
		}
		time.Sleep(tick)
	}
	time.Sleep(5 * tick)
	if n := leaders(); n != 1 {
		t.Fatalf("%d leaders after a while, want 1", n)
	}
	leader, follower := a, b
	if !a.Leading() {
		leader, follower = b, a
	}
	if err := leader.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(3 * time.Second)
	for !follower.Leading() {
		if time.Now().After(deadline) {
			t.Fatal("the other replica did not take over the sweeps")
		}
		time.Sleep(tick)
	}
}

// standaloneGateway runs a gateway in front of broker as `qbroker gateway`
// does: JWKS fetched over HTTP, everything else through RemoteBroker.
func standaloneGateway(t *testing.T, broker, gwToken string) string {
	t.Helper()
	return standaloneGatewayFor(t, broker, broker, gwToken)
}

// standaloneGatewayFor is standaloneGateway for job tokens issued as
// issuer (the replicas' shared public URL).
func standaloneGatewayFor(t *testing.T, broker, issuer, gwToken string) string {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second}
	v, err := token.NewVerifier(token.VerifierConfig{Issuer: issuer, Audience: Audience,
		Keys: token.NewJWKSCache(broker+"/.well-known/jwks.json", hc, 5*time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	up, _ := url.Parse("http://127.0.0.1:9") // never reached: only reads of unknown jobs are sent
	gw, err := gateway.New(gateway.Config{Broker: gateway.NewRemoteBroker(broker, gwToken, hc), Verifier: v, IonQUpstream: up})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	return srv.URL
}

// Issue 11, criterion 4: a job token is redeemed exactly once across the
// fleet — two replicas, a standalone gateway on each, 16 concurrent
// submissions of one token split between them: exactly one gets past
// redemption (its upstream is unreachable here, so it ends in 502); the
// other fifteen are refused as already used.
func TestJobTokenRedeemedOnceAcrossGateways(t *testing.T) {
	t.Setenv("QB_TEST_PG_DSN", postgresDSN(t))
	key := make([]byte, 32)
	rand.Read(key)
	t.Setenv("QB_TEST_SEAL", base64.StdEncoding.EncodeToString(key))
	const public = "https://qbroker.example.test" // the shared issuer
	a := startReplicaFull(t, "QB_TEST_PG_DSN", 0, public)
	root, _, err := a.Initialize(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b := startReplicaFull(t, "QB_TEST_PG_DSN", 0, public)
	ea := &env{t: t, d: &Dev{Server: a, RootToken: root}, hc: &http.Client{Timeout: 10 * time.Second}}
	eb := &env{t: t, d: &Dev{Server: b, RootToken: root}, hc: ea.hc}
	gwTok := func(e *env) string {
		r := e.broker(http.MethodPost, "/v1/auth/token/create", root, `{"policies":["gateway"]}`)
		var out struct {
			Auth api.Auth `json:"auth"`
		}
		json.Unmarshal(r.body, &out)
		return out.Auth.ClientToken
	}
	gws := []string{standaloneGatewayFor(t, a.BrokerURL, public, gwTok(ea)), standaloneGatewayFor(t, b.BrokerURL, public, gwTok(eb))}
	ea.putRole("demo", `{"provider":"ionq","devices":["simulator"],"max_shots":100}`)
	agent := ea.mustLogin(ea.roleID("demo"), ea.newSecretID("demo", "racer", "").SecretID).ClientToken
	for trial := range 5 {
		jt := ea.mustJobToken(agent, "simulator", 10, "")
		var mu sync.Mutex
		codes := map[int]int{}
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Go(func() {
				r := ea.submitTo(gws[i%2], jt.Token, ionqBody("simulator", 10, bellInput))
				mu.Lock()
				defer mu.Unlock()
				codes[r.status]++
				if r.status == http.StatusUnauthorized && !strings.Contains(r.msg(), "already used") {
					t.Errorf("a refusal that is not a replay refusal: %s", r)
				}
			})
		}
		wg.Wait()
		if codes[http.StatusUnauthorized] != 15 || codes[http.StatusBadGateway] != 1 {
			t.Fatalf("trial %d: 16 concurrent submissions of one job token across two gateways and replicas: %v; want one past redemption (502: no upstream here) and fifteen 401", trial, codes)
		}
	}
}

// Issue 11: key rotation is background work that any replica may do; a
// key rotated on replica A is announced, so replica B serves it in its
// JWKS and signs with it within a second, and the key B signed with before
// stays verifiable at both.
func TestKeyRotationReachesOtherReplica(t *testing.T) {
	a, b, root := twoReplicas(t)
	ea := &env{t: t, d: &Dev{Server: a, RootToken: root}, hc: &http.Client{Timeout: 10 * time.Second}}
	eb := &env{t: t, d: &Dev{Server: b, RootToken: root}, hc: ea.hc}
	kids := func(e *env) []string {
		var set struct {
			Keys []struct {
				KID string `json:"kid"`
			} `json:"keys"`
		}
		json.Unmarshal(e.do(http.MethodGet, e.d.BrokerURL+"/.well-known/jwks.json", "").body, &set)
		var out []string
		for _, k := range set.Keys {
			out = append(out, k.KID)
		}
		return out
	}
	before := kids(eb)
	if len(before) != 1 || !slices.Equal(before, kids(ea)) {
		t.Fatalf("replicas start with keys %v and %v", kids(ea), before)
	}
	r := ea.broker(http.MethodPost, "/v1/sys/keys/rotate", root, "")
	want(t, "rotate on A", r, http.StatusOK)
	var rot api.KeyRotateData
	decodeData(t, r, &rot)
	start := time.Now()
	for !slices.Contains(kids(eb), rot.ActiveKID) {
		if time.Since(start) > time.Second {
			t.Fatalf("replica B's JWKS %v lacks the key rotated on A (%s) after a second", kids(eb), rot.ActiveKID)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("replica B took up the rotated key %v after A answered", time.Since(start))
	if got := kids(eb); !slices.Contains(got, before[0]) {
		t.Fatalf("replica B dropped the retired key %s too early: %v", before[0], got)
	}
	// B now signs with the new key.
	eb.putRole(DemoRole, `{"provider":"ionq","devices":["simulator"],"max_shots":10}`)
	agent := eb.mustLogin(eb.roleID(DemoRole), eb.newSecretID(DemoRole, "k-agent", "").SecretID)
	jt := eb.mustJobToken(agent.ClientToken, "simulator", 10, "")
	hdr, _, _ := strings.Cut(jt.Token, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(hdr)
	var h struct {
		KID string `json:"kid"`
	}
	json.Unmarshal(raw, &h)
	if h.KID != rot.ActiveKID {
		t.Fatalf("replica B signed with %q after the rotation, want %q", h.KID, rot.ActiveKID)
	}
}

// Issue 11: the anomaly rules see the whole cluster. An agent's burst
// spread over two replicas — 6 job tokens on each, under the burst rule's
// minimum of 10 on either alone — is found by the replica that holds the
// sweeper lease, and by no other (one alert, one action).
func TestAnomalyRulesSeeEveryReplica(t *testing.T) {
	a, b, root := twoReplicas(t)
	if !a.Leading() || b.Leading() {
		t.Fatalf("leading: a=%v b=%v, want only the first replica", a.Leading(), b.Leading())
	}
	ea := &env{t: t, d: &Dev{Server: a, RootToken: root}, hc: &http.Client{Timeout: 10 * time.Second}}
	eb := &env{t: t, d: &Dev{Server: b, RootToken: root}, hc: ea.hc}
	ea.putRole(DemoRole, `{"provider":"ionq","devices":["simulator"],"max_shots":10}`)
	agent := ea.mustLogin(ea.roleID(DemoRole), ea.newSecretID(DemoRole, "spread-agent", "").SecretID)
	for range 6 {
		ea.mustJobToken(agent.ClientToken, "simulator", 10, "")
		eb.mustJobToken(agent.ClientToken, "simulator", 10, "")
	}
	bursts := func(e *env) int {
		r := e.broker(http.MethodGet, "/v1/sys/audit/events?type=anomaly&limit=1000", root, "")
		want(t, "audit events", r, http.StatusOK)
		var out struct {
			Events []audit.Event `json:"events"`
		}
		decodeData(t, r, &out)
		n := 0
		for _, ev := range out.Events {
			if strings.HasPrefix(ev.Reason, "burst") && ev.Agent == "approle:"+DemoRole+":spread-agent" {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(3 * time.Second)
	for bursts(ea) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the leader did not find the burst spread over two replicas")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // anything B would do, it would have done by now
	if n := bursts(eb); n != 0 {
		t.Fatalf("the replica that does not lead acted on the finding too (%d events)", n)
	}
}

// twoReplicas starts two brokers on a fresh PostgreSQL schema with a shared
// seal key; the first is initialised (its root token returned) and, started
// first, leads the background work.
func twoReplicas(t *testing.T) (a, b *Server, root string) {
	t.Helper()
	t.Setenv("QB_TEST_PG_DSN", postgresDSN(t))
	key := make([]byte, 32)
	rand.Read(key)
	t.Setenv("QB_TEST_SEAL", base64.StdEncoding.EncodeToString(key))
	a = startReplica(t, "QB_TEST_PG_DSN")
	root, _, err := a.Initialize(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b = startReplica(t, "QB_TEST_PG_DSN")
	return a, b, root
}
