package keyring

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func keyOf(tenant string, n byte) cacheKey {
	var id envelope.KeyID
	id[0] = n
	return cacheKey{tenant: tenant, id: id}
}

// loader returns a load function that makes a key filled with n and counts
// its calls.
func loader(n byte, calls *atomic.Int32) func(context.Context) (loaded, error) {
	return func(context.Context) (loaded, error) {
		calls.Add(1)
		return loaded{key: secret.New(bytes.Repeat([]byte{n}, 32)), purpose: PurposeEncryption}, nil
	}
}

func useKey(t *testing.T, c *keyCache, k cacheKey, load func(context.Context) (loaded, error)) []byte {
	t.Helper()
	var got []byte
	err := c.use(context.Background(), k, PurposeEncryption, [32]byte{}, load, func(key []byte) error {
		got = append([]byte(nil), key...)
		return nil
	})
	if err != nil {
		t.Fatalf("use(%v): %v", k.id[0], err)
	}
	return got
}

func TestCacheNeverExceedsMaxEntries(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	c := newKeyCache(CacheConfig{MaxEntries: 3}, clock.Now)
	var calls atomic.Int32
	for i := range 10 {
		useKey(t, c, keyOf("a", byte(i)), loader(byte(i), &calls))
		if got := c.stats().Entries; got > 3 {
			t.Fatalf("after %d keys: entries = %d, want <= 3", i+1, got)
		}
	}
	if got, want := c.stats().Evictions, uint64(7); got != want {
		t.Errorf("evictions = %d, want %d", got, want)
	}
	// The most recently used keys stay; the oldest was evicted and reloads.
	before := calls.Load()
	useKey(t, c, keyOf("a", 9), loader(9, &calls))
	if calls.Load() != before {
		t.Errorf("most recent key was reloaded")
	}
	useKey(t, c, keyOf("a", 0), loader(0, &calls))
	if calls.Load() != before+1 {
		t.Errorf("evicted key was not reloaded")
	}
}

func TestCacheExpiry(t *testing.T) {
	tests := []struct {
		name        string
		cfg         CacheConfig
		step        time.Duration
		steps       int
		wantReloads int32
	}{
		// Used every minute, so never idle, but the hard TTL still bites.
		{"hard ttl despite use", CacheConfig{IdleTimeout: 2 * time.Minute, TTL: 5 * time.Minute}, time.Minute, 11, 2},
		{"idle", CacheConfig{IdleTimeout: 2 * time.Minute, TTL: time.Hour}, 3 * time.Minute, 3, 3},
		{"fresh", CacheConfig{IdleTimeout: 2 * time.Minute, TTL: time.Hour}, time.Second, 10, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &fakeClock{t: time.Unix(1e9, 0)}
			c := newKeyCache(tt.cfg, clock.Now)
			var calls atomic.Int32
			k := keyOf("a", 1)
			useKey(t, c, k, loader(1, &calls))
			for range tt.steps {
				clock.Advance(tt.step)
				useKey(t, c, k, loader(1, &calls))
			}
			if got := calls.Load() - 1; got != tt.wantReloads {
				t.Errorf("reloads = %d, want %d", got, tt.wantReloads)
			}
		})
	}
}

func TestCacheSweepDestroysExpiredKeys(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	c := newKeyCache(CacheConfig{IdleTimeout: time.Minute, TTL: time.Hour}, clock.Now)
	key := secret.New(bytes.Repeat([]byte{7}, 32))
	c.put(keyOf("a", 1), loaded{key: key, purpose: PurposeEncryption})
	clock.Advance(2 * time.Minute)
	if got := c.sweep(); got != 1 {
		t.Fatalf("sweep removed %d, want 1", got)
	}
	if !key.Destroyed() {
		t.Errorf("swept key was not zeroed")
	}
}

