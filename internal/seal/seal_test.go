package seal

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

type staticKEK []byte

func (k staticKEK) KEK(context.Context) ([]byte, error) { return bytes.Clone(k), nil }

func randKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, KEKSize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func newSealer(t testing.TB, key []byte) *Sealer {
	t.Helper()
	s, err := New(context.Background(), staticKEK(key))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRoundTrip(t *testing.T) {
	s := newSealer(t, randKey(t))
	for _, pt := range [][]byte{nil, {}, []byte("x"), bytes.Repeat([]byte("secret"), 1000)} {
		blob, err := s.Seal(pt, []byte("signing-key/abc"))
		if err != nil {
			t.Fatal(err)
		}
		if len(blob) != Overhead+len(pt) {
			t.Fatalf("blob len %d, want %d", len(blob), Overhead+len(pt))
		}
		got, err := s.Open(blob, []byte("signing-key/abc"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, pt) {
			t.Fatalf("round trip mismatch")
		}
	}
}

func TestFreshDataKeyAndNonce(t *testing.T) {
	s := newSealer(t, randKey(t))
	a, _ := s.Seal([]byte("same"), []byte("n"))
	b, _ := s.Seal([]byte("same"), []byte("n"))
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same plaintext are identical")
	}
	if bytes.Equal(a[headerSize:headerSize+wrappedLen], b[headerSize:headerSize+wrappedLen]) {
		t.Fatal("wrapped data keys identical: data key is not fresh per secret")
	}
}

func TestTamperAnyByte(t *testing.T) {
	s := newSealer(t, randKey(t))
	aad := []byte("provider/ionq")
	blob, err := s.Seal([]byte("the provider api key"), aad)
	if err != nil {
		t.Fatal(err)
	}
	for i := range blob {
		bad := bytes.Clone(blob)
		bad[i] ^= 0x01
		if _, err := s.Open(bad, aad); err == nil {
			t.Fatalf("tampered byte %d accepted", i)
		} else if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongKey) {
			t.Fatalf("byte %d: unexpected error %v", i, err)
		}
	}
	// Truncation and extension.
	for _, bad := range [][]byte{blob[:len(blob)-1], blob[:Overhead-1], nil, append(bytes.Clone(blob), 0)} {
		if _, err := s.Open(bad, aad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated/extended blob: got %v, want ErrCorrupt", err)
		}
	}
}

func TestWrongAAD(t *testing.T) {
	s := newSealer(t, randKey(t))
	blob, _ := s.Seal([]byte("k1"), []byte("signing-key/a"))
	for _, aad := range []string{"signing-key/b", "signing-key/a ", "", "signing-key/"} {
		if _, err := s.Open(blob, []byte(aad)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("aad %q: got %v, want ErrCorrupt", aad, err)
		}
	}
}

func TestSwapBetweenNames(t *testing.T) {
	s := newSealer(t, randKey(t))
	a, _ := s.Seal([]byte("secret-a"), []byte("provider/a"))
	b, _ := s.Seal([]byte("secret-b"), []byte("provider/b"))
	// Splice a's wrapped key into b and vice versa: must fail.
	mixed := bytes.Clone(b)
	copy(mixed[headerSize:headerSize+wrappedLen], a[headerSize:headerSize+wrappedLen])
	if _, err := s.Open(mixed, []byte("provider/b")); err == nil {
		t.Fatal("spliced blob opened")
	}
	if _, err := s.Open(a, []byte("provider/b")); err == nil {
		t.Fatal("blob for a opened under name b")
	}
}

func TestWrongKEK(t *testing.T) {
	s1 := newSealer(t, randKey(t))
	s2 := newSealer(t, randKey(t))
	blob, _ := s1.Seal([]byte("x"), nil)
	_, err := s2.Open(blob, nil)
	if !errors.Is(err, ErrWrongKey) {
		t.Fatalf("got %v, want ErrWrongKey", err)
	}
	if !strings.Contains(err.Error(), "sealed with a different key") {
		t.Fatalf("error not clear: %v", err)
	}
	if s1.KeyID() == s2.KeyID() {
		t.Fatal("key ids collide")
	}
}

func TestBadKEKSize(t *testing.T) {
	if _, err := New(context.Background(), staticKEK(make([]byte, 16))); err == nil {
		t.Fatal("16-byte KEK accepted")
	}
	if _, err := New(context.Background(), nil); err == nil {
		t.Fatal("nil provider accepted")
	}
}

func TestPlaintextNotInBlob(t *testing.T) {
	s := newSealer(t, randKey(t))
	pt := []byte("AKIAIOSFODNN7EXAMPLE-wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
	blob, _ := s.Seal(pt, []byte("n"))
	for w := 6; w <= len(pt); w += 6 {
		if bytes.Contains(blob, pt[:w]) {
			t.Fatalf("plaintext prefix of %d bytes appears in blob", w)
		}
	}
}

func TestFileKEKCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "dir")
	path := filepath.Join(dir, "kek")
	p := FileKEK{Path: path, Create: true}
	k1, err := p.KEK(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(k1) != KEKSize {
		t.Fatalf("len %d", len(k1))
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %04o, want 0600", st.Mode().Perm())
	}
	dst, _ := os.Stat(dir)
	if dst.Mode().Perm() != 0o700 {
		t.Fatalf("key dir mode %04o, want 0700", dst.Mode().Perm())
	}
	// Second call reads the same key; without Create it also reads it.
	k2, err := FileKEK{Path: path}.KEK(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k1, k2) {
		t.Fatal("re-read key differs")
	}
	// No temp files left behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("directory has %d entries, want 1", len(ents))
	}
}

func TestFileKEKConcurrentCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek")
	var wg sync.WaitGroup
	keys := make([][]byte, 8)
	errs := make([]error, 8)
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys[i], errs[i] = FileKEK{Path: path, Create: true}.KEK(context.Background())
		}()
	}
	wg.Wait()
	for i := range keys {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !bytes.Equal(keys[i], keys[0]) {
			t.Fatal("racing creators got different keys")
		}
	}
}

func TestFileKEKMissingWithoutCreate(t *testing.T) {
	_, err := FileKEK{Path: filepath.Join(t.TempDir(), "nope")}.KEK(context.Background())
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v", err)
	}
}

func TestFileKEKRefusesLoosePermissions(t *testing.T) {
	key := randKey(t)
	enc := base64.StdEncoding.EncodeToString(key)
	for _, mode := range []os.FileMode{0o640, 0o644, 0o604, 0o620, 0o602} {
		path := filepath.Join(t.TempDir(), "kek")
		if err := os.WriteFile(path, []byte(enc), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := FileKEK{Path: path, Create: true}.KEK(context.Background())
		if err == nil {
			t.Fatalf("mode %04o accepted", mode)
		}
		if strings.Contains(err.Error(), enc) {
			t.Fatal("error leaks key")
		}
	}
}

func TestFileKEKFormats(t *testing.T) {
	key := randKey(t)
	cases := map[string][]byte{
		"raw":       key,
		"base64":    []byte(base64.StdEncoding.EncodeToString(key) + "\n"),
		"base64url": []byte(base64.RawURLEncoding.EncodeToString(key)),
	}
	for name, content := range cases {
		path := filepath.Join(t.TempDir(), "kek")
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := FileKEK{Path: path}.KEK(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got, key) {
			t.Fatalf("%s: wrong key", name)
		}
	}
	// Malformed: 16 bytes of base64, and garbage text.
	for _, content := range []string{base64.StdEncoding.EncodeToString(key[:16]), "not a key at all, definitely-not"} {
		path := filepath.Join(t.TempDir(), "kek")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := FileKEK{Path: path}.KEK(context.Background())
		if err == nil {
			t.Fatalf("malformed key file accepted")
		}
		if strings.Contains(err.Error(), content) {
			t.Fatal("error leaks file content")
		}
	}
}

func TestEnvKEK(t *testing.T) {
	const v = "QBROKER_TEST_KEK"
	key := randKey(t)
	t.Setenv(v, base64.StdEncoding.EncodeToString(key))
	got, err := EnvKEK{Var: v}.KEK(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, key) {
		t.Fatal("wrong key")
	}
	// Sealer built from env round-trips.
	s, err := New(context.Background(), EnvKEK{Var: v})
	if err != nil {
		t.Fatal(err)
	}
	blob, _ := s.Seal([]byte("p"), nil)
	if _, err := newSealer(t, key).Open(blob, nil); err != nil {
		t.Fatal(err)
	}
}

func TestEnvKEKErrors(t *testing.T) {
	const v = "QBROKER_TEST_KEK_BAD"
	_, err := EnvKEK{Var: v}.KEK(context.Background())
	if err == nil || !strings.Contains(err.Error(), v) || !strings.Contains(err.Error(), "not set") {
		t.Fatalf("missing var: got %v", err)
	}
	key := randKey(t)
	for _, val := range []string{
		base64.StdEncoding.EncodeToString(key[:31]),       // 31 bytes
		base64.StdEncoding.EncodeToString(append(key, 1)), // 33 bytes
		"s3cr3t-value-that-is-not-base64!!",
		string(noNUL(key)), // raw bytes are not accepted in env
	} {
		t.Setenv(v, val)
		_, err := EnvKEK{Var: v}.KEK(context.Background())
		if err == nil {
			t.Fatalf("malformed value accepted")
		}
		if !strings.Contains(err.Error(), v) {
			t.Fatalf("error does not name the variable: %v", err)
		}
		if strings.Contains(err.Error(), val) || (len(val) > 8 && strings.Contains(err.Error(), val[:8])) {
			t.Fatalf("error leaks the value: %v", err)
		}
	}
}

func BenchmarkSeal(b *testing.B) {
	s := newSealer(b, randKey(b))
	pt := make([]byte, 256)
	for b.Loop() {
		if _, err := s.Seal(pt, []byte("n")); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	s := newSealer(b, randKey(b))
	blob, _ := s.Seal(make([]byte, 256), []byte("n"))
	for b.Loop() {
		if _, err := s.Open(blob, []byte("n")); err != nil {
			b.Fatal(err)
		}
	}
}

// noNUL returns b with zero bytes replaced: an environment value cannot
// hold NUL.
func noNUL(b []byte) []byte {
	out := bytes.Clone(b)
	for i, c := range out {
		if c == 0 {
			out[i] = 1
		}
	}
	return out
}
