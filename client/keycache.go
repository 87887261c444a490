package client

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// KeyCacheConfig bounds the client's cache of plaintext data keys for
// local envelope encryption (see Envelope). Zero fields take the values of
// DefaultKeyCacheConfig.
//
// A data key for encryption is used for new objects (byte slices or
// streams) until it is MaxAge old, has sealed MaxUses objects, or has
// sealed MaxBytes bytes; then the next object gets a fresh key from the
// service. Every object has its own keys derived from the data key and a
// random 256-bit salt, so reusing a data key never reuses a nonce; the
// bounds limit how much data one data key protects and how long it lives
// in memory.
//
// Resolved handles (for decryption) are kept for MaxAge too, at most
// MaxEntries of them (least recently used first out).
//
// MaxAge is also how long the client may keep using a key after the
// tenant's customer managed key is revoked, unless a service answer tells
// it sooner: any answer saying the key is revoked, the tenant locked,
// destroyed or gone (ErrKeyRevoked, ErrTenantLocked, ErrTenantDestroyed,
// ErrTenantNotFound) zeroes every cached key at once. Keys are zeroed
// whenever they leave the cache.
type KeyCacheConfig struct {
	// MaxAge is how long a data key is cached after the service handed it
	// out. Negative disables the cache: every object gets a fresh data
	// key and every decryption resolves its handle.
	MaxAge time.Duration
	// MaxUses is how many objects one data key seals.
	MaxUses int64
	// MaxBytes is how many plaintext bytes one data key seals before it
	// is retired (an object in progress finishes with it).
	MaxBytes int64
	// MaxEntries bounds the resolved handles kept for decryption.
	MaxEntries int
}

// DefaultKeyCacheConfig is the cache of a Client without WithKeyCache: a
// minute, about a million objects, 64 GiB, 1000 handles.
var DefaultKeyCacheConfig = KeyCacheConfig{MaxAge: time.Minute, MaxUses: 1 << 20, MaxBytes: 64 << 30, MaxEntries: 1000}

// WithKeyCache sets the bounds of the data-key cache of local envelope
// encryption; zero fields keep their defaults.
func WithKeyCache(cfg KeyCacheConfig) Option {
	return func(c *Client) error {
		if cfg.MaxUses < 0 || cfg.MaxBytes < 0 || cfg.MaxEntries < 0 {
			return errors.New("client: key cache bounds must not be negative (a negative MaxAge disables the cache)")
		}
		c.keysCfg = cfg
		return nil
	}
}

func (cfg KeyCacheConfig) withDefaults() KeyCacheConfig {
	d := DefaultKeyCacheConfig
	if cfg.MaxAge == 0 {
		cfg.MaxAge = d.MaxAge
	}
	if cfg.MaxUses == 0 {
		cfg.MaxUses = d.MaxUses
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = d.MaxBytes
	}
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = d.MaxEntries
	}
	return cfg
}

// dataKey is one plaintext data key in the cache. Its secret is read under
// mu.RLock only while deriving a stream's keys; destroy takes mu.Lock, so
// it waits for those and zeroes the key once nobody reads it. A key is
// destroyed only after it has left the cache, so whoever finds it in the
// cache (under keyCache.mu) and read-locks it before letting go of
// keyCache.mu sees it whole.
type dataKey struct {
	mu      sync.RWMutex
	secret  []byte // nil once destroyed
	handle  string
	created time.Time

	uses  int64        // objects sealed; guarded by keyCache.mu
	bytes atomic.Int64 // plaintext bytes sealed
	timer *time.Timer  // zeroes the key at MaxAge; guarded by keyCache.mu
}

func (k *dataKey) destroy() {
	k.mu.Lock()
	clear(k.secret)
	k.secret = nil
	k.mu.Unlock()
}

// fetch is one request for a key in flight; concurrent callers that need
// the same key wait for it instead of asking the service again.
type fetch struct {
	done chan struct{}
	err  error
}

// errPurged: the cache was purged while a key was being fetched, so the
// key was not kept; the caller asks again.
var errPurged = errors.New("client: data key cache purged during the fetch")

