package braketsim

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// IAM is a global service: one endpoint, signed for us-east-1, query
// protocol (as STS) with its own version and namespace.
const (
	iamVersion       = "2010-05-08"
	iamNS            = "https://iam.amazonaws.com/doc/2010-05-08/"
	iamSigningRegion = "us-east-1"
	// maxRoleInlinePolicies is IAM's quota on the aggregate size of a
	// role's inline policies, whitespace excluded.
	maxRoleInlinePolicies = 10240
	maxPolicyDocument     = 131072
)

var (
	iamNameRE   = regexp.MustCompile(`^[\w+=,.@-]+$`)
	policyDocRE = regexp.MustCompile(`^[\x{0009}\x{000A}\x{000D}\x{0020}-\x{00FF}]+$`)
)

// serveIAM answers the role inline-policy actions: PutRolePolicy,
// GetRolePolicy, DeleteRolePolicy and ListRolePolicies.
func (e *Emulator) serveIAM(c *call) {
	params, aerr := stsParams(c)
	if aerr != nil {
		if aerr.code == "NotFound" {
			aerr.msg = "IAM is served at /"
		}
		c.fail(aerr)
		return
	}
	action, version := params.Get("Action"), params.Get("Version")
	if version != iamVersion {
		c.fail(&apiError{status: 400, code: "InvalidAction", msg: fmt.Sprintf("Could not find operation %s for version %s", action, version)})
		return
	}
	allowed := map[string][]string{
		"PutRolePolicy":    {"RoleName", "PolicyName", "PolicyDocument"},
		"GetRolePolicy":    {"RoleName", "PolicyName"},
		"DeleteRolePolicy": {"RoleName", "PolicyName"},
		"ListRolePolicies": {"RoleName", "Marker", "MaxItems"},
	}
	members, ok := allowed[action]
	if !ok {
		c.fail(&apiError{status: 400, code: "InvalidAction", msg: fmt.Sprintf("Could not find operation %s for version %s", action, version)})
		return
	}
	for k := range params {
		if k != "Action" && k != "Version" && !slices.Contains(members, k) {
			c.fail(&apiError{status: 400, code: "ValidationError", msg: fmt.Sprintf("Parameter %s is not supported by %s.", k, action)})
			return
		}
	}
	has := func(k string) bool { _, ok := params[k]; return ok }
	var verrs validationErrors
	roleName := params.Get("RoleName")
	verrs.checkString("roleName", roleName, has("RoleName"), true, 1, 64, iamNameRE)
	policyName := params.Get("PolicyName")
	if action != "ListRolePolicies" {
		verrs.checkString("policyName", policyName, has("PolicyName"), true, 1, 128, iamNameRE)
	}
	doc := params.Get("PolicyDocument")
	if action == "PutRolePolicy" {
		verrs.checkString("policyDocument", doc, has("PolicyDocument"), true, 1, maxPolicyDocument, policyDocRE)
	}
	if aerr := verrs.err("ValidationError"); aerr != nil {
		c.fail(aerr)
		return
	}
	roleARN := fmt.Sprintf("arn:aws:iam::%s:role/%s", e.cfg.AccountID, roleName)
	if d, src := e.evaluate(c.p, "iam:"+action, roleARN); d != decisionAllow {
		kind := "no identity-based policy allows"
		if src == fromSessionPolicy {
			kind = "no session policy allows"
		}
		msg := fmt.Sprintf("User: %s is not authorized to perform: iam:%s on resource: role %s because %s the iam:%s action", c.p.arn, action, roleName, kind, action)
		if d == decisionExplicitDeny {
			msg = fmt.Sprintf("User: %s is not authorized to perform: iam:%s on resource: role %s with an explicit deny in an identity-based policy", c.p.arn, action, roleName)
		}
		c.fail(&apiError{status: 403, code: "AccessDenied", msg: msg})
		return
	}
	if !e.roleExists(roleName) {
		c.fail(&apiError{status: 404, code: "NoSuchEntity", msg: fmt.Sprintf("The role with name %s cannot be found.", roleName)})
		return
	}
	switch action {
	case "PutRolePolicy":
		e.putRolePolicy(c, roleName, policyName, doc)
	case "GetRolePolicy":
		e.getRolePolicy(c, roleName, policyName)
	case "DeleteRolePolicy":
		e.deleteRolePolicy(c, roleName, policyName)
	default:
		e.listRolePolicies(c, roleName)
	}
}

// roleExists: with Config.Roles, the roles listed; otherwise every role of
// the account (AssumeRole accepts any then).
func (e *Emulator) roleExists(name string) bool {
	if len(e.cfg.Roles) == 0 {
		return true
	}
	return slices.ContainsFunc(e.cfg.Roles, func(arn string) bool {
		n, _ := parseRoleARN(arn, e.cfg.AccountID)
		return n == name
	})
}

