package braketsim

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// condition is one clause of a Condition block: operator, key, values.
type condition struct {
	op       string // the operator without IfExists, e.g. "StringLike"
	ifExists bool
	key      string // lower-cased condition key
	values   []string
}

// conditionOperators are IAM's condition operators (without the IfExists
// suffix). The ones evaluateOp knows are evaluated; the rest are accepted,
// as IAM accepts them, and fail closed.
var conditionOperators = []string{
	"StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase", "StringLike", "StringNotLike",
	"NumericEquals", "NumericNotEquals", "NumericLessThan", "NumericLessThanEquals", "NumericGreaterThan", "NumericGreaterThanEquals",
	"DateEquals", "DateNotEquals", "DateLessThan", "DateLessThanEquals", "DateGreaterThan", "DateGreaterThanEquals",
	"Bool", "BinaryEquals", "IpAddress", "NotIpAddress", "ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike", "Null",
}

// parseConditions parses a Condition block: an object of operators, each
// an object of keys, each a scalar or a non-empty list of scalars.
func parseConditions(raw json.RawMessage) ([]condition, error) {
	ops, err := decodeObject(raw)
	if err != nil {
		return nil, malformed("Syntax errors in policy: Condition: %w", err)
	}
	var out []condition
	for op, body := range ops {
		base, qualifier, qualified := strings.Cut(op, ":")
		if qualified { // ForAnyValue:StringEquals, ForAllValues:…
			if base != "ForAnyValue" && base != "ForAllValues" {
				return nil, malformed("Syntax errors in policy: unknown condition set operator %q.", base)
			}
			base = qualifier
		}
		name, ifExists := strings.CutSuffix(base, "IfExists")
		if !slices.Contains(conditionOperators, name) || (ifExists && name == "Null") {
			return nil, malformed("Syntax errors in policy: unknown condition operator %q.", op)
		}
		keys, err := decodeObject(body)
		if err != nil {
			return nil, malformed("Syntax errors in policy: Condition %s: %w", op, err)
		}
		if len(keys) == 0 {
			return nil, malformed("Syntax errors in policy: Condition %s has no keys.", op)
		}
		for key, v := range keys {
			if key == "" {
				return nil, malformed("Syntax errors in policy: Condition %s: empty key.", op)
			}
			values, err := scalarList(v)
			if err != nil {
				return nil, malformed("Syntax errors in policy: Condition %s %s: %w", op, key, err)
			}
			c := condition{op: name, ifExists: ifExists, key: strings.ToLower(key), values: values}
			if qualified {
				c.op = "" // multivalued keys are not emulated: unknown
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// scalarList decodes a JSON string, number or bool, or a non-empty list of
// them, into strings (IAM compares condition values as strings).
func scalarList(raw json.RawMessage) ([]string, error) {
	var many []json.RawMessage
	if err := json.Unmarshal(raw, &many); err != nil {
		many = []json.RawMessage{raw}
	} else if len(many) == 0 {
		return nil, fmt.Errorf("must not be empty")
	}
	out := make([]string, 0, len(many))
	for _, m := range many {
		var v any
		if err := json.Unmarshal(m, &v); err != nil {
			return nil, err
		}
		switch x := v.(type) {
		case string:
			out = append(out, x)
		case bool:
			out = append(out, strconv.FormatBool(x))
		case float64:
			out = append(out, strings.TrimSpace(string(m)))
		default:
			return nil, fmt.Errorf("values must be strings, numbers or booleans")
		}
	}
	return out, nil
}

// requestContext holds the global condition keys of a request (lower-case
// names) that the emulator knows.
type requestContext struct {
	keys map[string]string
}

// requestContext returns the condition keys of a request by p now.
func (e *Emulator) requestContext(p *principal) *requestContext {
	rc := &requestContext{keys: map[string]string{
		"aws:currenttime":      e.now().UTC().Format(time.RFC3339),
		"aws:epochtime":        strconv.FormatInt(e.now().Unix(), 10),
		"aws:userid":           p.userID,
		"aws:principalaccount": e.cfg.AccountID,
	}}
	if s := p.sess; s != nil {
		rc.keys["aws:principalarn"] = s.roleARN
		rc.keys["aws:principaltype"] = "AssumedRole"
		rc.keys["aws:tokenissuetime"] = s.issued.UTC().Format(time.RFC3339)
		if s.sourceIdentity != "" {
			rc.keys["aws:sourceidentity"] = s.sourceIdentity
		}
		for _, t := range s.tags {
			rc.keys["aws:principaltag/"+strings.ToLower(t.Key)] = t.Value
		}
	} else {
		rc.keys["aws:principalarn"] = p.arn
		rc.keys["aws:principaltype"] = "User"
		rc.keys["aws:username"] = e.cfg.RootUserName
	}
	return rc
}

// known reports whether the emulator models key: a key it does not model
// may be present at AWS even when absent here, so it cannot be decided.
func (rc *requestContext) known(key string) bool {
	switch key {
	case "aws:currenttime", "aws:epochtime", "aws:userid", "aws:principalaccount", "aws:principalarn",
		"aws:principaltype", "aws:tokenissuetime", "aws:sourceidentity", "aws:username":
		return true
	}
	return strings.HasPrefix(key, "aws:principaltag/")
}

// tri is a three-valued truth: a condition the emulator cannot decide is
// condUnknown, which fails closed.
type tri int

const (
	condTrue tri = iota
	condFalse
	condUnknown
)

// conditionsHold evaluates a Condition block: every clause must hold.
func conditionsHold(cs []condition, rc *requestContext) tri {
	result := condTrue
	for _, c := range cs {
		switch c.holds(rc) {
		case condFalse:
			return condFalse
		case condUnknown:
			result = condUnknown
		}
	}
	return result
}

// negated reports whether op is a negated operator, which holds when the
// key is absent.
func negated(op string) bool {
	return strings.Contains(op, "Not") && op != "Null"
}

// holds evaluates one clause. Values of one key are ORed (for negated
// operators: none may match).
func (c condition) holds(rc *requestContext) tri {
	if rc == nil || c.op == "" || !rc.known(c.key) {
		return condUnknown
	}
	v, present := rc.keys[c.key]
	if c.op == "Null" {
		want := slices.ContainsFunc(c.values, func(s string) bool { return strings.EqualFold(s, "true") })
		return truth(want != present)
	}
	if !present {
		return truth(c.ifExists || negated(c.op))
	}
	hit := false
	for _, want := range c.values {
		m, ok := match(c.op, v, want)
		if !ok {
			return condUnknown
		}
		if m {
			hit = true
			break
		}
	}
	if negated(c.op) {
		return truth(!hit)
	}
	return truth(hit)
}

func truth(b bool) tri {
	if b {
		return condTrue
	}
	return condFalse
}

// match compares the request's value v with a policy value for op (for a
// negated operator: its positive form). ok is false for an operator the
// emulator does not evaluate or a value it cannot read.
func match(op, v, want string) (m, ok bool) {
	switch op {
	case "StringEquals", "StringNotEquals":
		return v == want, true
	case "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase":
		return strings.EqualFold(v, want), true
	case "StringLike", "StringNotLike", "ArnLike", "ArnNotLike":
		return glob(want, v), true
	case "ArnEquals", "ArnNotEquals":
		return v == want, true
	case "Bool":
		return strings.EqualFold(v, want), true
	case "DateEquals", "DateNotEquals", "DateLessThan", "DateLessThanEquals", "DateGreaterThan", "DateGreaterThanEquals":
		have, err1 := parseDate(v)
		limit, err2 := parseDate(want)
		if err1 != nil || err2 != nil {
			return false, false
		}
		switch op {
		case "DateEquals", "DateNotEquals":
			return have.Equal(limit), true
		case "DateLessThan":
			return have.Before(limit), true
		case "DateLessThanEquals":
			return !have.After(limit), true
		case "DateGreaterThan":
			return have.After(limit), true
		default:
			return !have.Before(limit), true
		}
	}
	return false, false
}

// parseDate reads an IAM date: ISO 8601 (with or without seconds'
// fraction or zone designator variants) or epoch seconds.
func parseDate(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05Z0700", "2006-01-02T15:04Z07:00", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a date", s)
}
