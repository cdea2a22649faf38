package qasm

import (
	"errors"
	"strings"
	"testing"
)

// pre is a valid prefix; constructs under test start on line 3, column 1.
const pre = "OPENQASM 3;\nqubit[2] q;\n"

type rejectCase struct {
	name      string
	src       string
	line, col int
	msg       string // substring of Error.Msg
	kind      error  // ErrUnsupported, ErrLimit or nil
}

func checkReject(t *testing.T, tc rejectCase, l Limits) {
	t.Helper()
	prog, err := ParseWithLimits([]byte(tc.src), l)
	if err == nil {
		t.Fatalf("Parse accepted %q: %+v", tc.src, prog)
	}
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	if pe.Line != tc.line || pe.Col != tc.col {
		t.Errorf("position %d:%d, want %d:%d (%v)", pe.Line, pe.Col, tc.line, tc.col, err)
	}
	if !strings.Contains(pe.Msg, tc.msg) {
		t.Errorf("message %q does not contain %q", pe.Msg, tc.msg)
	}
	for _, k := range []error{ErrUnsupported, ErrLimit} {
		if got, want := errors.Is(err, k), k == tc.kind; got != want {
			t.Errorf("errors.Is(err, %v) = %v, want %v (%v)", k, got, want, err)
		}
	}
}

