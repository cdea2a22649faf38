package broker

import (
	"sync"
	"time"

	"github.com/qbroker/qbroker/api"

	"github.com/qbroker/qbroker/internal/core"
)

// tokenCache keeps looked-up broker tokens in memory by hash. Revocation and
// renewal invalidate the entry before they return, so a revoked token is
// refused by this process at once.
type tokenCache struct {
	mu  sync.RWMutex
	m   map[string]core.Token
	max int
	// gen counts invalidations. A reader notes it before reading the
	// store and caches what it read only if no invalidation happened in
	// between: otherwise a read that began before a revocation could put
	// the revoked token back after the revocation dropped it.
	gen uint64
}

// generation returns the invalidation count (see putIfCurrent).
func (c *tokenCache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// putIfCurrent caches t unless the cache was invalidated since gen.
func (c *tokenCache) putIfCurrent(t core.Token, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen {
		c.putLocked(t)
	}
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{m: make(map[string]core.Token), max: max}
}

func (c *tokenCache) get(hash string) (core.Token, bool) {
	c.mu.RLock()
	t, ok := c.m[hash]
	c.mu.RUnlock()
	return t, ok
}

func (c *tokenCache) putLocked(t core.Token) {
	if len(c.m) >= c.max {
		// Drop an arbitrary half: simple, bounded, and a miss only costs a read.
		n := 0
		for k := range c.m {
			delete(c.m, k)
			if n++; n >= c.max/2 {
				break
			}
		}
	}
	c.m[t.Hash] = t
}

func (c *tokenCache) dropAgent(agentID string) {
	c.mu.Lock()
	c.gen++
	for k, t := range c.m {
		if t.AgentID == agentID {
			delete(c.m, k)
		}
	}
	c.mu.Unlock()
}

// reset empties the cache.
func (c *tokenCache) reset() {
	c.mu.Lock()
	c.gen++
	clear(c.m)
	c.mu.Unlock()
}

func (c *tokenCache) drop(hash string) {
	c.mu.Lock()
	c.gen++
	delete(c.m, hash)
	c.mu.Unlock()
}

// jobCache keeps job ownership records, which never change once written.
type jobCache struct {
	mu  sync.RWMutex
	m   map[string]api.JobRecord
	max int
}

func newJobCache(max int) *jobCache { return &jobCache{m: make(map[string]api.JobRecord), max: max} }

func (c *jobCache) get(k string) (api.JobRecord, bool) {
	c.mu.RLock()
	r, ok := c.m[k]
	c.mu.RUnlock()
	return r, ok
}

func (c *jobCache) put(k string, r api.JobRecord) {
	c.mu.Lock()
	if len(c.m) >= c.max {
		clear(c.m) // bounded; a miss only costs one read
	}
	c.m[k] = r
	c.mu.Unlock()
}

// roleCache keeps roles for a few seconds: they are read on every login
// and issuance and change rarely. This process drops an entry the moment it
// changes the role; the TTL bounds how long another replica's change takes
// to show.
type roleCache struct {
	mu     sync.RWMutex
	byName map[string]cachedRole
	byID   map[string]string // role_id → name
	ttl    time.Duration
}

type cachedRole struct {
	r  core.Role
	at time.Time
}

func newRoleCache(ttl time.Duration) *roleCache {
	return &roleCache{byName: map[string]cachedRole{}, byID: map[string]string{}, ttl: ttl}
}

func (c *roleCache) get(name string, now time.Time) (core.Role, bool) {
	c.mu.RLock()
	e, ok := c.byName[name]
	c.mu.RUnlock()
	if !ok || now.Sub(e.at) > c.ttl {
		return core.Role{}, false
	}
	return e.r, true
}

func (c *roleCache) getByID(id string, now time.Time) (core.Role, bool) {
	c.mu.RLock()
	name, ok := c.byID[id]
	c.mu.RUnlock()
	if !ok {
		return core.Role{}, false
	}
	return c.get(name, now)
}

func (c *roleCache) put(r core.Role, now time.Time) {
	c.mu.Lock()
	if len(c.byName) >= 10_000 {
		clear(c.byName)
		clear(c.byID)
	}
	c.byName[r.Name] = cachedRole{r: r, at: now}
	if r.RoleID != "" {
		c.byID[r.RoleID] = r.Name
	}
	c.mu.Unlock()
}

// reset empties the cache.
func (c *roleCache) reset() {
	c.mu.Lock()
	clear(c.byName)
	clear(c.byID)
	c.mu.Unlock()
}

func (c *roleCache) drop(name string) {
	c.mu.Lock()
	if e, ok := c.byName[name]; ok {
		delete(c.byID, e.r.RoleID)
	}
	delete(c.byName, name)
	c.mu.Unlock()
}
