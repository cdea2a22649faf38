package e2e

import (
	"bufio"
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite": reading the store after the run
)

// Issue 7, criterion 2: kill the server with SIGKILL at random points
// while agents reserve and settle (20 kills); after the restarts the
// store's reservations and settlements are exactly what the audit trail
// records, and the budget is within its limit.
func TestBudgetsExactAcrossCrashes(t *testing.T) {
	if testing.Short() {
		t.Skip("20 kills and restarts: not in -short")
	}
	const kills = 20
	const shotsLimit = 100_000 // 1,000 flows of 100 shots: reached late in the run, or not at all on a slow machine
	key := randomSecret(t, "ionq-e2e-crash-")
	simURL := startSim(t, key)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfg := filepath.Join(dir, "qbroker.yaml")
	if err := os.WriteFile(cfg, []byte("data_dir: "+data+"\nwatch_policies: false\n"+
		"budgets:\n  limits:\n    - {name: demo-shots, scope: role, match: demo, shots_per_day: 100000}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	broker := "http://" + addr
	var servers []*proc
	start := func(n int) *proc {
		p := startProc(t, "server (start "+strconv.Itoa(n)+")", baseEnv(), "server", "--config", cfg, "--addr", addr)
		p.waitLine(reServerURL)
		servers = append(servers, p)
		return p
	}
	srv := start(1)
	root := srv.waitLine(reRootToken)[1]
	adm := adminEnv(broker, root)
	creds := provision(t, adm, "demo", "crash-agent", key)
	out, _ := runCmd(t, adm, "", "token", "create-gateway")
	gw := startProc(t, "gateway", baseEnv("QBROKER_GATEWAY_TOKEN="+strings.TrimSpace(out)),
		"gateway", "--broker", broker, "--addr", "127.0.0.1:0", "--ionq-upstream", simURL)
	gwURL := gw.waitLine(reGatewayURL)[1]

	// The load: six agents running whole flows (job token → submit →
	// poll until finished, which settles), pausing a little between flows
	// so that the budget runs out late in the run, not at once.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var stats crashStats
	for range 6 {
		wg.Go(func() { crashAgent(stop, broker, gwURL, creds, &stats) })
	}
	for k := range kills {
		time.Sleep(time.Duration(300+rand.IntN(900)) * time.Millisecond)
		if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-srv.done
		srv = start(k + 2)
	}
	close(stop)
	wg.Wait()
	// The last settlements in flight land, then a clean stop.
	time.Sleep(time.Second)
	srv.terminate()
	gw.terminate()

	store := readStore(t, filepath.Join(data, "qbroker.db"))
	trail := readTrail(t, data)
	var heldShots, auditShots int
	var heldUSD, auditUSD float64
	problems := 0
	fail := func(format string, args ...any) {
		problems++
		if problems <= 10 {
			t.Errorf(format, args...)
		}
	}
	for jti, r := range store {
		a := trail[jti]
		switch {
		case a.voided:
			if r.state != "released" {
				fail("%s: voided in the trail but %s in the store", jti, r.state)
			}
			continue
		case !a.issued:
			fail("%s: a reservation (%s) whose issuance the trail does not hold", jti, r.state)
			continue
		}
		switch r.state {
		case "released":
			fail("%s: released, but neither voided nor expired", jti)
		case "reserved":
			if a.redeemed || a.settled != nil {
				fail("%s: reserved in the store; the trail has redeemed=%v settled=%v", jti, a.redeemed, a.settled != nil)
			}
		case "confirmed":
			if !a.redeemed || a.settled != nil {
				fail("%s: confirmed in the store; the trail has redeemed=%v settled=%v", jti, a.redeemed, a.settled != nil)
			}
		case "settled":
			if !a.redeemed || a.settled == nil || *a.settled != r.actual {
				fail("%s: settled at %v in the store; the trail has redeemed=%v settled=%v", jti, r.actual, a.redeemed, a.settled)
			}
		}
		if r.state != "released" {
			heldShots += r.shots
			if r.state == "settled" {
				heldUSD += r.actual
			} else {
				heldUSD += r.estimated
			}
		}
	}
	issued, settledN, voidedN := 0, 0, 0
	for jti, a := range trail {
		if a.voided {
			voidedN++
			continue
		}
		if !a.issued {
			continue
		}
		issued++
		if _, ok := store[jti]; !ok {
			fail("%s: the trail records its issuance, the store has no reservation", jti)
			continue
		}
		auditShots += a.shots
		if a.settled != nil {
			settledN++
			auditUSD += *a.settled
		} else {
			auditUSD += a.estimated
		}
	}
	t.Logf("load: %d job tokens, %d submitted, %d read finished; %d budget refusals, %d failed calls (server down)",
		stats.tokens.Load(), stats.submitted.Load(), stats.finished.Load(), stats.refused.Load(), stats.failed.Load())
	recovered := map[string]int{}
	for _, p := range servers {
		for _, line := range strings.Split(p.stderr.String(), "\n") {
			var r map[string]any
			if json.Unmarshal([]byte(line), &r) == nil && r["msg"] == "recovered after a crash" {
				for _, k := range []string{"voided_grants", "voided_redemptions", "withdrawn_events", "settlements_completed"} {
					n, _ := r[k].(float64)
					recovered[k] += int(n)
				}
			}
		}
	}
	t.Logf("recovery at restart: %v", recovered)
	t.Logf("%d kills: %d reservations in the store (%d shots held), %d issuances in the trail (%d shots), %d settled, %d voided by recovery; limit %d shots",
		kills, len(store), heldShots, issued, auditShots, settledN, voidedN, shotsLimit)
	if heldShots != auditShots || heldUSD != auditUSD {
		t.Errorf("the store holds %d shots / $%v, the trail records %d shots / $%v", heldShots, heldUSD, auditShots, auditUSD)
	}
	if heldShots > shotsLimit {
		t.Errorf("the budget is over its limit: %d > %d shots", heldShots, shotsLimit)
	}
	if issued < 50 || settledN < 20 {
		t.Errorf("only %d issuances and %d settlements: the load did not run", issued, settledN)
	}
}

type storedReservation struct {
	state             string
	shots             int
	estimated, actual float64
}

// readStore reads every reservation of the SQLite store at path.
func readStore(t *testing.T, path string) map[string]storedReservation {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT jti, state, shots, estimated_usd, actual_usd FROM reservations`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]storedReservation{}
	for rows.Next() {
		var jti string
		var r storedReservation
		if err := rows.Scan(&jti, &r.state, &r.shots, &r.estimated, &r.actual); err != nil {
			t.Fatal(err)
		}
		out[jti] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

type trailedJob struct {
	issued, redeemed, voided bool
	shots                    int
	estimated                float64
	settled                  *float64
}

// readTrail folds every audit file in dir into what the trail says of
// each job token: an event counts unless a later correction withdraws it.
func readTrail(t *testing.T, dir string) map[string]*trailedJob {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "audit*.log"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no audit files in %s: %v", dir, err)
	}
	type ev struct {
		Seq      uint64   `json:"seq"`
		Type     string   `json:"type"`
		JTI      string   `json:"jti"`
		Decision string   `json:"decision"`
		Reason   string   `json:"reason"`
		Shots    int      `json:"shots"`
		Est      *float64 `json:"estimated_cost_usd"`
		Actual   *float64 `json:"actual_cost_usd"`
	}
	var evs []ev
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var e ev
			if json.Unmarshal(sc.Bytes(), &e) == nil && e.JTI != "" {
				evs = append(evs, e)
			}
		}
		fh.Close()
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].Seq < evs[j].Seq })
	out := map[string]*trailedJob{}
	for _, e := range evs {
		j := out[e.JTI]
		if j == nil {
			j = &trailedJob{}
			out[e.JTI] = j
		}
		withdrawn := e.Decision == "error" && strings.HasPrefix(e.Reason, "withdrawn:")
		switch {
		case e.Type == "issue" && e.Decision == "allow":
			j.issued, j.shots = true, e.Shots
			if e.Est != nil {
				j.estimated = *e.Est
			}
		case e.Type == "issue" && withdrawn:
			j.issued = false
		case e.Type == "redeem" && e.Decision == "allow":
			j.redeemed = true
		case e.Type == "redeem" && withdrawn:
			j.redeemed = false
		case e.Type == "settle" && e.Decision == "allow" && j.settled == nil:
			j.settled = e.Actual
		case e.Type == "settle" && withdrawn:
			j.settled = nil
		case e.Type == "recover":
			j.voided = true
		}
	}
	return out
}

type crashStats struct {
	tokens, submitted, finished, refused, failed atomic.Int64
}

// crashAgent is one agent's loop, written to shrug off a dead server: any
// failed call is counted and the flow starts over.
func crashAgent(stop <-chan struct{}, broker, gw string, creds agentCreds, st *crashStats) {
	hc := &http.Client{Timeout: 5 * time.Second}
	call := func(method, url, auth string, body []byte, out any) int {
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		if auth != "" {
			k, v, _ := strings.Cut(auth, ": ")
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			st.failed.Add(1)
			return 0
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if out != nil {
			json.Unmarshal(b, out)
		}
		return resp.StatusCode
	}
	pause := func(d time.Duration) bool {
		select {
		case <-stop:
			return false
		case <-time.After(d):
			return true
		}
	}
	login, _ := json.Marshal(map[string]string{"role_id": creds.roleID, "secret_id": creds.secretID})
	job := fmt.Appendf(nil, `{"type":"ionq.circuit.v1","backend":"simulator","shots":100,"input":%s}`, bellCircuit)
	var token string
	for pause(time.Duration(5+rand.IntN(10)) * time.Millisecond) {
		if token == "" {
			var a struct {
				Auth struct {
					ClientToken string `json:"client_token"`
				} `json:"auth"`
			}
			if call(http.MethodPost, broker+"/v1/auth/approle/login", "", login, &a) == http.StatusOK {
				token = a.Auth.ClientToken
			}
			continue
		}
		var jt struct {
			Data struct {
				Token string `json:"token"`
			} `json:"data"`
		}
		switch call(http.MethodPost, broker+"/v1/quantum/jobtoken/demo", "X-Vault-Token: "+token, []byte(`{"provider":"ionq","device":"simulator","shots":100}`), &jt) {
		case http.StatusOK:
			st.tokens.Add(1)
		case http.StatusForbidden, http.StatusTooManyRequests:
			st.refused.Add(1)
			continue
		default:
			continue
		}
		var sub struct {
			ID string `json:"id"`
		}
		if call(http.MethodPost, gw+"/ionq/v0.4/jobs", "Authorization: apiKey "+jt.Data.Token, job, &sub) != http.StatusCreated {
			continue
		}
		st.submitted.Add(1)
		for range 40 {
			var j struct {
				Status string `json:"status"`
			}
			if call(http.MethodGet, gw+"/ionq/v0.4/jobs/"+sub.ID, "Authorization: apiKey "+token, nil, &j) == http.StatusOK && j.Status == "completed" {
				st.finished.Add(1)
				break
			}
			if !pause(25 * time.Millisecond) {
				return
			}
		}
	}
}
