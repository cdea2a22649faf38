package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func newKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// writeTrail writes n events serially to a fresh signed sink and closes it.
func writeTrail(t *testing.T, priv ed25519.PrivateKey, n, every int) string {
	t.Helper()
	s, path := openTemp(t, FileOptions{Signer: priv, CheckpointEvery: every, CheckpointInterval: time.Hour})
	for i := range n {
		if err := s.Write(t.Context(), &Event{Type: "issue", RequestID: fmt.Sprintf("r%04d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
}

func writeLines(t *testing.T, path string, lines [][]byte) {
	t.Helper()
	data := append(bytes.Join(lines, []byte("\n")), '\n')
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func verifyOne(t *testing.T, path string, pub ed25519.PublicKey, opts VerifyOptions) (Report, error) {
	t.Helper()
	return VerifyFiles(t.Context(), []string{path}, pub, opts)
}

// wantBadLine asserts err is a VerifyError at line with reason containing want.
func wantBadLine(t *testing.T, err error, file string, line int, want string) {
	t.Helper()
	var ve *VerifyError
	if !errors.As(err, &ve) || !errors.Is(err, ErrTampered) {
		t.Fatalf("err = %v, want a VerifyError at line %d (%q)", err, line, want)
	}
	if (file != "" && ve.File != file) || ve.Line != line || !strings.Contains(ve.Reason, want) {
		t.Fatalf("err = %v\nwant %s:%d with %q", err, file, line, want)
	}
}

func TestConcurrentSignedTrailVerifies(t *testing.T) {
	pub, priv := newKey(t)
	s, path := openTemp(t, FileOptions{Signer: priv, CheckpointEvery: 100,
		hooks: &testHooks{wrap: func(f file) file { return slowSyncFile{f} }}})
	const writers, each = 16, 125
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := s.Write(t.Context(), &Event{Type: "decision", RequestID: fmt.Sprintf("w%d-%d", w, i)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	events, syncs := s.Stats()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events, %d fsyncs", events, syncs)
	if syncs == 0 || syncs > writers*each/4 {
		t.Errorf("syncs = %d for %d events: checkpoints broke group commit", syncs, writers*each)
	}
	rep, err := verifyOne(t, path, pub, VerifyOptions{Strict: true})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if rep.Events != writers*each || rep.FirstSeq != 1 || rep.LastSeq != rep.Events+rep.Checkpoints ||
		rep.Unprotected != 0 || rep.Checkpoints < 10 || len(rep.Warnings) != 0 {
		t.Errorf("report %+v", rep)
	}
	if seq, head := s.Head(); seq != rep.LastSeq || head != rep.Head {
		t.Errorf("Head() = %d %s, verifier ended at %d %s", seq, head, rep.LastSeq, rep.Head)
	}
	// The trail ends with a checkpoint (written by Close) whose signed
	// fields are as documented.
	lines := readLines(t, path)
	var cp Checkpoint
	if err := json.Unmarshal(lines[len(lines)-1], &cp); err != nil || cp.Type != TypeCheckpoint {
		t.Fatalf("last line is not a checkpoint: %s", lines[len(lines)-1])
	}
	if cp.ChainHead != LineHash(lines[len(lines)-2]) || cp.CoversToSeq != cp.Seq-1 || cp.KeyID != KeyID(pub) {
		t.Errorf("checkpoint fields: %+v", cp)
	}
}

// The trail used by the tampering cases: with CheckpointEvery 4, lines are
// e1 e2 e3 e4 cp5 e6 e7 e8 e9 cp10 e11 e12 cp13 (seq = line number).
func tamperTrail(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey, string, [][]byte) {
	pub, priv := newKey(t)
	path := writeTrail(t, priv, 10, 4)
	lines := readLines(t, path)
	if len(lines) != 13 || !bytes.Contains(lines[4], []byte(`"type":"checkpoint"`)) || !bytes.Contains(lines[12], []byte(`"type":"checkpoint"`)) {
		t.Fatalf("unexpected trail layout:\n%s", bytes.Join(lines, []byte("\n")))
	}
	if _, err := verifyOne(t, path, pub, VerifyOptions{Strict: true}); err != nil {
		t.Fatalf("untouched trail: %v", err)
	}
	return pub, priv, path, lines
}

func TestVerifyDetectsTampering(t *testing.T) {
	_, otherPriv := newKey(t)
	resign := func(line []byte, key ed25519.PrivateKey, keyID string, edit func(*Checkpoint)) []byte {
		var c Checkpoint
		if err := json.Unmarshal(line, &c); err != nil {
			panic(err)
		}
		if edit != nil {
			edit(&c)
		}
		c.KeyID = keyID
		c.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(key, c.SignedBytes()))
		b, _ := json.Marshal(c)
		return b
	}
	cases := []struct {
		name   string
		tamper func(l [][]byte, priv ed25519.PrivateKey) [][]byte
		line   int
		want   string
	}{
		{"edited field", func(l [][]byte, _ ed25519.PrivateKey) [][]byte {
			l[2] = bytes.Replace(l[2], []byte(`"r0002"`), []byte(`"r9999"`), 1)
			return l
		}, 3, "modified"},
		{"edited field before a checkpoint", func(l [][]byte, _ ed25519.PrivateKey) [][]byte {
			l[8] = bytes.Replace(l[8], []byte(`"issue"`), []byte(`"login"`), 1)
			return l
		}, 9, "modified"},
		{"edited prev", func(l [][]byte, _ ed25519.PrivateKey) [][]byte {
			l[5] = bytes.Replace(l[5], []byte(LineHash(l[4])), []byte(LineHash([]byte("x"))), 1)
			return l
		}, 6, "does not match the hash"},
		{"deleted line", func(l [][]byte, _ ed25519.PrivateKey) [][]byte {
			return slices.Delete(l, 6, 7)
		}, 7, "seq jumps from 6 to 8"},
		{"deleted checkpoint", func(l [][]byte, _ ed25519.PrivateKey) [][]byte {
			return slices.Delete(l, 4, 5)
		}, 5, "seq jumps from 4 to 6"},
		{"reordered lines", func(l [][]byte, _ ed25519.PrivateKey) [][]byte {
			l[1], l[2] = l[2], l[1]
			return l
		}, 2, "seq jumps from 1 to 3"},
		{"duplicated line", func(l [][]byte, _ ed25519.PrivateKey) [][]byte {
			return slices.Insert(l, 3, l[2])
		}, 4, "seq 3 after seq 3"},
		{"garbage line inserted", func(l [][]byte, _ ed25519.PrivateKey) [][]byte {
			return slices.Insert(l, 3, []byte(`{"type":"iss`))
		}, 4, "not acknowledged by the chain"},
		{"line replaced by garbage", func(l [][]byte, _ ed25519.PrivateKey) [][]byte {
			l[3] = []byte(`not json`)
			return l
		}, 4, "not acknowledged by the chain"},
		{"checkpoint signed by another key", func(l [][]byte, _ ed25519.PrivateKey) [][]byte {
			l[9] = resign(l[9], otherPriv, KeyID(otherPriv.Public().(ed25519.PublicKey)), nil)
			return l
		}, 10, "not by the given public key"},
		{"checkpoint signed by another key, claiming ours", func(l [][]byte, priv ed25519.PrivateKey) [][]byte {
			l[9] = resign(l[9], otherPriv, KeyID(priv.Public().(ed25519.PublicKey)), nil)
			return l
		}, 10, "signature does not verify"},
		{"checkpoint with an edited time", func(l [][]byte, _ ed25519.PrivateKey) [][]byte {
			var c Checkpoint
			_ = json.Unmarshal(l[4], &c)
			old, _ := json.Marshal(c.Time)
			nw, _ := json.Marshal(c.Time.Add(-time.Hour))
			l[4] = bytes.Replace(l[4], old, nw, 1)
			return l
		}, 5, "signature does not verify"},
		{"checkpoint with an edited coverage", func(l [][]byte, _ ed25519.PrivateKey) [][]byte {
			l[9] = bytes.Replace(l[9], []byte(`"covers_from_seq":6`), []byte(`"covers_from_seq":7`), 1)
			return l
		}, 10, "covers_from_seq 7, want 6"},
		{"line deleted and the chain rewritten up to the checkpoint", func(l [][]byte, _ ed25519.PrivateKey) [][]byte {
			l = slices.Delete(l, 6, 7) // e7
			for i := 6; i <= 8; i++ {  // renumber e8 e9 cp10 and relink
				var m map[string]json.RawMessage
				_ = json.Unmarshal(l[i], &m)
				m["seq"] = json.RawMessage(fmt.Sprint(i + 1))
				m["prev"] = json.RawMessage(`"` + LineHash(l[i-1]) + `"`)
				l[i], _ = json.Marshal(m)
			}
			return l
		}, 9, "chain_head"},
		{"trail cut mid-line with strict", func(l [][]byte, _ ed25519.PrivateKey) [][]byte {
			l[12] = l[12][:len(l[12])/2]
			return l
		}, 13, "no chained line follows"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pub, priv, path, lines := tamperTrail(t)
			writeLines(t, path, tc.tamper(lines, priv))
			_, err := verifyOne(t, path, pub, VerifyOptions{Strict: true})
			wantBadLine(t, err, path, tc.line, tc.want)
		})
	}
}

func TestVerifyTruncation(t *testing.T) {
	pub, _, path, lines := tamperTrail(t)

	// Cut after a checkpoint claims e11..: the two events and the final
	// checkpoint are gone, the remainder ends in a checkpoint. Only an
	// anchor (MinSeq, from the broker's head) can tell.
	writeLines(t, path, lines[:10])
	if rep, err := verifyOne(t, path, pub, VerifyOptions{Strict: true}); err != nil || rep.LastSeq != 10 {
		t.Fatalf("prefix ending in a checkpoint: %+v, %v", rep, err)
	}
	_, err := verifyOne(t, path, pub, VerifyOptions{MinSeq: 13})
	wantBadLine(t, err, path, 10, "3 line(s) cut from the end")

	// Cut the final checkpoint: the events after cp10 are unprotected, a
	// warning (with their count and first line), or an error with Strict.
	writeLines(t, path, lines[:12])
	rep, err := verifyOne(t, path, pub, VerifyOptions{})
	if err != nil || rep.Unprotected != 2 || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], ":11: 2 event(s)") {
		t.Fatalf("unprotected tail: %+v, %v", rep, err)
	}
	_, err = verifyOne(t, path, pub, VerifyOptions{Strict: true})
	wantBadLine(t, err, path, 11, "after the last checkpoint")

	// Cut mid-line: a warning naming the torn line, an error with Strict.
	writeLines(t, path, lines)
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(path, data[:len(data)-40], 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err = verifyOne(t, path, pub, VerifyOptions{})
	if err != nil || !strings.Contains(strings.Join(rep.Warnings, "\n"), ":13: the trail ends with 1 incomplete line") {
		t.Fatalf("torn end: %+v, %v", rep, err)
	}
}

func TestVerifyRefusesBadKey(t *testing.T) {
	_, _, path, _ := tamperTrail(t)
	other, _ := newKey(t)
	_, err := verifyOne(t, path, other, VerifyOptions{})
	wantBadLine(t, err, path, 5, "not by the given public key")
	if _, err := verifyOne(t, path, other[:16], VerifyOptions{}); err == nil || errors.Is(err, ErrTampered) {
		t.Fatalf("short key: %v", err)
	}
}

func TestVerifyPreviousKeys(t *testing.T) {
	oldPub, oldPriv := newKey(t)
	newPub, newPriv := newKey(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	for _, k := range []ed25519.PrivateKey{oldPriv, newPriv} {
		s, err := OpenFile(path, FileOptions{Signer: k, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if err := s.Write(t.Context(), &Event{Type: "login"}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	_, err := verifyOne(t, path, newPub, VerifyOptions{})
	wantBadLine(t, err, path, 4, "not by the given public key")
	rep, err := verifyOne(t, path, newPub, VerifyOptions{Strict: true, PreviousKeys: []ed25519.PublicKey{oldPub}})
	if err != nil || rep.Checkpoints != 2 || rep.Events != 6 {
		t.Fatalf("with the previous key: %+v, %v", rep, err)
	}
}

func TestVerifyEmptyAndForeign(t *testing.T) {
	pub, _ := newKey(t)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.log")
	_ = os.WriteFile(empty, nil, 0o600)
	if rep, err := verifyOne(t, empty, pub, VerifyOptions{}); err != nil || len(rep.Warnings) != 1 {
		t.Errorf("empty trail: %+v, %v", rep, err)
	}
	if _, err := verifyOne(t, empty, pub, VerifyOptions{Strict: true}); !errors.Is(err, ErrTampered) {
		t.Errorf("empty trail, strict: %v", err)
	}
	legacy := filepath.Join(dir, "v1.log")
	_ = os.WriteFile(legacy, []byte(`{"time":"2026-01-01T00:00:00Z","type":"login","v":1}`+"\n"), 0o600)
	_, err := verifyOne(t, legacy, pub, VerifyOptions{})
	wantBadLine(t, err, legacy, 1, "not a chained audit line")
}
