package audit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
)

// Filter selects events for ReadEvents.
type Filter struct {
	Agent    string // exact agent id; "" = any
	Type     string // exact event type; "" = any
	AfterSeq uint64 // only events with a larger seq (for following a trail)
	Limit    int    // the last Limit matches; default 100, at most 1000
}

// ReadEvents returns the last matching events of the trail at path, oldest
// first. Checkpoint lines and a torn last line are skipped. It reads the
// whole current file: fine for an operator's tail, not for analytics (use a
// SIEM sink for that).
func ReadEvents(path string, f Filter) ([]Event, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 1000)
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit: read events: %w", err)
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 64<<10), MaxLineBytes+1)
	ring := make([]Event, 0, f.Limit)
	start := 0
	for sc.Scan() {
		var e Event
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Type == TypeCheckpoint {
			continue
		}
		if e.Seq <= f.AfterSeq || (f.Agent != "" && e.Agent != f.Agent) || (f.Type != "" && e.Type != f.Type) {
			continue
		}
		if len(ring) < f.Limit {
			ring = append(ring, e)
			continue
		}
		ring[start] = e
		start = (start + 1) % f.Limit
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("audit: read events: %w", err)
	}
	return append(ring[start:], ring[:start]...), nil
}
