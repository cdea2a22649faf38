package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
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

// ReadWindow returns the events of the trail at path that are at most d
// older than its last event, oldest first, and that last event's time
// (zero for an empty or missing trail). Crash recovery reads it: whatever
// was in flight when a process died is at the end of its trail.
func ReadWindow(path string, d time.Duration) ([]Event, time.Time, error) {
	file, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, time.Time{}, nil
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("audit: read window: %w", err)
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 64<<10), MaxLineBytes+1)
	var evs []Event
	var last time.Time
	for sc.Scan() {
		var e Event
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Type == TypeCheckpoint {
			continue
		}
		if e.Time.After(last) {
			last = e.Time
		}
		evs = append(evs, e)
		if len(evs) >= 4096 && evs[len(evs)/2].Time.Before(last.Add(-d)) {
			evs = trimBefore(evs, last.Add(-d)) // keeps memory bounded by the window
		}
	}
	if err := sc.Err(); err != nil {
		return nil, time.Time{}, fmt.Errorf("audit: read window: %w", err)
	}
	return trimBefore(evs, last.Add(-d)), last, nil
}

// trimBefore drops the events before t (the trail is in time order, give
// or take a group commit's batch), reusing the slice.
func trimBefore(evs []Event, t time.Time) []Event {
	i := 0
	for i < len(evs) && evs[i].Time.Before(t) {
		i++
	}
	return append(evs[:0], evs[i:]...)
}
