package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Approvals configures the human approval gate (docs/approvals.md): who
// may approve, which requests need it, how long they wait, where people
// are told, and how they sign in to the console.
type Approvals struct {
	// TTL is how long a request waits for its approvals (default 1h).
	TTL time.Duration `yaml:"ttl"`
	// IssueWindow is how long an approved request can be issued (default 15m).
	IssueWindow time.Duration `yaml:"issue_window"`
	// ConsoleURL is where people review requests (default <public_url>/ui/).
	ConsoleURL string          `yaml:"console_url"`
	Groups     []ApproverGroup `yaml:"groups"`
	Rules      []ApprovalRule  `yaml:"rules"`
	// Policy is the consent asked for when a Cedar policy permits a request
	// only with context.approved (no rule matched): approvals and group
	// (default 1 of the first group).
	Policy ApprovalConsent `yaml:"policy"`
	// RootPerson is the person a root token approves as (default "root").
	RootPerson string       `yaml:"root_person"`
	Webhook    Webhook      `yaml:"webhook"`
	Console    ConsoleLogin `yaml:"console"`
}

// ApproverGroup is a set of people who may approve.
type ApproverGroup struct {
	Name string `yaml:"name"`
	// People are console sign-ins (the IdP's verified email, else its
	// subject) and broker agent ids, as they approve through the API.
	People []string `yaml:"people"`
	// Roles: any token of these broker roles approves, as its agent id
	// (or the person it acts for).
	Roles []string `yaml:"roles"`
	// RootTokens lets root tokens approve, as root_person.
	RootTokens bool `yaml:"root_tokens"`
}

// ApprovalRule says which requests need approval. Every condition given
// must hold; roles and actions narrow it.
type ApprovalRule struct {
	Name       string   `yaml:"name"`
	Actions    []string `yaml:"actions"` // default [SubmitJob]
	Roles      []string `yaml:"roles"`
	DeviceKind string   `yaml:"device_kind"` // qpu or simulator
	Devices    []string `yaml:"devices"`     // "<provider>/<name>"
	// CostOverUSD: the estimate is above this (0 counts: any paid job).
	CostOverUSD     *float64  `yaml:"cost_over_usd"`
	ShotsOver       int       `yaml:"shots_over"`
	NewDevice       bool      `yaml:"new_device"` // the agent has no recorded job on the device
	OffHours        *OffHours `yaml:"off_hours"`
	Always          bool      `yaml:"always"` // match with no other condition
	ApprovalConsent `yaml:",inline"`
}

// AdminActions are the administrative actions approval rules can gate
// (four eyes): role changes, provider credentials, signing-key rotation.
func AdminActions() []string { return []string{"AdminRoles", "AdminProviders", "AdminKeys"} }

// ApprovalConsent is how many approvals from which group, and how long
// the request may wait (default: approvals.ttl).
type ApprovalConsent struct {
	Approvals int           `yaml:"approvals"`
	Group     string        `yaml:"group"`
	TTL       time.Duration `yaml:"ttl"`
}

// OffHours: outside [Start, End) in time_zone, and all weekend when
// Weekends is true.
type OffHours struct {
	Start    int  `yaml:"start"` // business hours start, 0-23
	End      int  `yaml:"end"`   // business hours end, 1-24
	Weekends bool `yaml:"weekends"`
}

// Webhook receives approval events (and alerts), signed with HMAC-SHA256.
type Webhook struct {
	URL       string `yaml:"url"`
	SecretEnv string `yaml:"secret_env"` // the signing secret comes from this env var, never from the file
}

// ConsoleLogin is how people sign in to the web console: OpenID Connect
// authorization code with PKCE.
type ConsoleLogin struct {
	Issuer          string   `yaml:"issuer"`
	ClientID        string   `yaml:"client_id"`
	ClientSecretEnv string   `yaml:"client_secret_env"`
	Scopes          []string `yaml:"scopes"`       // default openid email profile
	PersonClaim     string   `yaml:"person_claim"` // default email
}

func (a *Approvals) applyDefaults() {
	if a.TTL == 0 {
		a.TTL = time.Hour
	}
	if a.IssueWindow == 0 {
		a.IssueWindow = 15 * time.Minute
	}
	if a.RootPerson == "" {
		a.RootPerson = "root"
	}
	if a.Policy.Approvals == 0 {
		a.Policy.Approvals = 1
	}
	if a.Policy.Group == "" && len(a.Groups) > 0 {
		a.Policy.Group = a.Groups[0].Name
	}
	for i := range a.Rules {
		r := &a.Rules[i]
		if len(r.Actions) == 0 {
			r.Actions = []string{"SubmitJob"}
		}
		if r.Approvals == 0 {
			r.Approvals = 1
		}
	}
}

