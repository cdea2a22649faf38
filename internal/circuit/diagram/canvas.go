package diagram

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Colours. Every colour is given as a presentation attribute, so the image
// needs no style sheet.
const (
	colBackground = "#ffffff"
	colWire       = "#6b7280"
	colInk        = "#111827"
	colGateFill   = "#dbeafe"
	colGateLine   = "#1e3a8a"
	colParamFill  = "#dcfce7"
	colParamLine  = "#166534"
	colOddFill    = "#fef3c7" // gates whose name the package does not know
	colOddLine    = "#92400e"
	colMeterFill  = "#f3f4f6"
	colMeterLine  = "#374151"
	colNote       = "#b91c1c"
)

// Text sizes.
const (
	fontSize      = 13
	smallFontSize = 10
	smallCharW    = 7 // width allowed per character of smallFontSize text
	fontFamily    = "monospace"
)

// canvas accumulates SVG elements. Only numbers and the package's own
// constants go into attributes; text goes through xml.EscapeText.
type canvas struct {
	bytes.Buffer
}

func (b *canvas) line(x1, y1, x2, y2 int, stroke string, width int) {
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="%d"/>`+"\n",
		x1, y1, x2, y2, stroke, width)
}

func (b *canvas) rect(x, y, w, h int, fill, stroke string) {
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" rx="3" fill="%s" stroke="%s" stroke-width="1.5"/>`+"\n",
		x, y, w, h, fill, stroke)
}

func (b *canvas) circle(cx, cy, r int, fill, stroke string) {
	fmt.Fprintf(b, `<circle cx="%d" cy="%d" r="%d" fill="%s" stroke="%s" stroke-width="1.5"/>`+"\n",
		cx, cy, r, fill, stroke)
}

// arc draws the upper half of a circle of radius r centred on (cx, cy).
func (b *canvas) arc(cx, cy, r int, stroke string) {
	fmt.Fprintf(b, `<path d="M%d %dA%d %d 0 0 1 %d %d" fill="none" stroke="%s" stroke-width="1.5"/>`+"\n",
		cx-r, cy, r, r, cx+r, cy, stroke)
}

// text writes s, escaped, with its baseline at y. anchor is "start",
// "middle" or "end".
func (b *canvas) text(x, y, size int, anchor, fill, s string) {
	fmt.Fprintf(b, `<text x="%d" y="%d" font-family="%s" font-size="%d" text-anchor="%s" fill="%s">`,
		x, y, fontFamily, size, anchor, fill)
	b.escape(s)
	b.WriteString("</text>\n")
}

// escape writes s as XML character data. Characters XML cannot carry become
// U+FFFD.
func (b *canvas) escape(s string) {
	_ = xml.EscapeText(b, []byte(s)) // writing to a bytes.Buffer cannot fail
}

// textWidth is the width allowed for s at perChar units per character.
func textWidth(s string, perChar int) int {
	return utf8.RuneCountInString(s) * perChar
}

// truncateRunes cuts s to at most n runes, ending it with "…" if cut.
func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	k := 0
	for i := range s {
		if k == n-1 {
			return s[:i] + "…"
		}
		k++
	}
	return s
}

func itoa(n int) string { return strconv.Itoa(n) }
