package spiffe

import (
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// patternKind says how an idPattern's path is compared.
type patternKind int

const (
	matchExact   patternKind = iota // the whole ID, exactly
	matchSubtree                    // "/*": one or more further path segments
	matchOne                        // "/+": exactly one further path segment
)

// idPattern is a parsed SPIFFE ID pattern.
//
// Grammar (a SPIFFE ID, optionally followed by one wildcard segment):
//
//	spiffe://broker.test/workload/agent-1   exactly that ID
//	spiffe://broker.test/workload/+         spiffe://broker.test/workload/<one segment>
//	spiffe://broker.test/workload/*         spiffe://broker.test/workload/<one or more segments>
//	spiffe://broker.test/*                  any workload ID in broker.test (not the bare trust domain ID)
//
// A wildcard is only allowed as the last segment; "*" and "+" are not valid
// SPIFFE path characters, so they can never be confused with a literal
// segment. Matching is exact and case-sensitive (SPIFFE IDs are normalised:
// lower-case trust domain, no "." or ".." or empty segments).
type idPattern struct {
	raw    string
	td     spiffeid.TrustDomain
	prefix string // path without the wildcard segment ("" for the trust domain root)
	kind   patternKind
}

func parsePattern(raw string) (idPattern, error) {
	p := idPattern{raw: raw, kind: matchExact}
	base := raw
	switch {
	case strings.HasSuffix(raw, "/*"):
		p.kind, base = matchSubtree, strings.TrimSuffix(raw, "/*")
	case strings.HasSuffix(raw, "/+"):
		p.kind, base = matchOne, strings.TrimSuffix(raw, "/+")
	}
	id, err := spiffeid.FromString(base)
	if err != nil {
		return idPattern{}, fmt.Errorf("SPIFFE ID pattern %q: %w", raw, err)
	}
	if p.kind == matchExact && id.Path() == "" {
		return idPattern{}, fmt.Errorf("SPIFFE ID pattern %q: names the trust domain itself, not a workload (use %q for every workload)", raw, raw+"/*")
	}
	p.td, p.prefix = id.TrustDomain(), id.Path()
	return p, nil
}

// match reports whether id matches the pattern.
func (p idPattern) match(id spiffeid.ID) bool {
	if id.TrustDomain() != p.td {
		return false
	}
	path := id.Path()
	if p.kind == matchExact {
		return path == p.prefix
	}
	rest, ok := strings.CutPrefix(path, p.prefix+"/")
	if !ok || rest == "" {
		return false
	}
	if p.kind == matchOne {
		return !strings.Contains(rest, "/")
	}
	return true
}
