package diagram

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
)

// parsed is what checkSVG learnt about a document.
type parsed struct {
	count  map[string]int    // element name → occurrences
	texts  []string          // character data of <text> elements, in order
	title  string            // <title> text
	desc   string            // <desc> text
	root   map[string]string // attributes of <svg>
	rects  []map[string]string
	circle []map[string]string
}

// allowedElements is everything the package may emit.
var allowedElements = map[string]bool{
	"svg": true, "title": true, "desc": true, "rect": true, "line": true,
	"circle": true, "path": true, "text": true,
}

// checkSVG parses out with encoding/xml and fails t unless it is one
// well-formed <svg> element that is safe under a CSP without inline styles
// or scripts: only allowed elements, no style or event-handler attributes,
// no references, and aria-labelledby naming its <title>.
func checkSVG(t testing.TB, out []byte) parsed {
	t.Helper()
	for _, bad := range []string{"<style", "style=", "<script", "href", "<foreignobject", "url(", "<!", "<?"} {
		if bytes.Contains(bytes.ToLower(out), []byte(strings.ToLower(bad))) {
			t.Fatalf("output contains %q:\n%s", bad, clip(out))
		}
	}
	p := parsed{count: map[string]int{}}
	d := xml.NewDecoder(bytes.NewReader(out))
	d.Strict = true
	var stack []string
	ids := map[string]string{}
	roots := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, clip(out))
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			name := tok.Name.Local
			if !allowedElements[name] || (tok.Name.Space != "" && tok.Name.Space != "http://www.w3.org/2000/svg") {
				t.Fatalf("unexpected element %v", tok.Name)
			}
			if len(stack) == 0 {
				roots++
				if name != "svg" {
					t.Fatalf("root element is %q", name)
				}
			} else if name == "svg" {
				t.Fatal("nested <svg>")
			}
			attrs := map[string]string{}
			for _, a := range tok.Attr {
				k := strings.ToLower(a.Name.Local)
				if k == "style" || strings.HasPrefix(k, "on") || strings.Contains(k, "href") || a.Name.Space == "xmlns" {
					t.Fatalf("forbidden attribute %v on <%s>", a.Name, name)
				}
				attrs[k] = a.Value
				if k == "id" {
					ids[a.Value] = name
				}
			}
			switch name {
			case "svg":
				p.root = attrs
			case "rect":
				p.rects = append(p.rects, attrs)
			case "circle":
				p.circle = append(p.circle, attrs)
			}
			p.count[name]++
			stack = append(stack, name)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.TrimSpace(tok)) != 0 {
					t.Fatalf("text outside the root: %q", tok)
				}
				continue
			}
			switch stack[len(stack)-1] {
			case "text":
				p.texts = append(p.texts, string(tok))
			case "title":
				p.title += string(tok)
			case "desc":
				p.desc += string(tok)
			default:
				if len(bytes.TrimSpace(tok)) != 0 {
					t.Fatalf("stray text %q in <%s>", tok, stack[len(stack)-1])
				}
			}
		case xml.ProcInst, xml.Directive:
			t.Fatalf("unexpected %T", tok)
		}
	}
	if roots != 1 {
		t.Fatalf("%d root elements", roots)
	}
	if p.root["xmlns"] != "http://www.w3.org/2000/svg" || p.root["role"] != "img" {
		t.Fatalf("root attributes %v", p.root)
	}
	if id := p.root["aria-labelledby"]; ids[id] != "title" {
		t.Fatalf("aria-labelledby=%q does not name the <title> (ids %v)", id, ids)
	}
	if id := p.root["aria-describedby"]; ids[id] != "desc" {
		t.Fatalf("aria-describedby=%q does not name the <desc>", id)
	}
	w, h := p.root["width"], p.root["height"]
	if p.root["viewbox"] != "0 0 "+w+" "+h {
		t.Fatalf("viewBox %q does not match %sx%s", p.root["viewbox"], w, h)
	}
	if p.count["title"] != 1 || p.count["desc"] != 1 {
		t.Fatalf("want one title and one desc, got %v", p.count)
	}
	return p
}

func (p parsed) hasText(s string) bool {
	for _, x := range p.texts {
		if x == s {
			return true
		}
	}
	return false
}

// countAttr counts elements among els whose attribute k is v.
func countAttr(els []map[string]string, k, v string) int {
	n := 0
	for _, e := range els {
		if e[k] == v {
			n++
		}
	}
	return n
}

func clip(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "…"
	}
	return string(b)
}

func mustSVG(t testing.TB, c Circuit, o Options) []byte {
	t.Helper()
	out, err := SVG(c, o)
	if err != nil {
		t.Fatalf("SVG: %v", err)
	}
	return out
}
