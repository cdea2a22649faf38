package diagram

import "strings"

// glyph is how an operation's targets are drawn.
type glyph int

const (
	glyphBox   glyph = iota // a labelled box on each target
	glyphNot                // ⊕ on the target of a controlled X
	glyphSwap               // × on each of two targets
	glyphMeter              // a meter box on the measured qubit
)

// Geometry, in SVG user units.
const (
	charW    = 8  // width allowed per character of 13-unit monospace text
	boxH     = 28 // height of a gate box
	minBoxW  = 30 // narrowest gate box
	meterW   = 30 // width of a meter box
	notR     = 11 // radius of the ⊕ circle
	rowH     = 40 // distance between wires
	colGap   = 14 // space between columns
	margin   = 12 // space around the drawing
	noteH    = 18 // height of a line of note text
	dotR     = 5  // radius of a control dot
	swapArm  = 7  // half-size of a swap ×
	ellipsis = 16 // width of the "…" column after a cut
)

// touchBudget bounds the total number of targets and controls drawn, per
// allowed operation, so that wide multi-controlled gates cannot make the
// image large.
const touchBudget = 4

// item is an operation placed in the drawing.
type item struct {
	op    *Op
	glyph glyph
	label string // box label, or classical bit label for a meter
	known bool   // the gate name is one the package knows
	layer int    // ASAP layer
	sub   int    // column within the layer
	col   int    // column in the drawing
	width int    // width the item needs
}

// layout is the placement of the drawn prefix of a circuit.
type layout struct {
	wires    int    // qubits drawn
	items    []item // drawn operations, in program order
	colW     []int  // width of each column
	notDrawn int    // operations after the drawn prefix
}

// plan places the longest prefix of c's operations that has at most maxOps
// operations, touches only the first maxQubits qubits and stays within the
// touch budget. c must be valid.
func plan(c *Circuit, maxOps, maxQubits int) layout {
	l := layout{wires: min(c.Qubits, maxQubits)}
	var lay layering
	var slots [][][]bool // layer → column → wire → occupied
	budget := touchBudget * maxOps
	i := 0
	for ; i < len(c.Ops); i++ {
		op := &c.Ops[i]
		n := len(op.Targets) + len(op.Controls)
		if len(l.items) == maxOps || n > budget {
			break
		}
		lo, hi := span(op)
		if hi >= l.wires {
			break
		}
		budget -= n
		it := newItem(op)
		it.layer = lay.place(op)
		for len(slots) <= it.layer {
			slots = append(slots, nil)
		}
		cols := slots[it.layer]
		it.sub = firstFree(cols, lo, hi)
		if it.sub == len(cols) {
			cols = append(cols, make([]bool, l.wires))
			slots[it.layer] = cols
		}
		for q := lo; q <= hi; q++ {
			cols[it.sub][q] = true
		}
		l.items = append(l.items, it)
	}
	l.notDrawn = len(c.Ops) - i

	// ASAP layers are never empty below the deepest, so columns are the
	// layers' columns laid end to end.
	offset := make([]int, len(slots)+1)
	for layer, cols := range slots {
		offset[layer+1] = offset[layer] + len(cols)
	}
	l.colW = make([]int, offset[len(slots)])
	for k := range l.items {
		it := &l.items[k]
		it.col = offset[it.layer] + it.sub
		l.colW[it.col] = max(l.colW[it.col], it.width)
	}
	return l
}

// span returns the lowest and highest qubit op touches. op must have a
// target.
func span(op *Op) (lo, hi int) {
	lo, hi = op.Targets[0], op.Targets[0]
	for _, qs := range [2][]int{op.Targets, op.Controls} {
		for _, q := range qs {
			lo, hi = min(lo, q), max(hi, q)
		}
	}
	return lo, hi
}

// firstFree returns the first column in which wires lo..hi are all free, or
// len(cols) if there is none.
func firstFree(cols [][]bool, lo, hi int) int {
	for k, occ := range cols {
		free := true
		for q := lo; q <= hi && free; q++ {
			free = !occ[q]
		}
		if free {
			return k
		}
	}
	return len(cols)
}

// newItem decides how op is drawn and how wide it is.
func newItem(op *Op) item {
	it := item{op: op, known: true}
	switch {
	case op.Measure:
		it.glyph = glyphMeter
		if op.Clbit >= 0 {
			it.label = "c" + itoa(op.Clbit)
		}
		it.width = max(meterW, textWidth(it.label, smallCharW))
		return it
	case len(op.Controls) > 0 && len(op.Targets) == 1 && len(op.Params) == 0 && isX(op.Name):
		it.glyph = glyphNot
		it.width = 2 * notR
		return it
	case len(op.Targets) == 2 && len(op.Params) == 0 && isSwap(op.Name):
		it.glyph = glyphSwap
		it.width = 2 * swapArm
		return it
	}
	it.glyph = glyphBox
	it.label, it.known = opLabel(op)
	it.width = max(minBoxW, textWidth(it.label, charW)+12)
	return it
}

func isX(name string) bool {
	switch strings.ToLower(name) {
	case "x", "not", "cnot", "cx", "ccx", "toffoli", "mcx":
		return true
	}
	return false
}

func isSwap(name string) bool {
	switch strings.ToLower(name) {
	case "swap", "cswap", "fredkin":
		return true
	}
	return false
}
