package policy

import (
	_ "embed"
	"fmt"

	"github.com/cedar-policy/cedar-go/x/exp/schema"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"
)

// schemaText is the Cedar schema every policy is validated against.
//
//go:embed schema.cedarschema
var schemaText []byte

// Schema returns the text of the embedded Cedar schema (schema.cedarschema),
// for documentation and for tools that validate policies offline.
func Schema() []byte {
	return append([]byte(nil), schemaText...)
}

// resolvedSchema parses and resolves the embedded schema.
func resolvedSchema() (*resolved.Schema, error) {
	var s schema.Schema
	s.SetFilename("schema.cedarschema")
	if err := s.UnmarshalCedar(schemaText); err != nil {
		return nil, fmt.Errorf("policy: embedded schema: %w", err)
	}
	r, err := s.Resolve()
	if err != nil {
		return nil, fmt.Errorf("policy: embedded schema: %w", err)
	}
	return r, nil
}
