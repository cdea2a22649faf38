package ibm

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/qbroker/qbroker/internal/circuit/qasm"
	"github.com/qbroker/qbroker/internal/provider"
)

// q is bellISA as a JSON string literal.
var q = func() string { b, _ := json.Marshal(bellISA); return string(b) }()

func job(params string, extra ...string) string {
	s := `{"program_id":"sampler","backend":"ibm_kingston","params":` + params
	for _, e := range extra {
		s += "," + e
	}
	return s + "}"
}

func TestParseSubmitAccepts(t *testing.T) {
	cases := map[string]struct {
		body  string
		shots int
	}{
		"pub shots":              {job(`{"pubs":[[` + q + `,null,1024]],"version":2}`), 1024},
		"pub without values":     {job(`{"pubs":[[` + q + `]],"shots":300}`), 300},
		"empty values {}":        {job(`{"pubs":[[` + q + `,{},77]]}`), 77},
		"empty values []":        {job(`{"pubs":[[` + q + `,[],78]]}`), 78},
		"bare circuit, shots":    {job(`{"pubs":[` + q + `],"shots":500}`), 500},
		"default_shots":          {job(`{"pubs":[[` + q + `,null,null]],"options":{"default_shots":256}}`), 256},
		"shots agree":            {job(`{"pubs":[` + q + `],"shots":64,"options":{"default_shots":64}}`), 64},
		"pub beats defaults":     {job(`{"pubs":[[` + q + `,null,10]],"shots":20,"options":{"default_shots":30}}`), 10},
		"support_qiskit false":   {job(`{"pubs":[[` + q + `,null,5]],"support_qiskit":false,"version":2}`), 5},
		"metadata members":       {job(`{"pubs":[[`+q+`,null,5]]}`, `"tags":["tenant:t1"]`, `"log_level":"info"`, `"cost":300`, `"private":true`), 5},
		"null options":           {job(`{"pubs":[[` + q + `,null,9]],"options":{}}`), 9},
		"whitespace and newline": {"\n " + job(`{ "pubs" : [ [ `+q+` , null , 8 ] ] }`) + "\n", 8},
	}
	for name, c := range cases {
		sub, err := (Adapter{}).ParseSubmit([]byte(c.body))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		want := provider.Submission{Device: kingston, Shots: c.shots, ProgramSHA256: qasm.Digest([]byte(bellISA)), Qubits: 2}
		if sub != want {
			t.Errorf("%s: %+v, want %+v", name, sub, want)
		}
	}
}

// TestParseSubmitDigestOfDecodedSource: the digest is of the circuit as the
// service decodes it from JSON, escapes and all, and it differs for a
// different program.
func TestParseSubmitDigestOfDecodedSource(t *testing.T) {
	escaped := strings.ReplaceAll(q, "q[0]", `q\u005b0]`)
	if escaped == q {
		t.Fatal("no escape inserted")
	}
	sub, err := (Adapter{}).ParseSubmit([]byte(job(`{"pubs":[[` + escaped + `,null,5]]}`)))
	if err != nil || sub.ProgramSHA256 != qasm.Digest([]byte(bellISA)) {
		t.Fatalf("%+v, %v", sub, err)
	}
	other, _ := json.Marshal(bellNonISA)
	sub, err = (Adapter{}).ParseSubmit([]byte(job(`{"pubs":[[` + string(other) + `,null,5]]}`)))
	if err != nil || sub.ProgramSHA256 == qasm.Digest([]byte(bellISA)) || sub.ProgramSHA256 != qasm.Digest([]byte(bellNonISA)) {
		t.Fatalf("%+v, %v", sub, err)
	}
}

