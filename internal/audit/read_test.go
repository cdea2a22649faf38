package audit

import (
	"context"
	"path/filepath"
	"testing"
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
