package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"time"
)

// Exporter ships a batch of audit lines to a secondary destination (a SIEM).
// Each line is exactly one line of the primary trail as made durable (the
// chained bytes, seq and prev included, without the trailing '\n'), so a copy
// can be verified against the chain: LineHash(line) is the next line's prev.
// Checkpoint lines are shipped too.
//
// Export returns nil only when the destination accepted the whole batch; on
// an error the whole batch is retried later, so a destination may see a line
// more than once (deduplicate by seq). Export must honour ctx.
type Exporter interface {
	Export(ctx context.Context, lines [][]byte) error
}

// Defaults for SecondaryOptions.
const (
	DefaultSecondaryMaxBuffer     = 64 << 20
	DefaultSecondaryMemLines      = 1024
	DefaultSecondaryMaxBatch      = 500
	DefaultSecondaryMaxBatchBytes = 1 << 20
	DefaultSecondaryExportTimeout = 10 * time.Second
	DefaultSecondaryMinBackoff    = 200 * time.Millisecond
	DefaultSecondaryMaxBackoff    = 30 * time.Second
)

// ErrNotFlushed is returned (wrapped) by Secondary.Close when lines were
// left undelivered; those still buffered are on disk and are sent after the
// next start.
var ErrNotFlushed = errors.New("audit: secondary not flushed")

// SecondaryOptions configure NewSecondary.
type SecondaryOptions struct {
	// Name identifies the secondary in logs and names its disk buffer
	// "<Dir>/<Name>.spool". Letters, digits, '.', '_' and '-'. Required.
	Name string
	// Dir holds the disk buffer (created 0700; the file is 0600). Required.
	Dir string
	// MaxBufferBytes bounds the disk buffer; when full the oldest lines are
	// dropped and counted. Zero means DefaultSecondaryMaxBuffer (64 MiB).
	MaxBufferBytes int64
	// MemLines is the in-memory queue length past which lines spill to disk
	// (they also spill whenever the exporter is failing). If the disk
	// cannot keep up, memory holds at most 4×MemLines and then drops its
	// oldest. Zero means DefaultSecondaryMemLines.
	MemLines int
	// MaxBatch and MaxBatchBytes bound one Export call.
	MaxBatch      int
	MaxBatchBytes int
	// ExportTimeout bounds one Export attempt.
	ExportTimeout time.Duration
	// MinBackoff and MaxBackoff bound the (doubling, jittered) wait between
	// failed attempts.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives failures, recoveries and drop warnings (never line
	// contents or credentials). Nil means slog.Default().
	Logger *slog.Logger
	// OnDrop, if set, is called from the Secondary's own goroutine (never
	// from Offer) with the number of newly dropped lines and the total, in
	// addition to the warning log, for instance to write an audit event.
	OnDrop func(newly, total uint64)
}

