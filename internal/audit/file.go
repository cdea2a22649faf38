package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Sink records audit events. Write returns nil only once e is durable; any
// error means it was not recorded and the caller must refuse the request.
type Sink interface {
	Write(ctx context.Context, e *Event) error
}

// DefaultMaxBatch is the batch limit used when FileOptions.MaxBatch is zero.
const DefaultMaxBatch = 512

// ErrInUse is returned by OpenFile when another open sink (in this or another
// process) holds the log file. Two writers would interleave and could undo
// each other's torn-tail repair.
var ErrInUse = errors.New("audit: log file already in use")

// FileOptions configure OpenFile.
type FileOptions struct {
	// MaxBatch bounds how many events one write+fsync covers; also the queue
	// depth. Zero means DefaultMaxBatch.
	MaxBatch int
	// Logger receives write failures and recoveries (never event contents).
	// Nil means slog.Default().
	Logger *slog.Logger
	// AllowNonRegular permits a path that is not a regular file, such as
	// /dev/full in fail-closed tests. Off by default so that a misconfigured
	// path like /dev/null cannot silently discard the audit trail.
	AllowNonRegular bool

	hooks *testHooks // set only by this package's tests
}

// testHooks are fault-injection seams for this package's own tests.
type testHooks struct {
	beforeWrite func(n int)       // called by the writer with each claimed batch size
	wrap        func(f file) file // wraps the opened file
}

// file is the subset of *os.File the writer uses.
type file interface {
	io.Writer
	Sync() error
	Truncate(size int64) error
	Close() error
}

// Request states: the writer claims a pending request; a caller whose ctx
// ends first cancels it. Exactly one of the two transitions succeeds.
const (
	statePending int32 = iota
	stateClaimed
	stateCancelled
)

type request struct {
	line  []byte
	state atomic.Int32
	done  chan error // buffered(1); receives the batch result once claimed
}

// FileSink appends events as JSON lines to a file, with group commit: one
// writer goroutine takes everything queued (up to MaxBatch), does one write
// and one fsync, then wakes every waiter with the result.
//
// The file is opened O_APPEND, mode 0600, and locked against other sinks.
// After a failed batch the writer truncates away any partial tail (regular
// files) and keeps serving later batches, so a transient failure recovers.
type FileSink struct {
	path     string
	maxBatch int
	log      *slog.Logger
	hooks    *testHooks

	mu     sync.RWMutex // guards closed and sends on reqs against close(reqs)
	closed bool
	reqs   chan *request
	done   chan struct{} // closed when the writer has exited
	// closeErr is written by the writer before done is closed.
	closeErr error

	// Writer-owned state.
	f           file
	regular     bool
	size        int64 // bytes known durable and well-formed
	repair      bool  // the tail past size may hold a partial batch
	needNewline bool  // the tail ends mid-line and cannot be truncated
	failing     bool  // the last batch failed
	buf         []byte

	events atomic.Uint64 // events made durable
	syncs  atomic.Uint64 // fsync calls issued
}

// OpenFile opens (creating if needed) the audit log at path and starts its
// writer. The parent directory is created with mode 0700 and the file with
// 0600; an existing file with looser permissions is tightened to 0600.
func OpenFile(path string, opts FileOptions) (*FileSink, error) {
	if path == "" {
		return nil, errors.New("audit: empty log path")
	}
	maxBatch := opts.MaxBatch
	if maxBatch <= 0 {
		maxBatch = DefaultMaxBatch
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit: create log directory: %w", err)
	}
	f, created, err := openLog(path)
	if err != nil {
		return nil, err
	}
	s := &FileSink{
		path:     path,
		maxBatch: maxBatch,
		log:      logger,
		hooks:    opts.hooks,
		reqs:     make(chan *request, maxBatch),
		done:     make(chan struct{}),
	}
	if err := s.prepare(f, created, opts.AllowNonRegular); err != nil {
		_ = f.Close()
		return nil, err
	}
	s.f = f
	if s.hooks != nil && s.hooks.wrap != nil {
		s.f = s.hooks.wrap(f)
	}
	go s.run()
	return s, nil
}

func openLog(path string) (f *os.File, created bool, err error) {
	f, err = os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		return f, true, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return nil, false, fmt.Errorf("audit: open log: %w", err)
	}
	f, err = os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		// Character devices like /dev/full may refuse read access.
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	}
	if err != nil {
		return nil, false, fmt.Errorf("audit: open log: %w", err)
	}
	return f, false, nil
}

