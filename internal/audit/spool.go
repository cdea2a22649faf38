package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// spool is a Secondary's bounded on-disk buffer: one file of lines, each
// ending in '\n', oldest first. The live lines are file[off:end]; consumed
// lines before off are reclaimed when the spool empties (truncate) or when
// an append would take the file past max (compaction), so the file never
// holds more than max bytes. When the live lines would exceed max, the
// oldest are dropped.
//
// A spool is not safe for concurrent use; Secondary serialises it.
type spool struct {
	path     string
	f        *os.File
	max      int64
	off, end int64
	lines    int // live lines
}

// openSpool opens (creating, 0600, in a 0700 directory) and locks the spool
// at path. Lines left by an earlier run are kept as the backlog; a torn last
// line is cut off. It returns how many old lines had to be dropped to fit
// max.
func openSpool(path string, max int64) (*spool, int, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, 0, fmt.Errorf("create buffer directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("open buffer: %w", err)
	}
	fail := func(err error) (*spool, int, error) {
		_ = f.Close()
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(fmt.Errorf("stat buffer: %w", err))
	}
	if !fi.Mode().IsRegular() {
		return fail(fmt.Errorf("buffer %s is not a regular file", path))
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := f.Chmod(0o600); err != nil {
			return fail(fmt.Errorf("tighten buffer permissions: %w", err))
		}
	}
	if err := lockFile(f); err != nil {
		return fail(fmt.Errorf("lock buffer %s: %w", path, err))
	}
	s := &spool{path: path, f: f, max: max}
	// Count the backlog and cut a torn tail.
	var (
		pos, lastNL int64 = 0, -1
		buf               = make([]byte, 64<<10)
	)
	for {
		n, err := f.ReadAt(buf, pos)
		for i, c := range buf[:n] {
			if c == '\n' {
				s.lines++
				lastNL = pos + int64(i)
			}
		}
		pos += int64(n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fail(fmt.Errorf("read buffer: %w", err))
		}
	}
	s.end = lastNL + 1
	if s.end != pos {
		if err := f.Truncate(s.end); err != nil {
			return fail(fmt.Errorf("truncate torn buffer tail: %w", err))
		}
	}
	dropped := 0
	if s.end > max {
		d, err := s.dropOldest(s.end - max)
		if err != nil {
			return fail(err)
		}
		dropped = d
		if err := s.compact(); err != nil {
			return fail(err)
		}
	}
	return s, dropped, nil
}

// live is the number of bytes of live lines.
func (s *spool) live() int64 { return s.end - s.off }

// append adds lines (without '\n') after the live ones, dropping the oldest
// lines (first the live ones, then the oldest of lines itself) as needed to
// stay within max. It returns how many lines were dropped. On a write error
// none of lines is kept.
func (s *spool) append(lines [][]byte) (int, error) {
	dropped := 0
	var need int64
	for _, l := range lines {
		need += int64(len(l)) + 1
	}
	for len(lines) > 0 && need > s.max {
		need -= int64(len(lines[0])) + 1
		lines = lines[1:]
		dropped++
	}
	if len(lines) == 0 {
		return dropped, nil
	}
	if over := s.live() + need - s.max; over > 0 {
		d, err := s.dropOldest(over)
		dropped += d
		if err != nil {
			return dropped, err
		}
	}
	if s.end+need > s.max {
		if err := s.compact(); err != nil {
			return dropped, err
		}
	}
	buf := make([]byte, 0, need)
	for _, l := range lines {
		buf = append(buf, l...)
		buf = append(buf, '\n')
	}
	if _, err := s.f.WriteAt(buf, s.end); err != nil {
		_ = s.f.Truncate(s.end)
		return dropped, fmt.Errorf("write buffer: %w", err)
	}
	s.end += need
	s.lines += len(lines)
	return dropped, nil
}

