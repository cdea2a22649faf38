package ibmsim

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/circuit/qasm"
)

func TestNewRejectsBadConfig(t *testing.T) {
	cases := map[string]Config{
		"instance CRN":        {InstanceCRN: "crn:v1:bluemix:public:cloud-object-storage:global:a/x:y::"},
		"other CRN":           {OtherInstanceCRNs: []string{"not-a-crn"}},
		"other region":        {InstanceCRN: crnA, OtherInstanceCRNs: []string{strings.Replace(crnB, "us-east", "eu-de", 1)}},
		"other account":       {InstanceCRN: crnA, OtherInstanceCRNs: []string{strings.Replace(crnB, "abcdef0123", "fedcba0123", 1)}},
		"duplicate instance":  {InstanceCRN: crnA, OtherInstanceCRNs: []string{crnA}},
		"TTL over an hour":    {TokenTTL: 61 * time.Minute},
		"negative TTL":        {TokenTTL: -time.Second},
		"backend name":        {Backends: []Backend{{Name: "ibm kingston", Qubits: 5}}},
		"duplicate backend":   {Backends: []Backend{{Name: "ibm_a", Qubits: 5}, {Name: "ibm_a", Qubits: 5}}},
		"backend qubits zero": {Backends: []Backend{{Name: "ibm_a"}}},
	}
	for name, cfg := range cases {
		if e, err := New(cfg); err == nil {
			e.Close()
			t.Errorf("%s: accepted", name)
		}
	}
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	bs := e.Backends()
	if e.InstanceCRN() != DefaultInstanceCRN || len(bs) != 2 || bs[0].MaxShots != 100_000 || bs[0].MaxExperiments != 300 ||
		fmt.Sprint(bs[0].BasisGates) != fmt.Sprint(HeronBasis()) {
		t.Fatalf("defaults: %s %+v", e.InstanceCRN(), bs)
	}
	// Backends returns copies.
	bs[0].BasisGates[0] = "h"
	if e.Backends()[0].BasisGates[0] != "cz" {
		t.Fatal("Backends exposed the emulator's basis gates")
	}
}

func TestHexValueAndCounts(t *testing.T) {
	cases := []struct {
		bits []byte // bits[0] least significant
		want string
	}{
		{[]byte{0}, "0x0"},
		{[]byte{1}, "0x1"},
		{[]byte{1, 1}, "0x3"},
		{[]byte{0, 1}, "0x2"},
		{[]byte{0, 0, 0, 0, 1}, "0x10"},
		{[]byte{1, 0, 1, 0, 0, 0, 0, 0, 0}, "0x5"},
		{make([]byte, 70), "0x0"},
	}
	for _, c := range cases {
		if got := hexValue(c.bits); got != c.want {
			t.Errorf("hexValue(%v) = %s, want %s", c.bits, got, c.want)
		}
	}
	wide := make([]byte, 70)
	wide[69] = 1
	if got := hexValue(wide); got != "0x200000000000000000" {
		t.Errorf("bit 69: %s", got)
	}
	c, err := Counts(RegisterData{Samples: []string{"0x0", "0x3", "0x3", "0x2"}, NumBits: 3})
	if err != nil || fmt.Sprint(c) != "map[000:1 010:1 011:2]" {
		t.Fatalf("Counts: %v %v", c, err)
	}
	for _, bad := range []string{"3", "0xg", "0x8", "-0x1", "0x"} {
		if _, err := Counts(RegisterData{Samples: []string{bad}, NumBits: 3}); err == nil {
			t.Errorf("Counts accepted %q", bad)
		}
	}
}

func TestClassicalRegisters(t *testing.T) {
	src := `OPENQASM 3.0;
include "stdgates.inc"; // bit[7] x;
/* creg y[3]; */ qubit[2] q;
#pragma bit[5] z
bit   [ 2 ]   alpha;
bit beta;
creg gamma [3];
bit[1] delta = measure q[0];
`
	prog, err := qasm.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	regs, err := classicalRegisters([]byte(src), prog)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(regs); got != "[{alpha 0 2} {beta 2 1} {gamma 3 3} {delta 6 1}]" {
		t.Fatalf("registers %s", got)
	}
	// A mismatch with the parser is refused rather than guessed.
	prog.Clbits++
	if _, err := classicalRegisters([]byte(src), prog); err == nil {
		t.Fatal("a register count mismatch was accepted")
	}
}