func TestRejectUnsupported(t *testing.T) {
	u := ErrUnsupported
	tests := []rejectCase{
		{"gate definition", pre + "gate foo a { h a; }", 3, 1, "gate definitions are unsupported", u},
		{"opaque", pre + "opaque foo a;", 3, 1, "opaque", u},
		{"def", pre + "def f(qubit a) { h a; }", 3, 1, "subroutine definitions (def)", u},
		{"defcal", pre + "defcal x $0 { }", 3, 1, "calibration (defcal)", u},
		{"for loop", pre + "for int i in [0:1] { h q[i]; }", 3, 1, "loops (for)", u},
		{"while loop", pre + "while (true) { }", 3, 1, "loops (while)", u},
		{"if", pre + "bit c;\nc = measure q[0];\nif (c) x q[1];", 5, 1, "conditionals (if)", u},
		{"reset", pre + "reset q[0];", 3, 1, "reset is unsupported", u},
		{"input", pre + "input float theta;", 3, 1, "input/output declarations (input)", u},
		{"output", pre + "output bit c;", 3, 1, "input/output declarations (output)", u},
		{"ctrl modifier", pre + "ctrl @ x q[0], q[1];", 3, 1, "gate modifier \"ctrl @\"", u},
		{"negctrl modifier", pre + "negctrl @ x q[0], q[1];", 3, 1, "gate modifier \"negctrl @\"", u},
		{"inv modifier", pre + "inv @ s q[0];", 3, 1, "gate modifier \"inv @\"", u},
		{"pow modifier", pre + "pow(2) @ x q[0];", 3, 1, "gate modifier \"pow @\"", u},
		{"let", pre + "let a = q[0];", 3, 1, "let aliases", u},
		{"classical int", pre + "int[32] n = 1;", 3, 1, "classical declarations (int)", u},
		{"const", pre + "const int n = 2;", 3, 1, "classical declarations (const)", u},
		{"angle", pre + "angle a = pi;", 3, 1, "classical declarations (angle)", u},
		{"classical assignment", pre + "bit c;\nc = 1;", 4, 5, "classical assignment is unsupported", u},
		{"classical arithmetic", pre + "bit[2] c;\nc += 1;", 4, 3, "classical arithmetic", u},
		{"classical initialiser", pre + "bit c = 1;", 3, 9, "classical initialisers", u},
		{"delay", pre + "delay[100ns] q[0];", 3, 1, "delay is unsupported", u},
		{"gphase", pre + "gphase(pi);", 3, 1, "gphase is unsupported", u},
		{"switch", pre + "switch (1) { }", 3, 1, "control flow (switch)", u},
		{"extern", pre + "extern f(int) -> int;", 3, 1, "extern", u},
		{"duration designator", pre + "h[100ns] q[0];", 3, 2, "gate duration designators", u},
		{"box duration", pre + "box[10ns] { h q[0]; }", 3, 4, "box durations", u},
		{"nested box", pre + "box { box { h q[0]; } }", 3, 7, "\"box\" inside box", u},
		{"declaration in box", pre + "box { qubit r; }", 3, 7, "\"qubit\" inside box", u},
		{"annotation", pre + "@braket.foo\nh q[0];", 3, 1, "annotations", u},
		{"scope block", pre + "{ h q[0]; }", 3, 1, "scope blocks", u},
		{"other include", pre + "include \"qelib1.inc\";", 3, 9, "include \"qelib1.inc\" is unsupported", u},
		{"version 2 without .0", "OPENQASM 2;\nqreg q[1];", 1, 10, "version \"2\" is unsupported", u},
		{"version 2.1", "OPENQASM 2.1;\nqreg q[1];", 1, 10, "version \"2.1\" is unsupported", u},
		{"version 3.1", "OPENQASM 3.1;", 1, 10, "version \"3.1\" is unsupported", u},
		{"other directive", pre + "#dim 2", 3, 1, "directive \"#dim\" is unsupported", u},
		{"braket unitary pragma", pre + "#pragma braket unitary([[0, 1.0], [1.0, 0]]) q[0]", 3, 1, "#pragma braket unitary", u},
		{"braket noise pragma", pre + "  #pragma braket noise bit_flip(0.1) q[0]", 3, 3, "#pragma braket noise", u},
		{"pragma keyword", pre + "pragma foo", 3, 1, "pragma without '#'", u},
		{"index range", pre + "h q[0:1];", 3, 6, "index ranges", u},
		{"index range after start", pre + "h q[0:];", 3, 6, "index ranges", u},
		{"index set", pre + "h q[{0, 1}];", 3, 5, "index sets", u},
		{"negative index", pre + "h q[-1];", 3, 5, "negative indices", u},
		{"variable index", pre + "h q[n];", 3, 5, "indices other than integer literals", u},
		{"index expression", pre + "h q[0+1];", 3, 6, "index expressions", u},
		{"multi-dimensional index", pre + "h q[0][0];", 3, 7, "multi-dimensional", u},
		{"variable in parameter", pre + "rx(theta) q[0];", 3, 4, "identifier \"theta\" in expression", u},
		{"modulo", pre + "rx(5 % 2) q[0];", 3, 6, "operator \"%\"", u},
		{"comparison", pre + "rx(1 < 2) q[0];", 3, 6, "operator \"<\"", u},
		{"imaginary literal", pre + "rx(2im) q[0];", 3, 4, "literal \"2im\"", u},
		{"duration literal", pre + "rx(100ns) q[0];", 3, 4, "literal \"100ns\"", u},
		{"hex literal", pre + "rx(0x10) q[0];", 3, 4, "literal \"0x10\"", u},
		{"digit separator", pre + "rx(1_000) q[0];", 3, 4, "literal \"1_000\"", u},
		{"stdgates cu", pre + "cu(1, 2, 3, 4) q[0], q[1];", 3, 1, "gate \"cu\" is unsupported", u},
		{"braket ecr", pre + "ecr q[0], q[1];", 3, 1, "gate \"ecr\" is unsupported", u},
		{"braket xx", pre + "xx(0.1) q[0], q[1];", 3, 1, "gate \"xx\" is unsupported", u},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { checkReject(t, tc, Limits{}) })
	}
}

