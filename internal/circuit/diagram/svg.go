package diagram

import (
	"encoding/hex"
	"hash/fnv"
	"strings"
)

// Drawing limits. See [Options].
const (
	DefaultMaxOps    = 400
	DefaultMaxQubits = 64
	LimitMaxOps      = 4000
	LimitMaxQubits   = 256
	maxTitleRunes    = 200
)

// Options tune [SVG]. The zero value is ready to use.
type Options struct {
	// Title is the image's accessible title. Empty means
	// "Circuit: N qubits, G gates, depth D". It is cut to 200 characters.
	Title string
	// MaxOps is the most operations drawn: 0 or less means DefaultMaxOps,
	// and more than LimitMaxOps means LimitMaxOps.
	MaxOps int
	// MaxQubits is the most wires drawn: 0 or less means DefaultMaxQubits,
	// and more than LimitMaxQubits means LimitMaxQubits.
	MaxQubits int
}

// SVG draws c as a standalone SVG document. It draws the longest prefix of
// c.Ops that fits the limits in o (and a budget of four targets or controls
// per allowed operation), notes in visible text what was left out, and
// returns an error wrapping [ErrInvalidCircuit] if c has a negative qubit
// count or an operation with no target, a qubit out of range or repeated, or
// a malformed measurement. See the package documentation for what the
// output contains and what it never contains.
func SVG(c Circuit, o Options) ([]byte, error) {
	if err := validate(&c); err != nil {
		return nil, err
	}
	maxOps := limit(o.MaxOps, DefaultMaxOps, LimitMaxOps)
	maxQubits := limit(o.MaxQubits, DefaultMaxQubits, LimitMaxQubits)
	st := Analyze(c)
	l := plan(&c, maxOps, maxQubits)

	title := o.Title
	if title == "" {
		title = "Circuit: " + plural(st.Qubits, "qubit") + ", " + plural(st.Gates, "gate") + ", depth " + itoa(st.Depth)
	}
	title = truncateRunes(title, maxTitleRunes)
	desc := describe(&c, st, &l)

	var notes []string
	if l.notDrawn > 0 {
		notes = append(notes, "… "+itoa(l.notDrawn)+" more "+noun(l.notDrawn, "operation")+" not drawn")
	}
	if hidden := c.Qubits - l.wires; hidden > 0 {
		notes = append(notes, "… "+itoa(hidden)+" more "+noun(hidden, "qubit")+" not drawn")
	}
	if l.wires == 0 {
		notes = append(notes, "(no qubits)")
	}

	var body canvas
	width, height := draw(&body, &c, &l, notes)

	h := fnv.New64a()
	h.Write([]byte(title + "\x00" + desc + "\x00"))
	h.Write(body.Bytes())
	id := "qbd-" + hex.EncodeToString(h.Sum(nil))

	var out canvas
	out.Grow(body.Len() + len(title) + len(desc) + 512)
	out.WriteString(`<svg xmlns="http://www.w3.org/2000/svg" version="1.1"`)
	out.WriteString(` width="` + itoa(width) + `" height="` + itoa(height) + `"`)
	out.WriteString(` viewBox="0 0 ` + itoa(width) + " " + itoa(height) + `"`)
	out.WriteString(` role="img" aria-labelledby="` + id + `-t" aria-describedby="` + id + `-d">` + "\n")
	out.WriteString(`<title id="` + id + `-t">`)
	out.escape(title)
	out.WriteString("</title>\n")
	out.WriteString(`<desc id="` + id + `-d">`)
	out.escape(desc)
	out.WriteString("</desc>\n")
	out.Write(body.Bytes())
	out.WriteString("</svg>\n")
	return out.Bytes(), nil
}

// limit applies an option's default and ceiling.
func limit(v, def, ceiling int) int {
	if v <= 0 {
		return def
	}
	return min(v, ceiling)
}

// describe is the text of the <desc> element.
func describe(c *Circuit, st Stats, l *layout) string {
	var b strings.Builder
	b.WriteString(plural(st.Qubits, "qubit") + "; " + plural(st.Gates, "gate"))
	b.WriteString(" (" + itoa(st.OneQubit) + " one-qubit, " + itoa(st.TwoQubit) + " two-qubit, " +
		itoa(st.MultiQubit) + " on three or more qubits); ")
	b.WriteString(plural(st.Measurements, "measurement") + "; depth " + itoa(st.Depth) + ".")
	if c.MeasureAll {
		b.WriteString(" Every qubit is measured at the end.")
	}
	if l.notDrawn > 0 {
		b.WriteString(" Only the first " + itoa(len(l.items)) + " of " + plural(len(c.Ops), "operation") + " are drawn.")
	}
	if l.wires < c.Qubits {
		b.WriteString(" Only the first " + plural(l.wires, "qubit") + " of " + itoa(c.Qubits) + " are drawn.")
	}
	return b.String()
}

