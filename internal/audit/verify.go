package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
)

// ErrTampered is wrapped by every [VerifyError]: the trail is not what the
// sink wrote (or not all of it).
var ErrTampered = errors.New("audit trail does not verify")

// VerifyError names the first line at which verification failed.
type VerifyError struct {
	File   string // input name (file path)
	Line   int    // 1-based line number in File
	Reason string
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("%s: %s:%d: %s", ErrTampered, e.File, e.Line, e.Reason)
}

// Unwrap returns ErrTampered.
func (e *VerifyError) Unwrap() error { return ErrTampered }

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// Strict turns the warnings that are not proof of tampering into
	// errors: events after the last checkpoint, a trail that does not
	// start at seq 1 (earlier files missing), an incomplete last line, no
	// lines at all.
	Strict bool
	// MinSeq, when set, is a seq the trail is known to have reached (for
	// example the broker's head, from GET /v1/sys/audit/public-key). A
	// trail that ends before it was cut back: an error.
	MinSeq uint64
	// PreviousKeys are earlier audit signing keys whose checkpoints are
	// also accepted (key rotation).
	PreviousKeys []ed25519.PublicKey
}

// Report summarises a trail that verified.
type Report struct {
	Files             int
	Lines             int
	Events            uint64 // chained lines that are not checkpoints
	Checkpoints       uint64
	FirstSeq, LastSeq uint64
	Head              string // hash of the last line
	KeyID             string // of the public key given
	LastCheckpointSeq uint64
	// Unprotected counts events after the last checkpoint: the chain
	// links them, but no signature covers them yet, so they could have
	// been cut or rewritten.
	Unprotected uint64
	// Warnings are facts that are not proof of tampering, each naming
	// file and line (see VerifyOptions.Strict).
	Warnings []string
}

// Input is one named part of a trail, in order.
type Input struct {
	Name string
	R    io.Reader
}

// VerifyFiles verifies the trail held in paths, oldest first (rotated files
// then the live one), with pub and opts; see [Verify].
func VerifyFiles(ctx context.Context, paths []string, pub ed25519.PublicKey, opts VerifyOptions) (Report, error) {
	inputs := make([]Input, 0, len(paths))
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return Report{}, fmt.Errorf("audit: verify: %w", err)
		}
		defer f.Close()
		inputs = append(inputs, Input{Name: p, R: f})
	}
	return Verify(ctx, pub, opts, inputs...)
}

// Verify checks a trail offline with only the audit public key: every line
// parses; seq rises by exactly one across all inputs; each prev is the hash
// of the line before; each checkpoint's chain_head, coverage, key and
// signature are right. It returns a *VerifyError naming the first bad line,
// or a Report whose Warnings list what is unproven but not wrong.
func Verify(ctx context.Context, pub ed25519.PublicKey, opts VerifyOptions, inputs ...Input) (Report, error) {
	if len(pub) != ed25519.PublicKeySize {
		return Report{}, errors.New("audit: verify: public key is not a 32-byte Ed25519 key")
	}
	v := &verifier{opts: opts, keys: map[string]ed25519.PublicKey{KeyID(pub): pub}, prevHash: ZeroHash}
	for _, k := range opts.PreviousKeys {
		if len(k) == ed25519.PublicKeySize {
			v.keys[KeyID(k)] = k
		}
	}
	v.rep.KeyID = KeyID(pub)
	v.rep.Files = len(inputs)
	src := &lineSource{inputs: inputs}
	for {
		if err := ctx.Err(); err != nil {
			return v.rep, err
		}
		l, err := src.next()
		if err != nil {
			return v.rep, err
		}
		if l == nil {
			break
		}
		if err := v.line(l, src); err != nil {
			return v.rep, err
		}
	}
	return v.rep, v.finish()
}

type loc struct {
	file string
	line int
}

type verifier struct {
	opts VerifyOptions
	keys map[string]ed25519.PublicKey
	rep  Report

	started  bool
	lastSeq  uint64
	prevHash string // hash of the previous line of any kind
	prevLoc  loc
	last     loc // the last line read

	haveCP    bool
	lastCPSeq uint64

	torn     []loc // unparseable lines since the last chained one
	tornWhy  error
	unprotAt loc // first event after the last checkpoint

	file                  string
	fileFirst, fileLast   uint64
	fileLastLine, nInFile int
}

func (v *verifier) fail(at loc, format string, args ...any) error {
	return &VerifyError{File: at.file, Line: at.line, Reason: fmt.Sprintf(format, args...)}
}

func (v *verifier) warn(at loc, format string, args ...any) {
	v.rep.Warnings = append(v.rep.Warnings, fmt.Sprintf("%s:%d: %s", at.file, at.line, fmt.Sprintf(format, args...)))
}

