package seal

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// KEKSize is the size in bytes of a key-encryption key.
const KEKSize = 32

// KEKProvider supplies the 32-byte key-encryption key. Implementations must
// return a fresh copy the caller may overwrite, and must never include key
// material in an error.
type KEKProvider interface {
	KEK(ctx context.Context) ([]byte, error)
}

// FileKEK reads the KEK from a file holding either exactly 32 raw bytes or the
// standard base64 encoding of 32 bytes (surrounding whitespace ignored).
//
// The file must not be accessible to group or others (any of the 0o077
// permission bits set is refused). With Create set, a missing file is
// generated: a random key is written base64-encoded with mode 0600, and missing
// parent directories are created with mode 0700. Creation is atomic (the key is
// written to a temporary file and hard-linked into place), so two processes
// racing to create the file end up using the same key.
type FileKEK struct {
	Path   string
	Create bool
}

// KEK implements [KEKProvider].
func (f FileKEK) KEK(ctx context.Context) ([]byte, error) {
	if f.Path == "" {
		return nil, errors.New("seal: key file path is empty")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key, err := f.read()
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !f.Create {
		return key, err
	}
	if err := f.create(); err != nil {
		return nil, err
	}
	return f.read()
}

func (f FileKEK) read() ([]byte, error) {
	fh, err := os.Open(f.Path)
	if err != nil {
		return nil, fmt.Errorf("seal: open key file: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("seal: stat key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("seal: key file %s is not a regular file", f.Path)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("seal: key file %s has mode %04o; refusing a key file accessible to group or others (chmod 600 it)",
			f.Path, st.Mode().Perm())
	}
	if st.Size() > 4096 {
		return nil, fmt.Errorf("seal: key file %s is too large to be a key", f.Path)
	}
	data, err := io.ReadAll(io.LimitReader(fh, 4096))
	defer clear(data)
	if err != nil {
		return nil, fmt.Errorf("seal: read key file: %w", err)
	}
	key, err := decodeKey(data)
	if err != nil {
		return nil, fmt.Errorf("seal: key file %s: %w", f.Path, err)
	}
	return key, nil
}

func (f FileKEK) create() error {
	dir := filepath.Dir(f.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("seal: create key directory: %w", err)
	}
	key := make([]byte, KEKSize)
	defer clear(key)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("seal: generate key: %w", err)
	}
	enc := []byte(base64.StdEncoding.EncodeToString(key) + "\n")
	defer clear(enc)

	tmp, err := os.CreateTemp(dir, ".kek-*")
	if err != nil {
		return fmt.Errorf("seal: create key file: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	// CreateTemp already uses 0600; be explicit in case that ever changes.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("seal: chmod key file: %w", err)
	}
	if _, err := tmp.Write(enc); err != nil {
		tmp.Close()
		return fmt.Errorf("seal: write key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("seal: sync key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("seal: close key file: %w", err)
	}
	// Link fails if the target exists: a concurrent creator won, use its key.
	if err := os.Link(tmpName, f.Path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("seal: install key file: %w", err)
	}
	return nil
}

// EnvKEK reads the KEK from an environment variable holding the standard
// base64 encoding of 32 bytes.
type EnvKEK struct {
	Var string
}

// KEK implements [KEKProvider].
func (e EnvKEK) KEK(ctx context.Context) ([]byte, error) {
	if e.Var == "" {
		return nil, errors.New("seal: environment variable name is empty")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	v, ok := os.LookupEnv(e.Var)
	if !ok || strings.TrimSpace(v) == "" {
		return nil, fmt.Errorf("seal: environment variable %s is not set", e.Var)
	}
	key, err := decodeBase64Key([]byte(v))
	if err != nil {
		return nil, fmt.Errorf("seal: environment variable %s: %w", e.Var, err)
	}
	return key, nil
}

// errKeyFormat deliberately carries no detail from the input: base64 errors
// report offsets only, but nothing about the value should leak.
var errKeyFormat = errors.New("not a base64-encoded 32-byte key")

// decodeKey accepts exactly 32 raw bytes or a base64 encoding of 32 bytes.
func decodeKey(data []byte) ([]byte, error) {
	if len(data) == KEKSize {
		// 32 raw bytes. A 32-character base64 string would decode to 24
		// bytes, so there is no ambiguity with the encoded form. A file of
		// 32 printable characters is almost surely a passphrase, not a
		// random key (odds (95/256)^32 < 1e-13), so it is refused.
		if isPrintable(data) {
			return nil, errors.New("32 bytes of text is not a raw key; store 32 random bytes or their base64")
		}
		return bytes.Clone(data), nil
	}
	return decodeBase64Key(data)
}

func isPrintable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

func decodeBase64Key(data []byte) ([]byte, error) {
	s := bytes.TrimSpace(data)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		out := make([]byte, enc.DecodedLen(len(s)))
		n, err := enc.Decode(out, s)
		if err == nil && n == KEKSize {
			return out[:n], nil
		}
		clear(out)
	}
	return nil, errKeyFormat
}

var (
	_ KEKProvider = FileKEK{}
	_ KEKProvider = EnvKEK{}
)
