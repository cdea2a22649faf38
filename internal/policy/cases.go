package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Case is one policy test case, as written in a YAML suite (see
// docs/policies.md, "Testing policies").
type Case struct {
	Name      string        `yaml:"name"`
	Principal CasePrincipal `yaml:"principal"`
	Action    string        `yaml:"action"`
	Resource  CaseResource  `yaml:"resource"`
	Context   CaseContext   `yaml:"context"`
	Expect    string        `yaml:"expect"` // "allow" or "deny"
	// Policies, when set, are the ids expected to determine the decision
	// (the permits that allowed or the forbids that denied), in any order.
	Policies []string `yaml:"policies"`
}

// CasePrincipal is the agent of a case.
type CasePrincipal struct {
	ID          string            `yaml:"id"`
	Role        string            `yaml:"role"`
	Team        string            `yaml:"team"`
	Owner       string            `yaml:"owner"`
	AuthMethod  string            `yaml:"auth_method"`
	Environment string            `yaml:"environment"`
	Labels      map[string]string `yaml:"labels"`
}

// CaseResource names exactly one of a device, a job, a provider or the
// broker (Admin* actions). For a
// device, Kind is required. A job may carry Kind (and Qubits, Vendor, ARN)
// to describe its device too.
type CaseResource struct {
	Device   string   `yaml:"device"` // "<provider>/<name>"
	Kind     string   `yaml:"kind"`
	Qubits   int      `yaml:"qubits"`
	Vendor   string   `yaml:"vendor"`
	ARN      string   `yaml:"arn"`
	Job      *CaseJob `yaml:"job"`
	Provider string   `yaml:"provider"`
	Broker   string   `yaml:"broker"` // "qbroker", for the Admin* actions
}

// CaseJob is a job resource.
type CaseJob struct {
	ID     string `yaml:"id"`
	Owner  string `yaml:"owner"`
	Team   string `yaml:"team"`
	Device string `yaml:"device"` // "<provider>/<name>"
}

// CaseContext is the request context of a case.
type CaseContext struct {
	Shots            int     `yaml:"shots"`
	EstimatedCostUSD float64 `yaml:"estimated_cost_usd"`
	Qubits           int     `yaml:"qubits"`
	ProgramSHA256    string  `yaml:"program_sha256"`
	Approved         bool    `yaml:"approved"`
	Hour             int     `yaml:"hour"`
	Weekday          int     `yaml:"weekday"`
	SourceIP         string  `yaml:"source_ip"`
}

// CaseResult is the outcome of one case.
type CaseResult struct {
	Name     string   `json:"name"`
	Pass     bool     `json:"pass"`
	Decision Decision `json:"decision"`
	// Diff is "" when the case passed, else one readable line, e.g.
	// case "qpu refused": want deny, got allow (policies: ["p"]; reason: ...).
	Diff string `json:"diff,omitempty"`
}

// ErrCases is matched (errors.Is) by every error LoadCases returns.
var ErrCases = errors.New("policy test cases error")

// LoadCases parses a YAML suite: a list of cases. Unknown fields are
// errors, and every case is checked (name, expect, one resource) before
// any is run; all problems are reported at once.
func LoadCases(data []byte) ([]Case, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var cases []Case
	if err := dec.Decode(&cases); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: no cases", ErrCases)
		}
		return nil, fmt.Errorf("%w: %w", ErrCases, err)
	}
	var errs []error
	seen := make(map[string]bool)
	for i, c := range cases {
		where := fmt.Sprintf("case %d (%q)", i+1, c.Name)
		if c.Name == "" {
			errs = append(errs, fmt.Errorf("%w: case %d: name is empty", ErrCases, i+1))
		} else if seen[c.Name] {
			errs = append(errs, fmt.Errorf("%w: %s: duplicate name", ErrCases, where))
		}
		seen[c.Name] = true
		if c.Expect != "allow" && c.Expect != "deny" {
			errs = append(errs, fmt.Errorf("%w: %s: expect is %q, want allow or deny", ErrCases, where, c.Expect))
		}
		if _, err := c.Request(); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: %w", ErrCases, where, err))
		}
	}
	if len(cases) == 0 {
		errs = append(errs, fmt.Errorf("%w: no cases", ErrCases))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cases, nil
}

