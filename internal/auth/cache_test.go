package auth

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestVerifyCacheHit(t *testing.T) {
	es := testKeys()["es256"]
	clock := newClock()
	keys := &countingKeys{KeySource: mustStatic(t, es.public())}
	v := newTestVerifier(t, keys, clock)
	token := sign(t, es, claimsAt(t0), nil)

	first, err := v.Verify(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	first.Roles[0] = RolePlatformAdmin // the caller's copy; must not reach the cache
	second, err := v.Verify(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keys.n.Load(), int64(1); got != want {
		t.Errorf("key lookups = %d, want %d (second Verify should hit the cache)", got, want)
	}
	if got, want := second.Roles, []Role{RoleService}; !slices.Equal(got, want) {
		t.Errorf("cached Roles = %v, want %v", got, want)
	}
	if second.Subject != "svc-billing" || second.TenantID != "t1" || second.TokenID != "token-1" ||
		!second.ExpiresAt.Equal(t0.Add(10*time.Minute)) {
		t.Errorf("cached principal = %+v", second)
	}
}

func TestVerifyCacheExpiry(t *testing.T) {
	es := testKeys()["es256"]
	tests := []struct {
		name    string
		advance time.Duration
		want    string
		lookups int64 // key lookups, including the first Verify
	}{
		{"before exp", 9 * time.Minute, "", 1},
		{"after exp within skew", 10*time.Minute + 10*time.Second, "", 2},
		{"after exp and skew", 10*time.Minute + DefaultSkew, reasonExpired, 2},
		{"long after exp", time.Hour, reasonExpired, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newClock()
			keys := &countingKeys{KeySource: mustStatic(t, es.public())}
			v := newTestVerifier(t, keys, clock, func(c *VerifierConfig) { c.CacheMaxAge = time.Hour })
			token := sign(t, es, claimsAt(t0), nil)
			if _, err := v.Verify(context.Background(), token); err != nil {
				t.Fatal(err)
			}
			clock.Advance(tt.advance)
			_, err := v.Verify(context.Background(), token)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Verify: %v, want success", err)
			case tt.want != "":
				if got := reasonOf(t, err); got != tt.want {
					t.Errorf("reason = %q, want %q", got, tt.want)
				}
			}
			if got := keys.n.Load(); got != tt.lookups {
				t.Errorf("key lookups = %d, want %d", got, tt.lookups)
			}
		})
	}
}

// TestVerifyCacheKeyRemoval: once a key leaves the key source, tokens it
// signed stop verifying within CacheMaxAge, cached or not.
func TestVerifyCacheKeyRemoval(t *testing.T) {
	es := testKeys()["es256"]
	clock := newClock()
	var mu sync.Mutex
	present := true
	src := keySourceFunc(func(context.Context, string) (jose.JSONWebKey, error) {
		mu.Lock()
		defer mu.Unlock()
		if !present {
			return jose.JSONWebKey{}, ErrKeyNotFound
		}
		return es.public(), nil
	})
	v := newTestVerifier(t, src, clock, func(c *VerifierConfig) { c.CacheMaxAge = time.Minute })
	token := sign(t, es, claimsAt(t0), nil)
	if _, err := v.Verify(context.Background(), token); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	present = false
	mu.Unlock()

	clock.Advance(59 * time.Second)
	if _, err := v.Verify(context.Background(), token); err != nil {
		t.Errorf("within CacheMaxAge: Verify: %v, want the cached success", err)
	}
	clock.Advance(time.Second)
	_, err := v.Verify(context.Background(), token)
	if got, want := reasonOf(t, err), reasonUnknownKeyID; got != want {
		t.Errorf("after CacheMaxAge: reason = %q, want %q", got, want)
	}
}

