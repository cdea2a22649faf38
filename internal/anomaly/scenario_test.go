package anomaly

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/audit"
)

// Monday 9 March 2026, the day after the history week.
var monday2 = week1.AddDate(0, 0, 7)

func TestQuietDayTriggersNothing(t *testing.T) {
	var tr trail
	for _, a := range []string{"ci-bot", "lab-agent", "notebook"} {
		dev := qpu
		if a == "notebook" {
			dev = sim
		}
		tr.history(a, dev)
		tr.workday(a, monday2, dev) // the quiet day itself
	}
	// Ordinary noise: a single denial, token renewals, lookups.
	tr.add(audit.Event{Time: at(monday2, 11, 0, 0), Type: "decision", Agent: "ci-bot", Provider: "ionq", Device: "qpu.forte-1",
		Decision: audit.DecisionDeny, Reason: "policy forbids", Accessor: "acc-ci-bot-0309", RemoteAddr: "10.1.2.3:5000"})
	tr.add(audit.Event{Time: at(monday2, 12, 0, 0), Type: "renew", Agent: "lab-agent", Accessor: "acc-lab-agent-0309", RemoteAddr: "10.1.2.3:5001"})
	if fs := tr.replay(t, Config{}); len(fs) != 0 {
		t.Fatalf("a quiet week triggered findings: %v", fs)
	}
}

func Test3AMHardwareBurstSuspends(t *testing.T) {
	var tr trail
	tr.history("ci-bot", qpu)
	tr.history("lab-agent", qpu) // a bystander, who must not be named
	acc := "acc-ci-bot-night"
	tr.add(loginEvent("ci-bot", at(monday2, 3, 0, 0), acc, "10.1.2.3:41000"))
	for i := range 30 {
		tr.add(jobEvent("ci-bot", qpu, at(monday2, 3, 0, 1+i), usualShots[i%len(usualShots)], acc, fmt.Sprintf("10.1.2.3:%d", 41001+i)))
	}
	fs := tr.replay(t, Config{})
	got := rulesOf(fs)
	want := []string{"off_hours:medium:[alert]", "burst:critical:[suspend]"}
	if !slices.Equal(got, want) {
		t.Fatalf("findings %v, want %v", got, want)
	}
	for _, f := range fs {
		if f.Agent != "ci-bot" {
			t.Errorf("finding names agent %q", f.Agent)
		}
	}
	b := fs[1]
	if !b.Has(ActionSuspend) || b.Time != at(monday2, 3, 0, 10) || b.Seq == 0 {
		t.Errorf("burst finding %+v: want suspend at the 10th job of the minute with its seq", b)
	}
}

// The same burst in working hours, or on a simulator at night, is a burst
// but not a reason to suspend.
func TestBurstEscalatesOnlyOffHoursOnHardware(t *testing.T) {
	for _, tc := range []struct {
		name   string
		hour   int
		device string
		want   []string
	}{
		{"working hours on hardware", 14, qpu, []string{"burst:high:[alert]"}},
		{"3 AM on the simulator", 3, sim, []string{"off_hours:medium:[alert]", "burst:high:[alert]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tr trail
			tr.history("ci-bot", tc.device)
			for i := range 30 {
				tr.add(jobEvent("ci-bot", tc.device, at(monday2, tc.hour, 0, 1+i), 150, "acc-x", "10.1.2.3:1"))
			}
			if got := rulesOf(tr.replay(t, Config{})); !slices.Equal(got, tc.want) {
				t.Fatalf("findings %v, want %v", got, tc.want)
			}
		})
	}
}

func TestBurstNeedsMinimumCountAndFiresOncePerEpisode(t *testing.T) {
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	// A cold agent doing 9 a minute (below min_count 10) is never flagged.
	for m := range 5 {
		for i := range 9 {
			if fs := e.Observe(jobEvent("cold", sim, at(monday2, 10, m, i), 100, "", "")); len(fs) != 0 {
				t.Fatalf("cold agent flagged: %v", fs)
			}
		}
	}
	// 60 a minute for 5 minutes: one finding (cooldown 10m), not five.
	var n int
	for m := range 5 {
		for i := range 60 {
			n += len(e.Observe(jobEvent("busy", sim, at(monday2, 11, m, i), 100, "", "")))
		}
	}
	if n != 1 {
		t.Fatalf("%d burst findings over one 5-minute burst, want 1", n)
	}
}

