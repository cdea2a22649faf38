package anomaly

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Severity grades a finding.
type Severity string

// Severities, lowest first.
const (
	SeverityLow      Severity = "low"
	SeverityMedium   Severity = "medium"
	SeverityHigh     Severity = "high"
	SeverityCritical Severity = "critical"
)

// Action is what the broker should do about a finding. The engine only
// names actions; the broker performs them.
type Action string

// Actions.
const (
	// ActionAlert: send the finding to the alert webhook (every finding is
	// also recorded in the audit trail).
	ActionAlert Action = "alert"
	// ActionRequireApproval: hold the agent's next requests for a human
	// approval.
	ActionRequireApproval Action = "require_approval"
	// ActionSuspend: suspend the agent and revoke all its tokens.
	ActionSuspend Action = "suspend"
)

// Rule names, stable: they appear in configuration and in findings.
const (
	RuleOffHours        = "off_hours"
	RuleBurst           = "burst"
	RuleJobSize         = "job_size"
	RuleFirstDevice     = "first_device"
	RuleRepeatedDenials = "repeated_denials"
	RuleNewSource       = "new_source"
)

// numRules is the number of rules; a rule's index (idxOffHours, …) is its
// evaluation order and its slot in per-agent state.
const numRules = 6

// RuleNames returns the names of all rules, in evaluation order.
func RuleNames() []string {
	return []string{RuleOffHours, RuleBurst, RuleJobSize, RuleFirstDevice, RuleRepeatedDenials, RuleNewSource}
}

func ruleIndex(name string) int { return slices.Index(RuleNames(), name) }

// ErrInvalidConfig is wrapped by every configuration error; the concrete
// error is a *ConfigError listing every problem found.
var ErrInvalidConfig = errors.New("anomaly: invalid config")

// ConfigError lists every problem found in a configuration at once.
type ConfigError struct {
	Problems []string
}

func (e *ConfigError) Error() string {
	return "anomaly: invalid config: " + strings.Join(e.Problems, "; ")
}

// Unwrap makes errors.Is(err, ErrInvalidConfig) true.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

// Config is the anomaly engine's configuration. The zero value means all
// defaults (see [DefaultConfig]); a rule listed in Rules overrides only the
// fields it sets, on top of that rule's defaults.
type Config struct {
	// TimeZone (IANA name) in which schedules are read. Default "UTC".
	TimeZone string `yaml:"time_zone"`
	// Schedule is when agents are expected to work. Default: weekdays
	// (mon–fri) 08:00–20:00 in TimeZone.
	Schedule *Schedule `yaml:"schedule,omitempty"`
	// AgentSchedules and RoleSchedules override Schedule for an agent or a
	// role; an agent's own schedule wins over its role's.
	AgentSchedules map[string]Schedule `yaml:"agent_schedules,omitempty"`
	RoleSchedules  map[string]Schedule `yaml:"role_schedules,omitempty"`
	// HardwarePrefixes: a device whose name starts with one of these is
	// hardware. Default ["qpu"]. A Braket device ARN with device type
	// "qpu" (…:device/qpu/…) is always hardware.
	HardwarePrefixes []string `yaml:"hardware_prefixes,omitempty"`
	// HardwareDevices: further device names that are hardware (exact).
	HardwareDevices []string `yaml:"hardware_devices,omitempty"`
	// MaxAgents caps the agents (and, for repeated_denials, anonymous
	// sources) the engine keeps state for; the least recently seen is
	// forgotten first. Default 10000.
	MaxAgents int `yaml:"max_agents,omitempty"`
	// Rules overrides rules by name.
	Rules []RuleConfig `yaml:"rules,omitempty"`
}

// Schedule is a set of weekly windows of wall-clock time.
type Schedule struct {
	// TimeZone overrides Config.TimeZone for this schedule.
	TimeZone string   `yaml:"time_zone,omitempty"`
	Windows  []Window `yaml:"windows"`
}

// Window is a daily stretch of wall-clock time on some weekdays.
type Window struct {
	// Days: mon tue wed thu fri sat sun (or full names), or "weekdays",
	// "weekend", "daily".
	Days []string `yaml:"days"`
	// Start and End are "HH:MM" wall-clock times; Start is included, End
	// is not, End may be "24:00" and must be after Start (split a window
	// that crosses midnight in two).
	Start string `yaml:"start"`
	End   string `yaml:"end"`
}

