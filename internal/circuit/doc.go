// Package circuit models IonQ's ionq.circuit.v1 QIS circuit input and defines
// the canonical JSON form and digest that bind a job token to a circuit.
//
// The package is pure: it performs no I/O and keeps no global state. It is
// shared by the gateway (which checks a submitted circuit against the digest
// named in a job token), the IonQ emulator and the demo agent.
//
// # Circuit model
//
// An [Input] is the "input" object of an IonQ job of type ionq.circuit.v1:
//
//	{"qubits":2,"gateset":"qis","circuit":[{"gate":"h","target":0},
//	 {"gate":"cnot","control":0,"target":1}]}
//
// [ParseInput] decodes strictly (unknown or case-mismatched keys, duplicate
// keys, null values and trailing data are all rejected) and then calls
// [Input.Validate]. The rules enforced by Validate are:
//
//   - qubits is required and in 1..64 (MaxQubits);
//   - gateset is "qis" or empty (which means qis); "native" is refused;
//   - each gate is one of x y z rx ry rz h s si v vi t ti not cnot swap;
//     xx, yy, zz and pauliexp are IonQ gates that qbroker does not support;
//   - single-qubit gates take exactly one target (target, or targets with one
//     element) and may take control/controls, which makes them
//     multi-controlled versions of the gate (not/x with one control is CNOT);
//   - cnot takes exactly one control and one target;
//   - swap takes exactly two distinct targets and no control;
//   - rx, ry and rz require a finite rotation in radians; other gates forbid it;
//   - every qubit index is in [0, qubits), and a gate's qubits are distinct.
//
// Errors are *[ValidationError] values whose Field is a JSON path such as
// "circuit[3].target".
//
// # Canonical form and digest (wire contract)
//
// [Canonical] maps a JSON document to a unique byte string, and [Digest] is
// the lowercase hexadecimal SHA-256 of that byte string. The digest of an IonQ
// job is the digest of the job's "input" value exactly as sent (not of a
// re-encoded [Input]). Agents in any language compute it to bind a job token
// to a circuit, so the rules are fixed:
//
//  1. The input must be a single JSON value (RFC 8259) in valid UTF-8,
//     optionally surrounded by whitespace. Trailing data, invalid UTF-8 and
//     unpaired UTF-16 surrogate escapes (such as "\ud800") are errors.
//     Nesting deeper than 64 levels is an error.
//  2. Objects: a key may appear only once (a duplicate is an error). Members
//     are written in ascending order of the bytes of the UTF-8 encoding of
//     their unescaped keys (note: this differs from RFC 8785, which sorts by
//     UTF-16 code units, only for keys outside the Basic Multilingual Plane).
//  3. No whitespace is written anywhere outside strings; separators are ','
//     and ':'.
//  4. Literals are written as true, false and null.
//  5. Numbers are parsed as IEEE-754 binary64 (round to nearest). A number
//     that overflows to ±Inf is an error. The value is written as Go's
//     encoding/json writes a float64, which is the ECMAScript
//     Number.prototype.toString form for magnitudes in [1e-6, 1e21):
//     the shortest decimal that round-trips, with no exponent (1.0 → 1,
//     0.50 → 0.5, 1e2 → 100, 1e-7 → 1e-7, 1e21 → 1e+21). Negative zero is
//     written as 0. Integers beyond 2^53 therefore lose precision, exactly as
//     they do in JavaScript.
//  6. Strings are written with the escaping of Go's encoding/json with HTML
//     escaping off: '"' → \", '\\' → \\, U+0008 → \b, U+000C → \f,
//     U+000A → \n, U+000D → \r, U+0009 → \t, other code points below U+0020
//     → \u00XX (lowercase hex), U+2028 → \u2028, U+2029 → \u2029; every
//     other code point (including '<', '>', '&', '/' and non-ASCII) is
//     written as raw UTF-8.
//
// Key order and insignificant whitespace therefore do not change the digest;
// any change of a gate, qubit index or angle does.
package circuit
