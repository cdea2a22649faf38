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
// Action::"SubmitJob" and so on. The Admin* actions are members of the
// action group Action::"Admin" (`action in Action::"Admin"`).
const (
	ActionSubmitJob        = "SubmitJob"
	ActionEstimateCost     = "EstimateCost"
	ActionReserve          = "Reserve"
	ActionReadJob          = "ReadJob"
	ActionReadResult       = "ReadResult"
	ActionCancelJob        = "CancelJob"
	ActionListDevices      = "ListDevices"
	ActionIssueCredentials = "IssueCredentials"
	ActionUnwrapSecret     = "UnwrapSecret"
	ActionAdminRoles       = "AdminRoles"
	ActionAdminKeys        = "AdminKeys"
	ActionAdminProviders   = "AdminProviders"
	ActionAdminAudit       = "AdminAudit"

	// ActionGroupAdmin is the action group of the Admin* actions; it is not
	// itself a requestable action.
	ActionGroupAdmin = "Admin"
)

// BrokerID is the id of the one Broker entity, Broker::"qbroker", the
// resource of the Admin* actions.
const BrokerID = "qbroker"

// Device kinds.
const (
	KindQPU       = "qpu"
	KindSimulator = "simulator"
)

// resourceRule says which resource an action takes.
type resourceRule int

const (
	deviceRequired  resourceRule = iota // the Device; no Job
	deviceOptional                      // the Device when given, else the Provider; no Job
	deviceForbidden                     // the Provider; no Device, no Job
	jobPreferred                        // the Job when given, else the Device, else the Provider
	brokerOnly                          // Broker::"qbroker"; no Provider, Device or Job
)

// actionRule returns the resource rule of a known action.
func actionRule(action string) (resourceRule, bool) {
	switch action {
	case ActionSubmitJob, ActionEstimateCost, ActionReserve:
		return deviceRequired, true
	case ActionIssueCredentials, ActionUnwrapSecret:
		return deviceOptional, true
	case ActionReadJob, ActionReadResult, ActionCancelJob:
		return jobPreferred, true
	case ActionListDevices:
		return deviceForbidden, true
	case ActionAdminRoles, ActionAdminKeys, ActionAdminProviders, ActionAdminAudit:
		return brokerOnly, true
	}
	return 0, false
}

// Actions returns every action a Request may name, in a fixed order.
func Actions() []string {
	return []string{
		ActionSubmitJob, ActionEstimateCost, ActionReserve,
		ActionReadJob, ActionReadResult, ActionCancelJob,
		ActionListDevices, ActionIssueCredentials, ActionUnwrapSecret,
		ActionAdminRoles, ActionAdminKeys, ActionAdminProviders, ActionAdminAudit,
	}
}

// isAdminAction reports whether action is in the Admin group.
func isAdminAction(action string) bool {
	r, ok := actionRule(action)
	return ok && r == brokerOnly
}

// Agent is the principal: Agent::"<ID>", a member of Role::"<Role>" and,
// when Team is set, of Team::"<Team>". Labels become entity tags.
type Agent struct {
	ID, Role, Owner, Team, AuthMethod string
	// Environment is the agent's deployment environment ("prod", "dev"),
	// "" when none.
	Environment string
	// ActingFor is the person the agent acts for under a delegated token
	// (token exchange), "" when none: policies can permit on either.
	ActingFor string
	Labels    map[string]string
}

// Device is a provider's device: Device::"<Provider>/<Name>", a member of
// Provider::"<Provider>". Kind is "qpu" or "simulator"; Qubits is the
// device's capacity. Vendor is the hardware maker ("ionq", "rigetti"); it
// defaults to Provider when empty. ARN is the provider's own id for the
// device ("" when none).
type Device struct {
	Provider, Name, Kind string
	Qubits               int
	Vendor, ARN          string
}

// ID returns the device's entity id, "<Provider>/<Name>".
func (d Device) ID() string { return d.Provider + "/" + d.Name }

// Job is a job the broker knows: Job::"<ID>", in Device::"<DeviceID>" and
// Provider::"<Provider>". Owner is the submitting agent's id (the Cedar
// attribute is the entity Agent::"<Owner>", so policies write
// `resource.owner == principal`). DeviceID is "<provider>/<name>"; Provider
// defaults to its prefix.
type Job struct {
	ID, Owner, Team, Provider, DeviceID string
}

// Request is one authorization question. The resource follows from the
// action (see docs/policies.md): a Device for SubmitJob, EstimateCost and
// Reserve; the Job (else the Device, else the Provider) for ReadJob,
// ReadResult and CancelJob; the Provider for ListDevices; the Device or the
// Provider for IssueCredentials and UnwrapSecret; Broker::"qbroker" for the
// Admin* actions.
type Request struct {
	Agent    Agent
	Action   string // one of the Action* constants
	Provider string // may be empty when Device or Job is set
	Device   *Device
	// Job is the job read or cancelled. When Device is set too it must be
	// the job's device, and its attributes become readable through
	// resource.device.
	Job     *Job
	Context Context
}

// Context is the Cedar context record. Hour and Weekday (0=Sunday) are in the
// broker's configured time zone; the caller computes them (see
// [ClockContext]), keeping Decide pure. SourceIP becomes context.source_ip
// only if it parses as a single IP address (IPv4-mapped IPv6 is unmapped;
// prefixes and garbage are omitted). Approved is set only by the broker's
// approval gate, after the request was approved.
type Context struct {
	Shots            int
	EstimatedCostUSD float64 // rounded up to 0.0001 (Cedar decimal)
	Qubits           int
	ProgramSHA256    string
	SourceIP         string
	Hour, Weekday    int
	Approved         bool
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
	creq, ents, err := e.buildRequest(req)
	if err != nil {
		return Decision{
			Reason: "invalid request: " + err.Error(),
			Errors: []string{err.Error()},
		}
	}
	ok, diag := cedar.Authorize(e.byAction[req.Action], ents, creq)

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

// requestEntities is the per-request entity store: the agent, the device
// and the job when given, and the engine's action entities (for action
// groups). Roles, teams, providers and the broker have no attributes or
// parents, so they need no entries.
type requestEntities struct {
	agent, device, job cedar.Entity
	hasDevice, hasJob  bool
	actions            map[cedar.EntityUID]cedar.Entity
}

// Get implements cedar.EntityGetter.
func (r *requestEntities) Get(uid cedar.EntityUID) (cedar.Entity, bool) {
	switch {
	case uid == r.agent.UID:
		return r.agent, true
	case r.hasDevice && uid == r.device.UID:
		return r.device, true
	case r.hasJob && uid == r.job.UID:
		return r.job, true
	case uid.Type == "Action":
		e, ok := r.actions[uid]
		return e, ok
	}
	return cedar.Entity{}, false
}

var _ cedar.EntityGetter = (*requestEntities)(nil)

// actionEntities returns the action entities with their group parents.
func actionEntities() map[cedar.EntityUID]cedar.Entity {
	group := cedar.NewEntityUIDSet(cedar.NewEntityUID("Action", ActionGroupAdmin))
	m := make(map[cedar.EntityUID]cedar.Entity)
	for _, a := range Actions() {
		uid := cedar.NewEntityUID("Action", cedar.String(a))
		e := cedar.Entity{UID: uid}
		if isAdminAction(a) {
			e.Parents = group
		}
		m[uid] = e
	}
	return m
}

// buildRequest checks req and turns it into a Cedar request and entities.
func (e *Engine) buildRequest(req Request) (creq cedar.Request, ents *requestEntities, err error) {
	rule, ok := actionRule(req.Action)
	if !ok {
		return creq, nil, fmt.Errorf("unknown action %q", req.Action)
	}
	if req.Agent.ID == "" {
		return creq, nil, fmt.Errorf("agent id is empty")
	}
	ctx, err := buildContext(req.Context)
	if err != nil {
		return creq, nil, err
	}
	ents = &requestEntities{agent: agentEntity(req.Agent), actions: e.actions}
	creq = cedar.Request{
		Principal: ents.agent.UID,
		Action:    cedar.NewEntityUID("Action", cedar.String(req.Action)),
		Context:   ctx,
	}
	if rule == brokerOnly {
		if req.Provider != "" || req.Device != nil || req.Job != nil {
			return creq, nil, fmt.Errorf("%s takes no provider, device or job (its resource is Broker::%q)", req.Action, BrokerID)
		}
		creq.Resource = cedar.NewEntityUID("Broker", BrokerID)
		return creq, ents, nil
	}

	provider := req.Provider
	if j := req.Job; j != nil {
		if rule != jobPreferred {
			return creq, nil, fmt.Errorf("%s does not take a job", req.Action)
		}
		if j.ID == "" || j.Owner == "" {
			return creq, nil, fmt.Errorf("job id and owner must be set")
		}
		jp, _, ok := strings.Cut(j.DeviceID, "/")
		if !ok || jp == "" || len(j.DeviceID) == len(jp)+1 {
			return creq, nil, fmt.Errorf("job device %q is not <provider>/<name>", j.DeviceID)
		}
		if j.Provider != "" && j.Provider != jp {
			return creq, nil, fmt.Errorf("job provider %q does not match its device %q", j.Provider, j.DeviceID)
		}
		if provider == "" {
			provider = jp
		}
		if provider != jp {
			return creq, nil, fmt.Errorf("job provider %q does not match request provider %q", jp, provider)
		}
		if d := req.Device; d != nil && d.ID() != j.DeviceID {
			return creq, nil, fmt.Errorf("device %q is not the job's device %q", d.ID(), j.DeviceID)
		}
	}
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
	providerUID := cedar.NewEntityUID("Provider", cedar.String(provider))
	creq.Resource = providerUID
	if d := req.Device; d != nil {
		ent, err := e.deviceEntity(*d)
		if err != nil {
			return creq, nil, err
		}
		ents.device, ents.hasDevice = ent, true
		creq.Resource = ent.UID
	}
	if j := req.Job; j != nil {
		deviceUID := cedar.NewEntityUID("Device", cedar.String(j.DeviceID))
		ents.job = cedar.Entity{
			UID:     cedar.NewEntityUID("Job", cedar.String(j.ID)),
			Parents: cedar.NewEntityUIDSet(deviceUID, providerUID),
			Attributes: cedar.NewRecord(cedar.RecordMap{
				"owner":    cedar.NewEntityUID("Agent", cedar.String(j.Owner)),
				"team":     cedar.String(j.Team),
				"device":   deviceUID,
				"provider": cedar.String(provider),
			}),
		}
		ents.hasJob = true
		creq.Resource = ents.job.UID
	}
	return creq, ents, nil
}

// deviceEntity checks d and returns its entity, from the engine's cache when
// an identical device was seen before (devices come from a catalogue, so
// the set is small; the cache is bounded all the same).
func (e *Engine) deviceEntity(d Device) (cedar.Entity, error) {
	if ent, ok := e.devices.Load(d); ok {
		return ent.(cedar.Entity), nil
	}
	if err := checkName("device name", d.Name); err != nil {
		return cedar.Entity{}, err
	}
	if d.Kind != KindQPU && d.Kind != KindSimulator {
		return cedar.Entity{}, fmt.Errorf("device kind %q is not %q or %q", d.Kind, KindQPU, KindSimulator)
	}
	if d.Qubits < 0 {
		return cedar.Entity{}, fmt.Errorf("device qubits %d is negative", d.Qubits)
	}
	vendor := d.Vendor
	if vendor == "" {
		vendor = d.Provider
	}
	ent := cedar.Entity{
		UID:     cedar.NewEntityUID("Device", cedar.String(d.ID())),
		Parents: cedar.NewEntityUIDSet(cedar.NewEntityUID("Provider", cedar.String(d.Provider))),
		Attributes: cedar.NewRecord(cedar.RecordMap{
			"provider": cedar.String(d.Provider),
			"name":     cedar.String(d.Name),
			"kind":     cedar.String(d.Kind),
			"qubits":   cedar.Long(d.Qubits),
			"vendor":   cedar.String(vendor),
			"arn":      cedar.String(d.ARN),
		}),
	}
	if e.deviceCount.Add(1) <= maxCachedDevices {
		e.devices.Store(d, ent)
	}
	return ent, nil
}

// maxCachedDevices bounds the device entity cache of an Engine.
const maxCachedDevices = 4096

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
			"environment": cedar.String(a.Environment),
			"acting_for":  cedar.String(a.ActingFor),
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
		"approved":           cedar.Boolean(c.Approved),
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
