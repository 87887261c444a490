package keyring

import (
	"container/list"
	"context"
	"crypto/subtle"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// Defaults of CacheConfig.
const (
	DefaultCacheMaxEntries  = 10_000
	DefaultCacheIdleTimeout = 5 * time.Minute
	DefaultCacheTTL         = 15 * time.Minute
)

// CacheConfig bounds the cache of unwrapped data keys.
type CacheConfig struct {
	// MaxEntries caps how many plaintext data keys the process holds, over
	// all tenants; the least recently used is evicted first. Default
	// DefaultCacheMaxEntries.
	MaxEntries int
	// IdleTimeout evicts a key not used for that long. Default
	// DefaultCacheIdleTimeout.
	IdleTimeout time.Duration
	// TTL is the hard limit on how long a key stays cached after it was
	// unwrapped, however often it is used: a KMS is asked again at least
	// this often. Default DefaultCacheTTL.
	TTL time.Duration
}

func (c *CacheConfig) setDefaults() {
	if c.MaxEntries <= 0 {
		c.MaxEntries = DefaultCacheMaxEntries
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultCacheIdleTimeout
	}
	if c.TTL <= 0 {
		c.TTL = DefaultCacheTTL
	}
	if c.IdleTimeout > c.TTL {
		c.IdleTimeout = c.TTL
	}
}

// CacheStats counts cache events since start.
type CacheStats struct {
	Hits, Misses, Evictions uint64
	Entries                 int
}

type cacheKey struct {
	tenant string
	id     envelope.KeyID
}

// cachedKey is one plaintext data key. Its key is destroyed on eviction;
// users read it under mu so that eviction never zeroes a key mid-use.
type cachedKey struct {
	ck       cacheKey
	purpose  Purpose
	digest   [32]byte // the data key's context digest; zero for encryption keys
	loadedAt time.Time
	lastUsed time.Time // guarded by the cache's mu
	elem     *list.Element

	mu  sync.RWMutex
	key *secret.Bytes
}

// with calls fn with the plaintext key unless it was destroyed meanwhile.
func (e *cachedKey) with(fn func(key []byte) error) (ok bool, err error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.key.Destroyed() {
		return false, nil
	}
	return true, fn(e.key.Reveal())
}

func (e *cachedKey) destroy() {
	e.mu.Lock()
	e.key.Destroy()
	e.mu.Unlock()
}

// flight is one unwrap in progress, shared by every caller of the same key.
type flight struct {
	done chan struct{}
	err  error
}

// keyCache is a bounded LRU of plaintext data keys with idle and hard
// expiry, one in-flight load per key, and per-tenant purge. Failures are
// never cached.
type keyCache struct {
	cfg CacheConfig
	now func() time.Time

	mu       sync.Mutex
	entries  map[cacheKey]*cachedKey
	byTenant map[string]map[envelope.KeyID]*cachedKey
	lru      *list.List // front = most recently used
	flights  map[cacheKey]*flight
	// epoch counts purges per tenant, and allEpoch purges of everything,
	// so that a load that began before a purge does not put a key back into
	// the cache after it.
	epoch    map[string]uint64
	allEpoch uint64

	hits, misses, evictions atomic.Uint64
}

func newKeyCache(cfg CacheConfig, now func() time.Time) *keyCache {
	cfg.setDefaults()
	return &keyCache{
		cfg:      cfg,
		now:      now,
		entries:  make(map[cacheKey]*cachedKey),
		byTenant: make(map[string]map[envelope.KeyID]*cachedKey),
		lru:      list.New(),
		flights:  make(map[cacheKey]*flight),
		epoch:    make(map[string]uint64),
	}
}

// loaded is what a loader returns: the key and what it may be used for.
type loaded struct {
	key     *secret.Bytes
	purpose Purpose
	digest  [32]byte
}

// use finds the key (loading it with load on a miss, once for all
// concurrent callers) and calls fn with its plaintext. The entry must match
// purpose and digest, else ErrDecrypt: a key is never used for what it was
// not issued for.
func (c *keyCache) use(ctx context.Context, k cacheKey, purpose Purpose, digest [32]byte,
	load func(context.Context) (loaded, error), fn func(key []byte) error) error {
	// A few rounds cover the races (evicted between lookup and use, purged
	// while loading); past them, load without caching rather than spin.
	for range 4 {
		e, fl, epoch := c.lookup(k)
		switch {
		case e != nil:
			if e.purpose != purpose || subtle.ConstantTimeCompare(e.digest[:], digest[:]) != 1 {
				return ErrDecrypt
			}
			if ok, err := e.with(fn); ok {
				return err
			}
		case fl != nil:
			select {
			case <-fl.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			if fl.err != nil {
				return fl.err
			}
		default:
			if err := c.fill(ctx, k, epoch, load); err != nil {
				return err
			}
		}
	}
	return c.loadUncached(ctx, purpose, digest, load, fn)
}

// lookup returns the live entry, or else the flight to wait for, or else
// nothing, in which case the caller owns a new flight (registered here).
func (c *keyCache) lookup(k cacheKey) (*cachedKey, *flight, uint64) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[k]; ok {
		if c.expired(e, now) {
			c.removeLocked(e)
		} else {
			e.lastUsed = now
			c.lru.MoveToFront(e.elem)
			c.hits.Add(1)
			return e, nil, 0
		}
	}
	if fl, ok := c.flights[k]; ok {
		return nil, fl, 0
	}
	c.misses.Add(1)
	c.flights[k] = &flight{done: make(chan struct{})}
	return nil, nil, c.epochLocked(k.tenant)
}

func (c *keyCache) epochLocked(tenant string) uint64 {
	return c.epoch[tenant] + c.allEpoch<<32
}

func (c *keyCache) fill(ctx context.Context, k cacheKey, epoch uint64, load func(context.Context) (loaded, error)) error {
	l, err := load(ctx)
	c.mu.Lock()
	fl := c.flights[k]
	delete(c.flights, k)
	if err == nil {
		if c.epochLocked(k.tenant) == epoch {
			c.insertLocked(k, l)
		} else {
			l.key.Destroy() // purged while loading
		}
	}
	c.mu.Unlock()
	fl.err = err
	close(fl.done)
	return err
}

func (c *keyCache) loadUncached(ctx context.Context, purpose Purpose, digest [32]byte,
	load func(context.Context) (loaded, error), fn func(key []byte) error) error {
	l, err := load(ctx)
	if err != nil {
		return err
	}
	defer l.key.Destroy()
	if l.purpose != purpose || subtle.ConstantTimeCompare(l.digest[:], digest[:]) != 1 {
		return ErrDecrypt
	}
	return fn(l.key.Reveal())
}

// put caches a key the caller just made (so its first use needs no
// unwrap). The cache takes ownership of l.key.
func (c *keyCache) put(k cacheKey, l loaded) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[k]; ok {
		c.removeLocked(old)
	}
	c.insertLocked(k, l)
}

