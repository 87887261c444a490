package internalkms

import (
	"container/list"
	"sync"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// kekSet is one tenant's unwrapped KEKs, loaded together because the store
// returns them together and a tenant has few versions.
type kekSet struct {
	tenantID string
	keys     map[uint32]*secret.Bytes
	current  uint32 // the newest version, which wraps new data keys

	// Guarded by the cache's mutex.
	expires time.Time
	elem    *list.Element // nil once out of the cache
	refs    int
	evicted bool
}

func (s *kekSet) destroy() {
	for _, k := range s.keys {
		k.Destroy()
	}
}

// kekCache holds unwrapped KEKs for a bounded time and number of tenants.
//
// Entries are reference counted: an eviction (size, TTL, Forget, a reload)
// only zeroes a set once no Wrap or Unwrap is using it, because
// secret.Bytes leaves that lifetime to its owner.
//
// Eviction is first-in first-out by load time. With a TTL measured from the
// load, the oldest entry is also the first to expire, so one list serves both
// bounds; a hot tenant is simply reloaded once per TTL. Expired entries are
// swept on every call rather than by a timer goroutine: the root key, which
// opens every KEK, stays in memory for the life of the process anyway, so
// zeroing an idle expired KEK a little later protects nothing more.
type kekCache struct {
	mu       sync.Mutex
	max      int
	ttl      time.Duration
	now      func() time.Time
	byTenant map[string]*kekSet
	order    list.List // of *kekSet, oldest load first
	// gen counts forgets, so that a load that read the store before a
	// forget (a rotation, a deletion) does not cache what it read after it.
	gen uint64
}

func newKEKCache(maxTenants int, ttl time.Duration) *kekCache {
	return &kekCache{max: maxTenants, ttl: ttl, now: time.Now, byTenant: make(map[string]*kekSet)}
}

// acquire returns tenantID's live set with a reference taken, or nil.
func (c *kekCache) acquire(tenantID string) *kekSet {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked()
	s := c.byTenant[tenantID]
	if s == nil {
		return nil
	}
	s.refs++
	return s
}

// generation is to be read before a load reads the store, and given to
// addIfCurrent.
func (c *kekCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// addIfCurrent is add, unless a forget happened since gen was read: then
// s may predate it (a KEK version added, the tenant deleted), so it is
// handed back uncached, for this one use.
func (c *kekCache) addIfCurrent(s *kekSet, gen uint64) *kekSet {
	c.mu.Lock()
	if c.gen != gen {
		defer c.mu.Unlock()
		s.refs++
		s.evicted = true
		return s
	}
	c.mu.Unlock()
	return c.add(s)
}

// add caches s, replacing any set of the same tenant (s is the fresher
// load), and returns it with a reference taken. With caching disabled, s is
// handed back uncached and is zeroed on release.
func (c *kekCache) add(s *kekSet) *kekSet {
	c.mu.Lock()
	defer c.mu.Unlock()
	s.refs++
	if c.max <= 0 || c.ttl <= 0 {
		s.evicted = true
		return s
	}
	c.sweepLocked()
	if old := c.byTenant[s.tenantID]; old != nil {
		c.evictLocked(old)
	}
	for c.order.Len() >= c.max {
		c.evictLocked(c.order.Front().Value.(*kekSet))
	}
	s.expires = c.now().Add(c.ttl)
	s.elem = c.order.PushBack(s)
	c.byTenant[s.tenantID] = s
	return s
}

// release drops a reference taken by acquire or add.
func (c *kekCache) release(s *kekSet) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s.refs--
	if s.evicted && s.refs == 0 {
		s.destroy()
	}
}

// forget evicts tenantID's set, if any.
func (c *kekCache) forget(tenantID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if s := c.byTenant[tenantID]; s != nil {
		c.evictLocked(s)
	}
}

// purge evicts every set.
func (c *kekCache) purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for c.order.Len() > 0 {
		c.evictLocked(c.order.Front().Value.(*kekSet))
	}
}

// forgetIfSame evicts s only if it is still the cached set for its tenant,
// so that a stale reader does not throw away a fresher load.
func (c *kekCache) forgetIfSame(s *kekSet) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if c.byTenant[s.tenantID] == s {
		c.evictLocked(s)
	}
}

func (c *kekCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

func (c *kekCache) sweepLocked() {
	now := c.now()
	for e := c.order.Front(); e != nil; e = c.order.Front() {
		s := e.Value.(*kekSet)
		if now.Before(s.expires) {
			return
		}
		c.evictLocked(s)
	}
}

func (c *kekCache) evictLocked(s *kekSet) {
	c.order.Remove(s.elem)
	s.elem = nil
	delete(c.byTenant, s.tenantID)
	s.evicted = true
	if s.refs == 0 {
		s.destroy()
	}
}