var secondaryName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Secondary copies the primary trail to an Exporter without ever holding up
// the primary: Offer only appends to memory. Its goroutines export in
// batches, in order, retrying with backoff; while the exporter fails (or
// memory fills) lines spill to a bounded disk buffer, which is drained first
// once the exporter recovers. When the buffer bound is hit the oldest lines
// are dropped and counted (Stats, a warning log, OnDrop).
//
// Delivery is at least once, in trail order, for lines that stay within the
// bound. A crash loses the in-memory queue (the disk buffer survives and is
// resent on the next start); the primary trail always holds everything.
type Secondary struct {
	name string
	exp  Exporter
	log  *slog.Logger
	opts SecondaryOptions

	// spMu serialises the disk buffer and the hand-over of lines between
	// memory and disk. Lock order: spMu, then mu. Offer takes only mu.
	spMu     sync.Mutex
	sp       *spool // nil once closed
	leftover [][]byte

	mu     sync.Mutex // guards mem and closed; never held during I/O
	mem    [][]byte
	closed bool

	failing   atomic.Bool
	exported  atomic.Uint64
	dropped   atomic.Uint64
	reported  uint64 // drops already logged; spiller-owned
	memLen    atomic.Int64
	inflight  atomic.Int64
	spoolLen  atomic.Int64
	memLines  int
	wakeExp   chan struct{}
	wakeSpill chan struct{}
	stop      chan struct{} // closed by Close
	runCtx    context.Context
	cancel    context.CancelFunc
	expDone   chan struct{}
	spillDone chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// NewSecondary opens the disk buffer (resending any backlog left there by an
// earlier run) and starts the export goroutines.
func NewSecondary(exp Exporter, opts SecondaryOptions) (*Secondary, error) {
	if exp == nil {
		return nil, errors.New("audit: secondary without exporter")
	}
	if !secondaryName.MatchString(opts.Name) {
		return nil, fmt.Errorf("audit: secondary name %q: use 1-64 letters, digits, '.', '_' or '-'", opts.Name)
	}
	if opts.Dir == "" {
		return nil, fmt.Errorf("audit: secondary %s: empty buffer directory", opts.Name)
	}
	setDefault(&opts.MaxBufferBytes, DefaultSecondaryMaxBuffer)
	setDefault(&opts.MemLines, DefaultSecondaryMemLines)
	setDefault(&opts.MaxBatch, DefaultSecondaryMaxBatch)
	setDefault(&opts.MaxBatchBytes, DefaultSecondaryMaxBatchBytes)
	setDefault(&opts.ExportTimeout, DefaultSecondaryExportTimeout)
	setDefault(&opts.MinBackoff, DefaultSecondaryMinBackoff)
	setDefault(&opts.MaxBackoff, DefaultSecondaryMaxBackoff)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	sp, dropped, err := openSpool(filepath.Join(opts.Dir, opts.Name+".spool"), opts.MaxBufferBytes)
	if err != nil {
		return nil, fmt.Errorf("audit: secondary %s: %w", opts.Name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Secondary{
		name:      opts.Name,
		exp:       exp,
		log:       opts.Logger.With("secondary", opts.Name),
		opts:      opts,
		sp:        sp,
		memLines:  opts.MemLines,
		wakeExp:   make(chan struct{}, 1),
		wakeSpill: make(chan struct{}, 1),
		stop:      make(chan struct{}),
		runCtx:    ctx,
		cancel:    cancel,
		expDone:   make(chan struct{}),
		spillDone: make(chan struct{}),
	}
	s.spoolLen.Store(int64(sp.lines))
	s.dropped.Add(uint64(dropped))
	if sp.lines > 0 {
		s.log.Info("audit: secondary resends its disk backlog", "lines", sp.lines)
	}
	go s.exportLoop()
	go s.spillLoop()
	return s, nil
}

func setDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Offer queues a copy of line (one durable line of the primary trail; a
// trailing '\n' is removed) for export. It never blocks on the exporter or
// the disk: it appends to memory and wakes the goroutines. After Close, or if
// memory is full because the disk buffer cannot keep up, the line (the
// oldest in memory) is dropped and counted.
func (s *Secondary) Offer(line []byte) {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	if len(line) == 0 {
		return
	}
	cp := bytes.Clone(line)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.dropped.Add(1)
		return
	}
	s.mem = append(s.mem, cp)
	if over := len(s.mem) - 4*s.memLines; over > 0 {
		clear(s.mem[:over])
		s.mem = s.mem[over:]
		s.dropped.Add(uint64(over))
	}
	n := len(s.mem)
	s.memLen.Store(int64(n))
	s.mu.Unlock()
	signal(s.wakeExp)
	if n >= s.memLines || s.failing.Load() {
		signal(s.wakeSpill)
	}
}

// offerLines feeds each line of buf (a durable batch as written, possibly
// starting with a '\n' that ends a torn line) to every secondary.
func offerLines(secs []*Secondary, buf []byte) {
	for len(buf) > 0 {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			i = len(buf)
		}
		if i > 0 {
			for _, s := range secs {
				s.Offer(buf[:i])
			}
		}
		buf = buf[min(i+1, len(buf)):]
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Stats reports lines exported, lines buffered (memory, in flight and on
// disk) and lines dropped since NewSecondary.
func (s *Secondary) Stats() (exported, buffered, dropped uint64) {
	b := s.memLen.Load() + s.inflight.Load() + s.spoolLen.Load()
	return s.exported.Load(), uint64(max(b, 0)), s.dropped.Load()
}

// spillLoop moves memory to disk when the exporter fails or memory fills,
// and reports drops.
func (s *Secondary) spillLoop() {
	defer close(s.spillDone)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			s.reportDrops()
			return
		case <-s.wakeSpill:
		case <-tick.C:
		}
		s.spill(false)
		s.reportDrops()
	}
}

// spill moves the memory queue to the disk buffer if the exporter is
// failing or memory is at its mark (or force).
func (s *Secondary) spill(force bool) {
	s.spMu.Lock()
	defer s.spMu.Unlock()
	if s.sp == nil {
		return
	}
	s.mu.Lock()
	if len(s.mem) == 0 || !(force || s.failing.Load() || len(s.mem) >= s.memLines) {
		s.mu.Unlock()
		return
	}
	lines := s.mem
	s.mem = nil
	s.memLen.Store(0)
	s.mu.Unlock()
	s.spoolAppend(lines)
}

// spoolAppend writes lines to disk; spMu held.
func (s *Secondary) spoolAppend(lines [][]byte) {
	d, err := s.sp.append(lines)
	if err != nil {
		s.log.Error("audit: secondary could not buffer lines to disk; dropped", "lines", len(lines)-d, "err", err)
		d = len(lines)
	}
	s.dropped.Add(uint64(d))
	s.spoolLen.Store(int64(s.sp.lines))
}

func (s *Secondary) reportDrops() {
	total := s.dropped.Load()
	if total == s.reported {
		return
	}
	newly := total - s.reported
	s.reported = total
	s.log.Warn("audit: secondary dropped audit lines (buffer bound reached); the primary trail still holds them",
		"dropped", newly, "dropped_total", total, "max_buffer_bytes", s.opts.MaxBufferBytes)
	if s.opts.OnDrop != nil {
		s.opts.OnDrop(newly, total)
	}
}

// next takes the oldest batch: from disk while it holds lines, else from
// memory. It returns nil when there is nothing (or the spool is closed).
func (s *Secondary) next() [][]byte {
	s.spMu.Lock()
	defer s.spMu.Unlock()
	if s.sp == nil {
		return nil
	}
	if s.sp.lines > 0 {
		lines, err := s.sp.read(s.opts.MaxBatch, int64(s.opts.MaxBatchBytes))
		if err != nil {
			// A damaged buffer: give up on it rather than loop on it.
			s.log.Error("audit: secondary disk buffer unreadable; discarding it", "lines", s.sp.lines, "err", err)
			s.dropped.Add(uint64(s.sp.lines))
			s.sp.off = s.sp.end
			_ = s.sp.resetIfEmpty()
		}
		s.spoolLen.Store(int64(s.sp.lines))
		if len(lines) > 0 {
			s.inflight.Store(int64(len(lines)))
			return lines
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, size := 0, 0
	for n < len(s.mem) && n < s.opts.MaxBatch && (n == 0 || size+len(s.mem[n]) <= s.opts.MaxBatchBytes) {
		size += len(s.mem[n])
		n++
	}
	if n == 0 {
		return nil
	}
	lines := s.mem[:n:n]
	s.mem = s.mem[n:]
	s.memLen.Store(int64(len(s.mem)))
	s.inflight.Store(int64(n))
	return lines
}

// exportLoop sends batches in order, retrying each until it is accepted.
func (s *Secondary) exportLoop() {
	defer close(s.expDone)
	backoff := s.opts.MinBackoff
	for {
		batch := s.next()
		if batch == nil {
			select {
			case <-s.wakeExp:
				continue
			case <-s.stop:
				if batch = s.next(); batch == nil {
					return
				}
			}
		}
		for {
			ctx, cancel := context.WithTimeout(s.runCtx, s.opts.ExportTimeout)
			err := s.exp.Export(ctx, batch)
			cancel()
			if err == nil {
				s.exported.Add(uint64(len(batch)))
				s.inflight.Store(0)
				if s.failing.Swap(false) {
					s.log.Info("audit: secondary recovered; sending the disk buffer")
				}
				backoff = s.opts.MinBackoff
				break
			}
			if !s.failing.Swap(true) {
				s.log.Warn("audit: secondary export failing; buffering to disk", "err", err)
				signal(s.wakeSpill)
			}
			wait := backoff/2 + rand.N(backoff/2+1)
			backoff = min(2*backoff, s.opts.MaxBackoff)
			select {
			case <-time.After(wait):
			case <-s.runCtx.Done():
				s.spMu.Lock()
				s.leftover = batch
				s.spMu.Unlock()
				return
			}
		}
	}
}

// Close stops accepting lines and delivers what it can until ctx ends. Lines
// still undelivered then are written to the disk buffer (oldest first,
// within the bound) to be sent after the next start, and Close returns an
// error wrapping ErrNotFlushed and ctx's error. Lines held by an Export call
// that ignores cancellation are dropped and counted. Safe to call again.
func (s *Secondary) Close(ctx context.Context) error {
	s.closeOnce.Do(func() { s.closeErr = s.close(ctx) })
	return s.closeErr
}

func (s *Secondary) close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.spillDone
	exited := true
	select {
	case <-s.expDone:
	case <-ctx.Done():
		s.cancel()
		select {
		case <-s.expDone:
		case <-time.After(time.Second): // an Export that ignores ctx
			exited = false
		}
	}
	s.cancel()

	s.spMu.Lock()
	defer s.spMu.Unlock()
	if !exited {
		n := s.inflight.Swap(0)
		s.dropped.Add(uint64(n))
		s.log.Error("audit: secondary export did not return; its batch is lost", "lines", n)
	}
	s.mu.Lock()
	rest := s.mem
	s.mem = nil
	s.memLen.Store(0)
	s.mu.Unlock()
	left := len(rest) + len(s.leftover) + s.sp.lines
	if len(rest) > 0 {
		s.spoolAppend(rest)
	}
	if len(s.leftover) > 0 {
		d, err := s.sp.prepend(s.leftover)
		if err != nil {
			d = len(s.leftover)
			s.log.Error("audit: secondary could not buffer its last batch", "err", err)
		}
		s.dropped.Add(uint64(d))
		s.inflight.Store(0)
		s.leftover = nil
	}
	s.spoolLen.Store(int64(s.sp.lines))
	s.reportDrops()
	err := s.sp.close()
	s.sp = nil
	if err != nil {
		return fmt.Errorf("audit: secondary %s: close buffer: %w", s.name, err)
	}
	if left > 0 || !exited {
		return fmt.Errorf("%w: %s: %d line(s) left in its disk buffer: %w", ErrNotFlushed, s.name, left, ctx.Err())
	}
	return nil
}