func (c *keyCache) insertLocked(k cacheKey, l loaded) {
	now := c.now()
	e := &cachedKey{ck: k, purpose: l.purpose, digest: l.digest, loadedAt: now, lastUsed: now, key: l.key}
	e.elem = c.lru.PushFront(e)
	c.entries[k] = e
	m := c.byTenant[k.tenant]
	if m == nil {
		m = make(map[envelope.KeyID]*cachedKey)
		c.byTenant[k.tenant] = m
	}
	m[k.id] = e
	for c.lru.Len() > c.cfg.MaxEntries {
		c.removeLocked(c.lru.Back().Value.(*cachedKey))
		c.evictions.Add(1)
	}
}

func (c *keyCache) expired(e *cachedKey, now time.Time) bool {
	return now.Sub(e.loadedAt) >= c.cfg.TTL || now.Sub(e.lastUsed) >= c.cfg.IdleTimeout
}

func (c *keyCache) removeLocked(e *cachedKey) {
	if c.entries[e.ck] != e {
		return
	}
	delete(c.entries, e.ck)
	if m := c.byTenant[e.ck.tenant]; m != nil {
		delete(m, e.ck.id)
		if len(m) == 0 {
			delete(c.byTenant, e.ck.tenant)
		}
	}
	c.lru.Remove(e.elem)
	e.destroy()
}

// purge drops every cached key of a tenant, and makes loads that are in
// flight for it discard their result.
func (c *keyCache) purge(tenant string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch[tenant]++
	n := 0
	for _, e := range c.byTenant[tenant] {
		c.removeLocked(e)
		n++
	}
	return n
}

// sweep evicts every expired key; the keyring calls it periodically so that
// an unused key does not outlive its TTL in memory.
func (c *keyCache) sweep() int {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for e := c.lru.Back(); e != nil; {
		prev := e.Prev()
		if ck := e.Value.(*cachedKey); c.expired(ck, now) {
			c.removeLocked(ck)
			c.evictions.Add(1)
			n++
		}
		e = prev
	}
	return n
}

// purgeAll destroys every key, at shutdown.
func (c *keyCache) purgeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.entries {
		c.removeLocked(e)
	}
	c.allEpoch++
}

func (c *keyCache) stats() CacheStats {
	c.mu.Lock()
	n := len(c.entries)
	c.mu.Unlock()
	return CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Evictions: c.evictions.Load(), Entries: n}
}