// Escalation replaces a burst finding's severity and actions when the
// burst is off schedule on a hardware device.
type Escalation struct {
	Severity Severity `yaml:"severity"`
	Actions  []Action `yaml:"actions"`
}

// RuleConfig configures one rule. Zero fields keep the rule's default.
// Fields marked with rule names apply only to those rules; setting one on
// another rule is a configuration error.
type RuleConfig struct {
	Name     string   `yaml:"name"`
	Enabled  *bool    `yaml:"enabled,omitempty"`
	Severity Severity `yaml:"severity,omitempty"`
	Actions  []Action `yaml:"actions,omitempty"`
	// Cooldown: after a finding, the same rule stays quiet for the same
	// agent this long (one finding per episode).
	Cooldown time.Duration `yaml:"cooldown,omitempty"`

	// EventTypes (off_hours, burst, job_size, first_device): audit event
	// types the rule looks at.
	EventTypes []string `yaml:"event_types,omitempty"`
	// HardwareOnly (off_hours): only events on hardware devices count.
	HardwareOnly bool `yaml:"hardware_only,omitempty"`

	// Factor (burst, job_size): how far above the baseline is anomalous.
	Factor float64 `yaml:"factor,omitempty"`
	// MinCount (burst): issuances in one minute needed before a burst is
	// considered at all, so that quiet agents are never flagged.
	MinCount int `yaml:"min_count,omitempty"`
	// BaselineMinutes (burst): span, in active minutes, of the rolling
	// baseline (an exponential moving average of issuances per active
	// minute).
	BaselineMinutes int `yaml:"baseline_minutes,omitempty"`
	// Escalate (burst): severity and actions of a burst off schedule on
	// hardware.
	Escalate *Escalation `yaml:"escalate,omitempty"`

	// Statistic (job_size): "median" or "p90" of the agent's history.
	Statistic string `yaml:"statistic,omitempty"`
	// MinHistory (job_size, first_device): the agent's past jobs needed
	// before the rule judges it.
	MinHistory int `yaml:"min_history,omitempty"`
	// HistorySize (job_size): past jobs remembered per agent.
	HistorySize int `yaml:"history_size,omitempty"`
	// MinShots and MinCostUSD (job_size): jobs at or below these are never
	// flagged, whatever the history.
	MinShots   int     `yaml:"min_shots,omitempty"`
	MinCostUSD float64 `yaml:"min_cost_usd,omitempty"`

	// MaxDevices (first_device): providers and devices remembered per
	// agent; once full, new ones are neither remembered nor flagged.
	MaxDevices int `yaml:"max_devices,omitempty"`

	// Count and Window (repeated_denials): Count denials within Window.
	Count  int           `yaml:"count,omitempty"`
	Window time.Duration `yaml:"window,omitempty"`

	// MaxAccessors and MaxAddresses (new_source): tokens remembered per
	// agent and source addresses per token (oldest forgotten first).
	MaxAccessors int `yaml:"max_accessors,omitempty"`
	MaxAddresses int `yaml:"max_addresses,omitempty"`
	// PrefixV4 and PrefixV6 (new_source): addresses in the same prefix are
	// the same source (ports are always ignored).
	PrefixV4 int `yaml:"prefix_v4,omitempty"`
	PrefixV6 int `yaml:"prefix_v6,omitempty"`
}

func boolPtr(b bool) *bool { return &b }

