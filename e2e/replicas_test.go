package e2e

import (
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx": the test's schema and its checks
)

// lb is the test's load balancer: round robin over live replicas; a
// replica that refuses a connection is taken out (as a balancer's health
// check would), and the request in flight fails with 502.
type lb struct {
	mu       sync.Mutex
	backends []*url.URL
	dead     map[string]bool
	next     atomic.Uint64
}

func (l *lb) add(u string) {
	p, _ := url.Parse(u)
	l.mu.Lock()
	l.backends = append(l.backends, p)
	l.mu.Unlock()
}

func (l *lb) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	var live []*url.URL
	for _, b := range l.backends {
		if !l.dead[b.Host] {
			live = append(live, b)
		}
	}
	l.mu.Unlock()
	if len(live) == 0 {
		http.Error(w, "no replica", http.StatusBadGateway)
		return
	}
	target := live[l.next.Add(1)%uint64(len(live))]
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.Out.Host = pr.In.Host },
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			var op *net.OpError
			if errors.As(err, &op) || errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "EOF") {
				l.mu.Lock()
				if l.dead == nil {
					l.dead = map[string]bool{}
				}
				l.dead[target.Host] = true
				l.mu.Unlock()
			}
			http.Error(w, "replica unavailable", http.StatusBadGateway)
		},
	}
	rp.ServeHTTP(w, r)
}

var reBenchRow = regexp.MustCompile(`(?m)^\| flow \| \d+ \| (\d+) \| [\d.]+ \|.*\| (\d+) \|$`)

