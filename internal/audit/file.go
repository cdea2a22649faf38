package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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

	// Signer, when set, makes the sink append a signed checkpoint line
	// every CheckpointEvery events or CheckpointInterval after the first
	// event not yet covered, whichever comes first, before a rotation, and
	// on Close. Nil means no checkpoints (the hash chain is still written).
	Signer ed25519.PrivateKey
	// CheckpointEvery is the event count that forces a checkpoint. Zero
	// means DefaultCheckpointEvery.
	CheckpointEvery int
	// CheckpointInterval is how long an event may wait for a checkpoint.
	// Zero means DefaultCheckpointInterval.
	CheckpointInterval time.Duration
	// MaxBytes rotates the file once a batch would take it past this size:
	// the batch ends with a checkpoint, the file is renamed to
	// "<stem>-<first seq>-<last seq><ext>" (seqs zero-padded to 12 digits)
	// and a fresh file continues the chain. Zero means never rotate.
	// Ignored for non-regular files.
	MaxBytes int64
	// Secondaries receive every line (events and checkpoints) once it is
	// durable, after each batch, through Secondary.Offer, which never
	// blocks: the primary's latency does not depend on them. The caller
	// closes them after closing the sink (so they get the final checkpoint).
	Secondaries []*Secondary

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
	chain       chainState // advanced only by a durable batch

	signer     ed25519.PrivateKey
	keyID      string
	cpEvery    uint64
	cpInterval time.Duration
	maxBytes   int64
	secs       []*Secondary

	headMu   sync.Mutex // guards headSeq and headHash for Head
	headSeq  uint64
	headHash string

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
		path:       path,
		maxBatch:   maxBatch,
		log:        logger,
		hooks:      opts.hooks,
		reqs:       make(chan *request, maxBatch),
		done:       make(chan struct{}),
		cpEvery:    DefaultCheckpointEvery,
		cpInterval: DefaultCheckpointInterval,
		maxBytes:   opts.MaxBytes,
		secs:       append([]*Secondary(nil), opts.Secondaries...),
		chain:      chainState{head: ZeroHash},
	}
	if opts.Signer != nil {
		if len(opts.Signer) != ed25519.PrivateKeySize {
			_ = f.Close()
			return nil, errors.New("audit: signer is not an Ed25519 private key")
		}
		s.signer = opts.Signer
		s.keyID = KeyID(opts.Signer.Public().(ed25519.PublicKey))
	}
	if opts.CheckpointEvery > 0 {
		s.cpEvery = uint64(opts.CheckpointEvery)
	}
	if opts.CheckpointInterval > 0 {
		s.cpInterval = opts.CheckpointInterval
	}
	if err := s.prepare(f, created, opts.AllowNonRegular); err != nil {
		_ = f.Close()
		return nil, err
	}
	if s.regular {
		st, err := recoverChain(f, s.size, s.signer != nil)
		if err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("audit: continue hash chain: %w", err)
		}
		// Events left uncovered by a crash get a checkpoint promptly.
		st.due = time.Now().Add(s.cpInterval)
		s.chain = st
	}
	s.headSeq, s.headHash = s.chain.seq, s.chain.head
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
// Checkpoint lines are not counted as events.
func (s *FileSink) Stats() (events, syncs uint64) {
	return s.events.Load(), s.syncs.Load()
}

// Head reports the seq and hash of the last durable line of the trail (0 and
// ZeroHash for an empty one). A verifier given seq as its minimum detects a
// trail cut back to before it.
func (s *FileSink) Head() (seq uint64, hash string) {
	s.headMu.Lock()
	defer s.headMu.Unlock()
	return s.headSeq, s.headHash
}