func TestParseSubmitRefuses(t *testing.T) {
	pub := `[` + q + `,null,100]`
	two := job(`{"pubs":[` + pub + `,` + pub + `]}`)
	cases := map[string]string{
		"two PUBs":                two,
		"no PUBs":                 job(`{"pubs":[]}`),
		"pubs null":               job(`{"pubs":null,"shots":5}`),
		"pubs missing":            job(`{"shots":5}`),
		"pubs object":             job(`{"pubs":{"0":` + pub + `}}`),
		"parameter values list":   job(`{"pubs":[[` + q + `,[0.5],100]]}`),
		"parameter values object": job(`{"pubs":[[` + q + `,{"theta":0.5},100]]}`),
		"four items":              job(`{"pubs":[[` + q + `,null,100,1]]}`),
		"session":                 job(`{"pubs":[`+pub+`]}`, `"session_id":"s1"`),
		"start_session":           job(`{"pubs":[`+pub+`]}`, `"start_session":true`),
		"session_time":            job(`{"pubs":[`+pub+`]}`, `"session_time":60`),
		"calibration":             job(`{"pubs":[`+pub+`]}`, `"calibration_id":"c1"`),
		"runtime image":           job(`{"pubs":[`+pub+`]}`, `"runtime":"custom:latest"`),
		"remote storage":          job(`{"pubs":[`+pub+`]}`, `"remote_storage":{}`),
		"unknown member":          job(`{"pubs":[`+pub+`]}`, `"hgp":"x"`),
		"estimator":               `{"program_id":"estimator","backend":"ibm_kingston","params":{"pubs":[` + pub + `]}}`,
		"no program":              `{"backend":"ibm_kingston","params":{"pubs":[` + pub + `]}}`,
		"no backend":              `{"program_id":"sampler","params":{"pubs":[` + pub + `]}}`,
		"backend path":            `{"program_id":"sampler","backend":"../ibm_kingston","params":{"pubs":[` + pub + `]}}`,
		"backend number":          `{"program_id":"sampler","backend":7,"params":{"pubs":[` + pub + `]}}`,
		"no params":               `{"program_id":"sampler","backend":"ibm_kingston"}`,
		"params unknown":          job(`{"pubs":[` + pub + `],"observables":[]}`),
		"version 1":               job(`{"pubs":[` + pub + `],"version":1}`),
		"support_qiskit string":   job(`{"pubs":[` + pub + `],"support_qiskit":"yes"}`),
		"twirling":                job(`{"pubs":[` + pub + `],"options":{"twirling":{"enable_gates":true}}}`),
		"execution":               job(`{"pubs":[` + pub + `],"options":{"execution":{"meas_type":"kerneled"}}}`),
		"dynamical decoupling":    job(`{"pubs":[` + pub + `],"options":{"dynamical_decoupling":{"enable":true}}}`),
		"simulator options":       job(`{"pubs":[` + pub + `],"options":{"simulator":{"seed_simulator":1}}}`),
		"options not object":      job(`{"pubs":[` + pub + `],"options":[]}`),
		"no shots anywhere":       job(`{"pubs":[[` + q + `,null,null]]}`),
		"bare circuit no shots":   job(`{"pubs":[` + q + `]}`),
		"zero shots":              job(`{"pubs":[[` + q + `,null,0]]}`),
		"zero default":            job(`{"pubs":[` + q + `],"options":{"default_shots":0}}`),
		"negative shots":          job(`{"pubs":[[` + q + `,null,-5]]}`),
		"float shots":             job(`{"pubs":[[` + q + `,null,1024.0]]}`),
		"exponent shots":          job(`{"pubs":[[` + q + `,null,1e3]]}`),
		"string shots":            job(`{"pubs":[[` + q + `,null,"1024"]]}`),
		"huge shots":              job(`{"pubs":[[` + q + `,null,4294967296]]}`),
		"float params.shots":      job(`{"pubs":[` + q + `],"shots":10.0}`),
		"defaults disagree":       job(`{"pubs":[` + q + `],"shots":10,"options":{"default_shots":1000}}`),
		"duplicate top key":       `{"program_id":"sampler","backend":"ibm_torino","backend":"ibm_kingston","params":{"pubs":[` + pub + `]}}`,
		"escaped duplicate key":   `{"program_id":"sampler","backend":"ibm_torino","back\u0065nd":"ibm_kingston","params":{"pubs":[` + pub + `]}}`,
		"duplicate params key":    job(`{"pubs":[[` + q + `,null,1]],"pubs":[[` + q + `,null,100000]]}`),
		"duplicate options key":   job(`{"pubs":[` + q + `],"options":{"default_shots":1,"default_shots":100000}}`),
		"QPY circuit":             job(`{"pubs":[[{"__type__":"QuantumCircuit","__value__":"UVBZ"},null,100]]}`),
		"empty circuit":           job(`{"pubs":[["",null,100]]}`),
		"not OpenQASM":            job(`{"pubs":[["H 0; CNOT 0 1",null,100]]}`),
		"OpenQASM 2":              job(`{"pubs":[["OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[1];\nh q[0];",null,100]]}`),
		"circuit number":          job(`{"pubs":[[7,null,100]]}`),
		"surrogate escape":        job(`{"pubs":[[` + strings.Replace(q, `c;`, `c; // \ud800`, 1) + `,null,100]]}`),
		"trailing data":           job(`{"pubs":[`+pub+`]}`) + `{}`,
		"array body":              `[` + job(`{"pubs":[`+pub+`]}`) + `]`,
		"empty body":              ``,
		"tags not strings":        job(`{"pubs":[`+pub+`]}`, `"tags":[1]`),
		"too many tags":           job(`{"pubs":[`+pub+`]}`, `"tags":["1","2","3","4","5","6","7","8","9"]`),
		"long tag":                job(`{"pubs":[`+pub+`]}`, `"tags":["`+strings.Repeat("x", 87)+`"]`),
		"bad log level":           job(`{"pubs":[`+pub+`]}`, `"log_level":"trace"`),
		"negative cost":           job(`{"pubs":[`+pub+`]}`, `"cost":-1`),
		"float cost":              job(`{"pubs":[`+pub+`]}`, `"cost":1.5`),
		"private string":          job(`{"pubs":[`+pub+`]}`, `"private":"yes"`),
	}
	for name, body := range cases {
		sub, err := (Adapter{}).ParseSubmit([]byte(body))
		if err == nil {
			t.Errorf("%s: accepted %+v", name, sub)
		}
	}
	// Invalid UTF-8 inside the circuit string (Go would read it as U+FFFD).
	bad := []byte(job(`{"pubs":[[` + q + `,null,100]]}`))
	bad = bytes.Replace(bad, []byte("qubit"), []byte("qu\xffbit"), 1)
	if _, err := (Adapter{}).ParseSubmit(bad); err == nil {
		t.Error("invalid UTF-8 accepted")
	}
	// An escaped backslash before "ud800" is text, not a surrogate.
	lit := strings.Replace(q, `c;`, `c; // \\ud800`, 1)
	if _, err := (Adapter{}).ParseSubmit([]byte(job(`{"pubs":[[` + lit + `,null,100]]}`))); err != nil {
		t.Errorf("escaped backslash refused: %v", err)
	}
}

// TestPrepareForwardsWhatWasChecked: Prepare changes nothing and returns
// its own copy.
func TestPrepareForwardsWhatWasChecked(t *testing.T) {
	body := []byte(job(`{"pubs":[[` + q + `,null,100]]}`))
	out, err := (Adapter{}).Prepare(body, provider.Scope{Bucket: "b", Prefix: "p"})
	if err != nil || !bytes.Equal(out, body) {
		t.Fatalf("Prepare = %s, %v", out, err)
	}
	out[0] = 'X'
	if body[0] != '{' {
		t.Fatal("Prepare returned the caller's buffer")
	}
}
