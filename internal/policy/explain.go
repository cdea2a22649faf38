package policy

import (
	"time"

	cedar "github.com/cedar-policy/cedar-go"
)

// Explanation is a Decision with the per-policy detail, for `qbroker policy
// explain` and the API. It marshals to JSON as is.
type Explanation struct {
	Decision            string   `json:"decision"` // "allow" or "deny"
	Allowed             bool     `json:"allowed"`
	DeterminingPolicies []string `json:"determining_policies"`
	Errors              []string `json:"errors"`
	Reason              string   `json:"reason"`
	// Policies has one entry per loaded policy, in load order. Empty when the
	// request itself is invalid.
	Policies []PolicyResult `json:"policies"`
}

// PolicyResult says how one policy evaluated for the request.
type PolicyResult struct {
	ID     string `json:"id"`
	Effect string `json:"effect"` // "permit" or "forbid"
	File   string `json:"file"`
	Line   int    `json:"line"`
	// Satisfied is true when the policy's scope and conditions matched.
	Satisfied bool `json:"satisfied"`
	// Determining is true when the policy is in DeterminingPolicies.
	Determining bool `json:"determining"`
	// Error is the evaluation error, "" when none.
	Error string `json:"error,omitempty"`
}

// Explain decides req exactly as Decide does and reports, for every policy,
// whether it was satisfied. It evaluates each policy on its own, so it costs
// about one decision per policy: use it for diagnostics, not per request.
func (e *Engine) Explain(req Request) Explanation {
	d := e.Decide(req)
	x := Explanation{
		Decision:            "deny",
		Allowed:             d.Allowed,
		DeterminingPolicies: nonNil(d.Policies),
		Errors:              nonNil(d.Errors),
		Reason:              d.Reason,
		Policies:            []PolicyResult{},
	}
	if d.Allowed {
		x.Decision = "allow"
	}
	creq, ents, err := e.buildRequest(req)
	if err != nil {
		return x
	}
	determining := make(map[string]bool, len(d.Policies))
	for _, id := range d.Policies {
		determining[id] = true
	}
	for _, p := range e.policies {
		pos := p.policy.Position()
		r := PolicyResult{ID: string(p.id), Effect: "permit", File: pos.Filename, Line: pos.Line, Determining: determining[string(p.id)]}
		if p.policy.Effect() == cedar.Forbid {
			r.Effect = "forbid"
		}
		_, diag := cedar.Authorize(policyList{p}, ents, creq)
		if len(diag.Errors) > 0 {
			r.Error = diag.Errors[0].Message
		}
		r.Satisfied = len(diag.Reasons) > 0
		x.Policies = append(x.Policies, r)
	}
	return x
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ClockContext returns the hour (0-23) and weekday (0=Sunday) of t in loc,
// for Context.Hour and Context.Weekday. A nil loc means UTC. Daylight-saving
// changes are handled by the time zone database: pass the instant, not a
// local wall-clock reading.
func ClockContext(t time.Time, loc *time.Location) (hour, weekday int) {
	if loc == nil {
		loc = time.UTC
	}
	l := t.In(loc)
	return l.Hour(), int(l.Weekday())
}
