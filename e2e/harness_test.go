package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Timeouts are generous: the tests must pass on a loaded 2-core machine.
const (
	startTimeout = 30 * time.Second // a process prints its addresses
	stopTimeout  = 10 * time.Second // SIGTERM → exit
	cmdTimeout   = 60 * time.Second // a short CLI command (admin, demo)
)

// binPath is the qbroker binary built once by TestMain; tests only read it.
var binPath string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "qbroker-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binPath = filepath.Join(dir, "qbroker")
	build := exec.Command("go", "build", "-o", binPath, "./cmd/qbroker")
	build.Dir = ".." // the module root
	build.Env = append(os.Environ(), "GOTOOLCHAIN=go1.26.10")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building qbroker: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// baseEnv is the minimal environment every child gets: PATH and HOME only,
// plus the given KEY=VALUE pairs. Nothing else of the test's environment
// leaks into the processes under test.
func baseEnv(extra ...string) []string {
	return append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, extra...)
}

// syncBuf is a goroutine-safe buffer that wakes waiters on every write.
type syncBuf struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func newSyncBuf() *syncBuf { return &syncBuf{changed: make(chan struct{})} }

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.b.Write(p)
	close(s.changed)
	s.changed = make(chan struct{})
	return n, err
}

func (s *syncBuf) snapshot() (string, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String(), s.changed
}

func (s *syncBuf) String() string { str, _ := s.snapshot(); return str }

// proc is a long-running qbroker process (dev, server, gateway, sim).
type proc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stdout *syncBuf
	stderr *syncBuf
	done   chan struct{}
	err    error // cmd.Wait's result, valid after done is closed
}

// startProc starts `qbroker args...` with env; it is killed in t.Cleanup if
// it is still running, and its output is logged if the test failed.
func startProc(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = env
	cmd.Dir = t.TempDir() // a stray relative path must not land in the repo
	cmd.WaitDelay = stopTimeout
	p := &proc{t: t, name: name, cmd: cmd, stdout: newSyncBuf(), stderr: newSyncBuf(), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cancel() // SIGKILL if still running
		<-p.done
		if t.Failed() {
			t.Logf("%s stdout:\n%s\n%s stderr:\n%s", name, p.stdout, name, p.stderr)
		}
	})
	return p
}

// waitLine waits until stdout has a line matching re and returns its
// submatches. It fails at once if the process exits first.
func (p *proc) waitLine(re *regexp.Regexp) []string {
	p.t.Helper()
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	for {
		out, changed := p.stdout.snapshot()
		if m := re.FindStringSubmatch(out); m != nil {
			return m
		}
		select {
		case <-changed:
		case <-p.done:
			if m := re.FindStringSubmatch(p.stdout.String()); m != nil {
				return m
			}
			p.t.Fatalf("%s exited (%v) before printing %q\nstdout:\n%s\nstderr:\n%s", p.name, p.err, re, p.stdout, p.stderr)
		case <-deadline.C:
			p.t.Fatalf("%s did not print %q within %s\nstdout:\n%s\nstderr:\n%s", p.name, re, startTimeout, p.stdout, p.stderr)
		}
	}
}

// terminate sends SIGTERM and waits for the exit. It fails the test unless
// the process exits with status 0 within stopTimeout, and returns how long
// that took.
func (p *proc) terminate() time.Duration {
	p.t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("SIGTERM %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		p.t.Fatalf("%s did not exit within %s of SIGTERM", p.name, stopTimeout)
	}
	took := time.Since(start)
	if p.err != nil {
		p.t.Fatalf("%s exited with %v after SIGTERM (want status 0)\nstderr:\n%s", p.name, p.err, p.stderr)
	}
	return took
}

