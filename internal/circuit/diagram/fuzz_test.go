package diagram

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

// circuitFromBytes builds a circuit, valid or not, from fuzz input: one
// header byte, then five bytes per operation.
func circuitFromBytes(data []byte) Circuit {
	if len(data) == 0 {
		return Circuit{}
	}
	c := Circuit{Qubits: int(data[0]&0x3f) - 2, MeasureAll: data[0]&0x40 != 0}
	data = data[1:]
	for len(data) >= 5 {
		kind, a, b, n, p := data[0], int(data[1])-8, int(data[2])-8, data[3], data[4]
		data = data[5:]
		op := Op{Name: randomNames[int(kind)%len(randomNames)], Targets: []int{a}}
		switch {
		case kind&0x80 != 0:
			op = Op{Measure: true, Targets: []int{a}, Clbit: b}
		case n%4 == 1:
			op.Controls = []int{b}
		case n%4 == 2:
			op.Targets = append(op.Targets, b)
		case n%4 == 3:
			op.Controls = []int{b, (a + b) & 0x3f}
		}
		if p != 0 {
			op.Params = []float64{float64(int8(p)) * math.Pi / 8, math.Float64frombits(uint64(p) * 0x0101010101010101)}
		}
		if n >= 0xf0 && len(data) > 0 {
			op.Name = string(data[:min(len(data), int(n-0xf0))])
		}
		c.Ops = append(c.Ops, op)
	}
	return c
}

func FuzzSVG(f *testing.F) {
	f.Add([]byte{0x44, 0, 8, 0, 0, 0, 2, 8, 9, 1, 0})
	f.Add([]byte{0x05, 3, 8, 9, 2, 7, 0x81, 9, 9, 0, 0})
	f.Add([]byte{0x7f, 9, 8, 10, 0xf8, 3, '<', 's', '>', '"', '&', 0xff, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		c := circuitFromBytes(data)
		st := Analyze(c)
		if st.Gates != st.OneQubit+st.TwoQubit+st.MultiQubit {
			t.Fatalf("gate counts do not add up: %+v", st)
		}
		out, err := SVG(c, Options{MaxOps: 20, MaxQubits: 16})
		if err != nil {
			if !errors.Is(err, ErrInvalidCircuit) {
				t.Fatalf("error %v does not wrap ErrInvalidCircuit", err)
			}
			return
		}
		checkSVG(t, out)
		again, _ := SVG(c, Options{MaxOps: 20, MaxQubits: 16})
		if !bytes.Equal(out, again) {
			t.Fatal("not deterministic")
		}
	})
}