// DefaultConfig returns the defaults, every rule spelled out.
func DefaultConfig() Config {
	return Config{
		TimeZone: "UTC",
		Schedule: &Schedule{Windows: []Window{{
			Days: []string{"mon", "tue", "wed", "thu", "fri"}, Start: "08:00", End: "20:00",
		}}},
		HardwarePrefixes: []string{"qpu"},
		MaxAgents:        10000,
		Rules: []RuleConfig{
			{
				Name: RuleOffHours, Enabled: boolPtr(true), Severity: SeverityMedium,
				Actions: []Action{ActionAlert}, Cooldown: time.Hour,
				EventTypes: []string{"issue", "submit"},
			},
			{
				Name: RuleBurst, Enabled: boolPtr(true), Severity: SeverityHigh,
				Actions: []Action{ActionAlert}, Cooldown: 10 * time.Minute,
				EventTypes: []string{"issue"}, Factor: 5, MinCount: 10, BaselineMinutes: 30,
				Escalate: &Escalation{Severity: SeverityCritical, Actions: []Action{ActionSuspend}},
			},
			{
				Name: RuleJobSize, Enabled: boolPtr(true), Severity: SeverityHigh,
				Actions: []Action{ActionRequireApproval}, Cooldown: 10 * time.Minute,
				EventTypes: []string{"issue"}, Statistic: "p90", Factor: 5,
				MinHistory: 10, HistorySize: 100, MinShots: 100, MinCostUSD: 1,
			},
			{
				Name: RuleFirstDevice, Enabled: boolPtr(true), Severity: SeverityLow,
				Actions:    []Action{ActionAlert},
				EventTypes: []string{"issue"}, MinHistory: 20, MaxDevices: 64,
			},
			{
				Name: RuleRepeatedDenials, Enabled: boolPtr(true), Severity: SeverityMedium,
				Actions: []Action{ActionAlert}, Cooldown: 10 * time.Minute,
				Count: 5, Window: 5 * time.Minute,
			},
			{
				Name: RuleNewSource, Enabled: boolPtr(true), Severity: SeverityMedium,
				Actions: []Action{ActionAlert}, Cooldown: time.Minute,
				MaxAccessors: 16, MaxAddresses: 8, PrefixV4: 32, PrefixV6: 64,
			},
		},
	}
}

// ParseConfig decodes YAML strictly (unknown keys are errors). It does not
// validate: [New] does, reporting every problem at once. Empty input is
// the zero Config (all defaults).
func ParseConfig(data []byte) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return c, nil
}

// ruleField is a rule-specific field and the rules it applies to.
type ruleField struct {
	name  string
	rules []string
	set   func(*RuleConfig) bool
}

func ruleFields() []ruleField {
	return []ruleField{
		{"event_types", []string{RuleOffHours, RuleBurst, RuleJobSize, RuleFirstDevice}, func(r *RuleConfig) bool { return r.EventTypes != nil }},
		{"hardware_only", []string{RuleOffHours}, func(r *RuleConfig) bool { return r.HardwareOnly }},
		{"factor", []string{RuleBurst, RuleJobSize}, func(r *RuleConfig) bool { return r.Factor != 0 }},
		{"min_count", []string{RuleBurst}, func(r *RuleConfig) bool { return r.MinCount != 0 }},
		{"baseline_minutes", []string{RuleBurst}, func(r *RuleConfig) bool { return r.BaselineMinutes != 0 }},
		{"escalate", []string{RuleBurst}, func(r *RuleConfig) bool { return r.Escalate != nil }},
		{"statistic", []string{RuleJobSize}, func(r *RuleConfig) bool { return r.Statistic != "" }},
		{"min_history", []string{RuleJobSize, RuleFirstDevice}, func(r *RuleConfig) bool { return r.MinHistory != 0 }},
		{"history_size", []string{RuleJobSize}, func(r *RuleConfig) bool { return r.HistorySize != 0 }},
		{"min_shots", []string{RuleJobSize}, func(r *RuleConfig) bool { return r.MinShots != 0 }},
		{"min_cost_usd", []string{RuleJobSize}, func(r *RuleConfig) bool { return r.MinCostUSD != 0 }},
		{"max_devices", []string{RuleFirstDevice}, func(r *RuleConfig) bool { return r.MaxDevices != 0 }},
		{"count", []string{RuleRepeatedDenials}, func(r *RuleConfig) bool { return r.Count != 0 }},
		{"window", []string{RuleRepeatedDenials}, func(r *RuleConfig) bool { return r.Window != 0 }},
		{"max_accessors", []string{RuleNewSource}, func(r *RuleConfig) bool { return r.MaxAccessors != 0 }},
		{"max_addresses", []string{RuleNewSource}, func(r *RuleConfig) bool { return r.MaxAddresses != 0 }},
		{"prefix_v4", []string{RuleNewSource}, func(r *RuleConfig) bool { return r.PrefixV4 != 0 }},
		{"prefix_v6", []string{RuleNewSource}, func(r *RuleConfig) bool { return r.PrefixV6 != 0 }},
	}
}