// runCmd runs a short `qbroker args...` to completion and returns its
// stdout and stderr; a non-zero exit fails the test.
func runCmd(t *testing.T, env []string, stdin string, args ...string) (string, string) {
	t.Helper()
	stdout, stderr, err := tryCmd(t, env, stdin, args...)
	if err != nil {
		t.Fatalf("qbroker %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout, stderr)
	}
	return stdout, stderr
}

func tryCmd(t *testing.T, env []string, stdin string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = env
	cmd.Dir = t.TempDir()
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// Output lines the processes print.
var (
	reDevReady   = regexp.MustCompile(`(?m)^# QBROKER_TOKEN is an admin token`)
	reExport     = regexp.MustCompile(`(?m)^export (QBROKER_[A-Z_]+)=(\S+)$`)
	reServerURL  = regexp.MustCompile(`(?m)^qbroker server listening on (http://\S+)$`)
	reGatewayURL = regexp.MustCompile(`(?m)^gateway listening on (http://\S+)$`)
	reRootToken  = regexp.MustCompile(`(?m)^Initial root token \(shown once; store it safely\): (qbt_\S+)$`)
	reSimURL     = regexp.MustCompile(`(?m)^ionq emulator listening on (http://\S+)$`)
)

// devInstance is a running `qbroker dev` and the exports it printed.
type devInstance struct {
	*proc
	dataDir string
	exports map[string]string
}

// startDev runs `qbroker dev` on kernel-chosen ports with a fresh data dir.
func startDev(t *testing.T, env []string, extraArgs ...string) *devInstance {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	args := append([]string{"dev", "--addr", "127.0.0.1:0", "--gateway-addr", "127.0.0.1:0", "--sim-addr", "127.0.0.1:0", "--data", dir}, extraArgs...)
	p := startProc(t, "qbroker dev", env, args...)
	p.waitLine(reDevReady)
	exports := map[string]string{}
	for _, m := range reExport.FindAllStringSubmatch(p.stdout.String(), -1) {
		exports[m[1]] = m[2]
	}
	for _, k := range []string{"QBROKER_ADDR", "QBROKER_GATEWAY_ADDR", "QBROKER_TOKEN", "QBROKER_ROLE_ID", "QBROKER_SECRET_ID"} {
		if exports[k] == "" {
			t.Fatalf("qbroker dev did not export %s; stdout:\n%s", k, p.stdout)
		}
	}
	return &devInstance{proc: p, dataDir: dir, exports: exports}
}

// envFromExports is exactly the exported variables plus PATH and HOME.
func (d *devInstance) envFromExports() []string {
	var extra []string
	for k, v := range d.exports {
		extra = append(extra, k+"="+v)
	}
	return baseEnv(extra...)
}

// randomSecret returns prefix followed by 32 random bytes in hex.
func randomSecret(t *testing.T, prefix string) string {
	t.Helper()
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b[:])
}

// secret is a value that must not appear somewhere.
type secret struct{ name, value string }

// encodings returns the byte patterns that would reveal v: the value
// itself, its hex, and the part of its base64 (standard and URL alphabets)
// that does not depend on the surrounding bytes, for each of the three
// alignments it could have inside a larger encoded blob.
func encodings(v string) map[string][]byte {
	out := map[string][]byte{"plain": []byte(v), "hex": []byte(hex.EncodeToString([]byte(v)))}
	n := len(v)
	for p := range 3 {
		buf := append(make([]byte, p), v...)
		from, to := (8*p+5)/6, (8*(p+n))/6
		for name, enc := range map[string]*base64.Encoding{"base64": base64.StdEncoding, "base64url": base64.URLEncoding} {
			s := enc.EncodeToString(buf)
			out[fmt.Sprintf("%s@%d", name, p)] = []byte(s[from:to])
		}
	}
	return out
}

// findSecrets reports every secret (in any encoding) found in data.
func findSecrets(data []byte, secrets []secret) []string {
	var found []string
	for _, s := range secrets {
		if s.value == "" {
			continue
		}
		for enc, pat := range encodings(s.value) {
			if bytes.Contains(data, pat) {
				found = append(found, fmt.Sprintf("%s (%s)", s.name, enc))
			}
		}
	}
	return found
}

// assertAbsent fails the test if any secret occurs in data.
func assertAbsent(t *testing.T, where string, data []byte, secrets ...secret) {
	t.Helper()
	if found := findSecrets(data, secrets); len(found) > 0 {
		t.Errorf("%s contains %s", where, strings.Join(found, ", "))
	}
}

// assertDirClean reads every regular file under dir (recursively, so the
// SQLite database, its -wal and -shm files, the audit log and the seal key
// file are all covered) and fails if any secret occurs in one.
func assertDirClean(t *testing.T, dir string, secrets ...secret) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // e.g. a -shm file removed meanwhile
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		files++
		assertAbsent(t, "data file "+path, b, secrets...)
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	if files == 0 {
		t.Fatalf("no files under %s: nothing was checked", dir)
	}
}

