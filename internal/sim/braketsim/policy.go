package braketsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// decision is the outcome of evaluating a session policy.
type decision int

const (
	decisionImplicitDeny decision = iota // no statement allows
	decisionAllow
	decisionExplicitDeny // a Deny statement applies
)

// policyDoc is a parsed inline session policy.
//
// Evaluation follows IAM: an explicit Deny wins, then an Allow, else the
// request is implicitly denied. Conditions are evaluated when every
// operator and key of the block is one the emulator knows (see
// condition.go); otherwise, and for policy variables (${…}), they fail
// closed: an Allow statement with such a Condition never applies and a Deny
// statement with one always applies (when its actions match), so an
// unsupported condition can only take permissions away, never grant them.
type policyDoc struct {
	text       string
	packedLen  int
	statements []statement
}

type statement struct {
	deny        bool
	actions     []string // lower-cased patterns
	notAction   bool
	resources   []string
	notResource bool
	conditional bool        // has a Condition block
	conditions  []condition // its parsed clauses
}

var (
	actionPatternRE = regexp.MustCompile(`^(\*|[a-zA-Z0-9-]+:[a-zA-Z0-9*?]+)$`)
	errNotObject    = errors.New("not a JSON object")
)

// malformedPolicy is a MalformedPolicyDocument message. Its text is AWS's
// wording, which starts with a capital letter.
type malformedPolicy struct {
	msg   string
	cause error
}

func (m *malformedPolicy) Error() string { return m.msg }
func (m *malformedPolicy) Unwrap() error { return m.cause }

// malformed formats a MalformedPolicyDocument message; an error argument
// becomes its cause.
func malformed(format string, args ...any) error {
	m := &malformedPolicy{}
	for i, a := range args {
		if err, ok := a.(error); ok {
			m.cause = err
			args[i] = err.Error()
		}
	}
	m.msg = fmt.Sprintf(strings.ReplaceAll(format, "%w", "%s"), args...)
	return m
}

// parsePolicy parses an IAM policy document as a session policy. Errors are
// MalformedPolicyDocument messages.
func parsePolicy(text string) (*policyDoc, error) {
	top, err := decodeObject([]byte(text))
	if err != nil {
		return nil, malformed("The policy is not in the valid JSON format: %w", err)
	}
	for k := range top {
		switch k {
		case "Version", "Id", "Statement":
		default:
			return nil, malformed("Syntax errors in policy: unknown element %q.", k)
		}
	}
	if raw, ok := top["Version"]; ok {
		var v string
		if err := json.Unmarshal(raw, &v); err != nil || (v != "2012-10-17" && v != "2008-10-17") {
			return nil, malformed("The policy must contain a valid version string")
		}
	}
	raw, ok := top["Statement"]
	if !ok {
		return nil, malformed("Syntax errors in policy: missing Statement.")
	}
	var list []json.RawMessage
	if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) {
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, malformed("Syntax errors in policy: Statement: %w", err)
		}
	} else {
		list = []json.RawMessage{raw}
	}
	if len(list) == 0 {
		return nil, malformed("Syntax errors in policy: Statement is empty.")
	}
	doc := &policyDoc{text: text}
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(text)); err == nil {
		doc.packedLen = compact.Len()
	} else {
		doc.packedLen = len(text)
	}
	for i, r := range list {
		st, err := parseStatement(r)
		if err != nil {
			return nil, malformed("Statement %d: %w", i, err)
		}
		doc.statements = append(doc.statements, st)
	}
	return doc, nil
}

