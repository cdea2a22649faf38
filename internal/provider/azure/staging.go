package azure

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// StagingLimits bound the job inputs the adapter holds between their
// upload and the job's creation. Zero fields take the defaults.
type StagingLimits struct {
	// MaxContainers is the most staged containers held at once (default 1024).
	MaxContainers int
	// MaxBytes bounds all staged input together (default 64 MiB).
	MaxBytes int
	// MaxBlobBytes bounds one input blob (default 1 MiB).
	MaxBlobBytes int
	// PerToken is the most containers one job token may hold (default 4).
	PerToken int
	// TTL caps how long a staged container lives (default 15 min); it
	// never outlives its job token by more than a 2-minute grace.
	TTL time.Duration
}

// Staging defaults.
const (
	DefaultMaxContainers = 1024
	DefaultMaxBytes      = 64 << 20
	DefaultMaxBlobBytes  = 1 << 20
	DefaultPerToken      = 4
	DefaultStagingTTL    = 15 * time.Minute
	// stagingGrace lets a submission that passed its checks with a token
	// about to expire still find its input after the redemption.
	stagingGrace = 2 * time.Minute
	// InputBlob is the one blob a staged container holds (the name the
	// Azure SDKs upload job input to).
	InputBlob = "inputData"
)

func (l StagingLimits) withDefaults() (StagingLimits, error) {
	if l.MaxContainers < 0 || l.MaxBytes < 0 || l.MaxBlobBytes < 0 || l.PerToken < 0 || l.TTL < 0 {
		return l, errors.New("limits must not be negative")
	}
	if l.MaxContainers == 0 {
		l.MaxContainers = DefaultMaxContainers
	}
	if l.MaxBytes == 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxBlobBytes == 0 {
		l.MaxBlobBytes = DefaultMaxBlobBytes
	}
	if l.PerToken == 0 {
		l.PerToken = DefaultPerToken
	}
	if l.TTL == 0 {
		l.TTL = DefaultStagingTTL
	}
	if l.MaxBlobBytes > l.MaxBytes {
		return l, errors.New("MaxBlobBytes exceeds MaxBytes")
	}
	return l, nil
}

// staging is the adapter's in-memory store of granted containers and the
// input uploaded to them. A container is named at random and reached with
// a random capability (its sig); its input is written once and never
// changes, so what ParseSubmit checked is what Send uploads; Send removes
// the container, so an upload is submitted at most once.
type staging struct {
	limits StagingLimits
	now    func() time.Time

	mu      sync.Mutex
	entries map[string]*stagedContainer
	perJTI  map[string]int
	bytes   int
}

type stagedContainer struct {
	name    string
	sig     string
	jti     string
	created time.Time
	expires time.Time
	input   *stagedBlob // nil until uploaded; immutable once set
}

type stagedBlob struct {
	data        []byte
	contentType string
	etag        string
	modified    time.Time
}

// errStaging is a staging refusal with the storage status and code to
// answer with.
type errStaging struct {
	status int
	code   string
	msg    string
}

func (e *errStaging) Error() string { return e.code + ": " + e.msg }

func newStaging(l StagingLimits, now func() time.Time) *staging {
	return &staging{limits: l, now: now, entries: map[string]*stagedContainer{}, perJTI: map[string]int{}}
}

