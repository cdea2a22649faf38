package sqlstore

import (
	"context"
	"testing"
	"time"
)

// A message published by one store reaches a subscriber on another
// connection to the same schema within a moment, and not one in another
// schema; reset runs when the subscription starts.
func TestPostgresBroadcast(t *testing.T) {
	dsn := pgSchema(t)
	a, b := openPG(t, dsn, Options{}), openPG(t, dsn, Options{})
	other := openPG(t, pgSchema(t), Options{})
	for _, s := range []*Store{a, b, other} {
		t.Cleanup(func() { s.Close() })
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got, otherGot, resets := make(chan string, 10), make(chan string, 10), make(chan struct{}, 10)
	go b.Subscribe(ctx, func(m string) { got <- m }, func() { resets <- struct{}{} })
	go other.Subscribe(ctx, func(m string) { otherGot <- m }, func() {})
	select {
	case <-resets:
	case <-time.After(5 * time.Second):
		t.Fatal("subscription never started")
	}
	start := time.Now()
	if err := a.Publish(ctx, "tok:abc"); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m != "tok:abc" {
			t.Fatalf("got %q", m)
		}
		t.Logf("delivered in %v", time.Since(start))
	case <-time.After(2 * time.Second):
		t.Fatal("not delivered within 2 s")
	}
	select {
	case m := <-otherGot:
		t.Fatalf("a store in another schema heard %q", m)
	case <-time.After(200 * time.Millisecond):
	}
}

// On SQLite there is nobody else to tell: Publish and Subscribe return.
func TestSQLiteBroadcastIsLocal(t *testing.T) {
	s, err := OpenSQLite(context.Background(), t.TempDir()+"/q.db", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Publish(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Subscribe(context.Background(), func(string) {}, func() {}); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Subscribe on SQLite blocked")
	}
}

// One process at a time holds a lease; when it lets go (or its
// connection dies), another takes it.
func TestPostgresLease(t *testing.T) {
	dsn := pgSchema(t)
	a, b := openPG(t, dsn, Options{}), openPG(t, dsn, Options{})
	t.Cleanup(func() { a.Close(); b.Close() })
	ctx := context.Background()
	aliveA, releaseA, ok, err := a.TryLead(ctx, "sweeper")
	if err != nil || !ok || !aliveA(ctx) {
		t.Fatalf("first lead: %v %v", ok, err)
	}
	if _, _, ok, err := b.TryLead(ctx, "sweeper"); err != nil || ok {
		t.Fatalf("second process took a held lease: %v %v", ok, err)
	}
	if _, release, ok, _ := b.TryLead(ctx, "other-work"); !ok {
		t.Fatal("a different lease was refused")
	} else {
		release()
	}
	releaseA()
	_, releaseB, ok, err := b.TryLead(ctx, "sweeper")
	if err != nil || !ok {
		t.Fatalf("lead after release: %v %v", ok, err)
	}
	releaseB()
}
