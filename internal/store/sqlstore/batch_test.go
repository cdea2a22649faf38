package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/qbroker/qbroker/internal/core"
	"github.com/qbroker/qbroker/internal/store"
)

// Concurrent writers share commits; one writer's failure must roll back its
// own work only, and every acknowledged write must survive a reopen.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qbroker.db")
	s := openAt(t, path)
	ctx := context.Background()
	errBoom := errors.New("boom")
	const n = 200
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Update(ctx, func(tx store.Aggregates) error {
				err := tx.Secrets().Put(ctx, core.SealedSecret{Name: fmt.Sprintf("s/%03d", i), Blob: []byte{byte(i)}, CreatedAt: time.Now()})
				if err != nil {
					return err
				}
				if i%3 == 0 {
					return errBoom // after writing: the write must vanish
				}
				return nil
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if i%3 == 0 && !errors.Is(err, errBoom) {
			t.Fatalf("writer %d: want its own error, got %v", i, err)
		}
		if i%3 != 0 && err != nil {
			t.Fatalf("writer %d failed: %v", i, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path)
	defer s.Close()
	got, err := s.Secrets().List(ctx, "s/")
	if err != nil {
		t.Fatal(err)
	}
	want := n - (n+2)/3
	if len(got) != want {
		t.Fatalf("after reopen: %d secrets, want %d", len(got), want)
	}
	for _, sec := range got {
		var i int
		fmt.Sscanf(sec.Name, "s/%d", &i)
		if i%3 == 0 {
			t.Fatalf("rolled-back write %s survived", sec.Name)
		}
	}
}

func TestWriteAfterCloseFails(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "qbroker.db"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	err := s.Secrets().Put(context.Background(), core.SealedSecret{Name: "x", Blob: []byte("y")})
	if err == nil {
		t.Fatal("write after Close succeeded")
	}
}

// UpdatePipelined reports fn's own failure at once, and its success before
// the commit; wait then reports the commit, after which the change is
// durable.
func TestUpdatePipelined(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qbroker.db")
	s := openAt(t, path)
	ctx := context.Background()
	errBoom := errors.New("boom")
	if _, err := s.UpdatePipelined(ctx, func(tx store.Aggregates) error {
		if err := tx.Secrets().Put(ctx, core.SealedSecret{Name: "gone", Blob: []byte{1}}); err != nil {
			return err
		}
		return errBoom
	}); !errors.Is(err, errBoom) {
		t.Fatalf("want fn's error, got %v", err)
	}
	wait, err := s.UpdatePipelined(ctx, func(tx store.Aggregates) error {
		return tx.Secrets().Put(ctx, core.SealedSecret{Name: "kept", Blob: []byte{2}})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openAt(t, path)
	defer s.Close()
	if _, err := s.Secrets().Get(ctx, "kept"); err != nil {
		t.Fatalf("committed change lost: %v", err)
	}
	if _, err := s.Secrets().Get(ctx, "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("failed fn's change persisted: %v", err)
	}
}
