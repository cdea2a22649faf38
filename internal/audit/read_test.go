package audit

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

func TestReadEventsFiltersAndTails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s, err := OpenFile(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		agent := "a1"
		if i%3 == 0 {
			agent = "a2"
		}
		if err := s.Write(context.Background(), &Event{Type: "login", Agent: agent}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	got, err := ReadEvents(path, Filter{Agent: "a2", Limit: 4})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[0].Agent != "a2" || got[3].Seq != 28 || got[0].Seq >= got[3].Seq {
		t.Fatalf("last 4 of a2: %+v", got)
	}
	after, err := ReadEvents(path, Filter{AfterSeq: 27})
	if err != nil || len(after) != 3 {
		t.Fatalf("after seq 27: %d events, %v", len(after), err)
	}
	if none, _ := ReadEvents(path, Filter{Type: "revoke"}); len(none) != 0 {
		t.Fatalf("type filter: %+v", none)
	}
}

func TestReadWindowKeepsTheLastMoments(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	if evs, last, err := ReadWindow(path, time.Minute); err != nil || len(evs) != 0 || !last.IsZero() {
		t.Fatalf("missing trail: %v %v %v", evs, last, err)
	}
	s, err := OpenFile(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	// 6,000 events a tenth of a second apart (10 minutes), enough to trim
	// on the way; the window keeps the last minute's 601.
	for i := range 6000 {
		if err := s.Write(context.Background(), &Event{Type: "issue", JTI: fmt.Sprint(i), Time: t0.Add(time.Duration(i) * 100 * time.Millisecond)}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	evs, last, err := ReadWindow(path, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(5999 * 100 * time.Millisecond); !last.Equal(want) {
		t.Fatalf("last = %v, want %v", last, want)
	}
	if len(evs) != 601 || evs[0].JTI != "5399" || evs[600].JTI != "5999" {
		t.Fatalf("window: %d events, first %q last %q; want 601 from 5399 to 5999", len(evs), evs[0].JTI, evs[len(evs)-1].JTI)
	}
}
