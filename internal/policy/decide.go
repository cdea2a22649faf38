package policy

import (
	"fmt"
	"math"
	"net/netip"
	"strings"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
)

// The actions a Request may name. Cedar policies refer to them as
// Action::"SubmitJob" and so on.
const (
	ActionSubmitJob        = "SubmitJob"
	ActionReadJob          = "ReadJob"
	ActionListDevices      = "ListDevices"
	ActionIssueCredentials = "IssueCredentials"
)

// Device kinds.
const (
	KindQPU       = "qpu"
	KindSimulator = "simulator"
)

// resourceRule says which resource an action takes: whether a Device is
// required, allowed, or must be absent (the resource is then the Provider).
type resourceRule int

const (
	deviceRequired  resourceRule = iota // resource is the Device
	deviceOptional                      // the Device when given, else the Provider
	deviceForbidden                     // resource is the Provider
)

// actionRule returns the resource rule of a known action.
func actionRule(action string) (resourceRule, bool) {
	switch action {
	case ActionSubmitJob:
		return deviceRequired, true
	case ActionReadJob, ActionIssueCredentials:
		return deviceOptional, true
	case ActionListDevices:
		return deviceForbidden, true
	}
	return 0, false
}

// Agent is the principal: Agent::"<ID>", a member of Role::"<Role>" and,
// when Team is set, of Team::"<Team>". Labels become entity tags.
type Agent struct {
	ID, Role, Owner, Team, AuthMethod string
	Labels                            map[string]string
}

// Device is a provider's device: Device::"<Provider>/<Name>", a member of
// Provider::"<Provider>". Kind is "qpu" or "simulator"; Qubits is the
// device's capacity.
type Device struct {
	Provider, Name, Kind string
	Qubits               int
}

// Request is one authorization question.
type Request struct {
	Agent    Agent
	Action   string // one of the Action* constants
	Provider string // may be empty when Device is set
	Device   *Device
	Context  Context
}

// Context is the Cedar context record. Hour and Weekday (0=Sunday) are in the
// broker's configured time zone; the caller computes them, keeping Decide
// pure. SourceIP becomes context.source_ip only if it parses as a single IP
// address (IPv4-mapped IPv6 is unmapped; prefixes and garbage are omitted).
type Context struct {
	Shots            int
	EstimatedCostUSD float64 // rounded up to 0.0001 (Cedar decimal)
	Qubits           int
	ProgramSHA256    string
	SourceIP         string
	Hour, Weekday    int
}

// Decision is the answer to a Request.
type Decision struct {
	// Allowed is true only if a permit matched and no forbid matched or
	// failed to evaluate.
	Allowed bool
	// Policies are the ids of the determining policies: the permits that
	// allowed, or the forbids that denied. Empty for a default deny and for
	// an invalid request.
	Policies []string
	// Reason is one human sentence explaining the outcome.
	Reason string
	// Errors lists policies that failed to evaluate, or why the request
	// itself is invalid. An error never allows.
	Errors []string
}

// Decide evaluates req against the engine's policies. It never does I/O and
// never fails open: an invalid request (unknown action, missing agent id,
// malformed device or context) is denied with the problem in Errors.
func (e *Engine) Decide(req Request) Decision {
	creq, ents, err := buildRequest(req)
	if err != nil {
		return Decision{
			Reason: "invalid request: " + err.Error(),
			Errors: []string{err.Error()},
		}
	}
	ok, diag := cedar.Authorize(e.policies, ents, creq)

	var d Decision
	var forbidErrs []string
	for _, de := range diag.Errors {
		d.Errors = append(d.Errors, fmt.Sprintf("policy %q (%s:%d:%d): %s",
			de.PolicyID, de.Position.Filename, de.Position.Line, de.Position.Column, de.Message))
		if p := e.byID[de.PolicyID]; p != nil && p.Effect() == cedar.Forbid {
			forbidErrs = append(forbidErrs, string(de.PolicyID))
		}
	}
	ids := make([]string, len(diag.Reasons))
	for i, r := range diag.Reasons {
		ids[i] = string(r.PolicyID)
	}

	switch {
	case ok == cedar.Allow && len(forbidErrs) > 0:
		// Fail closed: a forbid we could not evaluate might have applied.
		d.Policies = forbidErrs
		d.Reason = fmt.Sprintf("denied: forbid %s %s could not be evaluated", plural(len(forbidErrs), "policy", "policies"), quoteIDs(forbidErrs))
	case ok == cedar.Allow:
		d.Allowed = true
		d.Policies = ids
		d.Reason = fmt.Sprintf("permitted by %s %s", plural(len(ids), "policy", "policies"), quoteIDs(ids))
	case len(ids) > 0:
		d.Policies = ids
		d.Reason = fmt.Sprintf("denied by %s %s", plural(len(ids), "policy", "policies"), quoteIDs(ids))
	default:
		d.Reason = fmt.Sprintf("no policy permits %s on %s %q", req.Action, creq.Resource.Type, creq.Resource.ID)
		if n := len(d.Errors); n > 0 {
			d.Reason += fmt.Sprintf(" (%d %s failed to evaluate)", n, plural(n, "policy", "policies"))
		}
	}
	return d
}