// overlay returns d with every field that o sets.
func overlay(d, o RuleConfig) RuleConfig {
	if o.Enabled != nil {
		d.Enabled = o.Enabled
	}
	if o.Severity != "" {
		d.Severity = o.Severity
	}
	if o.Actions != nil {
		d.Actions = o.Actions
	}
	if o.Cooldown != 0 {
		d.Cooldown = o.Cooldown
	}
	if o.EventTypes != nil {
		d.EventTypes = o.EventTypes
	}
	d.HardwareOnly = d.HardwareOnly || o.HardwareOnly
	setF := func(dst *float64, v float64) {
		if v != 0 {
			*dst = v
		}
	}
	setI := func(dst *int, v int) {
		if v != 0 {
			*dst = v
		}
	}
	setF(&d.Factor, o.Factor)
	setI(&d.MinCount, o.MinCount)
	setI(&d.BaselineMinutes, o.BaselineMinutes)
	if o.Escalate != nil {
		d.Escalate = o.Escalate
	}
	if o.Statistic != "" {
		d.Statistic = o.Statistic
	}
	setI(&d.MinHistory, o.MinHistory)
	setI(&d.HistorySize, o.HistorySize)
	setI(&d.MinShots, o.MinShots)
	setF(&d.MinCostUSD, o.MinCostUSD)
	setI(&d.MaxDevices, o.MaxDevices)
	setI(&d.Count, o.Count)
	if o.Window != 0 {
		d.Window = o.Window
	}
	setI(&d.MaxAccessors, o.MaxAccessors)
	setI(&d.MaxAddresses, o.MaxAddresses)
	setI(&d.PrefixV4, o.PrefixV4)
	setI(&d.PrefixV6, o.PrefixV6)
	return d
}

// resolved is a validated configuration with defaults applied.
type resolved struct {
	rules         [numRules]RuleConfig
	defaultSched  *schedule
	agentSched    map[string]*schedule
	roleSched     map[string]*schedule
	hwPrefixes    []string
	hwDevices     map[string]bool
	maxAgents     int
	typeSets      [numRules]map[string]bool
	burstAlpha    float64
	jobPercentile float64
}

// resolve applies defaults to cfg and validates the result, collecting
// every problem.
func resolve(cfg Config) (*resolved, error) {
	var probs []string
	add := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	def := DefaultConfig()
	r := &resolved{maxAgents: def.MaxAgents, hwPrefixes: def.HardwarePrefixes, hwDevices: map[string]bool{}}

	tz := cfg.TimeZone
	if tz == "" {
		tz = def.TimeZone
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		add("time_zone %q: unknown time zone", tz)
		loc = time.UTC
	}
	sched := def.Schedule
	if cfg.Schedule != nil {
		sched = cfg.Schedule
	}
	r.defaultSched = compileSchedule("schedule", *sched, loc, add)
	r.agentSched = compileSchedules("agent_schedules", cfg.AgentSchedules, loc, add)
	r.roleSched = compileSchedules("role_schedules", cfg.RoleSchedules, loc, add)
	if cfg.HardwarePrefixes != nil {
		r.hwPrefixes = cfg.HardwarePrefixes
	}
	for i, p := range r.hwPrefixes {
		if p == "" {
			add("hardware_prefixes[%d]: empty prefix would make every device hardware", i)
		}
	}
	for _, d := range cfg.HardwareDevices {
		r.hwDevices[d] = true
	}
	switch {
	case cfg.MaxAgents < 0:
		add("max_agents %d: must be positive", cfg.MaxAgents)
	case cfg.MaxAgents > 0:
		r.maxAgents = cfg.MaxAgents
	}

	copy(r.rules[:], def.Rules)
	seen := map[string]bool{}
	for i, rc := range cfg.Rules {
		idx := ruleIndex(rc.Name)
		if idx < 0 {
			add("rules[%d]: unknown rule %q (known: %s)", i, rc.Name, strings.Join(RuleNames(), ", "))
			continue
		}
		if seen[rc.Name] {
			add("rules[%d]: rule %q configured twice", i, rc.Name)
			continue
		}
		seen[rc.Name] = true
		for _, f := range ruleFields() {
			if f.set(&rc) && !slices.Contains(f.rules, rc.Name) {
				add("rules[%d] (%s): %s does not apply to this rule (only to %s)", i, rc.Name, f.name, strings.Join(f.rules, ", "))
			}
		}
		r.rules[idx] = overlay(r.rules[idx], rc)
	}
	for i := range r.rules {
		validateRule(&r.rules[i], add)
		r.typeSets[i] = map[string]bool{}
		for _, t := range r.rules[i].EventTypes {
			r.typeSets[i][t] = true
		}
	}
	burst := r.rules[ruleIndex(RuleBurst)]
	r.burstAlpha = 2 / (float64(burst.BaselineMinutes) + 1)
	r.jobPercentile = 0.5
	if r.rules[ruleIndex(RuleJobSize)].Statistic == "p90" {
		r.jobPercentile = 0.9
	}
	if len(probs) > 0 {
		return nil, &ConfigError{Problems: probs}
	}
	return r, nil
}

