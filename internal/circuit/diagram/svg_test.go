package diagram

import (
	"bytes"
	"errors"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

func TestSVGBell(t *testing.T) {
	out := mustSVG(t, bell(), Options{})
	p := checkSVG(t, out)
	if p.title != "Circuit: 2 qubits, 2 gates, depth 3" {
		t.Errorf("title %q", p.title)
	}
	if !strings.Contains(p.desc, "1 two-qubit") || !strings.Contains(p.desc, "depth 3") ||
		!strings.Contains(p.desc, "measured at the end") {
		t.Errorf("desc %q", p.desc)
	}
	for _, s := range []string{"q0", "q1", "H"} {
		if !p.hasText(s) {
			t.Errorf("no text %q in %q", s, p.texts)
		}
	}
	if n := countAttr(p.circle, "r", itoa(notR)); n != 1 {
		t.Errorf("%d ⊕ circles, want 1", n)
	}
	if n := countAttr(p.circle, "r", itoa(dotR)); n != 1 {
		t.Errorf("%d control dots, want 1", n)
	}
	if n := p.count["path"]; n != 2 {
		t.Errorf("%d meters, want 2 (one per qubit)", n)
	}
}

func TestSVGGolden(t *testing.T) {
	c := ionq(3, g("h", 0), cnot(0, 1), cnot(1, 2))
	c.Ops = append(c.Ops,
		Op{Name: "rz", Targets: []int{2}, Params: []float64{-math.Pi / 4}},
		Op{Name: "swap", Targets: []int{0, 2}},
		Op{Name: "si", Targets: []int{1}},
		Op{Name: "x", Targets: []int{1}, Controls: []int{0, 2}},
		Op{Name: "foo", Targets: []int{0}},
	)
	out := mustSVG(t, c, Options{})
	checkSVG(t, out)
	path := filepath.Join("testdata", "ghz3.svg")
	if *update {
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, want) {
		t.Errorf("output differs from %s (run with -update after checking the drawing)", path)
	}
}

func TestSVGParallelGatesShareAColumn(t *testing.T) {
	c := ionq(3, g("h", 0), g("h", 1), g("h", 2))
	l := plan(&c, DefaultMaxOps, DefaultMaxQubits)
	if len(l.colW) != 1 {
		t.Fatalf("%d columns, want 1", len(l.colW))
	}
	p := checkSVG(t, mustSVG(t, c, Options{}))
	var xs []string
	for _, r := range p.rects {
		if r["fill"] == colGateFill {
			xs = append(xs, r["x"])
		}
	}
	if len(xs) != 3 || xs[0] != xs[1] || xs[1] != xs[2] {
		t.Errorf("gate boxes at x=%v, want three equal", xs)
	}
}

// A gate on q1 in the same layer as a CNOT from q0 to q2 is drawn in its own
// column, so the CNOT's line does not pass behind it.
func TestSVGCrossingOpsSplitALayer(t *testing.T) {
	c := Circuit{Qubits: 3, Ops: []Op{
		{Name: "cnot", Controls: []int{0}, Targets: []int{2}},
		{Name: "h", Targets: []int{1}},
		{Name: "h", Targets: []int{0}},
	}}
	l := plan(&c, DefaultMaxOps, DefaultMaxQubits)
	if l.items[0].layer != 0 || l.items[1].layer != 0 || l.items[2].layer != 1 {
		t.Fatalf("layers %d %d %d, want 0 0 1", l.items[0].layer, l.items[1].layer, l.items[2].layer)
	}
	if l.items[0].col == l.items[1].col {
		t.Error("crossing operations share a column")
	}
	if l.items[2].col <= max(l.items[0].col, l.items[1].col) {
		t.Error("layer 1 is not to the right of layer 0")
	}
	if len(l.colW) != 3 {
		t.Errorf("%d columns, want 3", len(l.colW))
	}
}

// Program order on each wire is kept even when a later operation lands in
// an earlier layer.
func TestSVGOrderOnWires(t *testing.T) {
	c := Circuit{Qubits: 2, Ops: []Op{
		{Name: "h", Targets: []int{0}},
		{Name: "x", Targets: []int{0}},
		{Name: "y", Targets: []int{0}},
		{Name: "z", Targets: []int{1}},
		{Name: "cnot", Controls: []int{1}, Targets: []int{0}},
	}}
	l := plan(&c, DefaultMaxOps, DefaultMaxQubits)
	cols := []int{}
	for _, it := range l.items {
		cols = append(cols, it.col)
	}
	if want := []int{0, 1, 2, 0, 3}; !slicesEqual(cols, want) {
		t.Errorf("columns %v, want %v", cols, want)
	}
}

func slicesEqual(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSVGGlyphs(t *testing.T) {
	c := Circuit{Qubits: 3, Ops: []Op{
		{Name: "swap", Targets: []int{0, 2}},
		{Measure: true, Targets: []int{1}, Clbit: 4},
		{Measure: true, Targets: []int{0}, Clbit: -1},
		{Name: "rz", Targets: []int{2}, Params: []float64{math.Pi / 2}},
		{Name: "zz", Targets: []int{0, 1}},
	}}
	p := checkSVG(t, mustSVG(t, c, Options{}))
	if !p.hasText("c4") || !p.hasText("RZ(π/2)") {
		t.Errorf("texts %q", p.texts)
	}
	if n := p.count["path"]; n != 2 {
		t.Errorf("%d meters, want 2 (no MeasureAll)", n)
	}
	if n := countAttr(p.rects, "fill", colParamFill); n != 1 {
		t.Errorf("%d parameterised boxes, want 1", n)
	}
	zz := 0
	for _, s := range p.texts {
		if s == "ZZ" {
			zz++
		}
	}
	if zz != 2 {
		t.Errorf("a two-target gate has %d labelled boxes, want 2", zz)
	}
	// 2 lines per × per target, the swap's and the zz's joining lines, 3
	// wires and 2 meter needles.
	if n := p.count["line"]; n != 4+2+3+2 {
		t.Errorf("%d lines", n)
	}
}

func TestSVGEscapesText(t *testing.T) {
	hostile := []string{`<script>alert(1)</script>`, `"onload=alert(1) x="`, `]]><svg onload=x>`, "&amp;", "'", "\x00\x1b\ufffe"}
	for _, name := range hostile {
		c := Circuit{Qubits: 1, Ops: []Op{{Name: name, Targets: []int{0}}}}
		out := mustSVG(t, c, Options{Title: name})
		p := checkSVG(t, out)
		if want := truncateRunes(name, maxTitleRunes); p.title != strings.ToValidUTF8(strings.Map(xmlChar, want), "\uFFFD") {
			t.Errorf("title %q came back as %q", name, p.title)
		}
		label := sanitizeName(name)
		if !p.hasText(label) {
			t.Errorf("label %q missing from %q", label, p.texts)
		}
		if countAttr(p.rects, "fill", colOddFill) != 1 {
			t.Errorf("unknown gate %q not drawn on an amber box", name)
		}
	}
	out := mustSVG(t, Circuit{Qubits: 1, Ops: []Op{{Name: hostile[0], Targets: []int{0}}}}, Options{Title: hostile[0]})
	if bytes.Contains(out, []byte("<script")) || bytes.Contains(out, []byte("<SCRIPT")) {
		t.Fatal("unescaped tag in output")
	}
	if !bytes.Contains(out, []byte("&lt;script&gt;alert(1)&lt;/script&gt;")) || !bytes.Contains(out, []byte("&lt;SCRIPT…")) {
		t.Errorf("escaped forms missing:\n%s", out)
	}
	out = mustSVG(t, Circuit{Qubits: 1}, Options{Title: hostile[1]})
	if !bytes.Contains(out, []byte("&#34;onload=alert(1) x=&#34;")) {
		t.Errorf("quote not escaped:\n%s", out)
	}
}

// xmlChar maps characters XML cannot carry to U+FFFD, as encoding/xml does.
func xmlChar(r rune) rune {
	switch {
	case r == 0x09 || r == 0x0A || r == 0x0D,
		r >= 0x20 && r <= 0xD7FF,
		r >= 0xE000 && r <= 0xFFFD,
		r >= 0x10000 && r <= 0x10FFFF:
		return r
	}
	return '\uFFFD'
}

// A gate named with a look-alike letter is not drawn as the gate it imitates.
func TestSVGLookalikeNames(t *testing.T) {
	for _, name := range []string{"Н", "h\u200b", "\u202eh", "ｈ"} {
		c := Circuit{Qubits: 1, Ops: []Op{{Name: name, Targets: []int{0}}}}
		p := checkSVG(t, mustSVG(t, c, Options{}))
		if p.hasText("H") {
			t.Errorf("%q drawn as H", name)
		}
		for _, s := range p.texts {
			for _, r := range s {
				if r > 0x7e && r != '…' {
					t.Errorf("%q drawn with non-ASCII %q", name, s)
				}
			}
		}
		if countAttr(p.rects, "fill", colOddFill) != 1 {
			t.Errorf("%q not marked as unknown", name)
		}
	}
}

func TestSVGBounds(t *testing.T) {
	const n = 100_000
	ops := make([]Op, n)
	for i := range ops {
		if i%3 == 2 {
			ops[i] = Op{Name: "cnot", Controls: []int{i % 8}, Targets: []int{(i + 3) % 8}}
		} else {
			ops[i] = Op{Name: "rz", Targets: []int{i % 8}, Params: []float64{float64(i)}}
		}
	}
	c := Circuit{Qubits: 8, Ops: ops, MeasureAll: true}
	start := time.Now()
	out := mustSVG(t, c, Options{})
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	if len(out) > 1<<20 {
		t.Errorf("%d bytes for %d operations", len(out), n)
	}
	p := checkSVG(t, out)
	if !p.hasText("… 99600 more operations not drawn") {
		t.Errorf("no truncation note in %q", p.texts[len(p.texts)-3:])
	}
	if !strings.Contains(p.desc, "first 400 of 100000 operations") {
		t.Errorf("desc %q", p.desc)
	}
	if p.count["path"] != 8 {
		t.Errorf("%d meters, want 8 after the cut", p.count["path"])
	}

	// Wide multi-controlled gates are bounded by the touch budget.
	wide := make([]Op, 10_000)
	for i := range wide {
		ctl := make([]int, 63)
		for k := range ctl {
			ctl[k] = (i + 1 + k) % 64
		}
		wide[i] = Op{Name: "x", Targets: []int{i % 64}, Controls: ctl}
	}
	out = mustSVG(t, Circuit{Qubits: 64, Ops: wide, MeasureAll: true}, Options{})
	if len(out) > 1<<20 {
		t.Errorf("%d bytes for wide gates", len(out))
	}
	if p := checkSVG(t, out); !p.hasText("… 9975 more operations not drawn") {
		t.Errorf("texts end %q", p.texts[len(p.texts)-1])
	}

	// The ceiling on MaxOps holds whatever is asked.
	l := plan(&c, limit(1<<40, DefaultMaxOps, LimitMaxOps), DefaultMaxQubits)
	if len(l.items) != LimitMaxOps {
		t.Errorf("drew %d operations with MaxOps 1<<40", len(l.items))
	}
}

func TestSVGTooManyQubits(t *testing.T) {
	c := Circuit{Qubits: 200, MeasureAll: true, Ops: []Op{
		{Name: "h", Targets: []int{0}},
		{Name: "cnot", Controls: []int{0}, Targets: []int{150}},
		{Name: "h", Targets: []int{1}},
	}}
	p := checkSVG(t, mustSVG(t, c, Options{}))
	if p.hasText("q64") || !p.hasText("q63") {
		t.Error("wrong wires drawn")
	}
	if !p.hasText("… 136 more qubits not drawn") || !p.hasText("… 2 more operations not drawn") {
		t.Errorf("notes missing: %q", p.texts[len(p.texts)-2:])
	}
	// What is drawn is a prefix: the H on q1 after the hidden CNOT is not.
	if n := countAttr(p.rects, "fill", colGateFill); n != 1 {
		t.Errorf("%d gate boxes drawn, want 1", n)
	}
	if p.hasText("c0") || p.count["path"] != 64 {
		t.Errorf("%d meters, want 64", p.count["path"])
	}
	small := checkSVG(t, mustSVG(t, c, Options{MaxQubits: 2}))
	if !small.hasText("… 198 more qubits not drawn") {
		t.Error("MaxQubits not applied")
	}
}

func TestSVGDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		c := randomCircuit(r)
		a := mustSVG(t, c, Options{})
		b := mustSVG(t, c, Options{})
		if !bytes.Equal(a, b) {
			t.Fatal("two renderings differ")
		}
	}
	a := mustSVG(t, bell(), Options{})
	b := mustSVG(t, ionq(2, g("h", 1), cnot(1, 0)), Options{})
	if bytes.Equal(a, b) {
		t.Fatal("different circuits render the same")
	}
}