func (v *verifier) line(l *srcLine, src *lineSource) error {
	at := loc{l.file, l.n}
	if l.file != v.file {
		if err := v.endFile(); err != nil {
			return err
		}
		v.file, v.fileFirst, v.fileLast, v.nInFile = l.file, 0, 0, 0
	}
	v.nInFile++
	v.fileLastLine = l.n
	v.last = at
	v.rep.Lines++
	h := LineHash(l.b)
	li, perr := parseLine(l.b)
	if perr != nil {
		if len(v.torn) == 0 {
			v.tornWhy = perr
		}
		v.torn = append(v.torn, at)
		v.prevHash, v.prevLoc = h, at
		return nil
	}
	seq := *li.Seq
	// A run of unparseable lines is acceptable only as crash remnants the
	// writer acknowledged: the next chained line continues the numbering
	// and its prev is the hash of the last of them.
	blameTorn := func(why string) error {
		if len(v.torn) == 0 {
			return nil
		}
		return v.fail(v.torn[0], "not a valid audit line (%v) and not acknowledged by the chain: %s", v.tornWhy, why)
	}
	if !v.started {
		v.started = true
		if len(v.torn) > 0 {
			return v.fail(v.torn[0], "not a chained audit line (%v) before the chain starts (a pre-v2 trail must be moved aside)", v.tornWhy)
		}
		v.rep.FirstSeq = seq
		if seq == 1 {
			if *li.Prev != ZeroHash {
				return v.fail(at, "seq 1 must have prev %s (start of the trail), has %s", ZeroHash[:8]+"…", short(*li.Prev))
			}
		} else {
			if v.opts.Strict {
				return v.fail(at, "trail starts at seq %d, not 1: earlier lines or files are missing", seq)
			}
			v.warn(at, "trail starts at seq %d (prev %s): earlier files not given, so this line's prev is unchecked", seq, short(*li.Prev))
		}
	} else {
		switch {
		case seq == v.lastSeq+1:
		case seq <= v.lastSeq:
			if err := blameTorn(fmt.Sprintf("seq %d does not follow %d", seq, v.lastSeq)); err != nil {
				return err
			}
			return v.fail(at, "seq %d after seq %d: lines reordered or duplicated", seq, v.lastSeq)
		default:
			if err := blameTorn(fmt.Sprintf("seq jumps from %d to %d", v.lastSeq, seq)); err != nil {
				return err
			}
			return v.fail(at, "seq jumps from %d to %d: %d line(s) missing before this one", v.lastSeq, seq, seq-v.lastSeq-1)
		}
		if *li.Prev != v.prevHash {
			if err := blameTorn("the next line's prev is not its hash"); err != nil {
				return err
			}
			// Tell an edited previous line from an edited prev here: an
			// authentic checkpoint here, or a next line whose prev is
			// this line's hash, shows this line is as written.
			if li.Type == TypeCheckpoint {
				if c, err := li.checkpoint(); err == nil && v.keys[c.KeyID] != nil && c.verifySig(v.keys[c.KeyID]) {
					return v.fail(v.prevLoc, "line was modified: its hash does not match the chain_head signed by the checkpoint at %s:%d", at.file, at.line)
				}
			}
			if nx, err := src.peek(); err == nil && nx != nil {
				if nli, err := parseLine(nx.b); err == nil && *nli.Prev == h {
					return v.fail(v.prevLoc, "line was modified: its hash does not match the prev recorded by %s:%d", at.file, at.line)
				}
			}
			return v.fail(at, "prev %s does not match the hash %s of %s:%d", short(*li.Prev), short(v.prevHash), v.prevLoc.file, v.prevLoc.line)
		}
	}
	for _, t := range v.torn {
		v.warn(t, "incomplete line (a write cut short by a crash, never acknowledged); the chain continues past it")
	}
	v.torn = v.torn[:0]

	if li.Type == TypeCheckpoint {
		if err := v.checkpoint(at, &li); err != nil {
			return err
		}
	} else {
		v.rep.Events++
		if v.rep.Unprotected == 0 {
			v.unprotAt = at
		}
		v.rep.Unprotected++
	}
	v.lastSeq, v.prevHash, v.prevLoc = seq, h, at
	v.rep.LastSeq, v.rep.Head = seq, h
	if v.fileFirst == 0 {
		v.fileFirst = seq
	}
	v.fileLast = seq
	return nil
}

