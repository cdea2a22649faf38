package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/audit"
)

// `qbroker anomaly replay` finds probing in a crafted trail and says so.
func TestAnomalyReplayFindsRepeatedDenials(t *testing.T) {
	var b strings.Builder
	start := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	for i := range 8 {
		line, err := json.Marshal(audit.Event{Seq: uint64(i + 1), Time: start.Add(time.Duration(i) * 10 * time.Second), Type: "decision",
			Agent: "approle:demo:prober", Role: "demo", Action: "SubmitJob", Device: "ionq/qpu.forte-1", Decision: "deny", Version: audit.SchemaVersion})
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "anomaly", "replay", "--json", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var findings []struct {
		Rule    string   `json:"rule"`
		Agent   string   `json:"agent"`
		Actions []string `json:"actions"`
	}
	if err := json.Unmarshal([]byte(out), &findings); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if len(findings) != 1 || findings[0].Rule != "repeated_denials" || findings[0].Agent != "approle:demo:prober" {
		t.Fatalf("findings %+v", findings)
	}
	if code, _, _ := run(t, "anomaly", "replay", filepath.Join(t.TempDir(), "missing.log")); code == 0 {
		t.Fatal("a missing file exited 0")
	}
}