func TestSVGRejectsInvalid(t *testing.T) {
	valid := make([]Op, 500)
	for i := range valid {
		valid[i] = Op{Name: "h", Targets: []int{0}}
	}
	for name, c := range map[string]Circuit{
		"negative qubits":       {Qubits: -1},
		"no target":             {Qubits: 1, Ops: []Op{{Name: "h"}}},
		"target out of range":   {Qubits: 2, Ops: []Op{{Name: "h", Targets: []int{2}}}},
		"negative target":       {Qubits: 2, Ops: []Op{{Name: "h", Targets: []int{-1}}}},
		"control out of range":  {Qubits: 2, Ops: []Op{{Name: "x", Targets: []int{0}, Controls: []int{5}}}},
		"repeated qubit":        {Qubits: 2, Ops: []Op{{Name: "x", Targets: []int{0}, Controls: []int{0}}}},
		"repeated target":       {Qubits: 3, Ops: []Op{{Name: "swap", Targets: []int{1, 1}}}},
		"measure two":           {Qubits: 2, Ops: []Op{{Measure: true, Targets: []int{0, 1}}}},
		"measure controlled":    {Qubits: 2, Ops: []Op{{Measure: true, Targets: []int{0}, Controls: []int{1}}}},
		"measure no target":     {Qubits: 2, Ops: []Op{{Measure: true}}},
		"bad clbit":             {Qubits: 2, Ops: []Op{{Measure: true, Targets: []int{0}, Clbit: -2}}},
		"invalid after the cut": {Qubits: 2, Ops: append(valid[:500:500], Op{Name: "h", Targets: []int{9}})},
	} {
		out, err := SVG(c, Options{})
		if !errors.Is(err, ErrInvalidCircuit) || out != nil {
			t.Errorf("%s: SVG = %d bytes, %v; want ErrInvalidCircuit", name, len(out), err)
		}
	}
}

