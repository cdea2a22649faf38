package anomaly

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/audit"
)

func TestStateIsBoundedAcrossManyAgents(t *testing.T) {
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const n = 100_000
	for i := range n {
		a := fmt.Sprintf("agent-%06d", i)
		e.Observe(jobEvent(a, qpu, at(monday2, 10, 0, i%60), 100, "acc-"+a, fmt.Sprintf("10.%d.%d.1:1", i/256%256, i%256)))
		e.Observe(audit.Event{Time: at(monday2, 10, 0, i%60), Type: "login", Decision: audit.DecisionDeny, RemoteAddr: fmt.Sprintf("203.0.%d.%d:9", i/256%256, i%256)})
	}
	if got := e.Agents(); got != 10000 {
		t.Fatalf("engine holds %d agents after %d distinct agents and sources, want the cap 10000", got, 2*n)
	}
	if len(e.agents) != 10000 {
		t.Fatalf("map holds %d", len(e.agents))
	}
	// The LRU list and the map agree.
	count := 0
	for s := e.head; s != nil; s = s.next {
		if e.agents[s.key] != s {
			t.Fatalf("list entry %q not in map", s.key)
		}
		count++
	}
	if count != len(e.agents) {
		t.Fatalf("list %d, map %d", count, len(e.agents))
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 64<<20 {
		t.Fatalf("heap grew by %d MiB for 10000 agents", grown>>20)
	}
	// The most recent are kept, the oldest forgotten.
	if _, ok := e.agents["agent-099999"]; !ok {
		t.Error("most recent agent forgotten")
	}
	if _, ok := e.agents["agent-000000"]; ok {
		t.Error("oldest agent kept")
	}
}

// A forgotten agent comes back cold: no false finding from lost history.
func TestEvictedAgentComesBackCold(t *testing.T) {
	e, err := New(Config{MaxAgents: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		e.Observe(jobEvent("a", qpu, at(monday2, 9, i, 0), 100, "acc", "10.0.0.1:1"))
	}
	e.Observe(jobEvent("b", qpu, at(monday2, 10, 0, 0), 100, "", ""))
	e.Observe(jobEvent("c", qpu, at(monday2, 10, 1, 0), 100, "", "")) // evicts a
	if _, ok := e.agents["a"]; ok {
		t.Fatal("a not evicted")
	}
	// New device, new address for the old accessor, big job: a is cold now.
	if fs := e.Observe(jobEvent("a", "qpu.forte-1", at(monday2, 10, 2, 0), 5000, "acc", "192.0.2.1:1")); fs != nil {
		t.Fatalf("cold agent flagged: %v", fs)
	}
}

func TestPerAgentCollectionsAreCapped(t *testing.T) {
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5000 {
		when := at(monday2, 10, 0, 0).Add(0)
		ev := jobEvent("greedy", fmt.Sprintf("qpu.dev-%d", i), when, 100+i, fmt.Sprintf("acc-%d", i), fmt.Sprintf("10.0.%d.%d:1", i/256, i%256))
		ev.Provider = fmt.Sprintf("p%d", i%100)
		e.Observe(ev)
		// the same token hopping addresses
		e.Observe(audit.Event{Time: when, Type: "lookup", Agent: "greedy", Accessor: "hopper", RemoteAddr: fmt.Sprintf("198.51.%d.%d:1", i/256, i%256)})
	}
	s := e.agents["greedy"]
	if len(s.devices) > 64 || len(s.accessors) > 16 || len(s.accOrder) > 16 || len(s.shots.vals) > 100 || len(s.costs.vals) > 100 {
		t.Fatalf("unbounded state: devices %d, accessors %d/%d, shots %d, costs %d",
			len(s.devices), len(s.accessors), len(s.accOrder), len(s.shots.vals), len(s.costs.vals))
	}
	for acc, addrs := range s.accessors {
		if len(addrs) > 8 {
			t.Fatalf("accessor %s holds %d addresses", acc, len(addrs))
		}
	}
	if len(s.denials) > 5 {
		t.Fatalf("denials %d", len(s.denials))
	}
}

func TestReplaySkipsCheckpointsAndReportsBadLines(t *testing.T) {
	var tr trail
	tr.history("ci-bot", qpu)
	buf := tr.jsonl(t)
	if !bytes.Contains(buf.Bytes(), []byte(`"type":"checkpoint"`)) {
		t.Fatal("crafted trail has no checkpoint lines")
	}
	if _, err := Replay(bytes.NewReader(buf.Bytes()), Config{}); err != nil {
		t.Fatalf("trail with checkpoints: %v", err)
	}
	lines := strings.Count(buf.String(), "\n")
	big := jobEvent("ci-bot", qpu, at(monday2, 10, 0, 0), 1500, "", "")
	line, _ := json.Marshal(big)
	buf.Write(line)
	buf.WriteString("\n\n{\"seq\":9999,\"time\":\"yesterday\"\n")
	fs, err := Replay(buf, Config{})
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), fmt.Sprintf("line %d", lines+3)) {
		t.Fatalf("got %v, want ErrMalformed naming line %d", err, lines+3)
	}
	if len(fs) != 1 || fs[0].Rule != RuleJobSize {
		t.Fatalf("findings before the bad line: %v", fs)
	}
	if _, err := Replay(strings.NewReader(`{"seq":1,"time":"2026-03-02T10:00:00Z"}`+"\n"), Config{}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("event without type: %v", err)
	}
	if _, err := Replay(strings.NewReader(""), Config{MaxAgents: -5}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("bad config: %v", err)
	}
}

