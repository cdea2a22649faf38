package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qbroker/qbroker/api"
	"github.com/qbroker/qbroker/internal/audit"
)

// memBroker is an in-memory Broker that enforces single use for real, with
// switches to make the audit sink or job recording fail.
type memBroker struct {
	now func() time.Time

	mu      sync.Mutex
	jtis    map[string]*jtiState
	jobs    map[[2]string]api.JobRecord
	tokens  map[string]string // broker token -> agent
	revoked map[string]bool   // broker tokens
	events  []audit.Event
	creds   map[string]string

	failAudit  atomic.Bool
	failRecord atomic.Int32 // number of RecordJob calls still to fail
	redeems    atomic.Int32
	credCalls  atomic.Int32
}

type jtiState struct {
	expires time.Time
	used    bool
	revoked bool
}

var errAuditDown = fmt.Errorf("%w: injected failure", audit.ErrUnavailable)

var _ Broker = (*memBroker)(nil)

func newMemBroker(apiKey string) *memBroker {
	return &memBroker{
		now:     time.Now,
		jtis:    make(map[string]*jtiState),
		jobs:    make(map[[2]string]api.JobRecord),
		tokens:  make(map[string]string),
		revoked: make(map[string]bool),
		creds:   map[string]string{"ionq": apiKey},
	}
}

// issue registers a job token's jti as redeemable until expires.
func (b *memBroker) issue(jti string, expires time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.jtis[jti] = &jtiState{expires: expires}
}

func (b *memBroker) revokeJTI(jti string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.jtis[jti].revoked = true
}

func (b *memBroker) addAgentToken(tok, agent string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tokens[tok] = agent
}

func (b *memBroker) revokeAgentToken(tok string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.revoked[tok] = true
}

func (b *memBroker) auditLog() []audit.Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]audit.Event(nil), b.events...)
}

func (b *memBroker) jobCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.jobs)
}

func (b *memBroker) Redeem(ctx context.Context, jti string) error {
	if b.failAudit.Load() {
		return errAuditDown // the real broker audits the redemption before answering
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.jtis[jti]
	switch {
	case !ok:
		return ErrUnknownToken
	case s.revoked:
		return ErrTokenRevoked
	case s.used:
		return ErrTokenUsed
	case !b.now().Before(s.expires):
		return ErrTokenExpired
	}
	s.used = true
	b.redeems.Add(1)
	return nil
}

func (b *memBroker) RecordJob(ctx context.Context, j api.JobRecord) error {
	if b.failRecord.Load() > 0 {
		b.failRecord.Add(-1)
		return errors.New("injected record failure")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.jobs[[2]string{j.Provider, j.ID}] = j
	return nil
}

func (b *memBroker) Job(ctx context.Context, provider, id string) (api.JobRecord, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	j, ok := b.jobs[[2]string{provider, id}]
	if !ok {
		return api.JobRecord{}, ErrNotFound
	}
	return j, nil
}

func (b *memBroker) AgentForToken(ctx context.Context, tok string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	agent, ok := b.tokens[tok]
	if !ok || b.revoked[tok] {
		return "", ErrBadBrokerToken
	}
	return agent, nil
}

func (b *memBroker) Authorize(ctx context.Context, tok, action string, job api.JobRecord) error {
	agent, err := b.AgentForToken(ctx, tok)
	if err != nil {
		return err
	}
	if agent != job.AgentID {
		return fmt.Errorf("%w: not the job's owner", ErrForbidden)
	}
	return nil
}

func (b *memBroker) Credential(ctx context.Context, provider string) (string, error) {
	b.credCalls.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	k, ok := b.creds[provider]
	if !ok {
		return "", ErrNotFound
	}
	return k, nil
}

func (b *memBroker) Audit(ctx context.Context, e *audit.Event) error {
	if b.failAudit.Load() {
		return errAuditDown
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.events = append(b.events, *e)
	return nil
}
