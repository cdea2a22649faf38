package qasm

import (
	"errors"
	"strings"
	"testing"
)

func TestLimits(t *testing.T) {
	l := ErrLimit
	tests := []struct {
		rejectCase
		lim Limits
	}{
		{rejectCase{"65 qubits", "OPENQASM 3;\nqubit[65] q;", 2, 7, "exceeds the limit of 64 qubits", l}, Limits{}},
		{rejectCase{"registers summing over 64", "OPENQASM 3;\nqubit[60] a;\nqubit[4] b;\nqubit c;", 4, 7, "limit of 64 qubits", l}, Limits{}},
		{rejectCase{"legacy qreg over 64", "OPENQASM 3;\nqreg q[100];", 2, 8, "limit of 64 qubits", l}, Limits{}},
		{rejectCase{"huge register size", "OPENQASM 3;\nqubit[99999999999999999999999] q;", 2, 7, "limit of 64 qubits", l}, Limits{}},
		{rejectCase{"custom qubit limit", "OPENQASM 3;\nqubit[2] a;\nqubit[2] b;", 3, 7, "limit of 3 qubits", l}, Limits{MaxQubits: 3}},
		{rejectCase{"physical qubit beyond limit", "OPENQASM 3;\nh $64;", 2, 3, "$64 exceeds the limit of 64 qubits", l}, Limits{}},
		{rejectCase{"huge physical qubit", "OPENQASM 3;\nh $99999999999999999999999;", 2, 3, "exceeds the limit", l}, Limits{}},
		{rejectCase{"source too big", "OPENQASM 3;\nqubit q;", 0, 0, "source is 20 bytes, more than the limit of 10", l}, Limits{MaxSourceBytes: 10}},
		{rejectCase{"too many gates", "OPENQASM 3;\nqubit q;\nh q;\nh q;\nh q;\nh q;", 6, 1, "more than 3 operations", l}, Limits{MaxOps: 3}},
		{rejectCase{"too many by broadcast", "OPENQASM 3;\nqubit[5] q;\nh q;", 3, 1, "more than 3 operations", l}, Limits{MaxOps: 3}},
		{rejectCase{"measures count as operations", "OPENQASM 3;\nqubit[2] q;\nh q;\nmeasure q;", 4, 1, "more than 3 operations", l}, Limits{MaxOps: 3}},
		{rejectCase{"too many bits", "OPENQASM 3;\nbit[3] a;\nbit[2] b;", 3, 5, "limit of 4 bits", l}, Limits{MaxOps: 4}},
		{rejectCase{"deep parentheses", "OPENQASM 3;\nqubit q;\nrx(" + strings.Repeat("(", 70) + "1" + strings.Repeat(")", 70) + ") q;", 3, 4 + MaxExprDepth, "nested deeper than 64", l}, Limits{}},
		{rejectCase{"long unary chain", "OPENQASM 3;\nqubit q;\nrx(" + strings.Repeat("-", 200) + "1) q;", 3, 4 + MaxExprDepth, "nested deeper than 64", l}, Limits{}},
		{rejectCase{"deep function nesting", "OPENQASM 3;\nqubit q;\nrx(" + strings.Repeat("sin(", 70) + "1" + strings.Repeat(")", 70) + ") q;", 3, 4 + 4*MaxExprDepth, "nested deeper than 64", l}, Limits{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { checkReject(t, tc.rejectCase, tc.lim) })
	}
}

func TestLimitsAtBoundary(t *testing.T) {
	ok := []struct {
		name string
		src  string
		lim  Limits
	}{
		{"64 qubits", "OPENQASM 3;\nqubit[60] a;\nqubit[4] b;\nh b;", Limits{}},
		{"physical $63", "OPENQASM 3;\nh $63;", Limits{}},
		{"source at limit", "OPENQASM 3;", Limits{MaxSourceBytes: 11}},
		{"ops at limit", "OPENQASM 3;\nqubit q;\nh q;\nh q;\nmeasure q;", Limits{MaxOps: 3}},
		{"depth below limit", "OPENQASM 3;\nqubit q;\nrx(" + strings.Repeat("(", MaxExprDepth-1) + "1" + strings.Repeat(")", MaxExprDepth-1) + ") q;", Limits{}},
		{"raised qubit limit", "OPENQASM 3;\nqubit[100] q;", Limits{MaxQubits: 100}},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseWithLimits([]byte(tc.src), tc.lim); err != nil {
				t.Fatalf("rejected: %v", err)
			}
		})
	}
}

func TestDefaultOpLimit(t *testing.T) {
	src := "OPENQASM 3;\nqubit q;\n" + strings.Repeat("x q;\n", DefaultMaxOps)
	prog, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("%d ops rejected: %v", DefaultMaxOps, err)
	}
	if len(prog.Ops) != DefaultMaxOps {
		t.Fatalf("got %d ops, want %d", len(prog.Ops), DefaultMaxOps)
	}
	_, err = Parse([]byte(src + "x q;\n"))
	if !errors.Is(err, ErrLimit) {
		t.Fatalf("%d ops: err = %v, want ErrLimit", DefaultMaxOps+1, err)
	}
	var pe *Error
	if errors.As(err, &pe) && pe.Line != DefaultMaxOps+3 {
		t.Errorf("error on line %d, want %d", pe.Line, DefaultMaxOps+3)
	}
}

func TestDefaultSourceLimit(t *testing.T) {
	src := "OPENQASM 3;\n" + strings.Repeat("/", DefaultMaxSourceBytes)
	if _, err := Parse([]byte(src)); !errors.Is(err, ErrLimit) {
		t.Fatalf("source over 1 MiB: err = %v, want ErrLimit", err)
	}
}
