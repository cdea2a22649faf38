package localagent

import (
	"log/slog"
	"sync"

	"golang.org/x/sys/unix"
)

// Secret holds one secret value (the broker token) outside the Go heap, in
// an anonymous mapping locked into RAM where the OS allows (so it is never
// swapped) and excluded from core dumps. Destroy zeroes and unmaps it.
//
// Reveal necessarily returns a copy as a Go string (net/http needs one for
// the header); such copies live only for the duration of a request.
type Secret struct {
	mu     sync.Mutex
	b      []byte
	locked bool
}

// NewSecret copies v into locked memory.
func NewSecret(v string) *Secret {
	s := &Secret{}
	if len(v) == 0 {
		return s
	}
	b, err := unix.Mmap(-1, 0, len(v), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		b = make([]byte, len(v)) // no mapping: still zeroed on Destroy
	} else {
		s.locked = unix.Mlock(b) == nil
		_ = unix.Madvise(b, unix.MADV_DONTDUMP)
	}
	copy(b, v)
	s.b = b
	return s
}

// Locked reports whether the pages are locked in RAM.
func (s *Secret) Locked() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.locked
}

// Reveal returns the value, or "" once destroyed.
func (s *Secret) Reveal() string {
	if s == nil {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}

// Destroy zeroes the value and releases its memory. It is idempotent.
func (s *Secret) Destroy() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b == nil {
		return
	}
	clear(s.b)
	if s.locked {
		_ = unix.Munlock(s.b)
	}
	_ = unix.Munmap(s.b) // fails harmlessly for the heap fallback
	s.b, s.locked = nil, false
}

// String never shows the value.
func (s *Secret) String() string { return "[redacted]" }

// LogValue never logs the value.
func (s *Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }
