package broker

import (
	"sync"

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

func (c *tokenCache) put(t core.Token) {
	c.mu.Lock()
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
	c.mu.Unlock()
}

func (c *tokenCache) drop(hash string) {
	c.mu.Lock()
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