// keyCache holds the data keys of local envelope encryption: the current
// key for encryption, and resolved handles for decryption.
type keyCache struct {
	cfg KeyCacheConfig
	now func() time.Time

	mu       sync.Mutex
	gen      uint64 // incremented by every purge
	enc      *dataKey
	encFetch *fetch
	dec      map[string]*list.Element // of *dataKey, by handle
	lru      list.List                // front: most recently used
	decFetch map[string]*fetch
}

func newKeyCache(cfg KeyCacheConfig) (*keyCache, error) {
	return &keyCache{cfg: cfg.withDefaults(), now: time.Now, dec: map[string]*list.Element{}, decFetch: map[string]*fetch{}}, nil
}

func (kc *keyCache) caching() bool { return kc.cfg.MaxAge > 0 }

// usable reports whether k may seal another object; kc.mu is held.
func (kc *keyCache) usable(k *dataKey) bool {
	return kc.now().Sub(k.created) < kc.cfg.MaxAge && k.uses < kc.cfg.MaxUses && k.bytes.Load() < kc.cfg.MaxBytes
}

// withEncryptionKey calls fn with a data key that has one use (and size
// bytes) reserved, from the cache or, when none is usable, from generate.
// fn must not keep the secret; it runs with the key read-locked.
func (kc *keyCache) withEncryptionKey(ctx context.Context, generate func(context.Context) ([]byte, string, error),
	size int64, fn func(secret []byte, k *dataKey) error) error {
	if !kc.caching() {
		secret, handle, err := generate(ctx)
		if err != nil {
			return err
		}
		k := &dataKey{secret: secret, handle: handle, created: kc.now(), uses: 1}
		k.bytes.Store(size)
		defer k.destroy()
		return fn(k.secret, k)
	}
	for {
		kc.mu.Lock()
		var retired *dataKey
		if k := kc.enc; k != nil {
			if kc.usable(k) {
				k.uses++
				k.bytes.Add(size)
				k.mu.RLock()
				kc.mu.Unlock()
				defer k.mu.RUnlock()
				return fn(k.secret, k)
			}
			retired = k
			kc.enc = nil
			k.timer.Stop()
		}
		if f := kc.encFetch; f != nil {
			kc.mu.Unlock()
			if err := kc.wait(ctx, f); err != nil {
				return err
			}
			continue
		}
		f := &fetch{done: make(chan struct{})}
		kc.encFetch = f
		gen := kc.gen
		kc.mu.Unlock()
		if retired != nil {
			retired.destroy()
		}

		secret, handle, err := generate(ctx)

		kc.mu.Lock()
		kc.encFetch = nil
		if err == nil && gen != kc.gen {
			clear(secret)
			err = errPurged
		}
		f.err = err
		close(f.done)
		if err != nil {
			kc.mu.Unlock()
			if err == errPurged {
				continue
			}
			return err
		}
		now := kc.now()
		k := &dataKey{secret: secret, handle: handle, created: now, uses: 1}
		k.bytes.Store(size)
		k.timer = time.AfterFunc(kc.cfg.MaxAge, func() { kc.expire(k) })
		kc.enc = k
		// What this client seals, it can open again without asking.
		dk := &dataKey{secret: append([]byte(nil), secret...), handle: handle, created: now}
		evicted := kc.insertDec(dk)
		k.mu.RLock()
		kc.mu.Unlock()
		for _, e := range evicted {
			e.destroy()
		}
		defer k.mu.RUnlock()
		return fn(k.secret, k)
	}
}

