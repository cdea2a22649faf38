package anomaly

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/audit"
)

// trail builds a crafted audit trail: events get consecutive seqs and a
// checkpoint line is interleaved every 25 lines, as the real sink does.
type trail struct {
	seq uint64
	evs []audit.Event
}

func (tr *trail) add(evs ...audit.Event) {
	for _, ev := range evs {
		tr.seq++
		ev.Seq = tr.seq
		ev.Version = audit.SchemaVersion
		tr.evs = append(tr.evs, ev)
	}
}

// jsonl renders the trail as the JSON lines of an audit file.
func (tr *trail) jsonl(t testing.TB) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i, ev := range tr.evs {
		if err := enc.Encode(ev); err != nil {
			t.Fatal(err)
		}
		if i%25 == 24 {
			fmt.Fprintf(&buf, `{"type":"checkpoint","seq":%d,"prev":"%064d","time":%q,"covers_from_seq":1,"covers_to_seq":%d,"chain_head":"%064d","key_id":"ed25519:0","sig":"AA==","v":2}`+"\n",
				ev.Seq, 0, ev.Time.Format(time.RFC3339Nano), ev.Seq, 0)
		}
	}
	return &buf
}

// replay runs the trail through Replay (JSON lines and all) with cfg.
func (tr *trail) replay(t testing.TB, cfg Config) []Finding {
	t.Helper()
	fs, err := Replay(tr.jsonl(t), cfg)
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	return fs
}

const (
	qpu = "qpu.aria-1"
	sim = "simulator"
)

// Monday 2 March 2026, 00:00 UTC.
var week1 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

func at(day time.Time, hh, mm, ss int) time.Time {
	return day.Add(time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute + time.Duration(ss)*time.Second)
}

// usual shot counts of the crafted agents: median 150, p90 200.
var usualShots = []int{100, 120, 150, 180, 200}

func jobEvent(agent, device string, when time.Time, shots int, accessor, addr string) audit.Event {
	return audit.Event{
		Time: when, Type: "issue", Action: "SubmitJob", Agent: agent, Role: "ci", AuthMethod: "approle",
		RemoteAddr: addr, Path: "/v1/quantum/jobtoken/ci", Provider: "ionq", Device: device, Shots: shots,
		Decision: audit.DecisionAllow, Accessor: accessor, JTI: fmt.Sprintf("jti-%d", when.UnixNano()),
		Owner: "team-q", EstimatedCostUSD: audit.USD(float64(shots) * 0.03),
	}
}

func loginEvent(agent string, when time.Time, accessor, addr string) audit.Event {
	return audit.Event{
		Time: when, Type: "login", Action: "Login", Agent: agent, Role: "ci", AuthMethod: "approle",
		RemoteAddr: addr, Decision: audit.DecisionAllow, Accessor: accessor,
		Hashed: map[string]string{"secret_id": "hmac-sha256:" + fmt.Sprintf("%064x", when.Unix())},
	}
}

// workday adds one ordinary working day for agent: a login at 09:00 and
// ten jobs on device between 09:05 and 16:35, every 50 minutes, from one
// address (ephemeral ports vary).
func (tr *trail) workday(agent string, day time.Time, device string) {
	acc := fmt.Sprintf("acc-%s-%s", agent, day.Format("0102"))
	tr.add(loginEvent(agent, at(day, 9, 0, 0), acc, "10.1.2.3:40000"))
	for i := range 10 {
		when := at(day, 9, 5+50*i, 7)
		tr.add(jobEvent(agent, device, when, usualShots[i%len(usualShots)], acc, fmt.Sprintf("10.1.2.3:%d", 40001+i)))
		tr.add(audit.Event{Time: when.Add(2 * time.Second), Type: "submit", Agent: agent, Provider: "ionq", Device: device,
			Decision: audit.DecisionAllow, JobID: fmt.Sprintf("job-%d", when.Unix()), Status: 200})
	}
}

// history adds a week (Mon 2 – Fri 6 March 2026) of ordinary work.
func (tr *trail) history(agent, device string) {
	for d := range 5 {
		tr.workday(agent, week1.AddDate(0, 0, d), device)
	}
}

// rulesOf summarises findings as "rule:severity:actions" strings.
func rulesOf(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s:%s:%v", f.Rule, f.Severity, f.Actions))
	}
	return out
}