// run is the single writer goroutine.
func (s *FileSink) run() {
	defer close(s.done)
	batch := make([]*request, 0, s.maxBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for open := true; open; {
		var tick <-chan time.Time
		if s.signer != nil && s.chain.pending > 0 {
			timer.Reset(time.Until(s.chain.due))
			tick = timer.C
		}
		var r *request
		var ok bool
		select {
		case r, ok = <-s.reqs:
		case <-tick:
			s.checkpointNow()
			continue
		}
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
	if s.signer != nil && s.chain.pending > 0 {
		if err := s.persist(nil, true); err != nil {
			s.closeErr = fmt.Errorf("%w: final checkpoint: %w", ErrUnavailable, err)
		}
	}
	if s.f != nil {
		if err := s.f.Close(); err != nil && s.closeErr == nil {
			s.closeErr = fmt.Errorf("audit: close log: %w", err)
		}
	}
}

// checkpointNow writes a checkpoint on its own (the interval elapsed with
// no batch to carry it). A failure is logged and retried an interval later;
// the events it would cover are already durable.
func (s *FileSink) checkpointNow() {
	if err := s.persist(nil, true); err != nil {
		s.log.Error("audit: checkpoint not written; will retry", "path", s.path, "err", err)
		s.chain.due = time.Now().Add(s.cpInterval)
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
	err := s.persist(claimed, false)
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

// persist appends the batch's lines, chained, plus a checkpoint when one is
// due (or forced), with one write and one fsync. The chain state advances
// only if both succeed. A rotation due after the batch follows it.
func (s *FileSink) persist(batch []*request, forceCP bool) error {
	if s.f == nil {
		// A rotation renamed the old file but could not create the new one.
		if err := s.openFresh(); err != nil {
			return err
		}
	}
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
	st := s.chain
	now := time.Now()
	for _, r := range batch {
		st.seq++
		start := len(buf)
		buf = appendChained(buf, st.seq, st.head, r.line)
		st.head = LineHash(buf[start : len(buf)-1])
		if st.fileFirst == 0 {
			st.fileFirst = st.seq
		}
	}
	if len(batch) > 0 {
		if st.pending == 0 {
			st.due = now.Add(s.cpInterval)
		}
		st.pending += uint64(len(batch))
	}
	rotate := s.regular && s.maxBytes > 0 && s.size+int64(len(buf)) > s.maxBytes
	if s.signer != nil && st.pending > 0 && (forceCP || rotate || st.pending >= s.cpEvery || !now.Before(st.due)) {
		st.seq++
		line, err := signCheckpoint(s.signer, s.keyID, st.seq, st.head, st.lastCP+1, now)
		if err != nil {
			return err
		}
		start := len(buf)
		buf = append(buf, line...)
		st.head = LineHash(buf[start : len(buf)-1])
		st.lastCP, st.pending = st.seq, 0
		if st.fileFirst == 0 {
			st.fileFirst = st.seq
		}
	}
	if len(buf) == 0 {
		return nil
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
	// A character device (AllowNonRegular: /dev/null for benchmarks) cannot
	// be synced and has nothing to make durable.
	if err := s.f.Sync(); err != nil && (s.regular || !errors.Is(err, syscall.EINVAL)) {
		s.markTorn(n, len(buf))
		return fmt.Errorf("fsync: %w", err)
	}
	s.size += int64(n)
	s.needNewline = false
	s.chain = st
	s.headMu.Lock()
	s.headSeq, s.headHash = st.seq, st.head
	s.headMu.Unlock()
	if len(s.secs) > 0 {
		offerLines(s.secs, buf[:n])
	}
	if rotate {
		if err := s.rotate(); err != nil {
			// The batch is durable; keep appending and try again later.
			s.log.Error("audit: rotation failed", "path", s.path, "err", err)
		}
	}
	return nil
}

// rotate renames the current file after its first and last seq and starts
// a fresh one; the chain state carries over, so the fresh file's first prev
// is the hash of the renamed file's last line.
func (s *FileSink) rotate() error {
	name := rotatedName(s.path, s.chain.fileFirst, s.chain.seq)
	if _, err := os.Lstat(name); err == nil || s.chain.fileFirst == 0 {
		// Never overwrite; fall back to a timestamped name.
		name = strings.TrimSuffix(name, filepath.Ext(name)) + "-" + time.Now().UTC().Format("20060102T150405.000000000Z") + filepath.Ext(s.path)
	}
	if err := os.Rename(s.path, name); err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	old := s.f
	s.f = nil
	if err := old.Close(); err != nil {
		s.log.Warn("audit: close rotated log", "path", name, "err", err)
	}
	return s.openFresh()
}

// openFresh creates, locks and syncs a new empty log at s.path.
func (s *FileSink) openFresh() error {
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create log after rotation: %w", err)
	}
	if err := lockFile(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("lock log after rotation: %w", err)
	}
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		_ = f.Close()
		return err
	}
	s.f = f
	if s.hooks != nil && s.hooks.wrap != nil {
		s.f = s.hooks.wrap(f)
	}
	s.size, s.repair, s.needNewline = 0, false, false
	s.chain.fileFirst = 0
	return nil
}

// rotatedName is path with "-<first>-<last>" before its extension.
func rotatedName(path string, first, last uint64) string {
	ext := filepath.Ext(path)
	return fmt.Sprintf("%s-%012d-%012d%s", strings.TrimSuffix(path, ext), first, last, ext)
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