// Issue 11, criterion 2: three replicas on one PostgreSQL behind a load
// balancer, two standalone gateways, `qbroker bench` flow load through
// both gateways; one replica is SIGKILLed mid-run. No acknowledged request
// is lost (every acknowledged flow's job is in the database and its
// submission in an audit trail), and the load goes on on the others.
func TestReplicaKilledUnderLoad(t *testing.T) {
	base := os.Getenv("QBROKER_TEST_POSTGRES")
	if base == "" {
		t.Skip("QBROKER_TEST_POSTGRES not set: the replica test runs under `make test`")
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var b [6]byte
	rand.Read(b[:])
	schema := "qbroker_e2e_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec("DROP SCHEMA " + schema + " CASCADE") })
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	key := make([]byte, 32)
	rand.Read(key)
	env := baseEnv("QB_E2E_DSN="+u.String(), "QBROKER_SEAL_KEY="+base64.StdEncoding.EncodeToString(key))

	balancer := &lb{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lbURL := "http://" + ln.Addr().String()
	go http.Serve(ln, balancer)
	t.Cleanup(func() { ln.Close() })

	dir := t.TempDir()
	cfg := filepath.Join(dir, "qbroker.yaml")
	// A shots budget shared by the role across the replicas, generous
	// enough not to stop the load: it must come out exact.
	const budgetYAML = "budgets:\n  limits:\n    - {name: demo-shots, scope: role, match: demo, shots_per_day: 100000000}\n"
	if err := os.WriteFile(cfg, []byte("public_url: "+lbURL+"\nseal: {type: env, env: QBROKER_SEAL_KEY}\nstore: {type: postgres, dsn_env: QB_E2E_DSN}\nwatch_policies: false\n"+budgetYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	var replicas []*proc
	var root string
	for i := range 3 {
		// A free port of its own: a replica announces the public URL (the
		// balancer), not where it listens.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		p := startProc(t, "replica "+strconv.Itoa(i+1), env, "server", "--config", cfg, "--addr", addr, "--data", filepath.Join(dir, "r"+strconv.Itoa(i+1)))
		p.waitLine(reServerURL)
		if i == 0 {
			root = p.waitLine(reRootToken)[1]
		}
		replicas = append(replicas, p)
		balancer.add("http://" + addr)
	}

	key2 := randomSecret(t, "ionq-e2e-")
	simURL := startSim(t, key2)
	adm := adminEnv(lbURL, root)
	creds := provision(t, adm, "demo", "bench-agent", key2)
	out, _ := runCmd(t, adm, "", "token", "create-gateway")
	gwToken := strings.TrimSpace(out)
	var gateways []string
	for i := range 2 {
		g := startProc(t, "gateway "+strconv.Itoa(i+1), baseEnv("QBROKER_GATEWAY_TOKEN="+gwToken),
			"gateway", "--broker", lbURL, "--addr", "127.0.0.1:0", "--ionq-upstream", simURL)
		gateways = append(gateways, g.waitLine(reGatewayURL)[1])
	}

	// Two bench processes, one per gateway, for 8 s; replica 2 is killed at 3 s.
	benchOut := make([]string, 2)
	var wg sync.WaitGroup
	for i, gw := range gateways {
		wg.Go(func() {
			e := baseEnv("QBROKER_ADDR="+lbURL, "QBROKER_GATEWAY_ADDR="+gw, "QBROKER_ROLE_ID="+creds.roleID, "QBROKER_SECRET_ID="+creds.secretID)
			so, _, err := tryCmd(t, e, "", "bench", "--step", "flow", "--concurrency", "3", "--duration", "8s", "--warmup", "0s")
			if err != nil {
				t.Errorf("bench %d: %v", i+1, err)
			}
			benchOut[i] = so
		})
	}
	time.Sleep(3 * time.Second)
	if err := replicas[1].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	acked, failed := 0, 0
	for i, so := range benchOut {
		m := reBenchRow.FindStringSubmatch(so)
		if m == nil {
			t.Fatalf("bench %d printed no flow row:\n%s", i+1, so)
		}
		ops, _ := strconv.Atoi(m[1])
		errs, _ := strconv.Atoi(m[2])
		acked += ops
		failed += errs
	}
	t.Logf("under load with a replica killed: %d flows acknowledged, %d failed (in flight at the kill)", acked, failed)
	if acked < 50 {
		t.Fatalf("only %d flows acknowledged: the load did not go on", acked)
	}

	// Every acknowledged flow's job is recorded, and its submission audited.
	var jobs int
	if err := admin.QueryRow("SELECT count(*) FROM " + schema + ".jobs").Scan(&jobs); err != nil {
		t.Fatal(err)
	}
	submits := 0
	for i := range 3 {
		data, err := os.ReadFile(filepath.Join(dir, "r"+strconv.Itoa(i+1), "audit.log"))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			var ev struct{ Type, Decision string }
			if json.Unmarshal([]byte(line), &ev) == nil && ev.Type == "submit" && ev.Decision == "allow" {
				submits++
			}
		}
	}
	t.Logf("jobs recorded: %d; submissions audited: %d", jobs, submits)
	// Budgets exact: every recorded job had its reservation, and the shots
	// the budget counts are exactly those of the reservations that hold.
	var reserved, held int
	var shots float64
	if err := admin.QueryRow("SELECT count(*), count(*) FILTER (WHERE state <> 'released'), COALESCE(SUM(shots) FILTER (WHERE state <> 'released'), 0) FROM "+schema+".reservations").Scan(&reserved, &held, &shots); err != nil {
		t.Fatal(err)
	}
	var orphans int
	if err := admin.QueryRow("SELECT count(*) FROM " + schema + ".jobs j WHERE NOT EXISTS (SELECT 1 FROM " + schema + ".reservations r WHERE r.jti = j.jti)").Scan(&orphans); err != nil {
		t.Fatal(err)
	}
	t.Logf("reservations: %d (%d holding %v shots)", reserved, held, shots)
	if orphans != 0 || held < jobs || shots != float64(100*held) {
		t.Fatalf("budget not exact: %d jobs without a reservation, %d holding reservations for %d jobs, %v shots for %d reservations of 100", orphans, held, jobs, shots, held)
	}
	if jobs < acked || submits < acked {
		t.Fatalf("acknowledged %d flows but %d jobs recorded and %d submissions audited: acknowledged work was lost", acked, jobs, submits)
	}

	// The cluster goes on without replica 2: a clean run has no errors.
	e := baseEnv("QBROKER_ADDR="+lbURL, "QBROKER_GATEWAY_ADDR="+gateways[0], "QBROKER_ROLE_ID="+creds.roleID, "QBROKER_SECRET_ID="+creds.secretID)
	so, _ := runCmd(t, e, "", "bench", "--step", "flow", "--concurrency", "2", "--duration", "2s", "--warmup", "0s")
	m := reBenchRow.FindStringSubmatch(so)
	if m == nil || m[2] != "0" || m[1] == "0" {
		t.Fatalf("after the kill, a clean run: %q", so)
	}
}
