// Package qasm parses a subset of OpenQASM 3 into a flat list of gates and
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
// # Digest
//
// [Digest] is the program digest the gateway binds a job token to: SHA-256
// over the source with CR LF turned into LF and trailing whitespace of the
// whole text removed. See its documentation for the exact rule.
package qasm