func TestVerifyCacheOff(t *testing.T) {
	es := testKeys()["es256"]
	keys := &countingKeys{KeySource: mustStatic(t, es.public())}
	v := newTestVerifier(t, keys, newClock(), func(c *VerifierConfig) { c.CacheSize = -1 })
	token := sign(t, es, claimsAt(t0), nil)
	for range 3 {
		if _, err := v.Verify(context.Background(), token); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := keys.n.Load(), int64(3); got != want {
		t.Errorf("key lookups = %d, want %d", got, want)
	}
}

// TestVerifyCacheNeverHoldsFailures: a refused token is checked afresh
// every time, so that it cannot shadow anything.
func TestVerifyCacheNeverHoldsFailures(t *testing.T) {
	es := testKeys()["es256"]
	keys := &countingKeys{KeySource: mustStatic(t, es.public())}
	v := newTestVerifier(t, keys, newClock())
	token := sign(t, es, with(claimsAt(t0), "iss", "other"), nil)
	for range 2 {
		if _, err := v.Verify(context.Background(), token); err == nil {
			t.Fatal("Verify succeeded")
		}
	}
	if got, want := keys.n.Load(), int64(2); got != want {
		t.Errorf("key lookups = %d, want %d", got, want)
	}
}

func TestTokenCacheBounded(t *testing.T) {
	const size = 64
	c := newTokenCache(size)
	p := Principal{Subject: "s", Roles: []Role{RoleService}}
	for i := range 10 * size {
		tok := fmt.Sprint(i)
		c.put(hashOf(tok), tok, p, 1<<62)
	}
	total := 0
	for i := range c.shards {
		total += c.shards[i].len()
	}
	if total > size {
		t.Errorf("cache holds %d entries, want at most %d", total, size)
	}
	// The most recently used entries survive.
	last := fmt.Sprint(10*size - 1)
	if _, ok := c.get(hashOf(last), last, 0); !ok {
		t.Errorf("most recent entry evicted")
	}
	if _, ok := c.get(hashOf("0"), "0", 0); ok {
		t.Errorf("oldest entry still cached")
	}
}

func TestTokenCacheLRUOrder(t *testing.T) {
	c := newTokenCache(2 * cacheShards) // two entries per shard
	var same []string                   // three tokens of shard 0
	for i := 0; len(same) < 3; i++ {
		if tok := fmt.Sprint(i); hashOf(tok)&(cacheShards-1) == 0 {
			same = append(same, tok)
		}
	}
	p := Principal{Subject: "s"}
	c.put(hashOf(same[0]), same[0], p, 1<<62)
	c.put(hashOf(same[1]), same[1], p, 1<<62)
	c.get(hashOf(same[0]), same[0], 0) // same[1] is now least recently used
	c.put(hashOf(same[2]), same[2], p, 1<<62)
	for i, want := range []bool{true, false, true} {
		if _, ok := c.get(hashOf(same[i]), same[i], 0); ok != want {
			t.Errorf("entry %d cached = %v, want %v", i, ok, want)
		}
	}
}

// TestTokenCacheCollisionIsAMiss: two tokens with the same hash never share
// a principal; the second replaces the first.
func TestTokenCacheCollisionIsAMiss(t *testing.T) {
	c := newTokenCache(64)
	c.put(42, "token-a", Principal{Subject: "a"}, 1<<62)
	if _, ok := c.get(42, "token-b", 0); ok {
		t.Fatalf("a colliding token got the other token's principal")
	}
	c.put(42, "token-b", Principal{Subject: "b"}, 1<<62)
	if p, ok := c.get(42, "token-b", 0); !ok || p.Subject != "b" {
		t.Errorf("get(token-b) = %v, %v", p.Subject, ok)
	}
	if _, ok := c.get(42, "token-a", 0); ok {
		t.Errorf("the replaced token still hits")
	}
}

func TestVerifyConcurrent(t *testing.T) {
	keys := testKeys()
	es, ed := keys["es256"], keys["eddsa"]
	clock := newClock()
	v := newTestVerifier(t, mustStatic(t, es.public(), ed.public()), clock, func(c *VerifierConfig) { c.CacheSize = 8 })
	var tokens []string
	for i := range 32 {
		k := es
		if i%2 == 1 {
			k = ed
		}
		tokens = append(tokens, sign(t, k, with(claimsAt(t0), "sub", fmt.Sprint("s", i)), nil))
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				n := (g*7 + i) % len(tokens)
				p, err := v.Verify(context.Background(), tokens[n])
				if err != nil {
					t.Errorf("Verify: %v", err)
					return
				}
				if got, want := p.Subject, fmt.Sprint("s", n); got != want {
					t.Errorf("Subject = %q, want %q", got, want)
					return
				}
				p.Roles[0] = 0 // callers may scribble on their copy
			}
		})
	}
	wg.Wait()
}

var testSeed = maphash.MakeSeed()

func hashOf(s string) uint64 { return maphash.String(testSeed, s) }
