package diagram

import (
	"math"
	"testing"
)

func TestFormatAngle(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{0, "0"},
		{math.Copysign(0, -1), "0"},
		{math.Pi, "π"},
		{-math.Pi, "-π"},
		{math.Pi / 2, "π/2"},
		{-math.Pi / 2, "-π/2"},
		{3 * math.Pi / 4, "3π/4"},
		{-3 * math.Pi / 4, "-3π/4"},
		{2 * math.Pi, "2π"},
		{math.Pi / 3, "π/3"},
		{2 * math.Pi / 3, "2π/3"},
		{5 * math.Pi / 6, "5π/6"},
		{math.Pi / 8, "π/8"},
		{7 * math.Pi / 16, "7π/16"},
		{math.Pi / 4 * 3, "3π/4"}, // rounding differs from 3*π/4 by an ulp
		{1.5708, "1.57"},          // close to π/2 but not it
		{0.123456, "0.123"},
		{-12.3456, "-12.3"},
		{1e-7, "1e-07"},
		{math.Pi / 32, "0.0982"},
		{1000 * math.Pi, "3.14e+03"},
		{math.NaN(), "NaN"},
		{math.Inf(-1), "-Inf"},
	} {
		if got := formatAngle(tc.in); got != tc.want {
			t.Errorf("formatAngle(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestOpLabel(t *testing.T) {
	for _, tc := range []struct {
		op    Op
		want  string
		known bool
	}{
		{Op{Name: "h"}, "H", true},
		{Op{Name: "si"}, "S†", true},
		{Op{Name: "ti"}, "T†", true},
		{Op{Name: "vi"}, "V†", true},
		{Op{Name: "RZ", Params: []float64{math.Pi / 2}}, "RZ(π/2)", true},
		{Op{Name: "rx", Params: []float64{0.5}}, "RX(0.5)", true},
		{Op{Name: "u", Params: []float64{1, 2, 3, 4, 5}}, "U(1,2,3,…)", true},
		{Op{Name: "cz", Controls: []int{0}}, "Z", true},
		{Op{Name: "ccz", Controls: []int{0, 1}}, "Z", true},
		{Op{Name: "crz", Controls: []int{0}, Params: []float64{math.Pi}}, "RZ(π)", true},
		{Op{Name: "cz"}, "CZ", false}, // no control to draw, so the c stays
		{Op{Name: "ccz", Controls: []int{0}}, "CCZ", false},
		{Op{Name: "foo"}, "FOO", false},
		{Op{Name: "abcdefghijk"}, "ABCDEFG…", false},
		{Op{Name: "abcdefgh"}, "ABCDEFGH", false},
		{Op{Name: ""}, "?", false},
		{Op{Name: "Н"}, "?", false},          // Cyrillic En looks like H
		{Op{Name: "h\u202ex"}, "H?X", false}, // bidi override
		{Op{Name: "h x"}, "H?X", false},
		{Op{Name: "\x00\xff"}, "??", false},
	} {
		got, known := opLabel(&tc.op)
		if got != tc.want || known != tc.known {
			t.Errorf("opLabel(%+v) = %q, %v; want %q, %v", tc.op, got, known, tc.want, tc.known)
		}
	}
}

func TestTruncateRunes(t *testing.T) {
	if got := truncateRunes("ππππ", 4); got != "ππππ" {
		t.Errorf("got %q", got)
	}
	if got := truncateRunes("πππππ", 4); got != "πππ…" {
		t.Errorf("got %q", got)
	}
}
