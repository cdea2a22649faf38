package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func openTemp(t *testing.T, opts FileOptions) (*FileSink, string) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	path := filepath.Join(t.TempDir(), "data", "audit.log")
	s, err := OpenFile(path, opts)
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, path
}

// readEvents parses path strictly: every line must be a whole event.
func readEvents(t *testing.T, path string) []Event {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read log: %v", err)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Fatalf("log does not end with a newline: %q", tail(data))
	}
	var evs []Event
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		var e Event
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("bad line %q: %v", sc.Text(), err)
		}
		evs = append(evs, e)
	}
	return evs
}

func tail(b []byte) []byte {
	if len(b) > 80 {
		return b[len(b)-80:]
	}
	return b
}

func requestIDs(evs []Event) []string {
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.RequestID
	}
	return ids
}

func TestRoundTripJSONLines(t *testing.T) {
	s, path := openTemp(t, FileOptions{})
	h := NewHasher([]byte("round-trip-key-0123456789abcdef!"))
	when := time.Date(2026, 3, 4, 5, 6, 7, 890, time.FixedZone("X", 3600))
	full := &Event{
		Time: when, Type: "submit", RequestID: "req-1", Agent: "agent-a", Role: "ci",
		AuthMethod: "approle", RemoteAddr: "127.0.0.1:5555", Path: "/v1/jobs?a=1&b=<2>",
		Action: "submit", Provider: "ionq", Device: "qpu.aria-1", Shots: 1000,
		Decision: DecisionAllow, Policies: []string{"p1", "p2"}, Reason: "ok <&>",
		Accessor: "acc-1", JTI: "jti-1", JobID: "job-1", Status: 201, Error: "",
		Owner: "team-q", EstimatedCostUSD: USD(0), ActualCostUSD: USD(12.5), ApprovalID: "apr-1",
		Version: 7,               // overwritten with SchemaVersion
		Seq:     99, Prev: "f00", // chain fields are the writer's, not the caller's
	}
	h.Add(full, "job_token", "qbj_raw-secret")
	minimal := &Event{Type: "login"}
	for _, e := range []*Event{full, minimal} {
		if err := s.Write(t.Context(), e); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	if full.Version != 7 || full.Seq != 99 || !minimal.Time.IsZero() {
		t.Errorf("Write modified the caller's event")
	}
	raw, _ := os.ReadFile(path)
	if !bytes.HasPrefix(raw, []byte(`{"seq":1,"prev":"`+ZeroHash+`","time":`)) {
		t.Errorf("line does not start with the chain fields: %.120s", raw)
	}
	if !bytes.Contains(raw, []byte(`"estimated_cost_usd":0,"actual_cost_usd":12.5,`)) {
		t.Errorf("a zero estimate must still be recorded: %s", raw)
	}
	if !bytes.Contains(raw, []byte(`"path":"/v1/jobs?a=1&b=<2>"`)) {
		t.Errorf("HTML characters were escaped: %s", raw)
	}
	if bytes.Contains(raw, []byte("qbj_raw-secret")) {
		t.Errorf("raw secret on disk")
	}
	evs := readEvents(t, path)
	if len(evs) != 2 {
		t.Fatalf("got %d events, want 2", len(evs))
	}
	want := *full
	want.Time = when.UTC()
	want.Version = SchemaVersion
	want.Seq, want.Prev = 1, ZeroHash
	if !evs[0].Time.Equal(when) || evs[0].Time.Location() != time.UTC {
		t.Errorf("time %v, want %v in UTC", evs[0].Time, when)
	}
	evs[0].Time = want.Time
	if !reflect.DeepEqual(evs[0], want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", evs[0], want)
	}
	if evs[1].Type != "login" || evs[1].Version != SchemaVersion || time.Since(evs[1].Time) > time.Minute ||
		evs[1].Seq != 2 || evs[1].Prev != LineHash(bytes.SplitN(raw, []byte("\n"), 2)[0]) {
		t.Errorf("minimal event: %+v", evs[1])
	}
	if ev, sy := s.Stats(); ev != 2 || sy != 2 {
		t.Errorf("Stats = %d events, %d syncs; want 2, 2", ev, sy)
	}
}

func TestInvalidEventsRefused(t *testing.T) {
	s, path := openTemp(t, FileOptions{})
	const secret = "qbt_leaky-secret-value"
	cases := map[string]*Event{
		"nil":        nil,
		"no type":    {Agent: "a"},
		"raw secret": {Type: "issue", Hashed: map[string]string{"token": secret}},
		"bad digest": {Type: "issue", Hashed: map[string]string{"token": HashPrefix + "zz"}},
		"checkpoint": {Type: TypeCheckpoint}, // only the sink may write one
	}
	for name, e := range cases {
		err := s.Write(t.Context(), e)
		if !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("%s: err = %v, want ErrInvalidEvent", name, err)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error leaks the value: %v", name, err)
		}
	}
	if evs := readEvents(t, path); len(evs) != 0 {
		t.Errorf("invalid events were written: %+v", evs)
	}
}