func (a *Approvals) validate(bad func(string, ...any)) {
	groups := map[string]ApproverGroup{}
	for i, g := range a.Groups {
		switch {
		case g.Name == "":
			bad("approvals.groups[%d]: name is required", i)
		case groups[g.Name].Name != "":
			bad("approvals.groups[%d]: group %q defined twice", i, g.Name)
		case len(g.People) == 0 && len(g.Roles) == 0 && !g.RootTokens:
			bad("approvals.groups[%d] (%s): no people, roles or root_tokens: nobody could approve", i, g.Name)
		}
		groups[g.Name] = g
	}
	checkConsent := func(where string, c ApprovalConsent) {
		g, ok := groups[c.Group]
		switch {
		case c.Group == "":
			bad("%s: group is required", where)
		case !ok:
			bad("%s: group %q is not defined in approvals.groups", where, c.Group)
		case c.Approvals < 1:
			bad("%s: approvals must be at least 1", where)
		case len(g.Roles) == 0 && c.Approvals > len(g.People)+boolCount(g.RootTokens):
			bad("%s: needs %d approvals but group %s has only %d people", where, c.Approvals, c.Group, len(g.People)+boolCount(g.RootTokens))
		}
		if c.TTL < 0 {
			bad("%s: ttl must not be negative", where)
		}
	}
	if len(a.Groups) > 0 {
		checkConsent("approvals.policy", a.Policy)
	}
	names := map[string]bool{}
	for i, r := range a.Rules {
		where := fmt.Sprintf("approvals.rules[%d]", i)
		if r.Name == "" {
			bad("%s: name is required", where)
		} else if names[r.Name] {
			bad("%s: rule %q defined twice", where, r.Name)
		}
		names[r.Name] = true
		where = fmt.Sprintf("approvals.rules[%d] (%s)", i, r.Name)
		admin := false
		for _, act := range r.Actions {
			switch {
			case act == "SubmitJob":
			case slices.Contains(AdminActions(), act), act == "IssueCredentials":
				admin = true
			default:
				bad("%s: action %q cannot be gated (SubmitJob, IssueCredentials, %s)", where, act, strings.Join(AdminActions(), ", "))
			}
		}
		if admin && (r.DeviceKind != "" || len(r.Devices) > 0 || r.CostOverUSD != nil || r.ShotsOver > 0 || r.NewDevice) {
			bad("%s: device, cost and shots conditions do not apply to admin actions or IssueCredentials (use always, off_hours or roles)", where)
		}
		if r.DeviceKind != "" && r.DeviceKind != "qpu" && r.DeviceKind != "simulator" {
			bad("%s: device_kind %q is not qpu or simulator", where, r.DeviceKind)
		}
		if r.CostOverUSD != nil && *r.CostOverUSD < 0 {
			bad("%s: cost_over_usd must not be negative", where)
		}
		if r.ShotsOver < 0 {
			bad("%s: shots_over must not be negative", where)
		}
		if h := r.OffHours; h != nil && (h.Start < 0 || h.Start > 23 || h.End < 1 || h.End > 24 || h.Start >= h.End) {
			bad("%s: off_hours needs 0 <= start < end <= 24 (business hours), got %d-%d", where, h.Start, h.End)
		}
		if !r.Always && r.DeviceKind == "" && len(r.Devices) == 0 && r.CostOverUSD == nil && r.ShotsOver == 0 && !r.NewDevice && r.OffHours == nil {
			bad("%s: no condition (device_kind, devices, cost_over_usd, shots_over, new_device, off_hours; or always: true)", where)
		}
		checkConsent(where, r.ApprovalConsent)
	}
	if len(a.Rules) > 0 && len(a.Groups) == 0 {
		bad("approvals: rules need at least one approver group")
	}
	if a.ConsoleURL != "" {
		if u, err := url.Parse(a.ConsoleURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("approvals.console_url: %q is not an http(s) URL", a.ConsoleURL)
		}
	}
	if a.Webhook.URL != "" {
		if u, err := url.Parse(a.Webhook.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			bad("approvals.webhook.url: %q is not an http(s) URL without credentials", a.Webhook.URL)
		}
		if a.Webhook.SecretEnv == "" {
			bad("approvals.webhook.secret_env: required with a webhook url (events are signed)")
		}
	}
	if c := a.Console; c.Issuer != "" || c.ClientID != "" {
		if u, err := url.Parse(c.Issuer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("approvals.console.issuer: %q is not an http(s) URL", c.Issuer)
		}
		if c.ClientID == "" {
			bad("approvals.console.client_id: required with an issuer")
		}
	}
}

func boolCount(b bool) int {
	if b {
		return 1
	}
	return 0
}
