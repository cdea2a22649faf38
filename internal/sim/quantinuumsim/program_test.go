package quantinuumsim

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/qbroker/qbroker/internal/circuit/qasm"
)

func TestAnalyse(t *testing.T) {
	ok := []struct {
		name       string
		src        string
		regs       string
		n1, n2, nm int
	}{
		{"bell", bellQASM, "c:2@0", 1, 1, 4},
		{"comments, pragma, barrier and box", `// header next
OPENQASM 3; /* a
block comment; with a semicolon */
include "stdgates.inc";
#pragma braket verbatim
qubit[2] q; bit[1] a; bit b;
box { h q[0]; cx q[0], q[1]; }
id q[1];
a[0] = measure q[0];
barrier q;
b = measure q[1]; // trailing
`, "a:1@0 b:1@1", 1, 1, 4},
		{"toffoli counts six", "OPENQASM 3;\ninclude \"stdgates.inc\";\nqubit[3] q;\nccx q[0], q[1], q[2];\n", "", 0, 6, 3},
		{"declaration with measure", "OPENQASM 3;\nqubit[2] q;\nh q;\nbit[2] c = measure q;\n", "c:2@0", 2, 0, 4},
	}
	for _, c := range ok {
		p, err := analyse(c.src)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		var regs []string
		for _, r := range p.regs {
			regs = append(regs, r.name+":"+strconv.Itoa(r.size)+"@"+strconv.Itoa(r.offset))
		}
		if got := strings.Join(regs, " "); got != c.regs || p.n1q != c.n1 || p.n2q != c.n2 || p.nm != c.nm {
			t.Errorf("%s: regs %q n1q %d n2q %d nm %d, want %q %d %d %d", c.name, got, p.n1q, p.n2q, p.nm, c.regs, c.n1, c.n2, c.nm)
		}
	}
	bad := map[string]string{
		"gate after measure, other qubit": "OPENQASM 3;\ninclude \"stdgates.inc\";\nqubit[2] q;\nbit[2] c;\nc[0] = measure q[0];\nx q[1];\n",
		"gate after measure in box":       "OPENQASM 3;\ninclude \"stdgates.inc\";\nqubit[1] q;\nbit[1] c;\nmeasure q[0] -> c[0];\nbox { x q[0]; }\n",
		"no qubits":                       "OPENQASM 3;\n",
	}
	for name, src := range bad {
		if _, err := analyse(src); !errors.Is(err, errProgram) {
			t.Errorf("%s: %v, want a program error", name, err)
		}
	}
	// Measuring after a barrier, and measuring twice, are still terminal.
	if _, err := analyse("OPENQASM 3;\nqubit[1] q;\nbit[1] c;\nmeasure q[0] -> c[0];\nbarrier q;\nmeasure q[0] -> c[0];\n"); err != nil {
		t.Fatal(err)
	}
}

func TestEstimateHQC(t *testing.T) {
	prog, err := qasm.Parse([]byte(bellQASM))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := EstimateHQC(prog, 1000); err != nil || c != 11.2 {
		t.Fatalf("EstimateHQC(bell, 1000) = %v, %v; want 11.2", c, err)
	}
	if _, err := EstimateHQC(nil, 1); err == nil {
		t.Fatal("nil program accepted")
	}
	if got := HQC(0, 0, 1, 1); got != 5.001 {
		t.Fatalf("HQC(0,0,1,1) = %v, want 5.001", got)
	}
}

func TestWorkLimit(t *testing.T) {
	h := newHarness(t, nil)
	id, _ := h.login()
	src := "OPENQASM 3;\ninclude \"stdgates.inc\";\nqubit[20] q;\n" + strings.Repeat("h q;\n", 60)
	code, b := h.do("POST", "/v1/job", id, jobBody(t, "H1-1E", 1, src, nil))
	if code != 400 || !strings.Contains(errOf(t, b).Text, "work limit") {
		t.Fatalf("1200 gates on 20 qubits: %d %s", code, b)
	}
}

// The token store stays bounded: expired tokens go first, then the oldest.
func TestTokenStoreBounded(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxTokens = 4 })
	first, _ := h.login()
	h.login()
	last, _ := h.login()
	if code, _ := h.do("GET", "/v1/machine/H1-1E", first, ""); code != 401 {
		t.Fatal("oldest id-token still accepted past MaxTokens")
	}
	if code, _ := h.do("GET", "/v1/machine/H1-1E", last, ""); code != 200 {
		t.Fatal("newest id-token forgotten")
	}
	h.e.mu.Lock()
	n := len(h.e.tokens.m)
	h.e.mu.Unlock()
	if n > 4 {
		t.Fatalf("%d tokens kept, limit 4", n)
	}

	g := newHarness(t, func(c *Config) { c.MaxTokens = 4 })
	g.login()
	g.clock.Advance(DefaultRefreshTokenTTL)
	a, ra := g.login()
	b, rb := g.login()
	for _, tok := range []string{a, b} {
		if code, _ := g.do("GET", "/v1/machine/H1-1E", tok, ""); code != 200 {
			t.Fatal("a live id-token was evicted while expired ones were kept")
		}
	}
	for _, tok := range []string{ra, rb} {
		if code, _, body := g.refresh(tok); code != 200 {
			t.Fatalf("a live refresh token was evicted: %s", body)
		}
	}
}
