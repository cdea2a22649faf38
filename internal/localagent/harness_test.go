package localagent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/client"
	"github.com/qbroker/qbroker/internal/server"
)

// Helper modes: the test binary re-executes itself as another process
// (another uid, a hardened daemon stand-in).
const helperEnv = "LOCALAGENT_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "status":
		// GET /v1/status on the socket; print "<status> <body>".
		c := NewSocketClient(os.Getenv("LOCALAGENT_SOCKET"))
		_, err := c.Status(context.Background())
		if err == nil {
			fmt.Println("200 served")
			os.Exit(0)
		}
		fmt.Println(err)
		os.Exit(0)
	case "harden":
		before, _ := Hardened()
		if err := Harden(); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		after, err := Hardened()
		fmt.Println(before, after, err)
		os.Exit(0)
	case "opensession":
		// Open an AWS exec session, print it and exit without closing it.
		s, err := NewSocketClient(os.Getenv("LOCALAGENT_SOCKET")).OpenSession(context.Background(), SessionRequest{Role: "braket-sv1", Provider: "aws"})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		json.NewEncoder(os.Stdout).Encode(s)
		os.Exit(0)
	case "jobtoken":
		// Ask for a QPU job token and wait (for consent) until killed.
		_, err := NewSocketClient(os.Getenv("LOCALAGENT_SOCKET")).JobToken(context.Background(), "demo",
			api.JobTokenRequest{Provider: "ionq", Device: "qpu.forte-1", Shots: 10, Program: json.RawMessage(bellIonQ)})
		fmt.Println(err)
		os.Exit(0)
	case "get":
		// GET LOCALAGENT_PATH on the socket; print "<status> <body>".
		var out json.RawMessage
		err := NewSocketClient(os.Getenv("LOCALAGENT_SOCKET")).do(context.Background(), "GET", os.Getenv("LOCALAGENT_PATH"), nil, &out)
		if err != nil {
			fmt.Println(err)
		} else {
			fmt.Println("200", string(out))
		}
		os.Exit(0)
	case "sleep":
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	fmt.Fprintln(os.Stderr, "unknown helper", os.Getenv(helperEnv))
	os.Exit(2)
}

const bellIonQ = `{"qubits":2,"gateset":"qis","circuit":[{"gate":"h","target":0},{"gate":"cnot","control":0,"target":1}]}`

// syncBuf collects log output from several goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startDev runs the all-in-one broker in process on free ports.
func startDev(t *testing.T, o server.DevOptions) *server.Dev {
	t.Helper()
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	o.GatewayAddr, o.SimAddr = "127.0.0.1:0", "127.0.0.1:0"
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	d, err := server.StartDev(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	return d
}

type harness struct {
	t      *testing.T
	dev    *server.Dev
	d      *Daemon
	sock   string
	logs   *syncBuf
	cancel context.CancelFunc
	done   chan error

	mu     sync.Mutex
	seen   []string // every broker token the daemon got
	logins int
}

// startDaemon runs a daemon signed in as the dev demo agent (AppRole).
func startDaemon(t *testing.T, dev *server.Dev, mutate func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, dev: dev, logs: &syncBuf{}, done: make(chan error, 1)}
	h.sock = filepath.Join(t.TempDir(), "run", "agent.sock")
	cfg := Config{
		Broker:     client.New(dev.BrokerURL, &http.Client{Timeout: 10 * time.Second}),
		SocketPath: h.sock,
		Logger:     slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Login: func(ctx context.Context, c *client.Client) (*api.Auth, error) {
			a, err := c.AppRoleLogin(ctx, dev.RoleID, dev.SecretID)
			if err == nil {
				h.mu.Lock()
				h.seen = append(h.seen, a.ClientToken)
				h.logins++
				h.mu.Unlock()
			}
			return a, err
		},
	}
	cfg.Consent = NewConsent(Rules{CostAboveUSD: -1}, nil, cfg.Logger) // nothing asks unless a test says so
	if mutate != nil {
		mutate(&cfg)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.d = d
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- d.Run(ctx) }()
	t.Cleanup(h.stop)
	c := NewSocketClient(h.sock)
	deadline := time.Now().Add(20 * time.Second)
	for {
		in, err := c.Status(context.Background())
		if err == nil && in.SignedIn {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not come up: %v\n%s", err, h.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return h
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	select {
	case <-h.done:
	case <-time.After(10 * time.Second):
		h.t.Error("the daemon did not stop")
	}
	h.cancel = nil
}

func (h *harness) client() *SocketClient { return NewSocketClient(h.sock) }

func (h *harness) loginCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.logins
}

func (h *harness) tokens() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.seen...)
}

// openPTY opens a pseudo-terminal pair (/dev/ptmx), as a terminal emulator does.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return m, s
}

// ptyReader collects what the terminal shows.
type ptyReader struct {
	mu  sync.Mutex
	buf strings.Builder
}

func readPTY(m io.Reader) *ptyReader {
	r := &ptyReader{}
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := m.Read(b)
			r.mu.Lock()
			r.buf.Write(b[:n])
			r.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return r
}

// waitFor waits until the screen shows s at least n times.
func (r *ptyReader) waitFor(t *testing.T, s string, n int) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		out := r.buf.String()
		r.mu.Unlock()
		if strings.Count(out, s) >= n {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("the terminal never showed %q (%d times):\n%s", s, n, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
