package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"
)

// MaxLineBytes bounds one line of the trail, for the reader and verifier.
const MaxLineBytes = 4 << 20

// eachLineBackward calls fn with each line of the first size bytes of r,
// last line first, until fn returns false. A final fragment that does not
// end in '\n' is passed with torn set. The slice is only valid during fn.
func eachLineBackward(r io.ReaderAt, size int64, fn func(line []byte, torn bool) bool) error {
	if size <= 0 {
		return nil
	}
	const chunk = 64 << 10
	var last [1]byte
	if _, err := r.ReadAt(last[:], size-1); err != nil {
		return fmt.Errorf("read log tail: %w", err)
	}
	torn := last[0] != '\n'
	pos := size
	if !torn {
		pos--
	}
	var data []byte // file[pos:end of the lines not yet emitted]
	for {
		if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
			if !fn(data[i+1:], torn) {
				return nil
			}
			torn = false
			data = data[:i]
			continue
		}
		if pos == 0 {
			fn(data, torn)
			return nil
		}
		if len(data) > MaxLineBytes {
			return fmt.Errorf("read log tail: a line exceeds %d bytes", MaxLineBytes)
		}
		n := min(int64(chunk), pos)
		pos -= n
		buf := make([]byte, n, int(n)+len(data))
		if _, err := r.ReadAt(buf, pos); err != nil {
			return fmt.Errorf("read log tail: %w", err)
		}
		data = append(buf, data...)
	}
}

// firstLine returns the first line of the first size bytes of r (without
// '\n'), reading at most MaxLineBytes.
func firstLine(r io.ReaderAt, size int64) ([]byte, error) {
	buf := make([]byte, min(size, MaxLineBytes))
	n, err := r.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read log head: %w", err)
	}
	buf = buf[:n]
	if i := bytes.IndexByte(buf, '\n'); i >= 0 {
		buf = buf[:i]
	}
	return buf, nil
}

// chainState is where the trail stands: the writer's view, restored from
// the file on open.
type chainState struct {
	seq       uint64    // seq of the last chained line; 0 before the first
	head      string    // hash of the last line of any kind (ZeroHash when none)
	lastCP    uint64    // seq of the last checkpoint, or the seq before the first line of the file
	pending   uint64    // events since the last checkpoint
	due       time.Time // when a checkpoint is due if pending > 0
	fileFirst uint64    // first seq in the current file; 0 if none yet
}

// recoverChain reads the end of an existing log to continue its chain. It
// needs the last line (whatever it is: its hash is the next prev), the last
// chained line (its seq) and, when findCheckpoint, the last checkpoint.
//
// A torn last line (a write cut by a crash) is kept in the file; the next
// line's prev is its hash, so the chain covers it, and it takes no seq.
func recoverChain(r io.ReaderAt, size int64, findCheckpoint bool) (chainState, error) {
	st := chainState{head: ZeroHash}
	if size == 0 {
		return st, nil
	}
	first, foundCP := true, false
	cpMarker := []byte(`"type":"checkpoint"`)
	err := eachLineBackward(r, size, func(line []byte, _ bool) bool {
		if first {
			st.head = LineHash(line)
			first = false
		}
		// A JSON string cannot hold the marker unescaped, so a line
		// without it is no checkpoint, and once the last seq is known it
		// need not be parsed.
		if st.seq != 0 && !bytes.Contains(line, cpMarker) {
			return findCheckpoint
		}
		li, err := parseLine(line)
		if err != nil {
			return true // a torn or foreign line: no seq
		}
		if st.seq == 0 {
			st.seq = *li.Seq
		}
		if li.Type == TypeCheckpoint {
			st.lastCP, foundCP = *li.Seq, true
			return false
		}
		return findCheckpoint
	})
	if err != nil {
		return st, err
	}
	head, err := firstLine(r, size)
	if err != nil {
		return st, err
	}
	if li, err := parseLine(head); err == nil && *li.Seq <= st.seq {
		st.fileFirst = *li.Seq
	}
	if !foundCP && st.fileFirst > 0 {
		// No checkpoint in this file: the previous one, if any, closed
		// the file before it, so coverage starts at this file's first line.
		st.lastCP = st.fileFirst - 1
	}
	if st.seq > st.lastCP {
		st.pending = st.seq - st.lastCP
	}
	return st, nil
}
