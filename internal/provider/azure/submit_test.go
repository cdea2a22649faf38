package azure

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/qbroker/qbroker/internal/circuit"
	"github.com/qbroker/qbroker/internal/circuit/qasm"
	"github.com/qbroker/qbroker/internal/provider"
)

func TestParseSubmitDigestsTheStagedInput(t *testing.T) {
	a := newTestAdapter(t, "https://eastus.quantum.azure.com", nil)
	// Whitespace and member order do not matter: the digest is canonical, as the broker's.
	uri := stage(t, a, "jti-1", "{ \"circuit\": [{\"target\":0,\"gate\":\"h\"},{\"gate\":\"cnot\",\"control\":0,\"target\":1}],\n \"qubits\": 2 }")
	sub, err := a.ParseSubmit(jobBody(jobID, uri, func(m map[string]any) { m["target"] = "IonQ.Simulator" }))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := circuit.Digest([]byte(bellIonQ))
	if sub != (provider.Submission{Device: "ionq.simulator", Shots: 100, ProgramSHA256: want, Qubits: 2}) {
		t.Fatalf("submission %+v, want digest %s", sub, want)
	}
	// The upload is still held: a refused submission can be retried.
	if _, err := a.ParseSubmit(jobBody(jobID, uri, nil)); err != nil {
		t.Fatal(err)
	}

	q := stage(t, a, "jti-2", bellQASM)
	sub, err = a.ParseSubmit(jobBody(jobID, q, func(m map[string]any) {
		m["providerId"], m["target"], m["inputDataFormat"], m["outputDataFormat"] = "quantinuum", "quantinuum.sim.h2-1e", "honeywell.openqasm.v1", "honeywell.quantum-results.v1"
		m["inputParams"] = map[string]any{"shots": 50, "count": 50}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if sub != (provider.Submission{Device: "quantinuum.sim.h2-1e", Shots: 50, ProgramSHA256: qasm.Digest([]byte(bellQASM)), Qubits: 2}) {
		t.Fatalf("quantinuum submission %+v", sub)
	}
}

func TestParseSubmitRefusals(t *testing.T) {
	a := newTestAdapter(t, "https://eastus.quantum.azure.com", nil)
	uri := stage(t, a, "jti-1", bellIonQ)
	empty := stage(t, a, "jti-1", "")
	other := stage(t, a, "jti-2", bellIonQ)
	bad := stage(t, a, "jti-3", `{"qubits":2,"circuit":[{"gate":"teleport","target":0}]}`)
	base, query, _ := strings.Cut(uri, "?")
	otherBase, _, _ := strings.Cut(other, "?")
	for _, tc := range []struct {
		what   string
		body   []byte
		expect string
	}{
		{"unknown member", jobBody(jobID, uri, func(m map[string]any) { m["jobToken"] = "x" }), "unknown member"},
		{"read-only member", jobBody(jobID, uri, func(m map[string]any) { m["status"] = "Succeeded" }), "unknown member"},
		{"output location", jobBody(jobID, uri, func(m map[string]any) { m["outputDataUri"] = base + "/out" }), "unknown member"},
		{"session", jobBody(jobID, uri, func(m map[string]any) { m["sessionId"] = "s" }), "sessionId"},
		{"priority", jobBody(jobID, uri, func(m map[string]any) { m["priority"] = "High" }), "priority"},
		{"noise model", jobBody(jobID, uri, func(m map[string]any) {
			m["inputParams"] = map[string]any{"shots": 100, "noise": map[string]any{"model": "aria-1"}}
		}), "inputParams.noise"},
		{"no shots", jobBody(jobID, uri, func(m map[string]any) { m["inputParams"] = map[string]any{} }), "inputParams.shots is required"},
		{"fractional shots", jobBody(jobID, uri, func(m map[string]any) { m["inputParams"] = map[string]any{"shots": 1.5} }), "positive integer"},
		{"string shots", jobBody(jobID, uri, func(m map[string]any) { m["inputParams"] = map[string]any{"shots": "100"} }), "integer"},
		{"zero shots", jobBody(jobID, uri, func(m map[string]any) { m["inputParams"] = map[string]any{"shots": 0} }), "positive"},
		{"count for ionq", jobBody(jobID, uri, func(m map[string]any) { m["inputParams"] = map[string]any{"shots": 10, "count": 10} }), "inputParams.count"},
		{"wrong format", jobBody(jobID, uri, func(m map[string]any) { m["inputDataFormat"] = "qir.v1" }), "inputDataFormat"},
		{"target of another provider", jobBody(jobID, uri, func(m map[string]any) { m["target"] = "quantinuum.qpu.h2-1" }), "does not belong"},
		{"unchecked provider", jobBody(jobID, uri, func(m map[string]any) { m["providerId"], m["target"] = "rigetti", "rigetti.sim.qvm" }), "providerId"},
		{"duplicate member", []byte(strings.Replace(string(jobBody(jobID, uri, nil)), `"target":"ionq.simulator"`, `"target":"ionq.simulator","target":"ionq.qpu.forte-1"`, 1)), "duplicate"},
		{"workspace SAS, not the gateway's", jobBody(jobID, "https://acct.blob.core.windows.net/job-1?sv=2019-02-02&sr=c&sp=rcw&sig=abc", nil), "not an upload container"},
		{"made-up staging container", jobBody(jobID, "https://gw.example/azure/storage/qbroker-00000000000000000000000000000000?sig=abc", nil), "not an upload container"},
		{"wrong capability", jobBody(jobID, base+"?sig=guessed", nil), "not an upload container"},
		{"no capability", jobBody(jobID, base, nil), "not an upload container"},
		{"nothing uploaded", jobBody(jobID, empty, nil), "no job input was uploaded"},
		{"input in another container", jobBody(jobID, uri, func(m map[string]any) { m["inputDataUri"] = otherBase + "/" + InputBlob }), "inputDataUri"},
		{"another blob", jobBody(jobID, uri, func(m map[string]any) { m["inputDataUri"] = base + "/second" }), "inputDataUri"},
		{"invalid circuit", jobBody(jobID, bad, nil), "job input"},
		{"id not a guid", jobBody("x", uri, nil), "id must be"},
		{"not json", []byte(`{"name":`), "job body"},
	} {
		_, err := a.ParseSubmit(tc.body)
		if err == nil || !strings.Contains(err.Error(), tc.expect) {
			t.Errorf("%s: %v, want %q", tc.what, err, tc.expect)
		}
		if err != nil && strings.Contains(err.Error(), query) {
			t.Errorf("%s: the error quotes the capability", tc.what)
		}
	}
}

func TestPrepareRebuildsTheCheckedJob(t *testing.T) {
	a := newTestAdapter(t, "https://eastus.quantum.azure.com", nil)
	uri := stage(t, a, "jti-1", bellIonQ)
	body := jobBody(strings.ToUpper(jobID), uri, func(m map[string]any) {
		m["target"] = "IonQ.Simulator"
		delete(m, "outputDataFormat")
		m["metadata"] = map[string]string{"qiskit": "True"}
		m["tags"] = []string{"t1"}
		m["itemType"] = "Job"
		m["priority"] = "Standard"
	})
	out, err := a.Prepare(body, provider.Scope{})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	if m["target"] != "ionq.simulator" || m["outputDataFormat"] != "ionq.quantum-results.v1" || m["itemType"] != "Job" || m["id"] != jobID ||
		m["containerUri"] != uri || m["priority"] != nil || m["metadata"].(map[string]any)["qiskit"] != "True" {
		t.Fatalf("prepared %s", out)
	}
	if p := m["inputParams"].(map[string]any); len(p) != 1 || p["shots"] != 100.0 {
		t.Fatalf("inputParams %v", p)
	}
	// Prepare refuses what ParseSubmit refuses.
	if _, err := a.Prepare(jobBody(jobID, uri, func(m map[string]any) { m["x"] = 1 }), provider.Scope{}); err == nil {
		t.Fatal("unknown member prepared")
	}
}
