package circuit

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

const bell = `{"qubits":2,"gateset":"qis","circuit":[{"gate":"h","target":0},{"gate":"cnot","control":0,"target":1}]}`

func TestCanonicalForms(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"b":1,"a":2}`, `{"a":2,"b":1}`},
		{" \n{ \"a\" : [ 1 , 2.0 , 0.50 ] }\t", `{"a":[1,2,0.5]}`},
		{`1e2`, `100`},
		{`1E-7`, `1e-7`},
		{`1e21`, `1e+21`},
		{`-0`, `0`},
		{`-0.0e5`, `0`},
		{`123456789012345678`, `123456789012345680`},
		{`0.1`, `0.1`},
		{`3.141592653589793`, `3.141592653589793`},
		{`"<>&/é"`, `"<>&/é"`},
		{`"\u003c\u00e9\/"`, `"<é/"`},
		{`"\b\f\n\r\t\u0001\u001f\u007f"`, "\"\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\""},
		{"\"\u2028\u2029\"", `"\u2028\u2029"`},
		{`"\ud83d\ude00"`, `"😀"`},
		{`[true,false,null,{}]`, `[true,false,null,{}]`},
		{`{"é":1,"z":2,"A":3,"":4}`, `{"":4,"A":3,"z":2,"é":1}`},
		{`{"a":{"d":1,"c":[{"f":1,"e":2}]}}`, `{"a":{"c":[{"e":2,"f":1}],"d":1}}`},
	}
	for _, c := range cases {
		got, err := Canonical([]byte(c.in))
		if err != nil {
			t.Errorf("Canonical(%q): %v", c.in, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("Canonical(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestCanonicalRejects(t *testing.T) {
	deep := strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1)
	bad := map[string]string{
		"duplicate key":       `{"a":1,"a":1}`,
		"nested duplicate":    `{"x":[{"gate":"h","gate":"x"}]}`,
		"overflow":            `1e400`,
		"negative overflow":   `[-1e309]`,
		"trailing data":       `{} {}`,
		"trailing garbage":    `{}x`,
		"malformed":           `{"a":}`,
		"truncated":           `{"a":[1,2`,
		"empty":               ``,
		"invalid utf8":        "\"\xff\"",
		"lone high surrogate": `"\ud800"`,
		"lone low surrogate":  `"\udc00"`,
		"high then non-low":   `"\ud800\u0041"`,
		"too deep":            deep,
		"NaN literal":         `NaN`,
		"single quotes":       `{'a':1}`,
		"leading zero":        `01`,
		"comment":             `{} // c`,
	}
	for name, in := range bad {
		_, err := Canonical([]byte(in))
		if err == nil {
			t.Errorf("%s: Canonical(%q) accepted", name, in)
			continue
		}
		if !errors.Is(err, ErrNotCanonicalizable) {
			t.Errorf("%s: error %v does not wrap ErrNotCanonicalizable", name, err)
		}
	}
	ok := strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)
	if _, err := Canonical([]byte(ok)); err != nil {
		t.Errorf("depth %d rejected: %v", MaxDepth, err)
	}
}

func TestDigestStableUnderFormatting(t *testing.T) {
	want, err := Digest([]byte(bell))
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 64 || strings.ToLower(want) != want {
		t.Fatalf("digest %q is not lowercase hex SHA-256", want)
	}
	variants := []string{
		`{"circuit":[{"target":0,"gate":"h"},{"target":1,"control":0,"gate":"cnot"}],"gateset":"qis","qubits":2}`,
		"{\n  \"qubits\": 2.0,\n  \"gateset\": \"qis\",\n  \"circuit\": [\n    {\"gate\": \"h\", \"target\": 0},\n    {\"gate\": \"cnot\", \"control\": 0, \"target\": 1}\n  ]\n}\n",
		`{"qubits":2e0,"gateset":"\u0071is","circuit":[{"gate":"h","target":0},{"gate":"cnot","control":0,"target":1}]}`,
	}
	for _, v := range variants {
		got, err := Digest([]byte(v))
		if err != nil {
			t.Fatalf("Digest(%q): %v", v, err)
		}
		if got != want {
			t.Errorf("Digest(%q) = %s, want %s", v, got, want)
		}
	}
}

