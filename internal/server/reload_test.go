package server

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/bench"
	"github.com/qbroker/qbroker/internal/policy"
)

func demoPolicy(t *testing.T) string {
	t.Helper()
	for _, f := range policy.DefaultFiles() {
		if f.Name == "demo.cedar" {
			return string(f.Data)
		}
	}
	t.Fatal("no demo.cedar among the default policies")
	return ""
}

// writeAtomic replaces path the way editors and config management do.
func writeAtomic(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func startDevWithPolicy(t *testing.T, path string) *Dev {
	t.Helper()
	return startDevWith(t, DevOptions{PolicyFiles: []string{path}})
}

// startDevWith starts a dev server on free loopback ports in a temporary
// data dir, with o's other options.
func startDevWith(t *testing.T, o DevOptions) *Dev {
	t.Helper()
	o.Addr, o.GatewayAddr, o.SimAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	d, err := StartDev(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	return d
}

// Policies swapped 100 times under load: no request fails, and a broken
// file leaves the rules in force.
func TestHotReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agents.cedar")
	base := demoPolicy(t)
	variant := base + "\n@id(\"no-big-qpu-jobs\")\nforbid (principal, action == Action::\"SubmitJob\", resource) when { resource.kind == \"qpu\" && context.shots > 1000 };\n"
	writeAtomic(t, path, base)
	d := startDevWithPolicy(t, path)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var res bench.Result
	var benchErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		res, benchErr = bench.Run(ctx, bench.Options{
			BrokerAddr: d.BrokerURL, GatewayAddr: d.GatewayURL, RoleID: d.RoleID, SecretID: d.SecretID,
			Step: bench.StepJobToken, Concurrency: 8, Duration: 3 * time.Second, Warmup: -1,
		})
	}()
	time.Sleep(200 * time.Millisecond)
	for i := range 100 {
		data := base
		if i%2 == 0 {
			data = variant
		}
		writeAtomic(t, path, data)
		if err := d.Reload(ctx); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	wg.Wait()
	if benchErr != nil {
		t.Fatal(benchErr)
	}
	if res.Errors != 0 || res.Ops == 0 {
		t.Fatalf("under reloads: %d ops, %d errors (first: %s)", res.Ops, res.Errors, res.FirstError)
	}
	t.Logf("%d job tokens issued across 100 reloads, 0 errors", res.Ops)

	// A broken file is refused and the rules in force stay.
	before := d.Broker.Policy().PolicyIDs()
	writeAtomic(t, path, base+"\npermit (principal, action, resource) when { this is not cedar };\n")
	if err := d.Reload(ctx); err == nil || !strings.Contains(err.Error(), "agents.cedar") {
		t.Fatalf("broken file: want a refusal naming the file, got %v", err)
	}
	if after := d.Broker.Policy().PolicyIDs(); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("a refused reload changed the policy set: %v → %v", before, after)
	}
	e := &env{t: t, d: d, hc: &http.Client{Timeout: 10 * time.Second}}
	agent := e.mustLogin(d.RoleID, d.SecretID)
	e.mustJobToken(agent.ClientToken, "simulator", 100, "")
	var refused int
	for _, ev := range e.events() {
		if ev.Action == "ReloadPolicy" && ev.Decision == "deny" && strings.Contains(ev.Error, "agents.cedar") {
			refused++
		}
	}
	// The file watcher may refuse the same file once more on its own.
	if refused < 1 {
		t.Fatal("the refused reload was not audited")
	}
}

// A changed file is picked up without a signal: the watcher reloads it.
func TestPolicyFileWatcherReloads(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agents.cedar")
	base := demoPolicy(t)
	writeAtomic(t, path, base)
	d := startDevWithPolicy(t, path)
	e := &env{t: t, d: d, hc: &http.Client{Timeout: 10 * time.Second}}
	agent := e.mustLogin(d.RoleID, d.SecretID)
	e.mustJobToken(agent.ClientToken, "simulator", 100, "")

	writeAtomic(t, path, base+"\n@id(\"maintenance-window\")\nforbid (principal, action == Action::\"SubmitJob\", resource);\n")
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := e.jobToken(agent.ClientToken, "demo", "simulator", 100, "")
		if r.status == http.StatusForbidden && strings.Contains(r.msg(), "maintenance-window") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the watcher never applied the new policy: last answer %s", r)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Reads at the gateway are decided by policy with the Job as the resource:
// a role whose policy forbids results can see its job's status, not its
// results.
func TestGatewayReadsAreDecidedByPolicy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agents.cedar")
	writeAtomic(t, path, demoPolicy(t)+"\n@id(\"demo-no-results\")\nforbid (principal in Role::\"demo\", action == Action::\"ReadResult\", resource);\n")
	d := startDevWithPolicy(t, path)
	e := &env{t: t, d: d, hc: &http.Client{Timeout: 10 * time.Second}}
	agent := e.mustLogin(d.RoleID, d.SecretID)
	id := e.mustSubmit(e.mustJobToken(agent.ClientToken, "simulator", 100, "").Token, bell())
	want(t, "status read", e.readJob("apiKey", agent.ClientToken, id), http.StatusOK)
	r := e.do(http.MethodGet, d.GatewayURL+"/ionq/v0.4/jobs/"+id+"/results/probabilities", "", "Authorization", "apiKey "+agent.ClientToken)
	want(t, "results read", r, http.StatusForbidden, "demo-no-results")
	var denied int
	for _, ev := range e.events() {
		if ev.Type == "decision" && ev.Action == "ReadResult" && ev.JobID == id {
			denied++
		}
	}
	if denied != 1 {
		t.Fatalf("want one audited ReadResult refusal, got %d", denied)
	}
}