func validSeverity(s Severity) bool {
	return s == SeverityLow || s == SeverityMedium || s == SeverityHigh || s == SeverityCritical
}

func validateActions(where string, as []Action, add func(string, ...any)) {
	if len(as) == 0 {
		add("%s: at least one action is needed (alert, require_approval, suspend)", where)
	}
	for _, a := range as {
		if a != ActionAlert && a != ActionRequireApproval && a != ActionSuspend {
			add("%s: unknown action %q (alert, require_approval, suspend)", where, a)
		}
	}
}

func validateRule(rc *RuleConfig, add func(string, ...any)) {
	n := rc.Name
	if !validSeverity(rc.Severity) {
		add("%s: unknown severity %q (low, medium, high, critical)", n, rc.Severity)
	}
	validateActions(n, rc.Actions, add)
	if rc.Cooldown < 0 {
		add("%s: cooldown %s is negative", n, rc.Cooldown)
	}
	positive := func(field string, v int) {
		if v < 1 {
			add("%s: %s %d must be at least 1", n, field, v)
		}
	}
	switch n {
	case RuleOffHours, RuleBurst, RuleJobSize, RuleFirstDevice:
		if len(rc.EventTypes) == 0 {
			add("%s: event_types is empty", n)
		}
		for _, t := range rc.EventTypes {
			if t == "" || t == "checkpoint" {
				add("%s: event type %q is never an agent's event", n, t)
			}
		}
	}
	switch n {
	case RuleBurst:
		if !(rc.Factor > 1) || math.IsInf(rc.Factor, 0) {
			add("%s: factor %v must be a number above 1", n, rc.Factor)
		}
		positive("min_count", rc.MinCount)
		positive("baseline_minutes", rc.BaselineMinutes)
		if rc.Escalate != nil {
			if !validSeverity(rc.Escalate.Severity) {
				add("%s: escalate: unknown severity %q", n, rc.Escalate.Severity)
			}
			validateActions(n+": escalate", rc.Escalate.Actions, add)
		}
	case RuleJobSize:
		if !(rc.Factor > 1) || math.IsInf(rc.Factor, 0) {
			add("%s: factor %v must be a number above 1", n, rc.Factor)
		}
		if rc.Statistic != "median" && rc.Statistic != "p90" {
			add("%s: statistic %q must be median or p90", n, rc.Statistic)
		}
		positive("min_history", rc.MinHistory)
		positive("history_size", rc.HistorySize)
		if rc.HistorySize < rc.MinHistory {
			add("%s: history_size %d is below min_history %d, so the rule could never judge", n, rc.HistorySize, rc.MinHistory)
		}
		if rc.MinShots < 0 || rc.MinCostUSD < 0 || math.IsNaN(rc.MinCostUSD) {
			add("%s: min_shots and min_cost_usd must not be negative", n)
		}
	case RuleFirstDevice:
		positive("min_history", rc.MinHistory)
		positive("max_devices", rc.MaxDevices)
	case RuleRepeatedDenials:
		if rc.Count < 2 {
			add("%s: count %d must be at least 2", n, rc.Count)
		}
		if rc.Window <= 0 {
			add("%s: window %s must be positive", n, rc.Window)
		}
	case RuleNewSource:
		positive("max_accessors", rc.MaxAccessors)
		positive("max_addresses", rc.MaxAddresses)
		if rc.PrefixV4 < 1 || rc.PrefixV4 > 32 {
			add("%s: prefix_v4 %d must be 1–32", n, rc.PrefixV4)
		}
		if rc.PrefixV6 < 1 || rc.PrefixV6 > 128 {
			add("%s: prefix_v6 %d must be 1–128", n, rc.PrefixV6)
		}
	}
}