func plural(n int, what string) string { return itoa(n) + " " + noun(n, what) }

func noun(n int, what string) string {
	if n == 1 {
		return what
	}
	return what + "s"
}

// wireY is the y coordinate of qubit q's wire.
func wireY(q int) int { return margin + q*rowH + rowH/2 }

// draw writes the body of the image and returns its width and height.
func draw(b *canvas, c *Circuit, l *layout, notes []string) (width, height int) {
	labelW := 0
	if l.wires > 0 {
		labelW = textWidth("q"+itoa(l.wires-1), charW) + 8
	}
	x := margin + labelW + colGap
	centre := make([]int, len(l.colW))
	for i, w := range l.colW {
		centre[i] = x + w/2
		x += w + colGap
	}
	ellipsisX, measureX := -1, -1
	if l.wires > 0 && l.notDrawn > 0 {
		ellipsisX = x + ellipsis/2
		x += ellipsis + colGap
	}
	if l.wires > 0 && c.MeasureAll {
		measureX = x + meterW/2
		x += meterW + colGap
	}
	wireEnd := x
	width = wireEnd + margin
	for _, n := range notes {
		width = max(width, 2*margin+textWidth(n, smallCharW+1))
	}
	height = 2*margin + l.wires*rowH + len(notes)*noteH

	b.WriteString(`<rect width="` + itoa(width) + `" height="` + itoa(height) + `" fill="` + colBackground + `"/>` + "\n")
	for q := range l.wires {
		y := wireY(q)
		b.text(margin+labelW, y+4, fontSize, "end", colInk, "q"+itoa(q))
		b.line(margin+labelW+colGap/2, y, wireEnd, y, colWire, 1)
	}
	for k := range l.items {
		drawItem(b, &l.items[k], centre[l.items[k].col])
	}
	if ellipsisX >= 0 {
		for q := range l.wires {
			y := wireY(q)
			b.rect(ellipsisX-ellipsis/2, y-8, ellipsis, 16, colBackground, colBackground)
			b.text(ellipsisX, y+4, fontSize, "middle", colNote, "…")
		}
	}
	if measureX >= 0 {
		for q := range l.wires {
			drawMeter(b, measureX, wireY(q), "")
		}
	}
	y := margin + l.wires*rowH + noteH - 4
	for _, n := range notes {
		b.text(margin, y, fontSize, "start", colNote, n)
		y += noteH
	}
	return width, height
}

// drawItem draws one operation centred on x.
func drawItem(b *canvas, it *item, x int) {
	op := it.op
	if lo, hi := span(op); hi > lo {
		b.line(x, wireY(lo), x, wireY(hi), colInk, 2)
	}
	for _, q := range op.Controls {
		b.circle(x, wireY(q), dotR, colInk, colInk)
	}
	switch it.glyph {
	case glyphNot:
		y := wireY(op.Targets[0])
		b.circle(x, y, notR, colBackground, colInk)
		b.line(x-notR, y, x+notR, y, colInk, 2)
		b.line(x, y-notR, x, y+notR, colInk, 2)
	case glyphSwap:
		for _, q := range op.Targets {
			y := wireY(q)
			b.line(x-swapArm, y-swapArm, x+swapArm, y+swapArm, colInk, 2)
			b.line(x-swapArm, y+swapArm, x+swapArm, y-swapArm, colInk, 2)
		}
	case glyphMeter:
		drawMeter(b, x, wireY(op.Targets[0]), it.label)
	default:
		fill, stroke := colGateFill, colGateLine
		switch {
		case !it.known:
			fill, stroke = colOddFill, colOddLine
		case len(op.Params) > 0:
			fill, stroke = colParamFill, colParamLine
		}
		w := it.width
		for _, q := range op.Targets {
			y := wireY(q)
			b.rect(x-w/2, y-boxH/2, w, boxH, fill, stroke)
			b.text(x, y+5, fontSize, "middle", colInk, it.label)
		}
	}
}

// drawMeter draws a measurement box centred on (x, y), with the classical
// bit's label, if any, below it.
func drawMeter(b *canvas, x, y int, clbit string) {
	b.rect(x-meterW/2, y-13, meterW, 26, colMeterFill, colMeterLine)
	b.arc(x, y+6, 9, colMeterLine)
	b.line(x, y+6, x+7, y-7, colMeterLine, 2)
	if clbit != "" {
		b.text(x, y+24, smallFontSize, "middle", colInk, clbit)
	}
}
