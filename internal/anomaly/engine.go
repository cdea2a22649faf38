// Package anomaly detects suspicious agent behaviour as streaming rules over
// the audit trail (issue #8): off-hours use against the agent's schedule,
// issuance bursts far above the agent's rolling baseline, jobs far larger or
// costlier than the agent's history, first use of a device or provider,
// repeated denials (probing) and a token used from a new source address.
//
// The [Engine] is pure: it does no I/O and reads time only from the events,
// so replaying a past trail ([Replay]) gives exactly the findings the live
// broker would have produced. Each [Finding] names a rule, a severity and
// the actions the broker should take (alert, require approval for the
// agent's next requests, suspend the agent); performing them is the
// broker's job. Per-agent state is bounded: at most Config.MaxAgents agents
// are remembered (least recently seen forgotten first), and every per-agent
// collection has a fixed cap. A forgotten agent is treated as new, and
// every rule needs history before it judges, so forgetting can only cause a
// missed finding, never a false one.
package anomaly

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/qbroker/qbroker/internal/audit"
)

// Finding is one anomaly: the rule that fired, on which agent, for which
// event (Seq, Time), and what to do about it.
type Finding struct {
	Rule     string    `json:"rule"`
	Severity Severity  `json:"severity"`
	Actions  []Action  `json:"actions"`
	Agent    string    `json:"agent,omitempty"` // empty for an anonymous source (repeated_denials)
	Time     time.Time `json:"time"`
	Seq      uint64    `json:"seq,omitempty"`
	Detail   string    `json:"detail"`
}

// Has reports whether the finding asks for action a.
func (f Finding) Has(a Action) bool { return slices.Contains(f.Actions, a) }

// Engine runs the rules over a stream of audit events. It is safe for
// concurrent use; events should arrive in trail order.
type Engine struct {
	mu  sync.Mutex
	cfg *resolved
	// agents is an LRU of per-agent state: head most recent.
	agents     map[string]*agentState
	head, tail *agentState
	scratch    []float64
}

// New validates cfg (reporting every problem at once, as a *ConfigError
// wrapping ErrInvalidConfig) and returns an engine with empty state.
func New(cfg Config) (*Engine, error) {
	r, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	return &Engine{cfg: r, agents: make(map[string]*agentState)}, nil
}

// agentState is what the engine remembers about one agent (or, for
// anonymous denials, one source address).
type agentState struct {
	key        string
	prev, next *agentState
	lastFired  [numRules]time.Time

	// burst
	minute       int64
	count        int
	burstFlagged bool
	baseline     float64
	baselineN    int

	// job_size: rings of past shots and costs
	shots ring
	costs ring

	// first_device
	uses    int
	devices map[string]struct{}

	// repeated_denials: ring of recent denial times
	denials []time.Time

	// new_source: per accessor, the source prefixes seen, oldest first
	accessors map[string][]netip.Prefix
	accOrder  []string
}

// ring is a bounded FIFO of float64.
type ring struct {
	vals []float64
	next int
}

func (r *ring) push(v float64, max int) {
	if len(r.vals) < max {
		r.vals = append(r.vals, v)
		return
	}
	r.vals[r.next] = v
	r.next = (r.next + 1) % max
}

// Agents returns how many agents (and anonymous sources) the engine holds
// state for; never more than Config.MaxAgents.
func (e *Engine) Agents() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.agents)
}

// state returns key's state, creating it (and evicting the least recently
// seen one when full), and marks it most recently seen.
func (e *Engine) state(key string) *agentState {
	if s, ok := e.agents[key]; ok {
		e.unlink(s)
		e.pushFront(s)
		return s
	}
	if len(e.agents) >= e.cfg.maxAgents && e.tail != nil {
		old := e.tail
		e.unlink(old)
		delete(e.agents, old.key)
	}
	s := &agentState{key: key, minute: -1}
	e.agents[key] = s
	e.pushFront(s)
	return s
}

func (e *Engine) unlink(s *agentState) {
	if s.prev != nil {
		s.prev.next = s.next
	} else {
		e.head = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	} else {
		e.tail = s.prev
	}
	s.prev, s.next = nil, nil
}