func TestWriteTableAndJSON(t *testing.T) {
	fs := []Finding{
		{Rule: RuleBurst, Severity: SeverityCritical, Actions: []Action{ActionSuspend}, Agent: "evil\tname\nx", Time: at(monday2, 3, 0, 10), Seq: 42, Detail: "30 issue events"},
		{Rule: RuleRepeatedDenials, Severity: SeverityMedium, Actions: []Action{ActionAlert}, Time: at(monday2, 4, 0, 0), Seq: 50, Detail: "5 denials"},
	}
	var tb bytes.Buffer
	if err := WriteTable(&tb, fs); err != nil {
		t.Fatal(err)
	}
	out := tb.String()
	if n := strings.Count(out, "\n"); n != 3 {
		t.Fatalf("table has %d lines (an agent name broke it?):\n%s", n, out)
	}
	for _, want := range []string{"RULE", "2026-03-09T03:00:10Z", "42", "burst", "critical", "suspend", "evil name x", "repeated_denials"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	var jb bytes.Buffer
	if err := WriteJSON(&jb, fs); err != nil {
		t.Fatal(err)
	}
	var back []Finding
	if err := json.Unmarshal(jb.Bytes(), &back); err != nil || len(back) != 2 || back[0].Seq != 42 || !back[0].Has(ActionSuspend) {
		t.Fatalf("JSON round trip: %v %+v", err, back)
	}
	jb.Reset()
	if err := WriteJSON(&jb, nil); err != nil || strings.TrimSpace(jb.String()) != "[]" {
		t.Fatalf("no findings as JSON: %q %v", jb.String(), err)
	}
}

func BenchmarkObserve(b *testing.B) {
	e, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	// 1000 agents with full histories, then steady traffic across them.
	evs := make([]audit.Event, 0, 4096)
	for i := range 4096 {
		a := fmt.Sprintf("agent-%d", i%1000)
		evs = append(evs, jobEvent(a, qpu, at(monday2, 10, i/60, i%60), usualShots[i%5], "acc-"+a, "10.1.2.3:4"))
	}
	for _, ev := range evs {
		e.Observe(ev)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		ev := evs[i%len(evs)]
		ev.Time = ev.Time.Add(time.Duration(i/len(evs)) * time.Hour)
		e.Observe(ev)
	}
}