// slowSyncFile gives fsync a disk-like latency, so that grouping is
// observable even when TMPDIR is a tmpfs whose fsync costs nothing (there,
// batches stay small because the writer is never the bottleneck).
type slowSyncFile struct{ file }

func (f slowSyncFile) Sync() error {
	time.Sleep(time.Millisecond)
	return f.file.Sync()
}

func TestConcurrentWritersGroupCommit(t *testing.T) {
	s, path := openTemp(t, FileOptions{hooks: &testHooks{wrap: func(f file) file { return slowSyncFile{f} }}})
	const n = 1000
	start := make(chan struct{})
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs <- s.Write(context.Background(), &Event{Type: "decision", RequestID: fmt.Sprintf("r%04d", i)})
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	// Every Write has returned, so every event must already be in the file.
	seen := map[string]int{}
	for _, e := range readEvents(t, path) {
		seen[e.RequestID]++
	}
	for i := range n {
		if id := fmt.Sprintf("r%04d", i); seen[id] != 1 {
			t.Errorf("%s present %d times", id, seen[id])
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct ids, want %d", len(seen), n)
	}
	events, syncs := s.Stats()
	t.Logf("%d events, %d fsyncs", events, syncs)
	if events != n {
		t.Errorf("events = %d, want %d", events, n)
	}
	if syncs == 0 || syncs > n/4 {
		t.Errorf("syncs = %d for %d events; group commit is not grouping", syncs, n)
	}
}

// gate blocks the writer inside its first batch until released.
type gate struct {
	entered chan int
	release chan struct{}
	once    sync.Once
	sizes   []int // batch sizes; written by the writer, read after Close
}

func newGate() *gate {
	return &gate{entered: make(chan int, 1), release: make(chan struct{})}
}

func (g *gate) hook(n int) {
	g.sizes = append(g.sizes, n)
	g.once.Do(func() {
		g.entered <- n
		<-g.release
	})
}

func waitQueued(t *testing.T, s *FileSink, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(s.reqs) < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d requests queued", len(s.reqs), n)
		}
		runtime.Gosched()
		time.Sleep(100 * time.Microsecond)
	}
}

func writeAsync(s *FileSink, ctx context.Context, id string) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- s.Write(ctx, &Event{Type: "issue", RequestID: id}) }()
	return ch
}

