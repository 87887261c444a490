package internalkms

import (
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// cachedKeys returns the KEKs this process holds for tenantID, or nil.
func cachedKeys(s *Service, tenantID string) []*secret.Bytes {
	s.cache.mu.Lock()
	defer s.cache.mu.Unlock()
	set := s.cache.byTenant[tenantID]
	if set == nil {
		return nil
	}
	var out []*secret.Bytes
	for _, k := range set.keys {
		out = append(out, k)
	}
	return out
}

func wantDestroyed(t *testing.T, what string, keys []*secret.Bytes) {
	t.Helper()
	if len(keys) == 0 {
		t.Fatalf("%s: no keys to check", what)
	}
	for _, k := range keys {
		if !k.Destroyed() {
			t.Errorf("%s: a KEK was not zeroed", what)
		}
	}
}

func TestCacheTTL(t *testing.T) {
	clock := newFakeClock()
	store := newMemStore()
	s := New(testRoots(t), store, WithKEKCacheTTL(time.Minute))
	s.cache.now = clock.now

	want, w := wrapOne(t, s, "t1")
	reads, _, _ := store.counts()
	mustUnwrap(t, s, "t1", w, want)
	_, _ = wrapOne(t, s, "t1")
	if got, _, _ := store.counts(); got != reads {
		t.Fatalf("cached tenant cost %d more store reads, want 0", got-reads)
	}
	old := cachedKeys(s, "t1")

	clock.advance(time.Minute)
	mustUnwrap(t, s, "t1", w, want)
	if got, _, _ := store.counts(); got != reads+1 {
		t.Fatalf("after the TTL: %d more store reads, want 1", got-reads)
	}
	wantDestroyed(t, "expired entry", old)

	// Expired entries are zeroed by any later call, not only their tenant's.
	old = cachedKeys(s, "t1")
	clock.advance(time.Minute)
	_, _ = wrapOne(t, s, "t2")
	wantDestroyed(t, "expired entry of an idle tenant", old)
}

func TestCacheSizeBound(t *testing.T) {
	s := New(testRoots(t), newMemStore(), WithKEKCacheSize(2))
	_, _ = wrapOne(t, s, "a")
	a := cachedKeys(s, "a")
	_, _ = wrapOne(t, s, "b")
	_, _ = wrapOne(t, s, "c")
	if n := s.cache.len(); n != 2 {
		t.Errorf("cache holds %d tenants, want 2", n)
	}
	if cachedKeys(s, "a") != nil {
		t.Error("oldest tenant still cached")
	}
	wantDestroyed(t, "evicted entry", a)
}

func TestForgetZeroesKEKs(t *testing.T) {
	s := New(testRoots(t), newMemStore())
	_, _ = wrapOne(t, s, "t1")
	keys := cachedKeys(s, "t1")
	s.Forget("t1")
	wantDestroyed(t, "forgotten tenant", keys)
	if s.cache.len() != 0 {
		t.Error("forgotten tenant still cached")
	}
}

func TestCacheDisabledDestroysAfterUse(t *testing.T) {
	store := newMemStore()
	s := New(testRoots(t), store, WithKEKCacheTTL(0))
	want, w := wrapOne(t, s, "t1")
	mustUnwrap(t, s, "t1", w, want)
	if s.cache.len() != 0 {
		t.Error("a disabled cache holds entries")
	}
	if reads, _, _ := store.counts(); reads < 3 {
		t.Errorf("with no cache, create + wrap + unwrap made %d store reads, want at least 3", reads)
	}
}

func TestCacheEvictionWaitsForUsers(t *testing.T) {
	c := newKEKCache(10, time.Minute)
	k, _ := secret.Random(keySize)
	set := c.add(&kekSet{tenantID: "t1", keys: map[uint32]*secret.Bytes{1: k}, current: 1})
	again := c.acquire("t1")
	c.forget("t1")
	c.release(set)
	if k.Destroyed() {
		t.Fatal("KEK zeroed while still in use")
	}
	c.release(again)
	if !k.Destroyed() {
		t.Fatal("KEK not zeroed after its last user released it")
	}
	if c.acquire("t1") != nil {
		t.Fatal("forgotten entry still served")
	}
}

func TestCacheReplaceKeepsFresherLoad(t *testing.T) {
	c := newKEKCache(10, time.Minute)
	k1, _ := secret.Random(keySize)
	k2, _ := secret.Random(keySize)
	stale := c.add(&kekSet{tenantID: "t1", keys: map[uint32]*secret.Bytes{1: k1}, current: 1})
	fresh := c.add(&kekSet{tenantID: "t1", keys: map[uint32]*secret.Bytes{1: k2}, current: 1})
	c.forgetIfSame(stale) // a stale reader must not evict the fresh load
	c.release(stale)
	c.release(fresh)
	if !k1.Destroyed() {
		t.Error("replaced entry not zeroed")
	}
	got := c.acquire("t1")
	if got != fresh {
		t.Fatal("fresh entry was evicted by a stale reader")
	}
	c.release(got)
}
