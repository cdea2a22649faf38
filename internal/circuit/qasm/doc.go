// Package qasm parses a subset of OpenQASM 3 (and of OpenQASM 2.0, the
// language of Quantinuum's API) into a flat list of gates and
// measurements, and converts between that form and IonQ QIS circuits (package
// circuit). It is shared by the provider emulators (which simulate the
// program), the gateway (program digest, qubit count) and the approval
// console (which draws the circuit).
//
// The package is pure: no I/O and no global state. Parsing is bounded by
// [Limits] (source size, qubits, operations) and by [MaxExprDepth], and never
// panics on any input.
//
// # Accepted subset
//
//   - the header "OPENQASM 3;" or "OPENQASM 3.0;", required as the first
//     statement (comments may precede it);
//   - include "stdgates.inc"; (no other file);
//   - declarations qubit[n] q; qubit q; bit[n] c; bit c; and the legacy
//     qreg q[n]; creg c[n]; with positive integer-literal sizes. Registers
//     are flattened in declaration order. Names must be unique and may not be
//     a keyword, gate name, constant or function;
//   - physical qubits $0, $1, … (Braket verbatim style), which cannot be mixed
//     with declared qubits in one program;
//   - gate applications "g(params) a, b;" on the gates listed at [Op], with
//     operands q[i] (integer literal) or a whole register, which broadcasts
//     ("h q;" applies h to every qubit of q; "cx q, r;" pairs equal-size
//     registers; single-qubit operands are repeated);
//   - parameter expressions: decimal and scientific literals, the constants
//     pi/π, tau/τ and euler/ℇ, + - * / ** (power), unary minus, parentheses,
//     and sin cos tan exp ln sqrt arcsin arccos arctan. Values must be
//     finite;
//   - measurements: c[0] = measure q[0]; c = measure q; measure q[0] -> c[0];
//     measure q; and bit[n] c = measure q; (sizes must match);
//   - "barrier ...;" (checked, then ignored), "box { ... }" around gates and
//     measurements (Braket verbatim blocks; treated as plain grouping);
//   - // and /* */ comments; #pragma lines are ignored, except
//     "#pragma braket unitary" and "#pragma braket noise", which change the
//     circuit and are refused.
//
// The source must be UTF-8 without control characters (other than tab, LF,
// VT, FF and CR) or Unicode bidirectional formatting characters anywhere,
// comments included, so that the text an approver reads is the text that
// runs.
//
// Everything else is refused with an [*Error] at its line and column, never
// skipped: gate and subroutine definitions, loops, if, reset, delay,
// input/output and classical declarations, let, gate modifiers (ctrl @,
// inv @, …), classical assignments and arithmetic, index ranges and sets,
// durations, annotations and other includes. Such errors wrap
// [ErrUnsupported]; exceeded limits wrap [ErrLimit]. The parser also checks
// gate arity and parameter counts, index bounds, repeated qubits within one
// gate, duplicate declarations and undeclared names.
//
// # OpenQASM 2.0
//
// A program whose header is "OPENQASM 2.0;" is parsed as OpenQASM 2.0
// (Program.Version "2.0"; "OPENQASM 2;" and other versions are refused),
// with this subset:
//
//   - include "qelib1.inc"; and include "hqslib1.inc"; (Quantinuum's
//     library, which provides the qelib1.inc gates too); no other file;
//   - qreg q[n]; creg c[n]; (qubit and bit declarations are OpenQASM 3);
//     names start with a lower-case letter;
//   - the built-in gates U and CX; after an include of either library,
//     u3 u2 u1 cx id x y z h s sdg t tdg rx ry rz cz cy ch ccx crz cu1 cu3
//     swap, and Qiskit's u p sx sxdg cp crx cry cswap; after
//     include "hqslib1.inc", Quantinuum's native Rz U1q ZZ RZZ. They map to
//     the canonical ops of [Op], u2, cu3, U1q, ZZ and RZZ to one or several
//     exactly (see gateOf2 in qasm2.go for each definition; cu3 is the one
//     of the OpenQASM 2.0 specification's qelib1.inc, as Quantinuum's).
//     "g() q;" is accepted for gates without parameters. Broadcast over
//     whole registers is as in OpenQASM 3;
//   - measure q[0] -> c[0]; and measure q -> c; (the arrow is required);
//   - barrier with at least one operand;
//   - parameter expressions with pi, + - * / ^ (power), unary minus,
//     parentheses and sin cos tan exp ln sqrt;
//   - // comments only.
//
// Refused with an [*Error]: gate definitions, opaque, if, reset (these wrap
// [ErrUnsupported]), the other gates of Qiskit's or Quantinuum's libraries
// (u0, cu, csx, rxx, rzz, Rxxyyzz, …, also [ErrUnsupported]), and every
// OpenQASM 3 construct: qubit/bit declarations, "c = measure q",
// "measure q;" without a target, physical qubits, box, #pragma, block
// comments, **, tau and euler, and the stdgates aliases (cnot,
// phaseshift, …).
//
// # Digest
//
// [Digest] is the program digest the gateway binds a job token to: SHA-256
// over the source with CR LF turned into LF and trailing whitespace of the
// whole text removed. See its documentation for the exact rule.
package qasm