func parseStatement(raw json.RawMessage) (statement, error) {
	var st statement
	obj, err := decodeObject(raw)
	if err != nil {
		return st, malformed("Syntax errors in policy: %w", err)
	}
	for k := range obj {
		switch k {
		case "Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition":
		case "Principal", "NotPrincipal":
			return st, malformed("Policy document should not specify a principal.")
		default:
			return st, malformed("Syntax errors in policy: unknown element %q.", k)
		}
	}
	var effect string
	if err := json.Unmarshal(obj["Effect"], &effect); err != nil || (effect != "Allow" && effect != "Deny") {
		return st, malformed("Syntax errors in policy: Effect must be \"Allow\" or \"Deny\".")
	}
	st.deny = effect == "Deny"
	actions, notActions := obj["Action"], obj["NotAction"]
	if (actions == nil) == (notActions == nil) {
		return st, malformed("Policy statement must contain exactly one of Action and NotAction.")
	}
	if notActions != nil {
		actions, st.notAction = notActions, true
	}
	if st.actions, err = stringOrList(actions); err != nil {
		return st, malformed("Syntax errors in policy: actions: %w", err)
	}
	for i, a := range st.actions {
		if !actionPatternRE.MatchString(a) {
			return st, malformed("Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.: %q", a)
		}
		st.actions[i] = strings.ToLower(a)
	}
	resources, notResources := obj["Resource"], obj["NotResource"]
	if (resources == nil) == (notResources == nil) {
		return st, malformed("Policy statement must contain resources.")
	}
	if notResources != nil {
		resources, st.notResource = notResources, true
	}
	if st.resources, err = stringOrList(resources); err != nil {
		return st, malformed("Syntax errors in policy: resources: %w", err)
	}
	for _, r := range st.resources {
		if r != "*" && (!strings.HasPrefix(r, "arn:") || strings.Count(r, ":") < 5) {
			return st, malformed("Resource %s must be in ARN format or \"*\".", r)
		}
	}
	if cond, ok := obj["Condition"]; ok {
		if st.conditions, err = parseConditions(cond); err != nil {
			return st, err
		}
		st.conditional = true
	}
	return st, nil
}

// stringOrList decodes a JSON string or a non-empty array of strings.
func stringOrList(raw json.RawMessage) ([]string, error) {
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, errors.New("must be a string or an array of strings")
	}
	if len(many) == 0 {
		return nil, errors.New("must not be empty")
	}
	return many, nil
}

// evaluate decides whether the policy permits action on resource, with no
// request context: every condition fails closed.
func (d *policyDoc) evaluate(action, resource string) decision {
	return d.evaluateIn(action, resource, nil)
}

// evaluateIn decides whether the policy permits action on resource for a
// request whose condition keys are rc (nil: none known).
func (d *policyDoc) evaluateIn(action, resource string, rc *requestContext) decision {
	action = strings.ToLower(action)
	allowed := false
	for i := range d.statements {
		st := &d.statements[i]
		if !st.applies(action, resource, rc) {
			continue
		}
		if st.deny {
			return decisionExplicitDeny
		}
		allowed = true
	}
	if allowed {
		return decisionAllow
	}
	return decisionImplicitDeny
}

// applies reports whether st covers action on resource. What cannot be
// evaluated (unknown condition operators or keys, policy variables)
// resolves to "applies" for Deny and "does not apply" for Allow.
func (st *statement) applies(action, resource string, rc *requestContext) bool {
	actionMatch := false
	for _, p := range st.actions {
		if glob(p, action) {
			actionMatch = true
			break
		}
	}
	if actionMatch == st.notAction {
		return false
	}
	if st.conditional {
		switch conditionsHold(st.conditions, rc) {
		case condFalse:
			return false
		case condUnknown:
			if !st.deny {
				return false
			}
		}
	}
	matched, unknown := false, false
	for _, p := range st.resources {
		if strings.Contains(p, "${") {
			unknown = true
			continue
		}
		if matchARN(p, resource) {
			matched = true
			break
		}
	}
	switch {
	case matched:
		return !st.notResource
	case unknown:
		return st.deny
	default:
		return st.notResource
	}
}

