package localagent

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// An exec session is what one `qbroker exec` child may use: for AWS, a
// container-credentials URI and its authorization token; for the other
// providers, a passthrough key. The secret exists only in the daemon's
// memory and the child's environment, and dies with the child.
type execSession struct {
	id       string
	role     string
	provider string
	device   string // the only device the session's jobs may use ("" any)
	secret   *Secret
	program  Program // who opened it
	created  time.Time
	done     chan struct{} // closed when the session ends

	jobsMu sync.Mutex
	jobs   map[string]bool // jobs submitted through this session (passthrough reads)
}

func (es *execSession) addJob(id string) {
	if id == "" {
		return
	}
	es.jobsMu.Lock()
	defer es.jobsMu.Unlock()
	if es.jobs == nil {
		es.jobs = map[string]bool{}
	}
	es.jobs[id] = true
}

func (es *execSession) hasJob(id string) bool {
	es.jobsMu.Lock()
	defer es.jobsMu.Unlock()
	return es.jobs[id]
}

type sessions struct {
	mu    sync.Mutex
	byID  map[string]*execSession
	byKey map[string]*execSession // sha256(secret) → session (passthrough keys)
	// private are the jobs submitted through any exec session, open or
	// ended: only their session reads them, never the socket's agent API.
	private map[string]bool
}

func newSessions() *sessions {
	return &sessions{byID: map[string]*execSession{}, byKey: map[string]*execSession{}, private: map[string]bool{}}
}

// maxPrivateJobs bounds the memory of session jobs. Past it the agent API
// refuses every job read (fail closed, see isPrivate); sessions still read
// their own.
const maxPrivateJobs = 1 << 16

// markPrivate records a job submitted through an exec session.
func (s *sessions) markPrivate(id string) {
	if id == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.private) < maxPrivateJobs {
		s.private[id] = true
	}
}

// isPrivate reports whether a job belongs to an exec session. Once the
// record is full, every job counts as one: the agent API then refuses
// rather than reach a session's job it can no longer tell apart.
func (s *sessions) isPrivate(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.private[id] || len(s.private) >= maxPrivateJobs
}

func randomString(prefix string, n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b), nil
}

func keyHash(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// open creates a session and returns it with its secret (the only copy
// that leaves the daemon).
func (s *sessions) open(role, provider, device string, prog Program) (*execSession, string, error) {
	id, err := randomString("", 16)
	if err != nil {
		return nil, "", err
	}
	prefix := "qbl_" // a passthrough key: recognisable by secret scanners
	if provider == "aws" && device == "" {
		prefix = "" // a container-credentials token
	}
	secret, err := randomString(prefix, 32)
	if err != nil {
		return nil, "", err
	}
	es := &execSession{id: id, role: role, provider: provider, device: device, secret: NewSecret(secret), program: prog, created: time.Now(), done: make(chan struct{})}
	s.mu.Lock()
	s.byID[id] = es
	s.byKey[keyHash(secret)] = es
	s.mu.Unlock()
	return es, secret, nil
}

// byAuth finds the session id names and checks its secret in constant time.
func (s *sessions) byAuth(id, secret string) (*execSession, bool) {
	s.mu.Lock()
	es := s.byID[id]
	s.mu.Unlock()
	if es == nil || secret == "" {
		return nil, false
	}
	want := es.secret.Reveal()
	if want == "" || subtle.ConstantTimeCompare([]byte(want), []byte(secret)) != 1 {
		return nil, false
	}
	return es, true
}

// byPassthroughKey finds the session a passthrough key belongs to.
func (s *sessions) byPassthroughKey(secret string) (*execSession, bool) {
	s.mu.Lock()
	es := s.byKey[keyHash(secret)]
	s.mu.Unlock()
	if es == nil || es.provider == "aws" && es.device == "" {
		return nil, false
	}
	return es, subtle.ConstantTimeCompare([]byte(es.secret.Reveal()), []byte(secret)) == 1
}

// close ends a session: its secret is zeroed and refused from now on.
func (s *sessions) close(id string) bool {
	s.mu.Lock()
	es := s.byID[id]
	if es != nil {
		delete(s.byID, id)
		for k, v := range s.byKey {
			if v == es {
				delete(s.byKey, k)
			}
		}
	}
	s.mu.Unlock()
	if es == nil {
		return false
	}
	es.secret.Destroy()
	close(es.done)
	return true
}

func (s *sessions) closeAll() {
	s.mu.Lock()
	ids := make([]string, 0, len(s.byID))
	for id := range s.byID {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for _, id := range ids {
		s.close(id)
	}
}

func (s *sessions) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byID)
}

// watchExit closes the session when process pid exits, so a `qbroker exec`
// killed before it could close its session does not leave it open.
func (s *sessions) watchExit(es *execSession, pid int32) {
	fd, err := unix.PidfdOpen(int(pid), 0)
	if err == unix.ESRCH {
		s.close(es.id) // already gone
		return
	}
	if err != nil {
		return // no pidfd: the explicit close still applies
	}
	go func() {
		defer unix.Close(fd)
		for {
			select {
			case <-es.done:
				return
			default:
			}
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, err := unix.Poll(fds, 500)
			if err == unix.EINTR {
				continue
			}
			if err != nil || n > 0 {
				s.close(es.id)
				return
			}
		}
	}()
}