// grant creates a container for the holder of job token jti (valid until
// tokenExp).
func (s *staging) grant(jti string, tokenExp time.Time) (*stagedContainer, error) {
	now := s.now()
	if jti == "" || !tokenExp.After(now) {
		return nil, &errStaging{status: http.StatusUnauthorized, code: "AuthenticationFailed", msg: "a valid job token is required"}
	}
	var name [16]byte
	var sig [32]byte
	_, _ = rand.Read(name[:]) // crypto/rand.Read never fails
	_, _ = rand.Read(sig[:])
	c := &stagedContainer{
		name: "qbroker-" + hex.EncodeToString(name[:]), sig: base64.RawURLEncoding.EncodeToString(sig[:]),
		jti: jti, created: now, expires: minTime(tokenExp.Add(stagingGrace), now.Add(s.limits.TTL)),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(now)
	switch {
	case s.perJTI[jti] >= s.limits.PerToken:
		return nil, &errStaging{status: http.StatusTooManyRequests, code: "TooManyRequests", msg: fmt.Sprintf("this job token already holds %d upload containers", s.limits.PerToken)}
	case len(s.entries) >= s.limits.MaxContainers:
		return nil, &errStaging{status: http.StatusServiceUnavailable, code: "ServerBusy", msg: "the gateway holds too many uploads; try again shortly"}
	}
	s.entries[c.name] = c
	s.perJTI[jti]++
	return c, nil
}

// lookup returns the live container name whose capability is sig.
// Unknown names and wrong capabilities are the same refusal.
func (s *staging) lookup(name, sig string) (*stagedContainer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lookupLocked(name, sig)
}

func (s *staging) lookupLocked(name, sig string) (*stagedContainer, error) {
	c, ok := s.entries[name]
	if !ok || sig == "" || subtle.ConstantTimeCompare([]byte(sig), []byte(c.sig)) != 1 {
		return nil, &errStaging{status: http.StatusForbidden, code: "AuthenticationFailed", msg: "the container is not one the gateway granted, or its SAS is wrong"}
	}
	if !s.now().Before(c.expires) {
		s.removeLocked(c)
		return nil, &errStaging{status: http.StatusForbidden, code: "AuthenticationFailed", msg: "the container's SAS has expired"}
	}
	return c, nil
}

// put stores the input blob of container name. It is written once: the
// same bytes again succeed (a retried upload), other bytes are refused.
func (s *staging) put(name, sig string, data []byte, contentType string, ifNoneMatch bool) (*stagedBlob, error) {
	if len(data) > s.limits.MaxBlobBytes {
		return nil, &errStaging{status: http.StatusRequestEntityTooLarge, code: "RequestBodyTooLarge", msg: fmt.Sprintf("job input is limited to %d bytes", s.limits.MaxBlobBytes)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.lookupLocked(name, sig)
	if err != nil {
		return nil, err
	}
	if c.input != nil {
		if ifNoneMatch || subtle.ConstantTimeCompare(c.input.data, data) != 1 {
			return nil, &errStaging{status: http.StatusConflict, code: "BlobAlreadyExists", msg: "the job input was already uploaded and cannot change; ask for a new container to submit another program"}
		}
		return c.input, nil
	}
	if s.bytes+len(data) > s.limits.MaxBytes {
		return nil, &errStaging{status: http.StatusServiceUnavailable, code: "ServerBusy", msg: "the gateway holds too much staged input; try again shortly"}
	}
	var tag [12]byte
	_, _ = rand.Read(tag[:])
	b := &stagedBlob{data: append([]byte(nil), data...), contentType: contentType, etag: `"` + hex.EncodeToString(tag[:]) + `"`, modified: s.now()}
	c.input = b
	s.bytes += len(data)
	return b, nil
}

// input returns the staged input of container name (nil, nil if none was
// uploaded yet).
func (s *staging) input(name, sig string) (*stagedBlob, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.lookupLocked(name, sig)
	if err != nil {
		return nil, err
	}
	return c.input, nil
}

// take removes container name and returns its input, for the one
// submission that uses it.
func (s *staging) take(name, sig string) (*stagedBlob, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.lookupLocked(name, sig)
	if err != nil {
		return nil, err
	}
	if c.input == nil {
		return nil, &errStaging{status: http.StatusBadRequest, code: "InvalidInput", msg: "no job input was uploaded to the container"}
	}
	s.removeLocked(c)
	return c.input, nil
}

// sweep drops expired containers; call with s.mu held.
func (s *staging) sweep(now time.Time) {
	for _, c := range s.entries {
		if !now.Before(c.expires) {
			s.removeLocked(c)
		}
	}
}

func (s *staging) removeLocked(c *stagedContainer) {
	if _, ok := s.entries[c.name]; !ok {
		return
	}
	delete(s.entries, c.name)
	if c.input != nil {
		s.bytes -= len(c.input.data)
	}
	if s.perJTI[c.jti]--; s.perJTI[c.jti] <= 0 {
		delete(s.perJTI, c.jti)
	}
}

// held reports the containers and bytes held (for tests and metrics).
func (s *staging) held() (containers, bytes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries), s.bytes
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