func TestTenTimesShotsRequiresApproval(t *testing.T) {
	var tr trail
	tr.history("ci-bot", qpu)
	big := jobEvent("ci-bot", qpu, at(monday2, 10, 0, 0), 1500, "acc-ci-bot-0302", "10.1.2.3:40001") // 10× the median of 150
	tr.add(big)
	tr.add(jobEvent("ci-bot", qpu, at(monday2, 10, 30, 0), 150, "acc-ci-bot-0302", "10.1.2.3:40002")) // back to normal
	fs := tr.replay(t, Config{})
	if got, want := rulesOf(fs), []string{"job_size:high:[require_approval]"}; !slices.Equal(got, want) {
		t.Fatalf("findings %v, want %v", got, want)
	}
	if fs[0].Seq != tr.evs[len(tr.evs)-2].Seq {
		t.Errorf("finding seq %d, want the big job's %d", fs[0].Seq, tr.evs[len(tr.evs)-2].Seq)
	}
}

func TestJobSizeNeedsHistoryAndHonoursApprovals(t *testing.T) {
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	day := monday2
	// With only 9 jobs of history (min_history 10) a huge job is not judged.
	for i := range 9 {
		e.Observe(jobEvent("a", qpu, at(day, 9, i, 0), 100, "", ""))
	}
	if fs := e.Observe(jobEvent("a", qpu, at(day, 9, 30, 0), 5000, "", "")); len(fs) != 0 {
		t.Fatalf("judged without history: %v", fs)
	}
	// The 5000 was admitted to history (not flagged); build more normal history.
	for i := range 20 {
		e.Observe(jobEvent("a", qpu, at(day, 10, i, 0), 100, "", ""))
	}
	// 4.9× p90 of shots and cost is not anomalous at factor 5.
	if fs := e.Observe(jobEvent("a", qpu, at(day, 11, 0, 0), 490, "", "")); len(fs) != 0 {
		t.Fatalf("4.9× flagged: %v", fs)
	}
	// An approved big job is not flagged and teaches the history.
	ok := jobEvent("a", qpu, at(day, 11, 5, 0), 2000, "", "")
	ok.ApprovalID = "apr-1"
	if fs := e.Observe(ok); len(fs) != 0 {
		t.Fatalf("approved job flagged: %v", fs)
	}
	// A huge estimated cost alone (shots normal) is flagged.
	pricey := jobEvent("a", qpu, at(day, 12, 0, 0), 100, "", "")
	pricey.EstimatedCostUSD = audit.USD(500)
	fs := e.Observe(pricey)
	if len(fs) != 1 || fs[0].Rule != RuleJobSize || !fs[0].Has(ActionRequireApproval) {
		t.Fatalf("costly job: %v", fs)
	}
}

func TestRepeatedDenialsAlert(t *testing.T) {
	var tr trail
	tr.history("ci-bot", qpu)
	// Probing: devices and shot counts the role does not allow, 8 times in
	// two minutes (including a device never used before).
	for i := range 8 {
		tr.add(audit.Event{Time: at(monday2, 11, 0, 15*i), Type: "issue", Action: "SubmitJob", Agent: "ci-bot", Role: "ci",
			Provider: "ionq", Device: "qpu.forte-1", Shots: 100, Decision: audit.DecisionDeny,
			Reason: `role "ci" does not allow device ionq/qpu.forte-1`, Accessor: "acc-ci-bot-0306", RemoteAddr: "10.1.2.3:1"})
	}
	fs := tr.replay(t, Config{})
	if got, want := rulesOf(fs), []string{"repeated_denials:medium:[alert]"}; !slices.Equal(got, want) {
		t.Fatalf("findings %v, want %v", got, want)
	}
	if fs[0].Time != at(monday2, 11, 1, 0) {
		t.Errorf("fired at %v, want the 5th denial", fs[0].Time)
	}
}

func TestDenialsSpreadOutOrAnonymous(t *testing.T) {
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	deny := func(agent, addr string, when time.Time) []Finding {
		return e.Observe(audit.Event{Time: when, Type: "login", Agent: agent, Decision: audit.DecisionDeny, RemoteAddr: addr, Reason: "invalid role_id or secret_id"})
	}
	// 4 denials in the window, then 10 more each 2 minutes apart: never 5 in 5 minutes.
	for i := range 4 {
		if fs := deny("slow", "10.0.0.1:1", at(monday2, 9, 0, i)); fs != nil {
			t.Fatal(fs)
		}
	}
	for i := range 10 {
		if fs := deny("slow", "10.0.0.1:1", at(monday2, 9, 10+2*i, 0)); fs != nil {
			t.Fatalf("denial %d: %v", i, fs)
		}
	}
	// Failed logins without an agent are pinned on the source address,
	// whatever the port.
	var fs []Finding
	for i := range 5 {
		fs = append(fs, deny("", fmt.Sprintf("203.0.113.7:%d", 1000+i), at(monday2, 10, 0, i))...)
	}
	if len(fs) != 1 || fs[0].Agent != "" || fs[0].Rule != RuleRepeatedDenials {
		t.Fatalf("anonymous probing: %v", fs)
	}
}