// requestEntities is the per-request entity store: the agent and, when the
// resource is a device, the device. Roles, teams and providers have no
// attributes or parents of their own, so they need no entries.
type requestEntities struct {
	agent, device cedar.Entity
	hasDevice     bool
}

// Get implements cedar.EntityGetter.
func (r *requestEntities) Get(uid cedar.EntityUID) (cedar.Entity, bool) {
	switch {
	case uid == r.agent.UID:
		return r.agent, true
	case r.hasDevice && uid == r.device.UID:
		return r.device, true
	}
	return cedar.Entity{}, false
}

var _ cedar.EntityGetter = (*requestEntities)(nil)

// buildRequest checks req and turns it into a Cedar request and entities.
func buildRequest(req Request) (creq cedar.Request, ents *requestEntities, err error) {
	rule, ok := actionRule(req.Action)
	if !ok {
		return creq, nil, fmt.Errorf("unknown action %q", req.Action)
	}
	if req.Agent.ID == "" {
		return creq, nil, fmt.Errorf("agent id is empty")
	}
	provider := req.Provider
	if d := req.Device; d != nil {
		if provider == "" {
			provider = d.Provider
		}
		if d.Provider != provider {
			return creq, nil, fmt.Errorf("device provider %q does not match request provider %q", d.Provider, provider)
		}
	}
	if err := checkName("provider", provider); err != nil {
		return creq, nil, err
	}
	switch {
	case rule == deviceRequired && req.Device == nil:
		return creq, nil, fmt.Errorf("%s requires a device", req.Action)
	case rule == deviceForbidden && req.Device != nil:
		return creq, nil, fmt.Errorf("%s takes a provider, not a device", req.Action)
	}
	ctx, err := buildContext(req.Context)
	if err != nil {
		return creq, nil, err
	}

	ents = &requestEntities{agent: agentEntity(req.Agent)}
	creq = cedar.Request{
		Principal: ents.agent.UID,
		Action:    cedar.NewEntityUID("Action", cedar.String(req.Action)),
		Context:   ctx,
	}
	if d := req.Device; d != nil {
		if err := checkName("device name", d.Name); err != nil {
			return creq, nil, err
		}
		if d.Kind != KindQPU && d.Kind != KindSimulator {
			return creq, nil, fmt.Errorf("device kind %q is not %q or %q", d.Kind, KindQPU, KindSimulator)
		}
		if d.Qubits < 0 {
			return creq, nil, fmt.Errorf("device qubits %d is negative", d.Qubits)
		}
		id := provider + "/" + d.Name
		ents.device = cedar.Entity{
			UID:     cedar.NewEntityUID("Device", cedar.String(id)),
			Parents: cedar.NewEntityUIDSet(cedar.NewEntityUID("Provider", cedar.String(provider))),
			Attributes: cedar.NewRecord(cedar.RecordMap{
				"provider": cedar.String(provider),
				"name":     cedar.String(d.Name),
				"kind":     cedar.String(d.Kind),
				"qubits":   cedar.Long(d.Qubits),
			}),
		}
		ents.hasDevice = true
		creq.Resource = ents.device.UID
		return creq, ents, nil
	}
	creq.Resource = cedar.NewEntityUID("Provider", cedar.String(provider))
	return creq, ents, nil
}