func TestCachePurgeDropsOnlyThatTenant(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	c := newKeyCache(CacheConfig{}, clock.Now)
	var keys []*secret.Bytes
	for i, tenant := range []string{"a", "a", "b"} {
		k := secret.New(bytes.Repeat([]byte{byte(i)}, 32))
		keys = append(keys, k)
		c.put(keyOf(tenant, byte(i)), loaded{key: k, purpose: PurposeEncryption})
	}
	if got := c.purge("a"); got != 2 {
		t.Fatalf("purge(a) = %d, want 2", got)
	}
	if !keys[0].Destroyed() || !keys[1].Destroyed() {
		t.Errorf("purged keys were not zeroed")
	}
	if keys[2].Destroyed() || c.stats().Entries != 1 {
		t.Errorf("purge(a) touched tenant b")
	}
}

func TestCacheOneLoadPerKeyAndFailuresNotCached(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	c := newKeyCache(CacheConfig{}, clock.Now)
	k := keyOf("a", 1)

	release := make(chan struct{})
	var calls atomic.Int32
	slow := func(ctx context.Context) (loaded, error) {
		calls.Add(1)
		<-release
		return loaded{key: secret.New(bytes.Repeat([]byte{1}, 32)), purpose: PurposeEncryption}, nil
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { useKey(t, c, k, slow) })
	}
	time.Sleep(20 * time.Millisecond) // let them pile up on the flight
	close(release)
	wg.Wait()
	if got := calls.Load(); got != 1 {
		t.Errorf("concurrent loads = %d, want 1", got)
	}

	boom := errors.New("kms down")
	var failures atomic.Int32
	failing := func(context.Context) (loaded, error) { failures.Add(1); return loaded{}, boom }
	k2 := keyOf("a", 2)
	for range 3 {
		err := c.use(context.Background(), k2, PurposeEncryption, [32]byte{}, failing, func([]byte) error { return nil })
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want %v", err, boom)
		}
	}
	if got := failures.Load(); got != 3 {
		t.Errorf("failing loads = %d, want 3 (a failure must not be cached)", got)
	}
}

func TestCachePurgeDuringLoadDiscardsResult(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	c := newKeyCache(CacheConfig{}, clock.Now)
	k := keyOf("a", 1)
	var loadedKey *secret.Bytes
	load := func(context.Context) (loaded, error) {
		c.purge("a") // the tenant is revoked while its key is being unwrapped
		loadedKey = secret.New(bytes.Repeat([]byte{1}, 32))
		return loaded{key: loadedKey, purpose: PurposeEncryption}, nil
	}
	_, _, epoch := c.lookup(k)
	if err := c.fill(context.Background(), k, epoch, load); err != nil {
		t.Fatal(err)
	}
	if got := c.stats().Entries; got != 0 {
		t.Errorf("entries = %d, want 0: a key loaded across a purge was cached", got)
	}
	if !loadedKey.Destroyed() {
		t.Errorf("discarded key was not zeroed")
	}
}

func TestCacheRefusesKeyForOtherPurposeOrContext(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	c := newKeyCache(CacheConfig{}, clock.Now)
	k := keyOf("a", 1)
	c.put(k, loaded{key: secret.New(make([]byte, 32)), purpose: PurposeDataKey, digest: [32]byte{1}})
	noop := func([]byte) error { return nil }
	fail := func(context.Context) (loaded, error) { t.Fatal("unexpected load"); return loaded{}, nil }
	if err := c.use(context.Background(), k, PurposeEncryption, [32]byte{1}, fail, noop); !errors.Is(err, ErrDecrypt) {
		t.Errorf("other purpose: err = %v, want ErrDecrypt", err)
	}
	if err := c.use(context.Background(), k, PurposeDataKey, [32]byte{2}, fail, noop); !errors.Is(err, ErrDecrypt) {
		t.Errorf("other context: err = %v, want ErrDecrypt", err)
	}
	if err := c.use(context.Background(), k, PurposeDataKey, [32]byte{1}, fail, noop); err != nil {
		t.Errorf("same purpose and context: err = %v", err)
	}
}