func TestFirstDevice(t *testing.T) {
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	// A cold agent trying devices is learning, not anomalous.
	if fs := e.Observe(jobEvent("a", "qpu.forte-1", at(monday2, 9, 0, 0), 100, "", "")); len(fs) != 0 {
		t.Fatalf("cold agent: %v", fs)
	}
	for i := range 25 {
		e.Observe(jobEvent("a", sim, at(monday2, 9, 1+i, 0), 100, "", ""))
	}
	if fs := e.Observe(jobEvent("a", "qpu.forte-1", at(monday2, 10, 0, 0), 100, "", "")); len(fs) != 0 {
		t.Fatalf("device seen while cold flagged again: %v", fs)
	}
	fs := e.Observe(jobEvent("a", "qpu.aria-2", at(monday2, 10, 1, 0), 100, "", ""))
	if got := rulesOf(fs); !slices.Equal(got, []string{"first_device:low:[alert]"}) {
		t.Fatalf("new device: %v", got)
	}
	ev := jobEvent("a", "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1", at(monday2, 10, 2, 0), 100, "", "")
	ev.Provider = "braket"
	if fs := e.Observe(ev); len(fs) != 1 || fs[0].Detail != "first use of provider braket after 28 earlier uses" {
		t.Fatalf("new provider: %v", fs)
	}
	if fs := e.Observe(jobEvent("a", "qpu.aria-2", at(monday2, 10, 3, 0), 100, "", "")); len(fs) != 0 {
		t.Fatalf("second use flagged: %v", fs)
	}
}

func TestNewSource(t *testing.T) {
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	use := func(acc, addr string, m int) []Finding {
		return e.Observe(audit.Event{Time: at(monday2, 10, m, 0), Type: "lookup", Agent: "a", Accessor: acc, RemoteAddr: addr})
	}
	if fs := use("acc1", "10.1.2.3:1000", 0); fs != nil {
		t.Fatal(fs)
	}
	if fs := use("acc1", "10.1.2.3:2000", 1); fs != nil { // another port is the same source
		t.Fatalf("port change flagged: %v", fs)
	}
	if fs := use("acc2", "192.0.2.9:1", 2); fs != nil { // another token may start anywhere
		t.Fatalf("new token flagged: %v", fs)
	}
	fs := use("acc1", "198.51.100.4:443", 3) // the stolen token
	if got := rulesOf(fs); !slices.Equal(got, []string{"new_source:medium:[alert]"}) {
		t.Fatalf("new source: %v", got)
	}
	if fs := use("acc1", "198.51.100.4:444", 10); fs != nil {
		t.Fatalf("known source flagged again: %v", fs)
	}
	// IPv6: same /64 is the same source; another /64 is new.
	use("acc3", "[2001:db8:1:2::1]:1", 20)
	if fs := use("acc3", "[2001:db8:1:2::99]:1", 21); fs != nil {
		t.Fatalf("same /64 flagged: %v", fs)
	}
	if fs := use("acc3", "[2001:db8:9:9::1]:1", 22); len(fs) != 1 {
		t.Fatalf("other /64: %v", fs)
	}
}

func TestDisabledRuleAndOverrides(t *testing.T) {
	var tr trail
	tr.history("ci-bot", qpu)
	for i := range 30 {
		tr.add(jobEvent("ci-bot", qpu, at(monday2, 3, 0, 1+i), 150, "acc", "10.1.2.3:1"))
	}
	cfg := Config{Rules: []RuleConfig{
		{Name: RuleOffHours, Enabled: boolPtr(false)},
		{Name: RuleBurst, Escalate: &Escalation{Severity: SeverityCritical, Actions: []Action{ActionAlert, ActionSuspend}}},
	}}
	got := rulesOf(tr.replay(t, cfg))
	if want := []string{"burst:critical:[alert suspend]"}; !slices.Equal(got, want) {
		t.Fatalf("findings %v, want %v", got, want)
	}
}
