package broker

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/circuit/quil"
)

// Format "quil": the program is Quil source as a JSON string, digested
// with quil.Digest; its highest physical qubit must exist on the device.
func TestCheckProgramQuil(t *testing.T) {
	const bell = "DECLARE ro BIT[2]\nH 0\nCNOT 0 1\nMEASURE 0 ro[0]\nMEASURE 1 ro[1]\n"
	dev := Device{Provider: "rigetti", Name: "ankaa-3", Qubits: 84}
	src, _ := json.Marshal(bell)
	req := api.JobTokenRequest{Program: src, Format: api.FormatQuil}
	q, err := checkProgram(&req, dev)
	if err != nil || q != 2 || req.ProgramSHA256 != quil.Digest([]byte(bell)) {
		t.Fatalf("bell: %d %q %v", q, req.ProgramSHA256, err)
	}
	for _, tc := range []struct{ program, want string }{
		{`{"qubits":2}`, "JSON string"},
		{`"PRAGMA X"`, "PRAGMA is not supported"},
		{`"H 84"`, "uses 85 qubits"},
	} {
		req := api.JobTokenRequest{Program: json.RawMessage(tc.program), Format: api.FormatQuil}
		if _, err := checkProgram(&req, dev); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.program, err, tc.want)
		}
	}
	req = api.JobTokenRequest{Program: src, Format: api.FormatQuil, ProgramSHA256: strings.Repeat("0", 64)}
	if _, err := checkProgram(&req, dev); err == nil {
		t.Fatal("a mismatching program_sha256 was accepted")
	}
}
