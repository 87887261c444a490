package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/client/internal/fakeservice"
)

var (
	dataKeysPath = api.RouteGenerateDataKey.Path
	resolvePath  = api.RouteDecryptDataKey.Path
)

// fakeClock is a settable clock for the cache's age checks.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func withClock(c *Client) *fakeClock {
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	c.keys.now = clk.Now
	return clk
}

// cachedSecrets returns the cache's key buffers (they alias the cache's,
// so a test can see them zeroed).
func cachedSecrets(c *Client) [][]byte {
	kc := c.keys
	kc.mu.Lock()
	defer kc.mu.Unlock()
	var out [][]byte
	if kc.enc != nil {
		out = append(out, kc.enc.secret)
	}
	for el := kc.lru.Front(); el != nil; el = el.Next() {
		out = append(out, el.Value.(*dataKey).secret)
	}
	return out
}

func checkZeroed(t *testing.T, secrets [][]byte) {
	t.Helper()
	if len(secrets) == 0 {
		t.Fatal("no cached keys to check")
	}
	for _, s := range secrets {
		if len(s) != 32 {
			t.Fatalf("cached key of %d bytes", len(s))
		}
		if !bytes.Equal(s, make([]byte, 32)) {
			t.Fatal("a key that left the cache was not zeroed")
		}
	}
}

