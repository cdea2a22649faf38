// Package policy is qbroker's Cedar decision point.
//
// An [Engine] holds a set of Cedar policies, parsed and validated against the
// embedded schema (schema.cedarschema) when it is built, and answers
// authorization questions with [Engine.Decide]: request in, [Decision] with the
// determining policy ids and a human reason out. The package is pure: deciding
// does no file or network I/O and has no side effects. Loading policies from
// disk is the one exception, kept apart in [LoadFiles].
//
// The semantics are Cedar's: default deny, and a matching forbid beats any
// permit. One deliberate tightening: a forbid policy that fails to evaluate
// for a request (for example on integer overflow) denies the request instead
// of being skipped, so an evaluation error can never turn into an allow.
package policy

import (
	"errors"
	"fmt"
	"iter"
	"strings"
	"sync"
	"sync/atomic"

	cedar "github.com/cedar-policy/cedar-go"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
	"github.com/cedar-policy/cedar-go/x/exp/schema/validate"
)

// File is one Cedar policy document: Name is used in error positions and in
// default policy ids ("<Name>#<index>"), Data is the Cedar text.
type File struct {
	Name string
	Data []byte
}

// ErrLoad is matched (errors.Is) by every error that New and LoadFiles return
// for bad policy text: parse errors, schema violations and duplicate ids.
var ErrLoad = errors.New("policy load error")

// LoadError describes one problem found while loading policies. New returns
// all of them at once, joined with errors.Join.
type LoadError struct {
	File     string // the File.Name
	Line     int    // 1-based; 0 when unknown
	Column   int    // 1-based; 0 when unknown
	PolicyID string // "" for a parse error, which precedes any policy
	Err      error  // the underlying cause
}

// Error renders "file:line:col: policy "id": cause".
func (e *LoadError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	b.WriteString(": ")
	if e.PolicyID != "" {
		fmt.Fprintf(&b, "policy %q: ", e.PolicyID)
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the cause.
func (e *LoadError) Unwrap() error { return e.Err }

// Is reports true for ErrLoad.
func (e *LoadError) Is(target error) bool { return target == ErrLoad }

// loaded is one policy of the engine, in load order.
type loaded struct {
	id     cedar.PolicyID
	policy *cedar.Policy
}

// Engine is an immutable set of validated Cedar policies. It is safe for
// concurrent use.
type Engine struct {
	policies policyList
	byID     map[cedar.PolicyID]*cedar.Policy
	actions  map[cedar.EntityUID]cedar.Entity // immutable after New
	warnings []Warning
	// byAction holds, per action, the policies whose action scope can match
	// it (in load order). The others are never satisfied and never error
	// (Cedar checks the scope before the conditions), so skipping them
	// changes no decision.
	byAction map[string]policyList

	// devices caches device entities by Device value (immutable entities;
	// sync.Map suits the write-once, read-many pattern).
	devices     sync.Map
	deviceCount atomic.Int64
}

// New parses every file, validates every policy against the embedded schema
// and builds an Engine. Problems are not reported one at a time: the error
// joins a *LoadError for each of them (errors.Is(err, ErrLoad) holds).
// A policy's id is its @id("...") annotation, else "<file name>#<index>"
// with the index counted from 0 within the file; ids must be unique.
func New(files []File) (*Engine, error) {
	v, err := newValidator()
	if err != nil {
		return nil, err
	}
	e := &Engine{byID: make(map[cedar.PolicyID]*cedar.Policy), actions: actionEntities()}
	where := make(map[cedar.PolicyID]cedar.Position)
	var errs []error
	for _, f := range files {
		list, err := cedar.NewPolicyListFromBytes(f.Name, f.Data)
		if err != nil {
			errs = append(errs, parseError(f.Name, err))
			continue
		}
		for i, p := range list {
			id := cedar.PolicyID(fmt.Sprintf("%s#%d", f.Name, i))
			if a, ok := p.Annotations()["id"]; ok {
				id = cedar.PolicyID(a)
			}
			pos := p.Position()
			le := func(err error) *LoadError {
				return &LoadError{File: f.Name, Line: pos.Line, Column: pos.Column, PolicyID: string(id), Err: err}
			}
			if id == "" {
				errs = append(errs, le(errors.New(`empty @id("") annotation`)))
				continue
			}
			if prev, dup := where[id]; dup {
				errs = append(errs, le(fmt.Errorf("duplicate policy id, first defined at %s:%d:%d", prev.Filename, prev.Line, prev.Column)))
				continue
			}
			where[id] = pos
			if err := v.Policy(string(id), (*xast.Policy)(p.AST())); err != nil {
				errs = append(errs, le(schemaError(err)))
				continue
			}
			e.policies = append(e.policies, loaded{id: id, policy: p})
			e.byID[id] = p
			e.warnings = append(e.warnings, lint(f.Name, string(id), p)...)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	e.byAction = make(map[string]policyList)
	for _, a := range Actions() {
		var l policyList
		for _, p := range e.policies {
			if actionCovers((*xast.Policy)(p.policy.AST()).Action, func(name string) bool { return name == a }) {
				l = append(l, p)
			}
		}
		e.byAction[a] = l
	}
	return e, nil
}

// parseError turns a cedar parser error, whose text names the position as
// "<input>:line:col", into a LoadError naming the file and position.
func parseError(file string, err error) *LoadError {
	le := &LoadError{File: file}
	msg := strings.TrimPrefix(err.Error(), "parser error: ")
	if i := strings.Index(msg, "<input>:"); i >= 0 {
		var line, col int
		if n, _ := fmt.Sscanf(msg[i+len("<input>:"):], "%d:%d", &line, &col); n == 2 {
			le.Line, le.Column = line, col
			msg = strings.Replace(msg, fmt.Sprintf("at <input>:%d:%d ", line, col), "near ", 1)
		}
	}
	msg = strings.ReplaceAll(msg, "<input>", file)
	le.Err = &causeError{msg: msg, cause: err}
	return le
}

// causeError presents a cleaned-up message while keeping the original
// error reachable through errors.Is/As.
type causeError struct {
	msg   string
	cause error
}

func (e *causeError) Error() string { return e.msg }
func (e *causeError) Unwrap() error { return e.cause }

// schemaError wraps a validator error, folding its lines into one.
func schemaError(err error) error {
	msg := strings.ReplaceAll(err.Error(), "\n", "; ")
	return &causeError{msg: "does not match the schema: " + msg, cause: err}
}

// PolicyIDs returns the ids of the loaded policies in load order.
func (e *Engine) PolicyIDs() []string {
	ids := make([]string, len(e.policies))
	for i, p := range e.policies {
		ids[i] = string(p.id)
	}
	return ids
}

// policyList is the engine's policies in load order. It implements
// cedar.PolicyIterator, so diagnostics come out in a stable order (a
// cedar.PolicySet iterates a map).
type policyList []loaded

// All yields the policies in load order.
func (l policyList) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] {
	return func(yield func(cedar.PolicyID, *cedar.Policy) bool) {
		for _, p := range l {
			if !yield(p.id, p.policy) {
				return
			}
		}
	}
}

var _ cedar.PolicyIterator = policyList(nil)

// newValidator parses the embedded schema into a strict validator.
func newValidator() (*validate.Validator, error) {
	r, err := resolvedSchema()
	if err != nil {
		return nil, err
	}
	return validate.New(r, validate.WithStrict()), nil
}

// quoteIDs renders ids as `"a", "b"`.
func quoteIDs(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = fmt.Sprintf("%q", id)
	}
	return strings.Join(q, ", ")
}