// Request converts the case into a Request. It checks only the shape of
// the resource; Decide checks the rest.
func (c Case) Request() (Request, error) {
	r := c.Resource
	n := 0
	if r.Device != "" {
		n++
	}
	if r.Job != nil {
		n++
	}
	if r.Provider != "" {
		n++
	}
	if r.Broker != "" {
		n++
		if r.Broker != BrokerID {
			return Request{}, fmt.Errorf("broker is %q, the only broker is %q", r.Broker, BrokerID)
		}
	}
	if n != 1 {
		return Request{}, errors.New("resource must name exactly one of device, job, provider or broker")
	}
	req := Request{
		Agent: Agent{
			ID: c.Principal.ID, Role: c.Principal.Role, Owner: c.Principal.Owner, Team: c.Principal.Team,
			AuthMethod: c.Principal.AuthMethod, Environment: c.Principal.Environment, Labels: c.Principal.Labels,
		},
		Action: c.Action,
		Context: Context{
			Shots: c.Context.Shots, EstimatedCostUSD: c.Context.EstimatedCostUSD, Qubits: c.Context.Qubits,
			ProgramSHA256: c.Context.ProgramSHA256, SourceIP: c.Context.SourceIP,
			Hour: c.Context.Hour, Weekday: c.Context.Weekday, Approved: c.Context.Approved,
		},
	}
	deviceID := r.Device
	if r.Job != nil {
		req.Job = &Job{ID: r.Job.ID, Owner: r.Job.Owner, Team: r.Job.Team, DeviceID: r.Job.Device}
		deviceID = r.Job.Device
		if r.Kind == "" {
			return req, nil
		}
	}
	if r.Device != "" && r.Kind == "" {
		return Request{}, fmt.Errorf("device %q needs a kind (qpu or simulator)", r.Device)
	}
	if deviceID != "" {
		p, name, ok := strings.Cut(deviceID, "/")
		if !ok {
			return Request{}, fmt.Errorf("device %q is not <provider>/<name>", deviceID)
		}
		req.Device = &Device{Provider: p, Name: name, Kind: r.Kind, Qubits: r.Qubits, Vendor: r.Vendor, ARN: r.ARN}
		return req, nil
	}
	req.Provider = r.Provider
	return req, nil
}

// RunCases decides every case with e and compares the outcome.
func RunCases(e *Engine, cases []Case) []CaseResult {
	out := make([]CaseResult, 0, len(cases))
	for _, c := range cases {
		res := CaseResult{Name: c.Name}
		req, err := c.Request()
		if err != nil {
			res.Decision = Decision{Reason: "invalid case: " + err.Error(), Errors: []string{err.Error()}}
		} else {
			res.Decision = e.Decide(req)
		}
		got := "deny"
		if res.Decision.Allowed {
			got = "allow"
		}
		var problems []string
		if got != c.Expect {
			problems = append(problems, fmt.Sprintf("want %s, got %s", c.Expect, got))
		}
		if c.Policies != nil && !sameSet(c.Policies, res.Decision.Policies) {
			problems = append(problems, fmt.Sprintf("want policies [%s], got [%s]", quoteIDs(c.Policies), quoteIDs(res.Decision.Policies)))
		}
		res.Pass = len(problems) == 0
		if !res.Pass {
			res.Diff = fmt.Sprintf("case %q: %s (policies: [%s]; reason: %s)",
				c.Name, strings.Join(problems, "; "), quoteIDs(res.Decision.Policies), res.Decision.Reason)
		}
		out = append(out, res)
	}
	return out
}

// sameSet compares two id lists ignoring order.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// RequestSpec is one authorization question in the case format without a
// name or an expectation: what `qbroker policy explain` and the explain API
// read (YAML or JSON).
type RequestSpec struct {
	Principal CasePrincipal `yaml:"principal"`
	Action    string        `yaml:"action"`
	Resource  CaseResource  `yaml:"resource"`
	Context   CaseContext   `yaml:"context"`
}

// ParseRequest reads a RequestSpec (YAML or JSON; unknown fields are
// errors) and converts it into a Request.
func ParseRequest(data []byte) (Request, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var s RequestSpec
	if err := dec.Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			return Request{}, fmt.Errorf("%w: empty request", ErrCases)
		}
		return Request{}, fmt.Errorf("%w: %w", ErrCases, err)
	}
	return Case{Principal: s.Principal, Action: s.Action, Resource: s.Resource, Context: s.Context}.Request()
}