// withDecryptionKey calls fn with the data key of handle, from the cache
// or from resolve. fn must not keep the secret.
func (kc *keyCache) withDecryptionKey(ctx context.Context, handle string, resolve func(context.Context, string) ([]byte, error),
	fn func(secret []byte) error) error {
	if !kc.caching() {
		secret, err := resolve(ctx, handle)
		if err != nil {
			return err
		}
		defer clear(secret)
		return fn(secret)
	}
	for {
		kc.mu.Lock()
		var stale *dataKey
		if el, ok := kc.dec[handle]; ok {
			k := el.Value.(*dataKey)
			if kc.now().Sub(k.created) < kc.cfg.MaxAge {
				kc.lru.MoveToFront(el)
				k.mu.RLock()
				kc.mu.Unlock()
				defer k.mu.RUnlock()
				return fn(k.secret)
			}
			stale = kc.removeDec(el)
		}
		if f := kc.decFetch[handle]; f != nil {
			kc.mu.Unlock()
			if stale != nil {
				stale.destroy()
			}
			if err := kc.wait(ctx, f); err != nil {
				return err
			}
			continue
		}
		f := &fetch{done: make(chan struct{})}
		kc.decFetch[handle] = f
		gen := kc.gen
		kc.mu.Unlock()
		if stale != nil {
			stale.destroy()
		}

		secret, err := resolve(ctx, handle)

		kc.mu.Lock()
		delete(kc.decFetch, handle)
		if err == nil && gen != kc.gen {
			clear(secret)
			err = errPurged
		}
		f.err = err
		close(f.done)
		if err != nil {
			kc.mu.Unlock()
			if err == errPurged {
				continue
			}
			return err
		}
		k := &dataKey{secret: secret, handle: handle, created: kc.now()}
		evicted := kc.insertDec(k)
		k.mu.RLock()
		kc.mu.Unlock()
		for _, e := range evicted {
			e.destroy()
		}
		defer k.mu.RUnlock()
		return fn(k.secret)
	}
}

// wait waits for another caller's fetch. It returns nil when the caller
// should look in the cache again, and the fetch's error when it applies to
// this caller too.
func (kc *keyCache) wait(ctx context.Context, f *fetch) error {
	select {
	case <-f.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	switch {
	case f.err == nil, f.err == errPurged:
		return nil
	case errors.Is(f.err, context.Canceled), errors.Is(f.err, context.DeadlineExceeded):
		// The other caller gave up; this one has not.
		return nil
	}
	return f.err
}

// insertDec adds k to the decryption keys, replacing a key of the same
// handle, and returns the keys that left (to destroy outside kc.mu).
func (kc *keyCache) insertDec(k *dataKey) []*dataKey {
	var out []*dataKey
	if el, ok := kc.dec[k.handle]; ok {
		out = append(out, kc.removeDec(el))
	}
	kc.dec[k.handle] = kc.lru.PushFront(k)
	k.timer = time.AfterFunc(kc.cfg.MaxAge, func() { kc.expire(k) })
	for kc.lru.Len() > kc.cfg.MaxEntries {
		out = append(out, kc.removeDec(kc.lru.Back()))
	}
	return out
}

// removeDec takes a key out of the decryption keys; kc.mu is held.
func (kc *keyCache) removeDec(el *list.Element) *dataKey {
	k := kc.lru.Remove(el).(*dataKey)
	delete(kc.dec, k.handle)
	k.timer.Stop()
	return k
}

// expire zeroes k when its MaxAge is up, whether or not it is used again.
func (kc *keyCache) expire(k *dataKey) {
	kc.mu.Lock()
	found := false
	if kc.enc == k {
		kc.enc, found = nil, true
	}
	if el, ok := kc.dec[k.handle]; ok && el.Value.(*dataKey) == k {
		kc.lru.Remove(el)
		delete(kc.dec, k.handle)
		found = true
	}
	kc.mu.Unlock()
	if found {
		k.destroy()
	}
}

// purge zeroes every cached key now. Fetches in flight finish but their
// keys are not kept.
func (kc *keyCache) purge() {
	kc.mu.Lock()
	kc.gen++
	var keys []*dataKey
	if kc.enc != nil {
		kc.enc.timer.Stop()
		keys = append(keys, kc.enc)
		kc.enc = nil
	}
	for el := kc.lru.Front(); el != nil; el = el.Next() {
		k := el.Value.(*dataKey)
		k.timer.Stop()
		keys = append(keys, k)
	}
	kc.lru.Init()
	clear(kc.dec)
	kc.mu.Unlock()
	for _, k := range keys {
		k.destroy()
	}
}

// stats are the cache's contents, for tests.
func (kc *keyCache) stats() (enc bool, dec int) {
	kc.mu.Lock()
	defer kc.mu.Unlock()
	return kc.enc != nil, len(kc.dec)
}
