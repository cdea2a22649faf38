package config

import "fmt"

// Budgets are spend and rate limits per agent, role and team. Every limit
// that matches a request applies (the tightest wins), and a role's or a
// team's limit is one cap shared by all its agents and all replicas.
type Budgets struct {
	Limits []BudgetLimit `yaml:"limits"`
	// AlertAt are fractions of a budget (e.g. [0.8]) at which the
	// approvals webhook is told, once per limit and window.
	AlertAt []float64 `yaml:"alert_at"`
}

// BudgetLimit is one set of limits for a scope.
type BudgetLimit struct {
	Name  string `yaml:"name"`
	Scope string `yaml:"scope"` // agent, role or team
	// Match is the agent id, role name or team it applies to; "*" applies
	// it to each one separately.
	Match string `yaml:"match"`
	Class string `yaml:"class"` // hardware, simulator, or empty for both
	// The limits; zero means none.
	JobsPerMinute int     `yaml:"jobs_per_minute"` // job tokens in the last minute (sliding window)
	JobsPerHour   int     `yaml:"jobs_per_hour"`
	ShotsPerDay   int     `yaml:"shots_per_day"` // calendar day in time_zone
	USDPerDay     float64 `yaml:"usd_per_day"`
	USDPerMonth   float64 `yaml:"usd_per_month"`
	InFlight      int     `yaml:"in_flight"` // job tokens issued and not yet settled or released
	// QPU time: what providers report (IBM), else the catalogue's estimate.
	QPUSecondsPerDay   float64 `yaml:"qpu_seconds_per_day"`
	QPUSecondsPerMonth float64 `yaml:"qpu_seconds_per_month"`
}

func (b *Budgets) validate(bad func(string, ...any)) {
	for _, a := range b.AlertAt {
		if a <= 0 || a > 1 {
			bad("budgets.alert_at: %v is not a fraction in (0, 1]", a)
		}
	}
	names := map[string]bool{}
	for i, l := range b.Limits {
		where := fmt.Sprintf("budgets.limits[%d]", i)
		switch {
		case l.Name == "":
			bad("%s: name is required", where)
		case names[l.Name]:
			bad("%s: limit %q defined twice", where, l.Name)
		}
		names[l.Name] = true
		if l.Scope != "agent" && l.Scope != "role" && l.Scope != "team" {
			bad("%s (%s): scope %q is not agent, role or team", where, l.Name, l.Scope)
		}
		if l.Match == "" {
			bad("%s (%s): match is required (a name, or * for each)", where, l.Name)
		}
		if l.Class != "" && l.Class != "hardware" && l.Class != "simulator" {
			bad("%s (%s): class %q is not hardware or simulator", where, l.Name, l.Class)
		}
		if l.JobsPerMinute < 0 || l.JobsPerHour < 0 || l.ShotsPerDay < 0 || l.USDPerDay < 0 || l.USDPerMonth < 0 || l.InFlight < 0 ||
			l.QPUSecondsPerDay < 0 || l.QPUSecondsPerMonth < 0 {
			bad("%s (%s): limits must not be negative", where, l.Name)
		}
		if l.JobsPerMinute == 0 && l.JobsPerHour == 0 && l.ShotsPerDay == 0 && l.USDPerDay == 0 && l.USDPerMonth == 0 && l.InFlight == 0 &&
			l.QPUSecondsPerDay == 0 && l.QPUSecondsPerMonth == 0 {
			bad("%s (%s): no limit set", where, l.Name)
		}
	}
}
