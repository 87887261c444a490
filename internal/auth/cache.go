package auth

import (
	"sync"
)

// cacheShards spreads the cache over independently locked shards so that
// concurrent requests rarely wait for one another. A power of two.
const cacheShards = 16

// tokenCache is a bounded LRU of verified tokens, keyed by a per-process
// seeded hash of the token (maphash: fast, unpredictable to an attacker).
// Each entry keeps the token itself and a hit requires the very same token,
// so a hash collision is a miss, never another token's principal. Tokens
// stay in memory no longer than the entry (CacheMaxAge), less than their
// own lifetime.
type tokenCache struct {
	shards [cacheShards]cacheShard
}

type cacheShard struct {
	mu         sync.Mutex
	entries    map[uint64]*cacheEntry
	head, tail *cacheEntry // most and least recently used
	capacity   int
	_          [64]byte // keep the shards' locks off each other's cache lines
}

type cacheEntry struct {
	key        uint64
	token      string
	principal  Principal // Roles is never modified once cached
	deadline   int64     // UnixNano after which the entry is not used
	prev, next *cacheEntry
}

func newTokenCache(size int) *tokenCache {
	c := &tokenCache{}
	per := (size + cacheShards - 1) / cacheShards
	for i := range c.shards {
		c.shards[i].entries = make(map[uint64]*cacheEntry)
		c.shards[i].capacity = per
	}
	return c
}

func (c *tokenCache) shard(key uint64) *cacheShard {
	return &c.shards[key&(cacheShards-1)]
}

// get returns the principal cached for token (whose hash is key) if its
// deadline has not passed at now (UnixNano). The principal shares its Roles
// with the cache.
func (c *tokenCache) get(key uint64, token string, now int64) (Principal, bool) {
	s := c.shard(key)
	s.mu.Lock()
	e := s.entries[key]
	if e == nil || e.token != token {
		s.mu.Unlock()
		return Principal{}, false
	}
	if now >= e.deadline {
		s.remove(e)
		s.mu.Unlock()
		return Principal{}, false
	}
	s.moveToFront(e)
	p := e.principal
	s.mu.Unlock()
	return p, true
}

// put caches p for token (whose hash is key) until deadline (UnixNano),
// replacing whatever had the same key. The cache takes ownership of p.Roles.
func (c *tokenCache) put(key uint64, token string, p Principal, deadline int64) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entries[key]; e != nil {
		e.token, e.principal, e.deadline = token, p, deadline
		s.moveToFront(e)
		return
	}
	var e *cacheEntry
	if len(s.entries) >= s.capacity && s.tail != nil {
		e = s.tail // reuse the evicted entry
		s.remove(e)
		*e = cacheEntry{}
	} else {
		e = new(cacheEntry)
	}
	e.key, e.token, e.principal, e.deadline = key, token, p, deadline
	s.entries[key] = e
	s.pushFront(e)
}

func (s *cacheShard) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

func (s *cacheShard) remove(e *cacheEntry) {
	delete(s.entries, e.key)
	s.unlink(e)
}

func (s *cacheShard) unlink(e *cacheEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (s *cacheShard) pushFront(e *cacheEntry) {
	e.next = s.head
	if s.head != nil {
		s.head.prev = e
	}
	s.head = e
	if s.tail == nil {
		s.tail = e
	}
}

func (s *cacheShard) moveToFront(e *cacheEntry) {
	if s.head == e {
		return
	}
	s.unlink(e)
	s.pushFront(e)
}