func TestRejectInvalid(t *testing.T) {
	tests := []rejectCase{
		{"missing header", "qubit q;\nh q;", 1, 1, "must start with the header", nil},
		{"header after statement", "// c\nqubit q;\nOPENQASM 3;", 2, 1, "must start with the header", nil},
		{"empty source", "", 1, 1, "must start with the header", nil},
		{"header twice", pre + "OPENQASM 3;", 3, 1, "must appear once", nil},
		{"header without version", "OPENQASM;", 1, 9, "expected a version number", nil},
		{"header without semicolon", "OPENQASM 3\nqubit q;", 2, 1, "expected \";\"", nil},
		{"unknown gate", pre + "foo q[0];", 3, 1, "unknown gate \"foo\"", nil},
		{"upper-case gate", pre + "H q[0];", 3, 1, "unknown gate \"H\"", nil},
		{"too many operands", pre + "x q[0], q[1];", 3, 1, "gate \"x\" takes 1 qubit operand, got more", nil},
		{"too few operands", pre + "cx q[0];", 3, 1, "gate \"cx\" takes 2 qubit operands, got 1", nil},
		{"missing parameter", pre + "rx q[0];", 3, 1, "gate \"rx\" takes 1 parameter, got 0", nil},
		{"parameter on fixed gate", pre + "h(1) q[0];", 3, 1, "gate \"h\" takes 0 parameters, got more", nil},
		{"too few u parameters", pre + "u(1, 2) q[0];", 3, 1, "gate \"u\" takes 3 parameters, got 2", nil},
		{"too many u parameters", pre + "U(1, 2, 3, 4) q[0];", 3, 1, "gate \"U\" takes 3 parameters, got more", nil},
		{"empty parameter list", pre + "rx() q[0];", 3, 4, "expected an expression", nil},
		{"index out of range", pre + "h q[2];", 3, 5, "index 2 out of range for \"q\" of size 2", nil},
		{"huge index", pre + "h q[99999999999999999999];", 3, 5, "out of range", nil},
		{"duplicate qubit", pre + "cx q[0], q[0];", 3, 10, "gate \"cx\" applied to qubit 0 twice", nil},
		{"duplicate qubit by broadcast", pre + "cx q, q;", 3, 7, "applied to qubit 0 twice", nil},
		{"duplicate in ccx", pre + "qubit r;\nccx q[1], r, q[1];", 4, 14, "applied to qubit 1 twice", nil},
		{"broadcast size mismatch", pre + "qubit[3] r;\ncx q, r;", 4, 7, "different sizes", nil},
		{"duplicate declaration", pre + "bit[2] q;", 3, 8, "duplicate declaration of \"q\" (first declared at line 2:10)", nil},
		{"reserved name gate", pre + "qubit s;", 3, 7, "\"s\" is a reserved name", nil},
		{"reserved name keyword", pre + "bit measure;", 3, 5, "\"measure\" is a reserved name", nil},
		{"reserved name constant", pre + "qubit[1] pi;", 3, 10, "\"pi\" is a reserved name", nil},
		{"undeclared qubit", pre + "h r[0];", 3, 3, "undeclared name \"r\"", nil},
		{"undeclared bit", pre + "c[0] = measure q[0];", 3, 1, "undeclared name \"c\"", nil},
		{"bit as qubit", pre + "bit[2] c;\nh c[0];", 4, 3, "\"c\" is a bit register where a qubit was expected", nil},
		{"qubit as bit", pre + "measure q[0] -> q[1];", 3, 17, "\"q\" is a qubit register where a bit was expected", nil},
		{"qubit register starts statement", pre + "q[0] = measure q[1];", 3, 1, "unexpected qubit register \"q\"", nil},
		{"measure size mismatch", pre + "bit[3] c;\nc = measure q;", 4, 3, "2 qubit(s) to 3 bit(s)", nil},
		{"measure register into bit", pre + "bit c;\nc = measure q;", 4, 3, "2 qubit(s) to 1 bit(s)", nil},
		{"arrow size mismatch", pre + "bit[2] c;\nmeasure q[0] -> c;", 4, 1, "1 qubit(s) to 2 bit(s)", nil},
		{"physical after declared", pre + "h $0;", 3, 3, "physical qubit $0 cannot be mixed with declared qubits", nil},
		{"declared after physical", "OPENQASM 3;\nh $1;\nqubit q;", 3, 1, "cannot be mixed with physical qubits ($1 used at line 2:3)", nil},
		{"indexed physical", "OPENQASM 3;\nh $1[0];", 2, 5, "physical qubits cannot be indexed", nil},
		{"malformed physical", "OPENQASM 3;\nh $a;", 2, 3, "malformed physical qubit", nil},
		{"indexing single qubit", "OPENQASM 3;\nqubit a;\nh a[0];", 3, 4, "declared without a size", nil},
		{"zero-size register", "OPENQASM 3;\nqubit[0] a;", 2, 7, "at least 1", nil},
		{"qubit initialiser", "OPENQASM 3;\nqubit a = 1;", 2, 9, "cannot have an initialiser", nil},
		{"missing semicolon at end", pre + "h q[0]", 3, 7, "expected \";\", found end of input", nil},
		{"unterminated comment", pre + "h q[0]; /* never closed", 3, 9, "unterminated /* comment", nil},
		{"unterminated string", pre + "include \"stdgates.inc;\n", 3, 9, "unterminated string", nil},
		{"invalid utf-8", pre + "h q[0]; \xff", 3, 9, "invalid UTF-8", nil},
		{"unexpected non-ascii", pre + "é q[0];", 3, 1, "unexpected character U+00E9", nil},
		{"NUL", pre + "h q[0];\x00", 3, 8, "control character U+0000 is not allowed", nil},
		{"escape in comment", pre + "h q[0]; // \x1b[2J", 3, 12, "control character U+001B", nil},
		{"C1 control in comment", pre + "// \u009b\nh q[0];", 3, 4, "control character U+009B", nil},
		{"invalid utf-8 in comment", pre + "/* \xc3 */", 3, 4, "invalid UTF-8", nil},
		{"bidi override in comment", pre + "h q[0]; // \u202e ;]1[q x", 3, 12, "bidirectional formatting character U+202E", nil},
		{"bidi isolate in string", pre + "include \"std\u2066gates.inc\";", 3, 13, "bidirectional formatting character U+2066", nil},
		{"empty statement", pre + ";", 3, 1, "unexpected \";\"", nil},
		{"stray brace", pre + "}", 3, 1, "unexpected \"}\"", nil},
		{"unclosed box", pre + "box { h q[0];", 3, 1, "box is not closed", nil},
		{"division by zero", pre + "rx(1/0) q[0];", 3, 4, "not evaluate to a finite number", nil},
		{"log of zero", pre + "rx(ln(0)) q[0];", 3, 4, "not evaluate to a finite number", nil},
		{"sqrt of negative", pre + "rx(sqrt(-1)) q[0];", 3, 4, "not evaluate to a finite number", nil},
		{"overflowing literal", pre + "rx(1e400) q[0];", 3, 4, "not evaluate to a finite number", nil},
		{"unbalanced parenthesis", pre + "rx((1) q[0];", 3, 8, "expected \")\"", nil},
		{"function without call", pre + "rx(sin) q[0];", 3, 7, "expected \"(\"", nil},
		{"constant as operand", pre + "h pi;", 3, 3, "expected an operand", nil},
		{"string as operand", pre + "h \"q\";", 3, 3, "expected a qubit operand, found string", nil},
		{"assignment without measure target", pre + "bit c;\nc = ;", 4, 5, "classical assignment", ErrUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { checkReject(t, tc, Limits{}) })
	}
}

func TestErrorString(t *testing.T) {
	_, err := Parse([]byte(pre + "reset q[0];"))
	if err == nil {
		t.Fatal("reset accepted")
	}
	if got, want := err.Error(), "line 3:1: reset is unsupported"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// Hostile text in names must come back escaped and shortened, so that an
// error shown in the approval console or a log cannot forge lines.
func TestErrorMessagesEscapeInput(t *testing.T) {
	_, err := Parse([]byte(pre + "include \"a\u200b\u2028" + strings.Repeat("x", 500) + "\";"))
	if err == nil {
		t.Fatal("include accepted")
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "\u200b\u2028") {
		t.Errorf("message contains raw control characters: %q", msg)
	}
	if !strings.Contains(msg, `include "a\u200b\u2028xxx`) {
		t.Errorf("message does not show the escaped name: %q", msg)
	}
	if len(msg) > 200 {
		t.Errorf("message is %d bytes long, want it shortened: %q", len(msg), msg)
	}
}