func TestSVGEmpty(t *testing.T) {
	p := checkSVG(t, mustSVG(t, Circuit{MeasureAll: true}, Options{}))
	if !p.hasText("(no qubits)") || p.title != "Circuit: 0 qubits, 0 gates, depth 0" {
		t.Errorf("title %q texts %q", p.title, p.texts)
	}
	p = checkSVG(t, mustSVG(t, Circuit{Qubits: 1}, Options{Title: "x"}))
	if p.title != "x" || !p.hasText("q0") {
		t.Errorf("title %q texts %q", p.title, p.texts)
	}
}

func TestSVGRandomWellFormed(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for range 300 {
		c := randomCircuit(r)
		out := mustSVG(t, c, Options{MaxOps: 1 + r.IntN(50), MaxQubits: 1 + r.IntN(10)})
		checkSVG(t, out)
	}
}

var randomNames = []string{"h", "x", "cnot", "swap", "rz", "si", "cz", "u", "foo", "<b>", "&", "Н", "\x01"}

// randomCircuit builds a valid circuit of up to 12 qubits and 60 operations.
func randomCircuit(r *rand.Rand) Circuit {
	c := Circuit{Qubits: r.IntN(13), MeasureAll: r.IntN(2) == 0}
	if c.Qubits == 0 {
		return c
	}
	for range r.IntN(60) {
		perm := r.Perm(c.Qubits)
		if r.IntN(8) == 0 {
			c.Ops = append(c.Ops, Op{Measure: true, Targets: perm[:1], Clbit: r.IntN(5) - 1})
			continue
		}
		nt := 1 + r.IntN(min(2, c.Qubits))
		nc := r.IntN(c.Qubits - nt + 1)
		op := Op{Name: randomNames[r.IntN(len(randomNames))], Targets: perm[:nt], Controls: perm[nt : nt+nc]}
		for range r.IntN(3) {
			op.Params = append(op.Params, (r.Float64()-0.5)*20)
		}
		c.Ops = append(c.Ops, op)
	}
	return c
}
