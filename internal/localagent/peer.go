package localagent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Peer is the process at the other end of a socket connection, as the
// kernel reports it (SO_PEERCRED): it cannot be forged by the client.
type Peer struct {
	PID int32
	UID uint32
	GID uint32
}

// Program describes the process behind a request, for consent prompts and
// the audit log.
type Program struct {
	PID     int32    `json:"pid"`
	Exe     string   `json:"exe"`     // /proc/<pid>/exe
	Cmdline []string `json:"cmdline"` // /proc/<pid>/cmdline
}

// String is the one-line form shown in prompts.
func (p Program) String() string {
	exe := p.Exe
	if exe == "" {
		exe = "(unknown executable)"
	}
	return fmt.Sprintf("pid %d, %s, command line %q", p.PID, exe, strings.Join(p.Cmdline, " "))
}

// DescribeProcess reads what /proc says about pid. Missing fields stay
// empty (the process may have exited).
func DescribeProcess(pid int32) Program {
	p := Program{PID: pid}
	dir := filepath.Join("/proc", strconv.Itoa(int(pid)))
	if exe, err := os.Readlink(filepath.Join(dir, "exe")); err == nil {
		p.Exe = exe
	}
	if b, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
		for _, a := range strings.Split(strings.TrimRight(string(b), "\x00"), "\x00") {
			if a != "" {
				p.Cmdline = append(p.Cmdline, a)
			}
		}
	}
	return p
}

// peerCredentials returns the kernel's SO_PEERCRED for a Unix connection.
func peerCredentials(c net.Conn) (Peer, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Peer{}, fmt.Errorf("not a unix socket connection: %T", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Peer{}, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Peer{}, fmt.Errorf("peer credentials: %w", err)
	}
	if cerr != nil {
		return Peer{}, fmt.Errorf("SO_PEERCRED: %w", cerr)
	}
	return Peer{PID: cred.Pid, UID: cred.Uid, GID: cred.Gid}, nil
}

// peerListener accepts only connections whose peer runs as uid. Others get
// a 403 naming the reason and are closed; the refusal is logged.
type peerListener struct {
	net.Listener
	uid uint32
	log *slog.Logger
}

// peerConn is an accepted connection with its verified peer.
type peerConn struct {
	net.Conn
	peer Peer
}

func (l *peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		p, err := peerCredentials(c)
		if err != nil {
			l.log.Warn("local agent: refused a connection without peer credentials", "err", err)
			c.Close()
			continue
		}
		if p.UID != l.uid {
			l.log.Warn("local agent: refused a connection from another user (SO_PEERCRED)",
				"peer_uid", p.UID, "peer_pid", p.PID, "owner_uid", l.uid)
			go refuse(c, fmt.Sprintf("peer uid %d is not the owner of this local agent", p.UID))
			continue
		}
		return &peerConn{Conn: c, peer: p}, nil
	}
}

// refuse reads what the peer sent (briefly, so that its request write does
// not fail with a broken pipe before it can read the answer), writes a
// minimal HTTP 403 and closes c. It runs apart from the accept loop.
func refuse(c net.Conn, msg string) {
	_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	var req []byte
	buf := make([]byte, 1024)
	for len(req) < 8192 && !bytes.Contains(req, []byte("\r\n\r\n")) {
		n, err := c.Read(buf)
		req = append(req, buf[:n]...)
		if err != nil {
			break
		}
	}
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	body := `{"errors":["` + msg + `"]}`
	fmt.Fprintf(c, "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	c.Close()
}

type peerKey struct{}

// withPeer is the socket server's ConnContext: it attaches the verified peer.
func withPeer(ctx context.Context, c net.Conn) context.Context {
	if pc, ok := c.(*peerConn); ok {
		return context.WithValue(ctx, peerKey{}, pc.peer)
	}
	return ctx
}

// peerFrom returns the verified peer of a socket request.
func peerFrom(ctx context.Context) (Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(Peer)
	return p, ok
}

// ListenSocket creates the daemon's Unix socket at path with mode (0600
// unless a test asks otherwise), in a directory only the user can enter.
// A stale socket from a dead daemon is replaced; a live one is an error.
func ListenSocket(path string, mode os.FileMode) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	// Someone else's directory (say a /tmp/qbroker-<uid> planted by another
	// user) could swap the socket: refuse it.
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if st.Uid != uint32(os.Getuid()) || st.Mode&0o022 != 0 || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, fmt.Errorf("socket directory %s must be a directory owned by uid %d and writable only by it", dir, os.Getuid())
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("a local agent is already listening on %s", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket: %w", err)
	}
	// The umask makes the socket private from its creation, before chmod.
	old := unix.Umask(0o177)
	ln, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod socket: %w", err)
	}
	return ln, nil
}

// DefaultSocketPath is $XDG_RUNTIME_DIR/qbroker/agent.sock, or
// /tmp/qbroker-<uid>/agent.sock without a runtime directory.
func DefaultSocketPath(getenv func(string) string) string {
	if p := getenv("QBROKER_AGENT_SOCKET"); p != "" {
		return p
	}
	if d := getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "qbroker", "agent.sock")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("qbroker-%d", os.Getuid()), "agent.sock")
}
