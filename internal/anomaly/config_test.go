package anomaly

import (
	"errors"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/qbroker/qbroker/internal/audit"
)

func TestDefaultConfigIsValidAndRoundTripsThroughYAML(t *testing.T) {
	def := DefaultConfig()
	if _, err := New(def); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	if _, err := New(Config{}); err != nil {
		t.Fatalf("zero config invalid: %v", err)
	}
	data, err := yaml.Marshal(def)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseConfig(data)
	if err != nil {
		t.Fatalf("ParseConfig(marshalled defaults): %v\n%s", err, data)
	}
	if _, err := New(back); err != nil {
		t.Fatalf("round-tripped defaults invalid: %v\n%s", err, data)
	}
	if back.Rules[4].Window != 5*time.Minute || back.Rules[0].Cooldown != time.Hour {
		t.Fatalf("durations lost in YAML: %+v", back.Rules)
	}
	var names []string
	for _, r := range def.Rules {
		names = append(names, r.Name)
	}
	if !slices.Equal(names, RuleNames()) {
		t.Fatalf("DefaultConfig rules %v, RuleNames %v", names, RuleNames())
	}
}

func TestParseConfigYAML(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
time_zone: Europe/Berlin
schedule:
  windows:
    - {days: [weekdays], start: "07:00", end: "19:00"}
role_schedules:
  nightly:
    windows: [{days: [daily], start: "00:00", end: "24:00"}]
hardware_devices: [ibm_brisbane]
rules:
  - name: burst
    min_count: 3
    factor: 2
  - name: first_device
    enabled: false
`))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// min_count 3 now flags 3 issuances in a minute; other burst fields
	// keep their defaults (escalation to suspend off schedule on hardware).
	var fs []Finding
	for i := range 3 {
		ev := jobEvent("x", "ibm_brisbane", at(monday2, 5, 0, i), 100, "", "") // 06:00 Berlin: off schedule
		ev.Role = "day"
		fs = append(fs, e.Observe(ev)...)
	}
	if got := rulesOf(fs); !slices.Equal(got, []string{"off_hours:medium:[alert]", "burst:critical:[suspend]"}) {
		t.Fatalf("findings %v", got)
	}
	// The nightly role works around the clock.
	ev := jobEvent("y", "ibm_brisbane", at(monday2, 2, 0, 0), 100, "", "")
	ev.Role = "nightly"
	if fs := e.Observe(ev); fs != nil {
		t.Fatalf("nightly role flagged: %v", fs)
	}

	if _, err := ParseConfig([]byte("rules:\n  - name: burst\n    factr: 3\n")); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("unknown key accepted: %v", err)
	}
	if _, err := ParseConfig(nil); err != nil {
		t.Fatalf("empty config: %v", err)
	}
}

func TestConfigValidationReportsEveryProblem(t *testing.T) {
	cfg := Config{
		TimeZone:         "Mars/Olympus_Mons",
		Schedule:         &Schedule{Windows: []Window{{Days: []string{"mon", "funday"}, Start: "20:00", End: "08:00"}}},
		AgentSchedules:   map[string]Schedule{"a": {TimeZone: "Nowhere/X", Windows: []Window{{Days: []string{"sat"}, Start: "8:00", End: "25:00"}}}},
		RoleSchedules:    map[string]Schedule{"r": {}},
		HardwarePrefixes: []string{""},
		MaxAgents:        -1,
		Rules: []RuleConfig{
			{Name: "exfiltration"},
			{Name: RuleBurst, Factor: 0.5, Severity: "urgent", Actions: []Action{"page"}, Statistic: "p90"},
			{Name: RuleBurst},
			{Name: RuleJobSize, Statistic: "mean", HistorySize: 5, MinHistory: 10, Cooldown: -time.Second},
			{Name: RuleRepeatedDenials, Count: 1, Escalate: &Escalation{}},
			{Name: RuleNewSource, PrefixV4: 33, Actions: []Action{}},
			{Name: RuleOffHours, EventTypes: []string{"checkpoint"}},
		},
	}
	_, err := New(cfg)
	var ce *ConfigError
	if !errors.As(err, &ce) || !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("got %v, want a *ConfigError wrapping ErrInvalidConfig", err)
	}
	for _, want := range []string{
		`time_zone "Mars/Olympus_Mons"`,
		`unknown day "funday"`,
		`schedule.windows[0]: end 08:00 is not after start 20:00`,
		`agent_schedules["a"]: time_zone "Nowhere/X"`,
		`start "8:00" is not HH:MM`,
		`end "25:00" is not HH:MM`,
		`role_schedules["r"]: no windows`,
		`hardware_prefixes[0]`,
		`max_agents -1`,
		`unknown rule "exfiltration"`,
		`rule "burst" configured twice`,
		`burst: factor 0.5 must be a number above 1`,
		`burst: unknown severity "urgent"`,
		`burst: unknown action "page"`,
		`rules[1] (burst): statistic does not apply`,
		`job_size: statistic "mean"`,
		`job_size: history_size 5 is below min_history 10`,
		`job_size: cooldown -1s is negative`,
		`repeated_denials: count 1 must be at least 2`,
		`rules[4] (repeated_denials): escalate does not apply`,
		`new_source: prefix_v4 33`,
		`new_source: at least one action`,
		`off_hours: event type "checkpoint"`,
	} {
		if !slices.ContainsFunc(ce.Problems, func(p string) bool { return strings.Contains(p, want) }) {
			t.Errorf("missing problem %q in:\n%s", want, strings.Join(ce.Problems, "\n"))
		}
	}
}

func TestScheduleIsDSTCorrect(t *testing.T) {
	e, err := New(Config{TimeZone: "America/New_York"})
	if err != nil {
		t.Fatal(err)
	}
	ny, _ := time.LoadLocation("America/New_York")
	// 12:30 UTC is 07:30 EST (off) before the spring change on Sunday
	// 8 March 2026 and 08:30 EDT (on) after it; the reverse around the
	// autumn change on Sunday 1 November 2026. A fixed UTC offset gets one
	// side of each wrong.
	for _, tc := range []struct {
		day     time.Time
		offHour bool
	}{
		{time.Date(2026, 3, 6, 12, 30, 0, 0, time.UTC), true},    // Fri, EST
		{time.Date(2026, 3, 9, 12, 30, 0, 0, time.UTC), false},   // Mon, EDT
		{time.Date(2026, 10, 30, 12, 30, 0, 0, time.UTC), false}, // Fri, EDT
		{time.Date(2026, 11, 2, 12, 30, 0, 0, time.UTC), true},   // Mon, EST
		{time.Date(2026, 3, 9, 23, 59, 0, 0, time.UTC), false},   // Mon 19:59 EDT
		{time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC), true},     // Mon 20:00 EDT: end is exclusive
		{time.Date(2026, 3, 7, 15, 0, 0, 0, time.UTC), true},     // Saturday
	} {
		wd := tc.day.In(ny).Weekday()
		ev := jobEvent("agent-"+tc.day.Format(time.RFC3339), sim, tc.day, 100, "", "")
		fs := e.Observe(ev)
		if got := len(fs) == 1 && fs[0].Rule == RuleOffHours; got != tc.offHour {
			t.Errorf("%s (%s %s): off-hours finding %v, want %v", tc.day, wd, tc.day.In(ny).Format("15:04 MST"), fs, tc.offHour)
		}
	}
}

func TestAgentScheduleWinsOverRoleAndDefault(t *testing.T) {
	e, err := New(Config{
		AgentSchedules: map[string]Schedule{"tokyo-bot": {TimeZone: "Asia/Tokyo", Windows: []Window{{Days: []string{"weekdays"}, Start: "09:00", End: "18:00"}}}},
		RoleSchedules:  map[string]Schedule{"ci": {Windows: []Window{{Days: []string{"daily"}, Start: "00:00", End: "24:00"}}}},
		Rules:          []RuleConfig{{Name: RuleOffHours, HardwareOnly: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	// 01:00 UTC Monday = 10:00 Tokyo: in tokyo-bot's schedule, although
	// outside the default and although its role "ci" would allow anything.
	if fs := e.Observe(jobEvent("tokyo-bot", qpu, at(monday2, 1, 0, 0), 100, "", "")); fs != nil {
		t.Fatalf("in-schedule flagged: %v", fs)
	}
	// 12:00 UTC = 21:00 Tokyo: off its schedule even though role ci is 24/7.
	if fs := e.Observe(jobEvent("tokyo-bot", qpu, at(monday2, 12, 0, 0), 100, "", "")); len(fs) != 1 {
		t.Fatalf("off-schedule not flagged: %v", fs)
	}
	// hardware_only: a simulator job at 3 AM by a default-schedule agent is fine.
	ev := jobEvent("other", sim, at(monday2, 3, 0, 0), 100, "", "")
	ev.Role = "none"
	if fs := e.Observe(ev); fs != nil {
		t.Fatalf("simulator flagged with hardware_only: %v", fs)
	}
	ev.Device = "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1"
	if fs := e.Observe(ev); len(fs) != 1 {
		t.Fatalf("Braket QPU ARN not hardware: %v", fs)
	}
	// Denied off-hours attempts are not "use".
	ev = jobEvent("third", qpu, at(monday2, 3, 0, 0), 100, "", "")
	ev.Role, ev.Decision = "none", audit.DecisionDeny
	if fs := e.Observe(ev); fs != nil {
		t.Fatalf("denied attempt counted as off-hours use: %v", fs)
	}
}

func TestRuleIndexesMatchNames(t *testing.T) {
	for i, n := range RuleNames() {
		if ruleIndex(n) != i {
			t.Fatalf("rule %q at %d", n, ruleIndex(n))
		}
	}
	if len(RuleNames()) != numRules || RuleNames()[idxOffHours] != RuleOffHours || RuleNames()[idxBurst] != RuleBurst ||
		RuleNames()[idxJobSize] != RuleJobSize || RuleNames()[idxFirstDevice] != RuleFirstDevice ||
		RuleNames()[idxDenials] != RuleRepeatedDenials || RuleNames()[idxNewSource] != RuleNewSource {
		t.Fatal("idx constants out of step with RuleNames")
	}
}

// The shipped reference configuration parses, validates and spells out
// exactly the defaults.
func TestReferenceConfigIsTheDefaults(t *testing.T) {
	data, err := os.ReadFile("rules.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	got, err := resolve(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want, err := resolve(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for i := range got.rules {
		g, w := got.rules[i], want.rules[i]
		g.Enabled, w.Enabled = nil, nil
		if !reflect.DeepEqual(g, w) {
			t.Errorf("rule %s: reference %+v, default %+v", g.Name, g, w)
		}
	}
	if !reflect.DeepEqual(got.defaultSched, want.defaultSched) || got.maxAgents != want.maxAgents || !slices.Equal(got.hwPrefixes, want.hwPrefixes) {
		t.Error("reference schedule/max_agents/hardware_prefixes differ from the defaults")
	}
}