func TestDigestChangesWithContent(t *testing.T) {
	base, err := Digest([]byte(bell))
	if err != nil {
		t.Fatal(err)
	}
	changed := []string{
		`{"qubits":3,"gateset":"qis","circuit":[{"gate":"h","target":0},{"gate":"cnot","control":0,"target":1}]}`,
		`{"qubits":2,"gateset":"qis","circuit":[{"gate":"x","target":0},{"gate":"cnot","control":0,"target":1}]}`,
		`{"qubits":2,"gateset":"qis","circuit":[{"gate":"h","target":1},{"gate":"cnot","control":0,"target":1}]}`,
		`{"qubits":2,"gateset":"qis","circuit":[{"gate":"h","target":0},{"gate":"cnot","control":1,"target":0}]}`,
		`{"qubits":2,"gateset":"qis","circuit":[{"gate":"cnot","control":0,"target":1},{"gate":"h","target":0}]}`,
		`{"qubits":2,"gateset":"qis","circuit":[{"gate":"h","target":0}]}`,
		`{"qubits":2,"circuit":[{"gate":"h","target":0},{"gate":"cnot","control":0,"target":1}]}`,
	}
	seen := map[string]string{base: bell}
	for _, c := range changed {
		d, err := Digest([]byte(c))
		if err != nil {
			t.Fatal(err)
		}
		if prev, dup := seen[d]; dup {
			t.Errorf("digest collision between %s and %s", prev, c)
		}
		seen[d] = c
	}
	// Angles: any representable change moves the digest.
	a1, _ := Digest([]byte(`{"qubits":1,"circuit":[{"gate":"rx","target":0,"rotation":0.5}]}`))
	a2, _ := Digest([]byte(`{"qubits":1,"circuit":[{"gate":"rx","target":0,"rotation":0.5000000000000001}]}`))
	a3, _ := Digest([]byte(`{"qubits":1,"circuit":[{"gate":"rx","target":0,"rotation":0.50}]}`))
	if a1 == a2 {
		t.Error("one-ulp angle change did not change the digest")
	}
	if a1 != a3 {
		t.Error("0.5 and 0.50 gave different digests")
	}
}

func TestDigestRejectsDuplicateKeys(t *testing.T) {
	// A duplicate could make the gateway and the provider see different
	// circuits under one digest, so it must be an error, never "last wins".
	for _, in := range []string{
		`{"qubits":2,"qubits":3,"circuit":[]}`,
		`{"qubits":1,"circuit":[{"gate":"h","target":0,"target":0}]}`,
	} {
		if _, err := Digest([]byte(in)); err == nil {
			t.Errorf("Digest(%q) accepted a duplicate key", in)
		}
	}
}

// TestDigestKnownVector pins the wire contract: changing the canonical
// rules breaks agents, so this value must only change deliberately.
func TestDigestKnownVector(t *testing.T) {
	c, err := Canonical([]byte(bell))
	if err != nil {
		t.Fatal(err)
	}
	const wantC = `{"circuit":[{"gate":"h","target":0},{"control":0,"gate":"cnot","target":1}],"gateset":"qis","qubits":2}`
	if string(c) != wantC {
		t.Fatalf("canonical = %s, want %s", c, wantC)
	}
	d, _ := Digest([]byte(bell))
	if d != sha256Hex(wantC) {
		t.Fatalf("digest %s is not sha256 of the canonical bytes", d)
	}
	const wantD = "1b83b33237215ba4c8b66e76bb653dadffaad3290dc5b7fbbace2cbe102f2fad"
	if d != wantD {
		t.Fatalf("digest = %s, want %s", d, wantD)
	}
}

func BenchmarkDigest(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"qubits":16,"gateset":"qis","circuit":[`)
	for i := range 500 {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`{"gate":"rx","target":3,"rotation":0.123456789}`)
	}
	sb.WriteString(`]}`)
	raw := []byte(sb.String())
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := Digest(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAppendFloatMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	vals := []float64{0, 1, -1, 0.1, 1e-6, 9.99e-7, 1e-7, 1.5e-9, 1e20, 1e21, 1.7976931348623157e308, 5e-324, 123456789, -2.5e-300}
	for range 20000 {
		vals = append(vals, math.Float64frombits(rng.Uint64()))
	}
	for _, f := range vals {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		want, _ := json.Marshal(f)
		if got := appendFloat(nil, f); string(got) != string(want) {
			t.Fatalf("appendFloat(%v) = %s, encoding/json gives %s", f, got, want)
		}
	}
}

// FuzzCanonical checks that the parser accepts only valid JSON, that the
// canonical form is itself valid JSON and a fixed point, and that it agrees
// with encoding/json on the value.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{bell, `{"a":[1,2.5e-8,"x\u00e9\n"],"b":null}`, `"\ud83d\ude00"`, `[]`, `-0.0`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := Canonical(raw)
		if err != nil {
			return
		}
		if !json.Valid(raw) {
			t.Fatalf("accepted invalid JSON %q", raw)
		}
		if !json.Valid(c) {
			t.Fatalf("canonical form %q is not valid JSON", c)
		}
		c2, err := Canonical(c)
		if err != nil || !bytes.Equal(c, c2) {
			t.Fatalf("canonical form not a fixed point: %q -> %q (%v)", c, c2, err)
		}
		var a, b any
		if json.Unmarshal(raw, &a) != nil || json.Unmarshal(c, &b) != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("canonical form %q changed the value of %q", c, raw)
		}
	})
}