// matchARN matches an ARN against a policy resource pattern, field by field
// for the first five colon-separated fields and as a whole for the resource
// part, with * and ? wildcards that never cross a field boundary.
func matchARN(pattern, arn string) bool {
	if pattern == "*" {
		return true
	}
	pp, ap := strings.SplitN(pattern, ":", 6), strings.SplitN(arn, ":", 6)
	if len(pp) != 6 || len(ap) != 6 {
		return false
	}
	for i := range pp {
		if !glob(pp[i], ap[i]) {
			return false
		}
	}
	return true
}

// glob reports whether s matches pattern, where * matches any run of bytes
// and ? any single byte.
func glob(pattern, s string) bool {
	px, sx := 0, 0
	nextPx, nextSx := 0, 0
	for px < len(pattern) || sx < len(s) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				nextPx, nextSx = px, sx+1
				px++
				continue
			case '?':
				if sx < len(s) {
					px++
					sx++
					continue
				}
			default:
				if sx < len(s) && s[sx] == c {
					px++
					sx++
					continue
				}
			}
		}
		if 0 < nextSx && nextSx <= len(s) {
			px, sx = nextPx, nextSx
			continue
		}
		return false
	}
	return true
}

// evaluate decides whether p may perform action on resource. A session's
// role is taken to allow everything, except what an explicit Deny in one
// of the role's inline policies (PutRolePolicy) takes away; the session
// policy then narrows it. The long-term key may do everything except the
// actions Config.RootDeniedActions lists. An explicit Deny anywhere wins.
func (e *Emulator) evaluate(p *principal, action, resource string) (decision, denySource) {
	if p.sess == nil {
		for _, a := range e.cfg.RootDeniedActions {
			if glob(strings.ToLower(a), strings.ToLower(action)) {
				return decisionImplicitDeny, fromIdentityPolicy
			}
		}
		return decisionAllow, 0
	}
	rc := e.requestContext(p)
	e.mu.Lock()
	inline := make([]*policyDoc, 0, len(e.rolePolicies[p.sess.roleName]))
	for _, d := range e.rolePolicies[p.sess.roleName] {
		inline = append(inline, d)
	}
	e.mu.Unlock()
	for _, d := range inline {
		if d.evaluateIn(action, resource, rc) == decisionExplicitDeny {
			return decisionExplicitDeny, fromIdentityPolicy
		}
	}
	if p.sess.policy == nil {
		return decisionAllow, 0
	}
	return p.sess.policy.evaluateIn(action, resource, rc), fromSessionPolicy
}

// denySource is the kind of policy a refusal comes from.
type denySource int

const (
	fromSessionPolicy denySource = iota + 1
	fromIdentityPolicy
)

// accessDenied renders a refusal in AWS's wording.
func accessDenied(c *call, d decision, src denySource, action, resource string) *apiError {
	res := resource
	if c.svc == svcS3 {
		res = `"` + resource + `"`
	}
	kind := "a session policy"
	if src == fromIdentityPolicy {
		kind = "an identity-based policy"
	}
	msg := fmt.Sprintf("User: %s is not authorized to perform: %s on resource: %s ", c.p.arn, action, res)
	if d == decisionExplicitDeny {
		msg += "with an explicit deny in " + kind
	} else {
		msg += fmt.Sprintf("because no %s allows the %s action", strings.TrimPrefix(strings.TrimPrefix(kind, "an "), "a "), action)
	}
	code := "AccessDenied"
	if c.svc == svcBraket {
		code = "AccessDeniedException"
	}
	return &apiError{status: 403, code: code, msg: msg}
}

// authorize checks p against every (action, resource) pair and returns the
// first refusal.
func (c *call) authorize(pairs ...[2]string) *apiError {
	for _, pr := range pairs {
		if d, src := c.e.evaluate(c.p, pr[0], pr[1]); d != decisionAllow {
			return accessDenied(c, d, src, pr[0], pr[1])
		}
	}
	return nil
}

// decodeObject decodes one JSON object into its members, refusing duplicate
// keys (which different parsers resolve differently) and trailing data.
func decodeObject(raw []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errNotObject
	}
	out := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("duplicate key %q", key)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		out[key] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("trailing data after the object")
	}
	return out, nil
}