// checkName rejects empty names and, for providers, a "/" that would make a
// device id "<provider>/<name>" ambiguous.
func checkName(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if what == "provider" && strings.Contains(s, "/") {
		return fmt.Errorf("provider %q contains '/'", s)
	}
	return nil
}

// agentEntity builds Agent::"<id>" with its attributes, role/team parents and
// labels as tags.
func agentEntity(a Agent) cedar.Entity {
	var parents []cedar.EntityUID
	if a.Role != "" {
		parents = append(parents, cedar.NewEntityUID("Role", cedar.String(a.Role)))
	}
	if a.Team != "" {
		parents = append(parents, cedar.NewEntityUID("Team", cedar.String(a.Team)))
	}
	var tags cedar.Record
	if len(a.Labels) > 0 {
		m := make(cedar.RecordMap, len(a.Labels))
		for k, v := range a.Labels {
			m[cedar.String(k)] = cedar.String(v)
		}
		tags = cedar.NewRecord(m)
	}
	return cedar.Entity{
		UID:     cedar.NewEntityUID("Agent", cedar.String(a.ID)),
		Parents: cedar.NewEntityUIDSet(parents...),
		Attributes: cedar.NewRecord(cedar.RecordMap{
			"role":        cedar.String(a.Role),
			"owner":       cedar.String(a.Owner),
			"team":        cedar.String(a.Team),
			"auth_method": cedar.String(a.AuthMethod),
		}),
		Tags: tags,
	}
}

// maxCostUSD keeps cost*10^4 well inside int64.
const maxCostUSD = 1e14

// buildContext checks c and builds the Cedar context record.
func buildContext(c Context) (cedar.Record, error) {
	switch {
	case c.Shots < 0:
		return cedar.Record{}, fmt.Errorf("shots %d is negative", c.Shots)
	case c.Qubits < 0:
		return cedar.Record{}, fmt.Errorf("qubits %d is negative", c.Qubits)
	case c.Hour < 0 || c.Hour > 23:
		return cedar.Record{}, fmt.Errorf("hour %d is not in 0-23", c.Hour)
	case c.Weekday < 0 || c.Weekday > 6:
		return cedar.Record{}, fmt.Errorf("weekday %d is not in 0-6", c.Weekday)
	case math.IsNaN(c.EstimatedCostUSD) || c.EstimatedCostUSD < 0 || c.EstimatedCostUSD > maxCostUSD:
		return cedar.Record{}, fmt.Errorf("estimated cost %v USD is not in 0-%g", c.EstimatedCostUSD, float64(maxCostUSD))
	}
	cost, err := cedar.NewDecimal(costUnits(c.EstimatedCostUSD), -4)
	if err != nil {
		return cedar.Record{}, fmt.Errorf("estimated cost: %w", err)
	}
	m := cedar.RecordMap{
		"shots":              cedar.Long(c.Shots),
		"estimated_cost_usd": cost,
		"qubits":             cedar.Long(c.Qubits),
		"program_sha256":     cedar.String(c.ProgramSHA256),
		"hour":               cedar.Long(c.Hour),
		"weekday":            cedar.Long(c.Weekday),
	}
	if addr, err := netip.ParseAddr(c.SourceIP); err == nil && addr.Zone() == "" {
		addr = addr.Unmap() // Cedar has no IPv4-mapped IPv6 form
		m["source_ip"] = types.IPAddr(netip.PrefixFrom(addr, addr.BitLen()))
	}
	return cedar.NewRecord(m), nil
}

// costUnits converts USD to units of 0.0001 USD, rounding up so that a cost
// limit is never passed by truncation (0.12341 -> 0.1235), while float noise
// in exact amounts (0.29*10^4 = 2899.9999...) does not bump them.
func costUnits(usd float64) int64 {
	u := math.Round(usd * 1e4)
	if u/1e4 < usd {
		u++
	}
	return int64(u)
}

// plural picks the singular or plural word for n.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