func (v *verifier) checkpoint(at loc, li *lineInfo) error {
	c, err := li.checkpoint()
	if err != nil {
		return v.fail(at, "%v", err)
	}
	if c.ChainHead != c.Prev {
		return v.fail(at, "checkpoint chain_head %s is not the hash of the line before it: lines before it were removed or changed", short(c.ChainHead))
	}
	if c.CoversToSeq != c.Seq-1 {
		return v.fail(at, "checkpoint covers_to_seq %d, want %d", c.CoversToSeq, c.Seq-1)
	}
	switch {
	case v.haveCP && c.CoversFromSeq != v.lastCPSeq+1:
		return v.fail(at, "checkpoint covers_from_seq %d, want %d (after the checkpoint at seq %d)", c.CoversFromSeq, v.lastCPSeq+1, v.lastCPSeq)
	case c.CoversFromSeq == 0 || c.CoversFromSeq > c.Seq-1 || (!v.haveCP && c.CoversFromSeq > v.rep.FirstSeq):
		return v.fail(at, "checkpoint covers_from_seq %d is out of range", c.CoversFromSeq)
	}
	pub, ok := v.keys[c.KeyID]
	if !ok {
		return v.fail(at, "checkpoint signed by key %q, not by the given public key %q", c.KeyID, v.rep.KeyID)
	}
	if !c.verifySig(pub) {
		return v.fail(at, "checkpoint signature does not verify with key %q: forged or edited", c.KeyID)
	}
	v.haveCP, v.lastCPSeq = true, c.Seq
	v.rep.Checkpoints++
	v.rep.LastCheckpointSeq = c.Seq
	v.rep.Unprotected = 0
	return nil
}

// rotatedRE matches the names FileSink gives rotated files.
var rotatedRE = regexp.MustCompile(`-(\d{12,})-(\d{12,})\.[A-Za-z0-9]+$`)

// endFile checks that a rotated file holds exactly the seqs its name says.
func (v *verifier) endFile() error {
	if v.file == "" {
		return nil
	}
	m := rotatedRE.FindStringSubmatch(filepath.Base(v.file))
	if m == nil || v.fileFirst == 0 {
		return nil
	}
	first, _ := strconv.ParseUint(m[1], 10, 64)
	last, _ := strconv.ParseUint(m[2], 10, 64)
	if first != v.fileFirst || last != v.fileLast {
		return v.fail(loc{v.file, v.fileLastLine}, "file name says seq %d–%d but it holds %d–%d: lines missing at its end or start", first, last, v.fileFirst, v.fileLast)
	}
	return nil
}

func (v *verifier) finish() error {
	if err := v.endFile(); err != nil {
		return err
	}
	if len(v.torn) > 0 {
		t := v.torn[0]
		if v.opts.Strict || !v.started {
			return v.fail(t, "not a valid audit line (%v), and no chained line follows it", v.tornWhy)
		}
		v.warn(t, "the trail ends with %d incomplete line(s) (%v): a crash mid-write, or a cut", len(v.torn), v.tornWhy)
	}
	if !v.started {
		if v.opts.Strict {
			return v.fail(loc{"(input)", 0}, "no audit lines")
		}
		v.rep.Warnings = append(v.rep.Warnings, "no audit lines")
		return nil
	}
	if v.opts.MinSeq > v.rep.LastSeq {
		return v.fail(v.last, "trail ends at seq %d but reached at least %d: %d line(s) cut from the end", v.rep.LastSeq, v.opts.MinSeq, v.opts.MinSeq-v.rep.LastSeq)
	}
	if v.rep.Unprotected > 0 {
		if v.opts.Strict {
			return v.fail(v.unprotAt, "%d event(s) from here to the end are after the last checkpoint: no signature covers them", v.rep.Unprotected)
		}
		v.warn(v.unprotAt, "%d event(s) from here to the end are after the last checkpoint: chained but not yet signed", v.rep.Unprotected)
	}
	return nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12] + "…"
	}
	return h
}

// srcLine is one line of an input, without its newline.
type srcLine struct {
	file string
	n    int
	b    []byte
}

// lineSource reads lines across inputs in order, with one line of lookahead.
type lineSource struct {
	inputs []Input
	i      int
	r      *bufio.Reader
	n      int
	peeked *srcLine
	hasPk  bool
}

func (s *lineSource) next() (*srcLine, error) {
	if s.hasPk {
		s.hasPk = false
		return s.peeked, nil
	}
	return s.read()
}

func (s *lineSource) peek() (*srcLine, error) {
	if !s.hasPk {
		l, err := s.read()
		if err != nil {
			return nil, err
		}
		s.peeked, s.hasPk = l, true
	}
	return s.peeked, nil
}

func (s *lineSource) read() (*srcLine, error) {
	for s.i < len(s.inputs) {
		in := s.inputs[s.i]
		if s.r == nil {
			s.r = bufio.NewReaderSize(in.R, 64<<10)
			s.n = 0
		}
		var line []byte
		for {
			frag, err := s.r.ReadSlice('\n')
			line = append(line, frag...)
			if len(line) > MaxLineBytes {
				return nil, fmt.Errorf("audit: verify: %s:%d: line longer than %d bytes", in.Name, s.n+1, MaxLineBytes)
			}
			if err == nil || errors.Is(err, bufio.ErrBufferFull) {
				if err == nil {
					break
				}
				continue
			}
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("audit: verify: read %s: %w", in.Name, err)
		}
		if len(line) == 0 {
			s.i++
			s.r = nil
			continue
		}
		s.n++
		return &srcLine{file: in.Name, n: s.n, b: bytes.TrimSuffix(line, []byte("\n"))}, nil
	}
	return nil, nil
}