// packedSize is a policy's size as IAM counts it against its quotas:
// whitespace excluded.
func packedSize(text string) int {
	n := 0
	for _, r := range text {
		if !unicode.IsSpace(r) {
			n++
		}
	}
	return n
}

func (e *Emulator) putRolePolicy(c *call, role, name, text string) {
	d, err := parsePolicy(text)
	if err != nil {
		c.fail(&apiError{status: 400, code: "MalformedPolicyDocument", msg: err.Error()})
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	total := packedSize(text)
	for other, od := range e.rolePolicies[role] {
		if other != name {
			total += packedSize(od.text)
		}
	}
	if total > maxRoleInlinePolicies {
		c.fail(&apiError{status: 409, code: "LimitExceeded", msg: fmt.Sprintf("Maximum policy size of %d bytes exceeded for role %s", maxRoleInlinePolicies, role)})
		return
	}
	if e.rolePolicies[role] == nil {
		e.rolePolicies[role] = map[string]*policyDoc{}
	}
	e.rolePolicies[role][name] = d
	e.log.Debug("braketsim: role policy put", "role", role, "policy", name, "statements", len(d.statements))
	c.writeXML(http.StatusOK, struct {
		XMLName   xml.Name `xml:"https://iam.amazonaws.com/doc/2010-05-08/ PutRolePolicyResponse"`
		RequestID string   `xml:"ResponseMetadata>RequestId"`
	}{RequestID: c.reqID})
}

func (e *Emulator) getRolePolicy(c *call, role, name string) {
	e.mu.Lock()
	d, ok := e.rolePolicies[role][name]
	e.mu.Unlock()
	if !ok {
		c.fail(&apiError{status: 404, code: "NoSuchEntity", msg: fmt.Sprintf("The role policy with name %s cannot be found.", name)})
		return
	}
	type result struct {
		RoleName       string `xml:"RoleName"`
		PolicyName     string `xml:"PolicyName"`
		PolicyDocument string `xml:"PolicyDocument"`
	}
	// IAM returns the document URL-encoded (RFC 3986), as stored.
	c.writeXML(http.StatusOK, struct {
		XMLName   xml.Name `xml:"https://iam.amazonaws.com/doc/2010-05-08/ GetRolePolicyResponse"`
		Result    result   `xml:"GetRolePolicyResult"`
		RequestID string   `xml:"ResponseMetadata>RequestId"`
	}{Result: result{RoleName: role, PolicyName: name, PolicyDocument: rfc3986(d.text)}, RequestID: c.reqID})
}

func (e *Emulator) deleteRolePolicy(c *call, role, name string) {
	e.mu.Lock()
	_, ok := e.rolePolicies[role][name]
	delete(e.rolePolicies[role], name)
	e.mu.Unlock()
	if !ok {
		c.fail(&apiError{status: 404, code: "NoSuchEntity", msg: fmt.Sprintf("The role policy with name %s cannot be found.", name)})
		return
	}
	c.writeXML(http.StatusOK, struct {
		XMLName   xml.Name `xml:"https://iam.amazonaws.com/doc/2010-05-08/ DeleteRolePolicyResponse"`
		RequestID string   `xml:"ResponseMetadata>RequestId"`
	}{RequestID: c.reqID})
}

func (e *Emulator) listRolePolicies(c *call, role string) {
	e.mu.Lock()
	names := make([]string, 0, len(e.rolePolicies[role]))
	for n := range e.rolePolicies[role] {
		names = append(names, n)
	}
	e.mu.Unlock()
	slices.Sort(names)
	type result struct {
		PolicyNames []string `xml:"PolicyNames>member"`
		IsTruncated bool     `xml:"IsTruncated"`
	}
	c.writeXML(http.StatusOK, struct {
		XMLName   xml.Name `xml:"https://iam.amazonaws.com/doc/2010-05-08/ ListRolePoliciesResponse"`
		Result    result   `xml:"ListRolePoliciesResult"`
		RequestID string   `xml:"ResponseMetadata>RequestId"`
	}{Result: result{PolicyNames: names}, RequestID: c.reqID})
}

// rfc3986 percent-encodes s as IAM encodes policy documents.
func rfc3986(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// RolePolicy returns the inline policy name of role roleName as stored
// (compacted JSON), and whether it exists.
func (e *Emulator) RolePolicy(roleName, name string) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d, ok := e.rolePolicies[roleName][name]
	if !ok {
		return "", false
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(d.text)); err != nil {
		return d.text, true
	}
	return buf.String(), true
}