// exchange is one HTTP request and its answer, as an agent sees it.
type exchange struct {
	method, url string
	status      int
	header      http.Header
	body        []byte
}

// agentHTTP makes the agent's HTTP calls and keeps every answer so that
// tests can check all of them for leaks.
type agentHTTP struct {
	t  *testing.T
	hc *http.Client
	mu sync.Mutex
	ex []exchange
}

func newAgentHTTP(t *testing.T) *agentHTTP {
	return &agentHTTP{t: t, hc: &http.Client{Timeout: 30 * time.Second}}
}

// do sends one request; header values are "Name: value" pairs.
func (a *agentHTTP) do(method, url string, body []byte, headers ...string) (int, []byte) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	a.mu.Lock()
	a.ex = append(a.ex, exchange{method: method, url: url, status: resp.StatusCode, header: resp.Header.Clone(), body: b})
	a.mu.Unlock()
	return resp.StatusCode, b
}

// expect sends a request and fails unless the status is want; it decodes a
// JSON answer into out when out is not nil.
func (a *agentHTTP) expect(want int, out any, method, url string, body []byte, headers ...string) {
	a.t.Helper()
	status, b := a.do(method, url, body, headers...)
	if status != want {
		a.t.Fatalf("%s %s: status %d, want %d: %s", method, url, status, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			a.t.Fatalf("%s %s: decoding %s: %v", method, url, b, err)
		}
	}
}

// assertNoLeak checks every response header and body seen so far.
func (a *agentHTTP) assertNoLeak(secrets ...secret) {
	a.t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range a.ex {
		where := fmt.Sprintf("response to %s %s (%d)", e.method, e.url, e.status)
		assertAbsent(a.t, where+" body", e.body, secrets...)
		var hdr bytes.Buffer
		_ = e.header.Write(&hdr)
		assertAbsent(a.t, where+" headers", hdr.Bytes(), secrets...)
	}
}

func (a *agentHTTP) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.ex)
}

// The leak detector must find a secret however it is embedded: plain, hex,
// or inside base64 (standard or URL alphabet) at any alignment, as when a
// store marshals it as []byte or a JWT carries it in a claim.
func TestLeakDetectorFindsEncodings(t *testing.T) {
	s := secret{"k", randomSecret(t, "leak-")}
	for p := range 3 {
		blob := append([]byte("xyz"[:p]), s.value...)
		blob = append(blob, "tail"...)
		for name, data := range map[string]string{
			"plain":     "a" + s.value + "b",
			"hex":       hex.EncodeToString(blob),
			"base64":    `{"v":"` + base64.StdEncoding.EncodeToString(blob) + `"}`,
			"base64url": base64.RawURLEncoding.EncodeToString(blob),
		} {
			if len(findSecrets([]byte(data), []secret{s})) == 0 {
				t.Errorf("alignment %d, %s: secret not found", p, name)
			}
		}
	}
	other := randomSecret(t, "leak-")
	if found := findSecrets([]byte(other+base64.StdEncoding.EncodeToString([]byte(other))), []secret{s}); len(found) > 0 {
		t.Errorf("false positive: %v", found)
	}
}
