package audit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRotationChainsAcrossFiles(t *testing.T) {
	pub, priv := newKey(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	s, err := OpenFile(path, FileOptions{Signer: priv, MaxBytes: 4096, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 120 {
		if err := s.Write(t.Context(), &Event{Type: "issue", RequestID: fmt.Sprintf("r%04d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rotated, _ := filepath.Glob(filepath.Join(dir, "audit-*.log"))
	sort.Strings(rotated)
	if len(rotated) < 3 {
		t.Fatalf("rotated files %v, want at least 3", rotated)
	}
	for _, f := range rotated {
		fi, _ := os.Stat(f)
		lines := readLines(t, f)
		if fi.Mode().Perm() != 0o600 || fi.Size() > 4096+1024 || !bytes.Contains(lines[len(lines)-1], []byte(`"type":"checkpoint"`)) {
			t.Errorf("%s: mode %v, size %d, last line %s", f, fi.Mode().Perm(), fi.Size(), lines[len(lines)-1])
		}
	}
	all := append(rotated, path)
	rep, err := VerifyFiles(t.Context(), all, pub, VerifyOptions{Strict: true})
	if err != nil {
		t.Fatalf("whole trail: %v", err)
	}
	if rep.Events != 120 || rep.FirstSeq != 1 || rep.Files != len(all) || rep.Unprotected != 0 {
		t.Errorf("report %+v", rep)
	}
	// The live file's first line links to the last rotated file's last line.
	last := readLines(t, rotated[len(rotated)-1])
	if first := readLines(t, path)[0]; !bytes.Contains(first, []byte(`"prev":"`+LineHash(last[len(last)-1])+`"`)) {
		t.Errorf("fresh file does not continue the chain: %s", first)
	}

	// The second file alone: its first prev cannot be checked. Allowed
	// with a warning; refused with Strict.
	rep, err = VerifyFiles(t.Context(), rotated[1:2], pub, VerifyOptions{})
	if err != nil || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], ":1: trail starts at seq") {
		t.Fatalf("second file alone: %+v, %v", rep, err)
	}
	_, err = VerifyFiles(t.Context(), rotated[1:2], pub, VerifyOptions{Strict: true})
	wantBadLine(t, err, rotated[1], 1, "earlier lines or files are missing")

	// A file missing from the middle.
	_, err = VerifyFiles(t.Context(), []string{rotated[0], rotated[2]}, pub, VerifyOptions{})
	wantBadLine(t, err, rotated[2], 1, "seq jumps")

	// Files out of order.
	_, err = VerifyFiles(t.Context(), []string{rotated[1], rotated[0]}, pub, VerifyOptions{})
	wantBadLine(t, err, rotated[0], 1, "reordered")

	// A rotated file cut back to an earlier checkpoint still ends in one,
	// but no longer holds the seqs its name promises.
	lines := readLines(t, rotated[0])
	cut := 0
	for i := len(lines) - 2; i >= 0; i-- {
		if bytes.Contains(lines[i], []byte(`"type":"checkpoint"`)) {
			cut = i + 1
			break
		}
	}
	if cut == 0 {
		// No inner checkpoint: drop the final one, leaving events.
		cut = len(lines) - 1
	}
	writeLines(t, rotated[0], lines[:cut])
	_, err = VerifyFiles(t.Context(), all, pub, VerifyOptions{})
	wantBadLine(t, err, rotated[0], cut, "file name says")
}

func TestReopenContinuesChain(t *testing.T) {
	pub, priv := newKey(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	write := func(opts FileOptions, n int, tag string) {
		t.Helper()
		opts.Logger = quietLogger()
		s, err := OpenFile(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if err := s.Write(t.Context(), &Event{Type: "login", RequestID: fmt.Sprint(tag, i)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Unsigned first (as after a crash: no final checkpoint), then signed:
	// the first checkpoint covers everything from seq 1.
	write(FileOptions{}, 5, "a")
	write(FileOptions{Signer: priv}, 3, "b")
	lines := readLines(t, path)
	if len(lines) != 9 || !bytes.Contains(lines[8], []byte(`"covers_from_seq":1,"covers_to_seq":8`)) {
		t.Fatalf("after reopen:\n%s", bytes.Join(lines, []byte("\n")))
	}
	// A crash left a torn line: it is kept, the chain covers it.
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	_, _ = f.WriteString(`{"seq":10,"prev":"ab","ty`)
	_ = f.Close()
	write(FileOptions{Signer: priv}, 2, "c")
	rep, err := VerifyFiles(t.Context(), []string{path}, pub, VerifyOptions{Strict: true})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if rep.Events != 10 || rep.LastSeq != 12 || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], ":10: incomplete line") {
		t.Errorf("report %+v", rep)
	}
	// The torn line cannot be swapped for other content.
	lines = readLines(t, path)
	lines[9] = []byte(`{"seq":10,"prev":"ab","typ`)
	writeLines(t, path, lines)
	_, err = VerifyFiles(t.Context(), []string{path}, pub, VerifyOptions{})
	wantBadLine(t, err, path, 10, "not acknowledged by the chain")
}

func TestCheckpointAfterInterval(t *testing.T) {
	pub, priv := newKey(t)
	s, path := openTemp(t, FileOptions{Signer: priv, CheckpointInterval: 20 * time.Millisecond})
	for range 3 {
		if err := s.Write(t.Context(), &Event{Type: "login"}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		rep, err := VerifyFiles(t.Context(), []string{path}, pub, VerifyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Unprotected == 0 && rep.Checkpoints >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint within the interval: %+v", rep)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// An idle sink writes no further checkpoints.
	_, before := s.Stats()
	time.Sleep(60 * time.Millisecond)
	if _, after := s.Stats(); after != before {
		t.Errorf("idle sink kept syncing: %d -> %d", before, after)
	}
}

func TestFailedBatchDoesNotAdvanceChain(t *testing.T) {
	pub, priv := newKey(t)
	ff := &faultyFile{}
	s, path := openTemp(t, FileOptions{Signer: priv, CheckpointEvery: 2,
		hooks: &testHooks{wrap: func(f file) file { ff.file = f; return ff }}})
	write := func(id string) error { return s.Write(t.Context(), &Event{Type: "redeem", RequestID: id}) }
	if err := write("ok-1"); err != nil {
		t.Fatal(err)
	}
	ff.failWrites.Store(1) // this batch would also carry a checkpoint
	if err := write("torn"); !errors.Is(err, ErrUnavailable) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("torn write: %v", err)
	}
	ff.failSyncs.Store(1)
	if err := write("no-fsync"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("failed fsync: %v", err)
	}
	if err := write("ok-2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyFiles(t.Context(), []string{path}, pub, VerifyOptions{Strict: true})
	if err != nil || rep.Events != 2 || rep.LastSeq != 3 {
		t.Fatalf("after failures: %+v, %v", rep, err)
	}
}

func TestSignerOptionValidated(t *testing.T) {
	_, err := OpenFile(filepath.Join(t.TempDir(), "a.log"), FileOptions{Signer: make([]byte, 10), Logger: quietLogger()})
	if err == nil {
		t.Fatal("OpenFile accepted a malformed signing key")
	}
}