// prepare checks the opened file and initialises the writer state.
func (s *FileSink) prepare(f *os.File, created, allowNonRegular bool) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("audit: stat log: %w", err)
	}
	if !fi.Mode().IsRegular() {
		if !allowNonRegular {
			return fmt.Errorf("audit: log %s is not a regular file (mode %s)", s.path, fi.Mode().Type())
		}
		return nil
	}
	s.regular = true
	if fi.Mode().Perm()&0o077 != 0 {
		if err := f.Chmod(0o600); err != nil {
			return fmt.Errorf("audit: tighten log permissions: %w", err)
		}
	}
	if err := lockFile(f); err != nil {
		return fmt.Errorf("audit: lock log %s: %w", s.path, err)
	}
	s.size = fi.Size()
	if s.size > 0 {
		// A crash mid-batch can leave a partial last line. Keep it as
		// evidence, but start our first line on a fresh one.
		var last [1]byte
		if _, err := f.ReadAt(last[:], s.size-1); err != nil {
			return fmt.Errorf("audit: read log tail: %w", err)
		}
		s.needNewline = last[0] != '\n'
	}
	if created {
		if err := syncDir(filepath.Dir(s.path)); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("audit: open log directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("audit: sync log directory: %w", err)
	}
	return nil
}

// Write queues e and returns once the batch holding it is durable. If ctx
// ends before the writer has taken e, Write returns ctx.Err() and e is never
// written; once taken, Write waits for and returns the batch result. The
// event is encoded before Write queues it, so e is not read after Write
// returns and encoding errors go to the right caller.
func (s *FileSink) Write(ctx context.Context, e *Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	line, err := encodeLine(e, time.Now)
	if err != nil {
		return err
	}
	r := &request{line: line, done: make(chan error, 1)}

	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return fmt.Errorf("%w: sink closed", ErrUnavailable)
	}
	select {
	case s.reqs <- r:
		s.mu.RUnlock()
	case <-ctx.Done():
		s.mu.RUnlock()
		return ctx.Err()
	}

	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		if r.state.CompareAndSwap(statePending, stateCancelled) {
			return ctx.Err()
		}
		// Already claimed: the outcome is decided; report it honestly.
		return <-r.done
	}
}

// Close writes everything already queued, closes the file and makes later
// Writes fail with ErrUnavailable. It is safe to call more than once.
func (s *FileSink) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.done
		return nil
	}
	s.closed = true
	close(s.reqs)
	s.mu.Unlock()
	<-s.done
	return s.closeErr
}

// Stats reports how many events have been made durable and how many fsync
// calls have been issued, for tests and benchmarks of group commit.
func (s *FileSink) Stats() (events, syncs uint64) {
	return s.events.Load(), s.syncs.Load()
}

// run is the single writer goroutine.
func (s *FileSink) run() {
	defer close(s.done)
	batch := make([]*request, 0, s.maxBatch)
	for open := true; open; {
		r, ok := <-s.reqs
		if !ok {
			break
		}
		batch = append(batch[:0], r)
	fill:
		for len(batch) < s.maxBatch {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					open = false
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		s.commit(batch)
		clear(batch)
	}
	if err := s.f.Close(); err != nil {
		s.closeErr = fmt.Errorf("audit: close log: %w", err)
	}
}

// commit claims the still-wanted requests of batch, persists them with one
// write and one fsync, and reports the result to each.
func (s *FileSink) commit(batch []*request) {
	claimed := make([]*request, 0, len(batch))
	for _, r := range batch {
		if r.state.CompareAndSwap(statePending, stateClaimed) {
			claimed = append(claimed, r)
		}
	}
	if len(claimed) == 0 {
		return
	}
	if s.hooks != nil && s.hooks.beforeWrite != nil {
		s.hooks.beforeWrite(len(claimed))
	}
	err := s.persist(claimed)
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		s.log.Error("audit: batch not recorded; requests refused",
			"path", s.path, "events", len(claimed), "err", err)
		s.failing = true
	} else {
		s.events.Add(uint64(len(claimed)))
		if s.failing {
			s.log.Info("audit: sink recovered", "path", s.path)
			s.failing = false
		}
	}
	for _, r := range claimed {
		r.done <- err
	}
}

func (s *FileSink) persist(batch []*request) error {
	if s.repair {
		// Drop a partial batch left by an earlier failure so the file stays
		// a sequence of whole lines, each of which was acknowledged.
		if err := s.f.Truncate(s.size); err != nil {
			return fmt.Errorf("truncate partial tail: %w", err)
		}
		s.repair = false
	}
	buf := s.buf[:0]
	if s.needNewline {
		buf = append(buf, '\n')
	}
	for _, r := range batch {
		buf = append(buf, r.line...)
	}
	if cap(buf) <= 1<<20 { // keep a modest buffer for reuse
		s.buf = buf
	} else {
		s.buf = nil
	}
	n, err := s.f.Write(buf)
	if err != nil {
		s.markTorn(n, len(buf))
		return fmt.Errorf("write: %w", err)
	}
	s.syncs.Add(1)
	if err := s.f.Sync(); err != nil {
		s.markTorn(n, len(buf))
		return fmt.Errorf("fsync: %w", err)
	}
	s.size += int64(n)
	s.needNewline = false
	return nil
}

// markTorn records that n of total bytes of a failed batch may be in the file.
func (s *FileSink) markTorn(n, total int) {
	switch {
	case s.regular:
		// Unsynced bytes may or may not survive; truncate them either way.
		s.repair = true
	case n > 0 && n < total:
		s.needNewline = true
	}
}

var _ Sink = (*FileSink)(nil)