func TestKeyCacheUses(t *testing.T) {
	s := newFake(t)
	c, _ := newTestClient(t, s, "acme", WithKeyCache(KeyCacheConfig{MaxUses: 3}))
	e := c.Envelope()
	ctx := context.Background()
	var streams [][]byte
	for i := range 7 {
		// Each object may have its own context: one data key serves all.
		ectx := map[string]string{"object": string(rune('a' + i))}
		b, err := e.Encrypt(ctx, []byte("x"), ectx)
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, b)
	}
	if got, want := s.Requests(dataKeysPath), 3; got != want {
		t.Errorf("7 objects at 3 uses per key asked for %d data keys, want %d", got, want)
	}
	// Decrypting what this client sealed asks for nothing.
	for i, b := range streams {
		if _, err := e.Decrypt(ctx, b, map[string]string{"object": string(rune('a' + i))}); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Requests(resolvePath); got != 0 {
		t.Errorf("decrypting own streams resolved %d handles, want 0", got)
	}
	// Another client resolves each data key once.
	other, _ := newTestClient(t, s, "acme")
	for range 2 {
		for i, b := range streams {
			if _, err := other.Envelope().Decrypt(ctx, b, map[string]string{"object": string(rune('a' + i))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got, want := s.Requests(resolvePath), 3; got != want {
		t.Errorf("another client resolved %d handles for 3 data keys, want %d", got, want)
	}
}

func TestKeyCacheBytes(t *testing.T) {
	s := newFake(t)
	c, _ := newTestClient(t, s, "acme", WithKeyCache(KeyCacheConfig{MaxBytes: 100}))
	e := c.Envelope()
	ctx := context.Background()
	// 60 + 60 crosses 100: the third object needs a new key. An object
	// larger than the bound still gets a (fresh) key.
	for _, n := range []int{60, 60, 10, 500, 1} {
		if _, err := e.Encrypt(ctx, make([]byte, n), nil); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := s.Requests(dataKeysPath), 3; got != want {
		t.Errorf("data keys = %d, want %d (keys: [60 60] [10 500] [1])", got, want)
	}
	// A stream counts what it has sealed, segment by segment.
	w, err := e.NewEncryptWriter(ctx, discard{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(make([]byte, 2*segmentSize+1))
	w.Close()
	if _, err := e.Encrypt(ctx, nil, nil); err != nil {
		t.Fatal(err)
	}
	// The stream started on the third key and took it past the bound.
	if got, want := s.Requests(dataKeysPath), 4; got != want {
		t.Errorf("data keys = %d, want %d", got, want)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func TestKeyCacheAge(t *testing.T) {
	s := newFake(t)
	c, _ := newTestClient(t, s, "acme", WithKeyCache(KeyCacheConfig{MaxAge: time.Hour}))
	clk := withClock(c)
	e := c.Envelope()
	ctx := context.Background()
	b, err := e.Encrypt(ctx, []byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(59 * time.Minute)
	if _, err := e.Encrypt(ctx, []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Decrypt(ctx, b, nil); err != nil {
		t.Fatal(err)
	}
	if got := s.Requests(dataKeysPath) + s.Requests(resolvePath); got != 1 {
		t.Fatalf("requests within MaxAge = %d, want 1", got)
	}
	clk.Add(time.Minute)
	if _, err := e.Encrypt(ctx, []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Decrypt(ctx, b, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := s.Requests(dataKeysPath), 2; got != want {
		t.Errorf("data keys after MaxAge = %d, want %d", got, want)
	}
	if got, want := s.Requests(resolvePath), 1; got != want {
		t.Errorf("resolves after MaxAge = %d, want %d", got, want)
	}
}

// TestKeyCacheExpiryZeroes: a key is zeroed at MaxAge even if nothing uses
// the client again.
func TestKeyCacheExpiryZeroes(t *testing.T) {
	s := newFake(t)
	c, _ := newTestClient(t, s, "acme", WithKeyCache(KeyCacheConfig{MaxAge: 20 * time.Millisecond}))
	if _, err := c.Envelope().Encrypt(context.Background(), []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	secrets := cachedSecrets(c)
	if len(secrets) != 2 {
		t.Fatalf("cached %d keys, want 2 (encryption, and its copy for decryption)", len(secrets))
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if enc, dec := c.keys.stats(); !enc && dec == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("keys are still cached a minute after their MaxAge")
		}
		time.Sleep(5 * time.Millisecond)
	}
	checkZeroed(t, secrets)
}

func TestKeyCacheLRU(t *testing.T) {
	s := newFake(t)
	writer, _ := newTestClient(t, s, "acme", WithKeyCache(KeyCacheConfig{MaxUses: 1}))
	ctx := context.Background()
	var streams [][]byte
	for range 3 {
		b, err := writer.Envelope().Encrypt(ctx, []byte("x"), nil)
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, b)
	}
	reader, _ := newTestClient(t, s, "acme", WithKeyCache(KeyCacheConfig{MaxEntries: 2}))
	for _, i := range []int{0, 1, 0, 2, 0, 1} {
		if _, err := reader.Envelope().Decrypt(ctx, streams[i], nil); err != nil {
			t.Fatal(err)
		}
	}
	// 0 1 (0 hit) 2 evicts 1; (0 hit) 1 again evicts 2.
	if got, want := s.Requests(resolvePath), 4; got != want {
		t.Errorf("resolves = %d, want %d", got, want)
	}
	if _, dec := reader.keys.stats(); dec != 2 {
		t.Errorf("cached handles = %d, want 2", dec)
	}
}

func TestKeyCacheDisabled(t *testing.T) {
	s := newFake(t)
	c, _ := newTestClient(t, s, "acme", WithKeyCache(KeyCacheConfig{MaxAge: -1}))
	e := c.Envelope()
	ctx := context.Background()
	for range 3 {
		b, err := e.Encrypt(ctx, []byte("x"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Decrypt(ctx, b, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := s.Requests(dataKeysPath)+s.Requests(resolvePath), 6; got != want {
		t.Errorf("requests without a cache = %d, want %d", got, want)
	}
	if enc, dec := c.keys.stats(); enc || dec != 0 {
		t.Errorf("a disabled cache holds keys")
	}
}

// TestKeyCacheOneFetch: concurrent callers on a cold cache share one
// request.
func TestKeyCacheOneFetch(t *testing.T) {
	s := newFake(t)
	c, _ := newTestClient(t, s, "acme")
	ctx := context.Background()
	const n = 32
	streams := make([][]byte, n)
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Go(func() {
			b, err := c.Envelope().Encrypt(ctx, []byte{byte(i)}, nil)
			streams[i] = b
			errs <- err
		})
	}
	wg.Wait()
	reader, _ := newTestClient(t, s, "acme")
	for i := range n {
		wg.Go(func() {
			pt, err := reader.Envelope().Decrypt(ctx, streams[i], nil)
			if err == nil && (len(pt) != 1 || pt[0] != byte(i)) {
				err = errors.New("wrong plaintext")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Requests(dataKeysPath); got != 1 {
		t.Errorf("%d concurrent encryptions asked for %d data keys, want 1", n, got)
	}
	if got := s.Requests(resolvePath); got != 1 {
		t.Errorf("%d concurrent decryptions resolved the handle %d times, want 1", n, got)
	}
}

// TestKeyCachePurgedOnRevocation: an answer saying the tenant's key is
// revoked, from any call, zeroes every cached key; once the key is back,
// new keys are fetched.
func TestKeyCachePurgedOnRevocation(t *testing.T) {
	for _, tc := range []struct {
		status int
		code   api.Code
		is     error
	}{
		{http.StatusForbidden, api.CodeKeyUnavailable, ErrKeyRevoked},
		{http.StatusLocked, api.CodeTenantLocked, ErrTenantLocked},
		{http.StatusGone, api.CodeTenantDestroyed, ErrTenantDestroyed},
		{http.StatusNotFound, api.CodeTenantNotFound, ErrTenantNotFound},
	} {
		t.Run(string(tc.code), func(t *testing.T) {
			s := newFake(t)
			c, _ := newTestClient(t, s, "acme")
			e := c.Envelope()
			ctx := context.Background()
			mine, err := e.Encrypt(ctx, []byte("mine"), nil)
			if err != nil {
				t.Fatal(err)
			}
			other, _ := newTestClient(t, s, "acme")
			theirs, err := other.Envelope().Encrypt(ctx, []byte("theirs"), nil)
			if err != nil {
				t.Fatal(err)
			}
			secrets := cachedSecrets(c)

			s.Revoke("acme", tc.status, tc.code)
			// Opening another client's stream needs the service, which
			// says the key is revoked.
			if _, err := e.Decrypt(ctx, theirs, nil); !errors.Is(err, tc.is) {
				t.Fatalf("decrypt while revoked: %v, want %v", err, tc.is)
			}
			if enc, dec := c.keys.stats(); enc || dec != 0 {
				t.Fatal("the cache still holds keys after the service said revoked")
			}
			checkZeroed(t, secrets)
			// Its own stream, whose key it had cached, now needs the
			// service too.
			if _, err := e.Decrypt(ctx, mine, nil); !errors.Is(err, tc.is) {
				t.Fatalf("decrypt of an own stream after the purge: %v, want %v", err, tc.is)
			}
			if _, err := e.Encrypt(ctx, []byte("x"), nil); !errors.Is(err, tc.is) {
				t.Fatalf("encrypt after the purge: %v, want %v", err, tc.is)
			}

			s.Restore("acme")
			if got, err := e.Decrypt(ctx, mine, nil); err != nil || string(got) != "mine" {
				t.Fatalf("decrypt after the key is back: %q %v", got, err)
			}
			if _, err := e.Encrypt(ctx, []byte("x"), nil); err != nil {
				t.Fatal(err)
			}
			if got := s.DataKeys(); got != 3 {
				t.Errorf("data keys = %d, want 3 (two clients, and one after the purge)", got)
			}
		})
	}
}

// TestKeyCachePurgedByAnyCall: the service's own encrypt saying revoked
// purges the local keys too.
func TestKeyCachePurgedByAnyCall(t *testing.T) {
	s := newFake(t)
	c, _ := newTestClient(t, s, "acme")
	ctx := context.Background()
	if _, err := c.Envelope().Encrypt(ctx, []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	secrets := cachedSecrets(c)
	s.Revoke("acme", http.StatusForbidden, api.CodeKeyUnavailable)
	if _, err := c.Encrypt(ctx, []byte("small"), nil); !errors.Is(err, ErrKeyRevoked) {
		t.Fatalf("service encrypt: %v", err)
	}
	checkZeroed(t, secrets)
	c.PurgeKeys() // idempotent
}

// TestKeyCachePurgeDuringFetch: a key fetched while the cache is purged is
// not kept; the caller asks again and gets the service's current answer.
func TestKeyCachePurgeDuringFetch(t *testing.T) {
	s := newFake(t)
	c, _ := newTestClient(t, s, "acme")
	ctx := context.Background()
	calls := 0
	gen := func(ctx context.Context) ([]byte, string, error) {
		calls++
		if calls == 1 {
			c.PurgeKeys()
		}
		return c.newStreamDataKey(ctx)
	}
	err := c.keys.withEncryptionKey(ctx, gen, 1, func(secret []byte, k *dataKey) error {
		if len(secret) != 32 {
			return errors.New("no key")
		}
		return nil
	})
	if err != nil || calls != 2 {
		t.Fatalf("got %v after %d fetches, want success after 2", err, calls)
	}
}

// TestKeyCacheErrorsShared: concurrent callers waiting for a fetch that
// fails get its error, and a failure is never cached.
func TestKeyCacheErrorsShared(t *testing.T) {
	s := newFake(t)
	c, _ := newTestClient(t, s, "acme")
	s.Inject(fakeservice.Fault{Path: dataKeysPath, Times: 1, Status: http.StatusBadRequest, Code: api.CodeBadRequest})
	if _, err := c.Envelope().Encrypt(context.Background(), []byte("x"), nil); !IsCode(err, api.CodeBadRequest) {
		t.Fatalf("got %v, want the injected error", err)
	}
	if _, err := c.Envelope().Encrypt(context.Background(), []byte("x"), nil); err != nil {
		t.Fatalf("after a failed fetch: %v", err)
	}
}

// TestKeyCachePurgedByStatus: a status read showing the tenant not active
// purges the cache.
func TestKeyCachePurgedByStatus(t *testing.T) {
	s := newFake(t)
	var state atomic.Value
	state.Store("active")
	s.Route("GET /api/v1/encryption/status", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"tenantId":"acme","state":%q}`, state.Load())
	})
	c, _ := newTestClient(t, s, "acme")
	ctx := context.Background()
	if _, err := c.Envelope().Encrypt(ctx, []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	secrets := cachedSecrets(c)
	if _, err := c.EncryptionStatus(ctx); err != nil {
		t.Fatal(err)
	}
	if enc, _ := c.keys.stats(); !enc {
		t.Fatal("an active status purged the cache")
	}
	state.Store("key-unavailable")
	if st, err := c.EncryptionStatus(ctx); err != nil || st.State != "key-unavailable" {
		t.Fatal(err)
	}
	checkZeroed(t, secrets)
}