func TestQueuedWritesShareOneFsync(t *testing.T) {
	g := newGate()
	s, path := openTemp(t, FileOptions{MaxBatch: 64, hooks: &testHooks{beforeWrite: g.hook}})
	first := writeAsync(s, t.Context(), "first")
	<-g.entered
	var waits []<-chan error
	for i := range 64 {
		waits = append(waits, writeAsync(s, t.Context(), fmt.Sprint("q", i)))
	}
	waitQueued(t, s, 64)
	close(g.release)
	for _, w := range append(waits, first) {
		if err := <-w; err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	if ev, sy := s.Stats(); ev != 65 || sy != 2 {
		t.Errorf("Stats = %d events, %d syncs; want 65 events in 2 syncs", ev, sy)
	}
	if got := len(readEvents(t, path)); got != 65 {
		t.Errorf("%d events in file, want 65", got)
	}
}

func TestMaxBatchBoundsBatch(t *testing.T) {
	g := newGate()
	s, path := openTemp(t, FileOptions{MaxBatch: 8, hooks: &testHooks{beforeWrite: g.hook}})
	first := writeAsync(s, t.Context(), "first")
	<-g.entered
	var waits []<-chan error
	for i := range 40 {
		waits = append(waits, writeAsync(s, t.Context(), fmt.Sprint("q", i)))
	}
	waitQueued(t, s, 8)
	close(g.release)
	for _, w := range append(waits, first) {
		if err := <-w; err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, n := range g.sizes {
		if n > 8 {
			t.Errorf("batch of %d exceeds MaxBatch 8", n)
		}
		total += n
	}
	if _, sy := s.Stats(); total != 41 || sy < 6 {
		t.Errorf("batches %v (%d syncs), want 41 events in at least 6 batches", g.sizes, sy)
	}
	if got := len(readEvents(t, path)); got != 41 {
		t.Errorf("%d events in file, want 41", got)
	}
}

func TestFailClosedOnDevFull(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Fatalf("this package's tests assume Linux /dev/full")
	}
	var logBuf syncBuffer
	s, err := OpenFile("/dev/full", FileOptions{AllowNonRegular: true, Logger: slog.New(slog.NewTextHandler(&logBuf, nil))})
	if err != nil {
		t.Fatalf("OpenFile(/dev/full): %v", err)
	}
	defer s.Close()
	h := NewHasher([]byte("full-key-0123456789abcdef0123456"))
	const secret = "qbt_never-in-errors-or-logs"
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			e := &Event{Type: "issue", RequestID: fmt.Sprint("r", i), Reason: "reason-text"}
			h.Add(e, "token", secret)
			err := s.Write(t.Context(), e)
			if !errors.Is(err, ErrUnavailable) || !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("Write to /dev/full: %v, want ErrUnavailable wrapping ENOSPC", err)
			}
			if err != nil && (strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), e.Hashed["token"])) {
				t.Errorf("error leaks the event: %v", err)
			}
		})
	}
	wg.Wait()
	if ev, _ := s.Stats(); ev != 0 {
		t.Errorf("Stats reports %d durable events on /dev/full", ev)
	}
	logs := logBuf.String()
	if !strings.Contains(logs, "not recorded") {
		t.Errorf("failure not logged: %q", logs)
	}
	if strings.Contains(logs, secret) || strings.Contains(logs, "reason-text") || strings.Contains(logs, HashPrefix) {
		t.Errorf("log carries event content: %q", logs)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestRefusesNonRegularFileByDefault(t *testing.T) {
	if _, err := OpenFile("/dev/null", FileOptions{Logger: quietLogger()}); err == nil {
		t.Fatal("OpenFile(/dev/null) succeeded; audit could be silently discarded")
	}
	link := filepath.Join(t.TempDir(), "audit.log")
	if err := os.Symlink("/dev/null", link); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFile(link, FileOptions{Logger: quietLogger()}); err == nil {
		t.Fatal("OpenFile(symlink to /dev/null) succeeded")
	}
}

// faultyFile is the real log file with injected failures.
type faultyFile struct {
	file
	failWrites    atomic.Int32 // next N writes write half the bytes, then fail
	failSyncs     atomic.Int32 // next N fsyncs fail
	failTruncates atomic.Int32 // next N truncates fail
}

func (f *faultyFile) Write(p []byte) (int, error) {
	if f.failWrites.Add(-1) >= 0 {
		n, _ := f.file.Write(p[:len(p)/2])
		return n, syscall.EIO
	}
	return f.file.Write(p)
}

func (f *faultyFile) Sync() error {
	if f.failSyncs.Add(-1) >= 0 {
		return syscall.EIO
	}
	return f.file.Sync()
}

func (f *faultyFile) Truncate(size int64) error {
	if f.failTruncates.Add(-1) >= 0 {
		return syscall.EIO
	}
	return f.file.Truncate(size)
}

func TestFailureThenRecovery(t *testing.T) {
	ff := &faultyFile{}
	s, path := openTemp(t, FileOptions{hooks: &testHooks{wrap: func(f file) file { ff.file = f; return ff }}})
	write := func(id string) error { return s.Write(t.Context(), &Event{Type: "redeem", RequestID: id}) }

	if err := write("ok-1"); err != nil {
		t.Fatal(err)
	}
	ff.failWrites.Store(1)
	if err := write("torn-write"); !errors.Is(err, ErrUnavailable) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("torn write: %v, want ErrUnavailable wrapping EIO", err)
	}
	ff.failSyncs.Store(1)
	if err := write("failed-fsync"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("failed fsync: %v, want ErrUnavailable", err)
	}
	ff.failTruncates.Store(1)
	if err := write("repair-fails"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("failed repair: %v, want ErrUnavailable", err)
	}
	if err := write("ok-2"); err != nil {
		t.Fatalf("sink did not recover: %v", err)
	}
	// Only acknowledged events are in the file, and every line is whole.
	if got := requestIDs(readEvents(t, path)); !reflect.DeepEqual(got, []string{"ok-1", "ok-2"}) {
		t.Errorf("file holds %v, want [ok-1 ok-2]", got)
	}
	if ev, _ := s.Stats(); ev != 2 {
		t.Errorf("events = %d, want 2", ev)
	}
}

func TestTornTailFromEarlierCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte(`{"type":"login","v":1}`+"\n"+`{"type":"iss`), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := OpenFile(path, FileOptions{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(t.Context(), &Event{Type: "admin", RequestID: "after"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 3 || lines[1] != `{"type":"iss` {
		t.Fatalf("torn line not kept on its own line: %q", lines)
	}
	var e Event
	if err := json.Unmarshal([]byte(lines[2]), &e); err != nil || e.RequestID != "after" {
		t.Errorf("new event not on a clean line: %q (%v)", lines[2], err)
	}
}

func TestContextCancelledBeforeQueue(t *testing.T) {
	s, path := openTemp(t, FileOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Write(ctx, &Event{Type: "login"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Write with cancelled ctx: %v", err)
	}
	if evs := readEvents(t, path); len(evs) != 0 {
		t.Errorf("cancelled event written: %+v", evs)
	}
}

func TestContextCancelledWhileQueued(t *testing.T) {
	g := newGate()
	s, path := openTemp(t, FileOptions{hooks: &testHooks{beforeWrite: g.hook}})
	first := writeAsync(s, t.Context(), "first")
	<-g.entered
	ctx, cancel := context.WithCancel(t.Context())
	queued := writeAsync(s, ctx, "cancelled")
	waitQueued(t, s, 1)
	cancel()
	if err := <-queued; !errors.Is(err, context.Canceled) {
		t.Fatalf("queued Write after cancel: %v, want context.Canceled", err)
	}
	close(g.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := s.Write(t.Context(), &Event{Type: "issue", RequestID: "last"}); err != nil {
		t.Fatal(err)
	}
	if got := requestIDs(readEvents(t, path)); !reflect.DeepEqual(got, []string{"first", "last"}) {
		t.Errorf("file holds %v, want [first last]", got)
	}
}

func TestContextCancelledAfterClaimStillDurable(t *testing.T) {
	g := newGate()
	s, path := openTemp(t, FileOptions{hooks: &testHooks{beforeWrite: g.hook}})
	ctx, cancel := context.WithCancel(t.Context())
	w := writeAsync(s, ctx, "claimed")
	<-g.entered // the writer holds the event
	cancel()
	time.Sleep(10 * time.Millisecond) // let Write observe the cancellation
	close(g.release)
	if err := <-w; err != nil {
		t.Fatalf("claimed Write returned %v; it was written, so want nil", err)
	}
	if got := requestIDs(readEvents(t, path)); !reflect.DeepEqual(got, []string{"claimed"}) {
		t.Errorf("file holds %v", got)
	}
}

func TestCloseFlushesThenRefuses(t *testing.T) {
	g := newGate()
	s, path := openTemp(t, FileOptions{hooks: &testHooks{beforeWrite: g.hook}})
	waits := []<-chan error{writeAsync(s, t.Context(), "a")}
	<-g.entered
	waits = append(waits, writeAsync(s, t.Context(), "b"), writeAsync(s, t.Context(), "c"))
	waitQueued(t, s, 2)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	time.Sleep(10 * time.Millisecond)
	close(g.release)
	for _, w := range waits {
		if err := <-w; err != nil {
			t.Fatalf("Write queued before Close: %v", err)
		}
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := len(readEvents(t, path)); got != 3 {
		t.Errorf("%d events after Close, want 3", got)
	}
	if err := s.Write(t.Context(), &Event{Type: "login"}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Write after Close: %v, want ErrUnavailable", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if got := len(readEvents(t, path)); got != 3 {
		t.Errorf("%d events after refused Write, want 3", got)
	}
}

func TestPermissionsAndLock(t *testing.T) {
	s, path := openTemp(t, FileOptions{})
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	if _, err := OpenFile(path, FileOptions{Logger: quietLogger()}); !errors.Is(err, ErrInUse) {
		t.Fatalf("second OpenFile on a held log: %v, want ErrInUse", err)
	}
	if err := s.Write(t.Context(), &Event{Type: "login"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenFile(path, FileOptions{Logger: quietLogger()})
	if err != nil {
		t.Fatalf("reopen after Close: %v", err)
	}
	defer s2.Close()
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("loose mode not tightened: %v", fi.Mode().Perm())
	}
	if err := s2.Write(t.Context(), &Event{Type: "logout"}); err != nil {
		t.Fatal(err)
	}
	if got := len(readEvents(t, path)); got != 2 {
		t.Errorf("%d events after reopen, want 2 (appended)", got)
	}
}

var _ io.Writer = (*syncBuffer)(nil)