// dropOldest advances off past whole lines until at least need bytes are
// freed (or the spool is empty) and returns how many lines it dropped.
func (s *spool) dropOldest(need int64) (int, error) {
	target := min(s.off+need, s.end)
	dropped := 0
	buf := make([]byte, 64<<10)
	mid := false // off is inside a line that spans chunks
	for s.off < s.end && (s.off < target || mid) {
		n, err := s.f.ReadAt(buf[:min(int64(len(buf)), s.end-s.off)], s.off)
		if n == 0 && err != nil {
			return dropped, fmt.Errorf("read buffer: %w", err)
		}
		chunk := buf[:n]
		for len(chunk) > 0 && (s.off < target || mid) {
			i := bytes.IndexByte(chunk, '\n')
			if i < 0 {
				s.off += int64(len(chunk))
				mid = true
				break
			}
			s.off += int64(i) + 1
			chunk = chunk[i+1:]
			mid = false
			s.lines--
			dropped++
		}
	}
	return dropped, s.resetIfEmpty()
}

// read removes and returns up to maxLines of the oldest live lines, about
// maxBytes at most (always at least one line).
func (s *spool) read(maxLines int, maxBytes int64) ([][]byte, error) {
	if s.lines == 0 {
		return nil, nil
	}
	size := min(s.live(), max(maxBytes, 64<<10))
	for {
		buf := make([]byte, size)
		if _, err := s.f.ReadAt(buf, s.off); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read buffer: %w", err)
		}
		var out [][]byte
		var used int64
		for len(out) < maxLines {
			i := bytes.IndexByte(buf[used:], '\n')
			if i < 0 || (len(out) > 0 && used+int64(i)+1 > maxBytes) {
				break
			}
			out = append(out, buf[used:used+int64(i)])
			used += int64(i) + 1
		}
		if len(out) == 0 {
			if size >= s.live() {
				return nil, errors.New("read buffer: live region does not end in a newline")
			}
			size = min(s.live(), 2*size) // one line longer than the chunk
			continue
		}
		s.off += used
		s.lines -= len(out)
		return out, s.resetIfEmpty()
	}
}

// resetIfEmpty reclaims the file once every line is consumed.
func (s *spool) resetIfEmpty() error {
	if s.off < s.end {
		return nil
	}
	s.off, s.end, s.lines = 0, 0, 0
	if err := s.f.Truncate(0); err != nil {
		return fmt.Errorf("truncate buffer: %w", err)
	}
	return nil
}

// compact rewrites the file to hold only the live lines.
func (s *spool) compact() error { return s.rewrite(nil) }

// prepend puts lines (without '\n') before the live ones, as the oldest,
// dropping the oldest of them if they would not fit within max. It returns
// how many it dropped.
func (s *spool) prepend(lines [][]byte) (int, error) {
	dropped := 0
	var need int64
	for _, l := range lines {
		need += int64(len(l)) + 1
	}
	for len(lines) > 0 && s.live()+need > s.max {
		need -= int64(len(lines[0])) + 1
		lines = lines[1:]
		dropped++
	}
	return dropped, s.rewrite(lines)
}

// rewrite replaces the file with front followed by the live lines, through
// a temporary file renamed into place.
func (s *spool) rewrite(front [][]byte) error {
	if s.off == 0 && len(front) == 0 {
		return nil
	}
	tmp := s.path + ".tmp"
	nf, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("compact buffer: %w", err)
	}
	fail := func(err error) error {
		_ = nf.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("compact buffer: %w", err)
	}
	var head []byte
	for _, l := range front {
		head = append(head, l...)
		head = append(head, '\n')
	}
	if _, err := nf.Write(head); err != nil {
		return fail(err)
	}
	if _, err := io.Copy(nf, io.NewSectionReader(s.f, s.off, s.live())); err != nil {
		return fail(err)
	}
	if err := lockFile(nf); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fail(err)
	}
	_ = s.f.Close()
	s.f = nf
	s.end = int64(len(head)) + s.live()
	s.off = 0
	s.lines += len(front)
	return nil
}

// close syncs and closes the file.
func (s *spool) close() error {
	err := s.f.Sync()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	return err
}