func (e *Engine) pushFront(s *agentState) {
	s.next = e.head
	if e.head != nil {
		e.head.prev = s
	}
	e.head = s
	if e.tail == nil {
		e.tail = s
	}
}

// Observe runs every enabled rule over one event and returns the findings
// it triggers (usually none). Checkpoint lines are ignored.
func (e *Engine) Observe(ev audit.Event) []Finding {
	if ev.Type == audit.TypeCheckpoint || ev.Type == "" {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Finding
	if ev.Agent == "" {
		// Only repeated denials can be pinned on a source without an
		// agent (for example failed logins).
		if ev.Decision == audit.DecisionDeny && ev.RemoteAddr != "" && e.enabled(idxDenials) {
			s := e.state("\x00src:" + hostOf(ev.RemoteAddr))
			out = e.ruleDenials(s, ev, out)
		}
		return out
	}
	s := e.state(ev.Agent)
	if e.enabled(idxOffHours) {
		out = e.ruleOffHours(s, ev, out)
	}
	if e.enabled(idxBurst) {
		out = e.ruleBurst(s, ev, out)
	}
	if e.enabled(idxJobSize) {
		out = e.ruleJobSize(s, ev, out)
	}
	if e.enabled(idxFirstDevice) {
		out = e.ruleFirstDevice(s, ev, out)
	}
	if e.enabled(idxDenials) {
		out = e.ruleDenials(s, ev, out)
	}
	if e.enabled(idxNewSource) {
		out = e.ruleNewSource(s, ev, out)
	}
	return out
}

// Indexes of the rules, in RuleNames order.
const (
	idxOffHours = iota
	idxBurst
	idxJobSize
	idxFirstDevice
	idxDenials
	idxNewSource
)

func (e *Engine) enabled(i int) bool { return *e.cfg.rules[i].Enabled }

// fire appends a finding for rule i unless the rule is cooling down for s.
func (e *Engine) fire(out []Finding, s *agentState, i int, ev audit.Event, sev Severity, actions []Action, detail string) []Finding {
	rc := &e.cfg.rules[i]
	if last := s.lastFired[i]; !last.IsZero() && ev.Time.Sub(last) < rc.Cooldown && ev.Time.Sub(last) >= 0 {
		return out
	}
	s.lastFired[i] = ev.Time
	return append(out, Finding{
		Rule: rc.Name, Severity: sev, Actions: slices.Clone(actions),
		Agent: ev.Agent, Time: ev.Time, Seq: ev.Seq, Detail: detail,
	})
}

// allowed reports whether ev records something that happened (not a
// refusal).
func allowed(ev audit.Event) bool {
	return ev.Decision != audit.DecisionDeny && ev.Decision != audit.DecisionError
}

// scheduleFor returns the schedule that applies to ev's agent.
func (e *Engine) scheduleFor(ev audit.Event) *schedule {
	if s, ok := e.cfg.agentSched[ev.Agent]; ok {
		return s
	}
	if s, ok := e.cfg.roleSched[ev.Role]; ok {
		return s
	}
	return e.cfg.defaultSched
}

// hardware reports whether device names a hardware QPU.
func (e *Engine) hardware(device string) bool {
	if device == "" {
		return false
	}
	if e.cfg.hwDevices[device] {
		return true
	}
	for _, p := range e.cfg.hwPrefixes {
		if strings.HasPrefix(device, p) {
			return true
		}
	}
	return strings.HasPrefix(device, "arn:") && strings.Contains(device, ":device/qpu/")
}

func (e *Engine) ruleOffHours(s *agentState, ev audit.Event, out []Finding) []Finding {
	rc := &e.cfg.rules[idxOffHours]
	if !e.cfg.typeSets[idxOffHours][ev.Type] || !allowed(ev) {
		return out
	}
	if rc.HardwareOnly && !e.hardware(ev.Device) {
		return out
	}
	sch := e.scheduleFor(ev)
	if sch.contains(ev.Time) {
		return out
	}
	lt := ev.Time.In(sch.loc)
	target := ""
	if ev.Device != "" {
		target = fmt.Sprintf(" on %s/%s", ev.Provider, ev.Device)
	}
	return e.fire(out, s, idxOffHours, ev, rc.Severity, rc.Actions,
		fmt.Sprintf("%s%s at %s (%s), outside the agent's schedule", ev.Type, target, lt.Format("Mon 15:04"), sch.loc))
}

func (e *Engine) ruleBurst(s *agentState, ev audit.Event, out []Finding) []Finding {
	rc := &e.cfg.rules[idxBurst]
	if !e.cfg.typeSets[idxBurst][ev.Type] || !allowed(ev) {
		return out
	}
	minute := ev.Time.Unix() / 60
	if minute > s.minute {
		// Close the previous active minute into the baseline, unless it
		// was itself a burst (a burst must not teach the baseline).
		if s.count > 0 && !s.burstFlagged {
			if s.baselineN == 0 {
				s.baseline = float64(s.count)
			} else {
				s.baseline += e.cfg.burstAlpha * (float64(s.count) - s.baseline)
			}
			s.baselineN++
		}
		s.minute, s.count, s.burstFlagged = minute, 0, false
	}
	s.count++ // an event slightly out of order counts in the current minute
	if s.burstFlagged || s.count < rc.MinCount || float64(s.count) <= rc.Factor*s.baseline {
		return out
	}
	s.burstFlagged = true
	sev, actions := rc.Severity, rc.Actions
	note := ""
	if rc.Escalate != nil && e.hardware(ev.Device) && !e.scheduleFor(ev).contains(ev.Time) {
		sev, actions = rc.Escalate.Severity, rc.Escalate.Actions
		note = fmt.Sprintf(", off schedule on hardware %s/%s", ev.Provider, ev.Device)
	}
	return e.fire(out, s, idxBurst, ev, sev, actions,
		fmt.Sprintf("%d %s events in one minute, baseline %.1f per active minute (factor %g, minimum %d)%s",
			s.count, ev.Type, s.baseline, rc.Factor, rc.MinCount, note))
}

func (e *Engine) ruleJobSize(s *agentState, ev audit.Event, out []Finding) []Finding {
	rc := &e.cfg.rules[idxJobSize]
	if !e.cfg.typeSets[idxJobSize][ev.Type] || !allowed(ev) || (ev.Shots <= 0 && ev.EstimatedCostUSD == nil) {
		return out
	}
	var why []string
	if ev.Shots > 0 && len(s.shots.vals) >= rc.MinHistory {
		stat := e.percentile(s.shots.vals)
		if ev.Shots > rc.MinShots && float64(ev.Shots) > rc.Factor*stat {
			why = append(why, fmt.Sprintf("%d shots vs %s %g", ev.Shots, rc.Statistic, stat))
		}
	}
	if c := ev.EstimatedCostUSD; c != nil && len(s.costs.vals) >= rc.MinHistory {
		stat := e.percentile(s.costs.vals)
		if *c > rc.MinCostUSD && *c > rc.Factor*stat {
			why = append(why, fmt.Sprintf("estimated $%.2f vs %s $%.2f", *c, rc.Statistic, stat))
		}
	}
	// A job a human approved is normal from now on; an unapproved outlier
	// is kept out of the history so that it cannot shift the baseline.
	if len(why) == 0 || ev.ApprovalID != "" {
		if ev.Shots > 0 {
			s.shots.push(float64(ev.Shots), rc.HistorySize)
		}
		if ev.EstimatedCostUSD != nil {
			s.costs.push(*ev.EstimatedCostUSD, rc.HistorySize)
		}
		return out
	}
	return e.fire(out, s, idxJobSize, ev, rc.Severity, rc.Actions,
		fmt.Sprintf("job on %s/%s: %s (factor %g)", ev.Provider, ev.Device, strings.Join(why, ", "), rc.Factor))
}

// percentile returns the configured statistic of vals (nearest rank).
func (e *Engine) percentile(vals []float64) float64 {
	e.scratch = append(e.scratch[:0], vals...)
	slices.Sort(e.scratch)
	i := int(e.cfg.jobPercentile*float64(len(e.scratch)-1) + 0.5)
	return e.scratch[i]
}

func (e *Engine) ruleFirstDevice(s *agentState, ev audit.Event, out []Finding) []Finding {
	rc := &e.cfg.rules[idxFirstDevice]
	if !e.cfg.typeSets[idxFirstDevice][ev.Type] || !allowed(ev) || (ev.Provider == "" && ev.Device == "") {
		return out
	}
	if s.devices == nil {
		s.devices = make(map[string]struct{})
	}
	experienced := s.uses >= rc.MinHistory
	s.uses++
	var what string
	for _, k := range [...]struct{ key, desc string }{
		{"p\x00" + ev.Provider, "provider " + ev.Provider},
		{"d\x00" + ev.Provider + "\x00" + ev.Device, fmt.Sprintf("device %s/%s", ev.Provider, ev.Device)},
	} {
		if _, ok := s.devices[k.key]; ok {
			continue
		}
		if len(s.devices) >= rc.MaxDevices {
			return out // full: neither remembered nor flagged
		}
		s.devices[k.key] = struct{}{}
		if what == "" {
			what = k.desc
		}
	}
	if what == "" || !experienced {
		return out
	}
	return e.fire(out, s, idxFirstDevice, ev, rc.Severity, rc.Actions,
		fmt.Sprintf("first use of %s after %d earlier uses", what, s.uses-1))
}

func (e *Engine) ruleDenials(s *agentState, ev audit.Event, out []Finding) []Finding {
	rc := &e.cfg.rules[idxDenials]
	if ev.Decision != audit.DecisionDeny {
		return out
	}
	if len(s.denials) < rc.Count {
		s.denials = append(s.denials, ev.Time)
	} else {
		copy(s.denials, s.denials[1:])
		s.denials[len(s.denials)-1] = ev.Time
	}
	if len(s.denials) < rc.Count || ev.Time.Sub(s.denials[0]) > rc.Window {
		return out
	}
	s.denials = s.denials[:0] // the next episode needs Count fresh denials
	who := ""
	if ev.Agent == "" {
		who = " from source " + hostOf(ev.RemoteAddr)
	}
	last := ev.Reason
	if len(last) > 120 {
		last = last[:120] + "…"
	}
	return e.fire(out, s, idxDenials, ev, rc.Severity, rc.Actions,
		fmt.Sprintf("%d denials within %s%s; last: %s %s (%s)", rc.Count, rc.Window, who, ev.Type, ev.Action, last))
}

func (e *Engine) ruleNewSource(s *agentState, ev audit.Event, out []Finding) []Finding {
	rc := &e.cfg.rules[idxNewSource]
	if ev.Accessor == "" || ev.RemoteAddr == "" {
		return out
	}
	p, ok := sourcePrefix(ev.RemoteAddr, rc.PrefixV4, rc.PrefixV6)
	if !ok {
		return out
	}
	if s.accessors == nil {
		s.accessors = make(map[string][]netip.Prefix)
	}
	seen, known := s.accessors[ev.Accessor]
	if !known {
		if len(s.accOrder) >= rc.MaxAccessors {
			delete(s.accessors, s.accOrder[0])
			s.accOrder = slices.Delete(s.accOrder, 0, 1)
		}
		s.accOrder = append(s.accOrder, ev.Accessor)
		s.accessors[ev.Accessor] = []netip.Prefix{p}
		return out
	}
	if slices.Contains(seen, p) {
		return out
	}
	first := seen[0]
	if len(seen) >= rc.MaxAddresses {
		seen = slices.Delete(seen, 0, 1)
	}
	s.accessors[ev.Accessor] = append(seen, p)
	return e.fire(out, s, idxNewSource, ev, rc.Severity, rc.Actions,
		fmt.Sprintf("token accessor %s used from new source %s (first seen from %s)", ev.Accessor, p, first))
}

// hostOf strips a port from an address.
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// sourcePrefix maps a remote address (with or without port) to its source
// prefix.
func sourcePrefix(addr string, v4, v6 int) (netip.Prefix, bool) {
	ip, err := netip.ParseAddr(hostOf(addr))
	if err != nil {
		return netip.Prefix{}, false
	}
	ip = ip.Unmap().WithZone("")
	bits := v6
	if ip.Is4() {
		bits = v4
	}
	p, err := ip.Prefix(bits)
	return p, err == nil
}
