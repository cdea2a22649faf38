// Package diagram draws a quantum circuit as a self-contained SVG image and
// computes the figures an approver needs beside it: qubits, gate counts and
// depth. It exists because a person approves what they can see: the console
// shows a submitted circuit drawn, not as JSON.
//
// The package is pure: it performs no I/O and keeps no global state.
//
// # Model
//
// A [Circuit] is a list of [Op] values on numbered qubits, in program order.
// [FromIonQ] converts an IonQ ionq.circuit.v1 input (whose qubits are all
// measured at the end, so MeasureAll is set). [Analyze] computes [Stats];
// depth is the number of ASAP layers, where an operation waits only for the
// qubits it touches (its targets and controls), measurements take a layer
// like gates, and MeasureAll adds one final layer.
//
// # Drawing
//
// [SVG] draws one wire per qubit and places each operation in the column of
// its ASAP layer. When a layer holds operations whose vertical extents would
// cross (a CNOT from q0 to q2 beside a gate on q1), the layer is split into
// as many adjacent columns as needed, so that no line passes behind another
// operation's box. Operations keep their program order on every wire.
//
// The output is safe to serve to a page whose Content-Security-Policy forbids
// inline styles and scripts: it uses only presentation attributes (no style
// attribute, no <style> element), has no script, event handler, link or
// foreignObject, and references nothing external. Text that came from the
// circuit is XML-escaped; gate names the package does not know are further
// reduced to upper-case printable ASCII (other characters become "?") and
// drawn on an amber box, so a name cannot pass itself off as a familiar gate
// with look-alike or bidirectional-override characters.
//
// Output is bounded: at most Options.MaxOps operations (default 400) on at
// most Options.MaxQubits wires (default 64) are drawn, always a prefix of
// the circuit in program order; the rest is announced in visible text such
// as "… 99600 more operations not drawn". Output is deterministic: the same
// circuit and options give the same bytes.
package diagram
