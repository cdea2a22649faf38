package policy

import (
	"fmt"
	"slices"

	cedar "github.com/cedar-policy/cedar-go"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
)

// Lint rule names, in Warning.Rule.
const (
	// LintSubmitAnyDevice: a permit that covers SubmitJob, whose resource
	// scope is unconstrained (`resource` or `resource is Device`) and whose
	// conditions never look at the resource. It lets the agent reach any
	// device, real hardware included.
	LintSubmitAnyDevice = "submit-any-device"
	// LintSubmitUnconditionalProvider: a permit that covers SubmitJob on
	// every device of a provider (`resource in Provider::"x"`) with no
	// when/unless condition at all, so the provider's QPUs are reachable
	// unconditionally.
	LintSubmitUnconditionalProvider = "submit-provider-unconditional"
	// LintAdminWithoutApproval: a permit that covers an Admin* action
	// (`action`, `action in Action::"Admin"`, or a named Admin* action)
	// without `context.approved` in a when condition.
	LintAdminWithoutApproval = "admin-without-approval"
)

// Warning is a lint finding: legal Cedar that is probably not what the
// operator meant. Warnings never stop a load.
type Warning struct {
	File     string `json:"file"`
	Line     int    `json:"line"`
	Column   int    `json:"column"`
	PolicyID string `json:"policy_id"`
	Rule     string `json:"rule"`
	Msg      string `json:"msg"`
}

// String renders "file:line:col: policy "id": msg [rule]".
func (w Warning) String() string {
	return fmt.Sprintf("%s:%d:%d: policy %q: %s [%s]", w.File, w.Line, w.Column, w.PolicyID, w.Msg, w.Rule)
}

// Warnings returns the lint warnings found when the engine was built, in
// load order. See docs/policies.md for the rules.
func (e *Engine) Warnings() []Warning {
	return slices.Clone(e.warnings)
}

// lint applies the heuristics to one validated policy.
func lint(file, id string, p *cedar.Policy) []Warning {
	if p.Effect() != cedar.Permit {
		return nil
	}
	a := (*xast.Policy)(p.AST())
	pos := p.Position()
	warn := func(rule, msg string) Warning {
		return Warning{File: file, Line: pos.Line, Column: pos.Column, PolicyID: id, Rule: rule, Msg: msg}
	}
	var out []Warning
	if actionCovers(a.Action, func(name string) bool { return name == ActionSubmitJob }) {
		switch r := a.Resource.(type) {
		case xast.ScopeTypeAll, xast.ScopeTypeIs:
			if !conditionsUse(a.Conditions, false, isResourceVar) {
				out = append(out, warn(LintSubmitAnyDevice,
					"permits SubmitJob on any device, real hardware included: constrain the resource or test resource.kind"))
			}
		case xast.ScopeTypeIn:
			if r.Entity.Type == "Provider" && len(a.Conditions) == 0 {
				out = append(out, warn(LintSubmitUnconditionalProvider,
					fmt.Sprintf("permits SubmitJob on every device of Provider %q, QPUs included, without any condition", string(r.Entity.ID))))
			}
		case xast.ScopeTypeIsIn:
			if r.Entity.Type == "Provider" && len(a.Conditions) == 0 {
				out = append(out, warn(LintSubmitUnconditionalProvider,
					fmt.Sprintf("permits SubmitJob on every device of Provider %q, QPUs included, without any condition", string(r.Entity.ID))))
			}
		}
	}
	if actionCovers(a.Action, isAdminAction) && !conditionsUse(a.Conditions, true, isApprovedAccess) {
		out = append(out, warn(LintAdminWithoutApproval,
			"permits an Admin action without `context.approved` in a when condition"))
	}
	return out
}

// actionCovers reports whether an action scope can match an action for
// which match is true. `action in Action::"Admin"` covers the Admin* actions.
func actionCovers(scope xast.IsActionScopeNode, match func(string) bool) bool {
	covers := func(uid cedar.EntityUID) bool {
		if uid.Type != "Action" {
			return false
		}
		name := string(uid.ID)
		if name == ActionGroupAdmin {
			return match(ActionAdminRoles) || match(ActionAdminKeys) || match(ActionAdminProviders) || match(ActionAdminAudit)
		}
		return match(name)
	}
	switch s := scope.(type) {
	case xast.ScopeTypeAll:
		return true
	case xast.ScopeTypeEq:
		return covers(s.Entity)
	case xast.ScopeTypeIn:
		return covers(s.Entity)
	case xast.ScopeTypeInSet:
		return slices.ContainsFunc(s.Entities, covers)
	}
	return false
}

// conditionsUse reports whether any condition (only `when` ones if whenOnly)
// contains a node for which match is true.
func conditionsUse(conds []xast.ConditionType, whenOnly bool, match func(xast.IsNode) bool) bool {
	for _, c := range conds {
		if whenOnly && c.Condition != xast.ConditionWhen {
			continue
		}
		found := false
		xast.Inspect(xast.NewNode(c.Body), func(n xast.IsNode) bool {
			if match(n) {
				found = true
			}
			return !found
		})
		if found {
			return true
		}
	}
	return false
}

func isResourceVar(n xast.IsNode) bool {
	v, ok := n.(xast.NodeTypeVariable)
	return ok && v.Name == "resource"
}

func isApprovedAccess(n xast.IsNode) bool {
	a, ok := n.(xast.NodeTypeAccess)
	if !ok || a.Value != "approved" {
		return false
	}
	v, ok := a.Arg.(xast.NodeTypeVariable)
	return ok && v.Name == "context"
}