// schedule is a compiled Schedule.
type schedule struct {
	loc     *time.Location
	windows []window
}

type window struct {
	days       uint8 // bit i = time.Weekday(i)
	start, end int   // minutes since local midnight, [start, end)
}

// contains reports whether t falls in the schedule (wall clock in its zone,
// so daylight-saving changes are honoured).
func (s *schedule) contains(t time.Time) bool {
	lt := t.In(s.loc)
	m := lt.Hour()*60 + lt.Minute()
	bit := uint8(1) << uint(lt.Weekday())
	for _, w := range s.windows {
		if w.days&bit != 0 && m >= w.start && m < w.end {
			return true
		}
	}
	return false
}

func compileSchedules(where string, m map[string]Schedule, loc *time.Location, add func(string, ...any)) map[string]*schedule {
	out := make(map[string]*schedule, len(m))
	for k, s := range m {
		out[k] = compileSchedule(fmt.Sprintf("%s[%q]", where, k), s, loc, add)
	}
	return out
}

// dayBits maps a day name to its weekday bits.
func dayBits(name string) (uint8, bool) {
	switch strings.ToLower(name) {
	case "sun", "sunday":
		return 1 << time.Sunday, true
	case "mon", "monday":
		return 1 << time.Monday, true
	case "tue", "tuesday":
		return 1 << time.Tuesday, true
	case "wed", "wednesday":
		return 1 << time.Wednesday, true
	case "thu", "thursday":
		return 1 << time.Thursday, true
	case "fri", "friday":
		return 1 << time.Friday, true
	case "sat", "saturday":
		return 1 << time.Saturday, true
	case "weekdays":
		return 0b0111110, true
	case "weekend":
		return 0b1000001, true
	case "daily":
		return 0b1111111, true
	}
	return 0, false
}

func compileSchedule(where string, s Schedule, loc *time.Location, add func(string, ...any)) *schedule {
	out := &schedule{loc: loc}
	if s.TimeZone != "" {
		l, err := time.LoadLocation(s.TimeZone)
		if err != nil {
			add("%s: time_zone %q: unknown time zone", where, s.TimeZone)
		} else {
			out.loc = l
		}
	}
	if len(s.Windows) == 0 {
		add("%s: no windows (an agent that may never work should be disabled, not scheduled)", where)
	}
	for i, w := range s.Windows {
		wh := fmt.Sprintf("%s.windows[%d]", where, i)
		var cw window
		if len(w.Days) == 0 {
			add("%s: no days", wh)
		}
		for _, d := range w.Days {
			b, ok := dayBits(d)
			if !ok {
				add("%s: unknown day %q (mon … sun, weekdays, weekend, daily)", wh, d)
			}
			cw.days |= b
		}
		var okS, okE bool
		cw.start, okS = parseClock(w.Start)
		cw.end, okE = parseClock(w.End)
		if !okS {
			add("%s: start %q is not HH:MM", wh, w.Start)
		}
		if !okE {
			add("%s: end %q is not HH:MM", wh, w.End)
		}
		if okS && okE && cw.end <= cw.start {
			add("%s: end %s is not after start %s (split a window that crosses midnight)", wh, w.End, w.Start)
		}
		out.windows = append(out.windows, cw)
	}
	return out
}

// parseClock parses "HH:MM" (00:00–24:00) into minutes.
func parseClock(s string) (int, bool) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, false
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh > 24 || (hh == 24 && mm != 0) {
		return 0, false
	}
	return hh*60 + mm, true
}
