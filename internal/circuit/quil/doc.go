// Package quil parses a small subset of Quil, the instruction language of
// Rigetti QCS, into a flat list of gates and measurements. It is shared by
// the QCS emulator (which simulates the program), the gateway and the
// broker (program digest, qubit count). It mirrors package qasm: pure, no
// I/O, bounded by [Limits], never panics, and every error is an [*Error]
// at a line and column.
//
// # Accepted subset
//
//   - one instruction per line; "#" starts a comment to the end of the
//     line; blank lines are ignored;
//   - DECLARE name BIT[n] and DECLARE name BIT (n = 1), n ≥ 1; each name
//     once (a keyword or gate name is not a name);
//   - gates on physical qubits written as non-negative integers (at most
//     [MaxQubitIndex]): I, H, X, Y, Z, S, T with one qubit; RX(θ), RY(θ),
//     RZ(θ) with one qubit and one parameter; CNOT and CZ with two distinct
//     qubits (control first). Parameter expressions: decimal and
//     scientific literals, pi, + - * /, unary minus and parentheses; the
//     value must be finite;
//   - MEASURE q name[i] (or MEASURE q name, meaning index 0) into a
//     declared BIT region, i inside it; and MEASURE q without a target.
//     Once a qubit is measured no later gate may use it (the emulator
//     samples the final state, so this keeps that exact).
//
// Keywords and gate names are upper case, as Quil writes them. Everything
// else is refused, never skipped, with an error wrapping [ErrUnsupported]:
// PRAGMA, RESET, DEFGATE, DEFCIRCUIT, DEFFRAME/DEFCAL (Quil-T), labels and
// jumps, classical instructions, gate modifiers (DAGGER, CONTROLLED,
// FORKED), qubit variables, other memory types (OCTET, INTEGER, REAL) and
// sharing, and other gates. The source must be ASCII without control
// characters other than tab, CR and LF, so the text an approver reads is
// the text that runs.
//
// [Digest] is the program digest job tokens bind (the broker's format
// "quil"), computed like qasm.Digest.
package quil
