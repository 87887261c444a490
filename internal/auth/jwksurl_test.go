package auth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// jwksServer is an identity provider's JWKS endpoint whose keys and health
// the test controls.
type jwksServer struct {
	*httptest.Server
	hits atomic.Int64

	mu     sync.Mutex
	body   []byte
	status int
}

func newJWKSServer(t *testing.T, keys ...jose.JSONWebKey) *jwksServer {
	s := &jwksServer{status: http.StatusOK, body: jwksJSON(t, keys...)}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		body, status := s.body, s.status
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(status int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

func newTestJWKSURL(t *testing.T, srv *jwksServer, clock *fakeClock, refresh time.Duration) *JWKSURL {
	t.Helper()
	src, err := NewJWKSURL(srv.URL+"/.well-known/jwks.json", srv.Client(), refresh)
	if err != nil {
		t.Fatal(err)
	}
	src.now = clock.Now
	return src
}

func TestJWKSURLRotation(t *testing.T) {
	keys := testKeys()
	es, ed, rs := keys["es256"], keys["eddsa"], keys["rs256"]
	srv := newJWKSServer(t, es.public())
	clock := newClock()
	src := newTestJWKSURL(t, srv, clock, time.Hour)
	v := newTestVerifier(t, src, clock, func(c *VerifierConfig) { c.CacheSize = -1 })
	ctx := context.Background()
	verify := func(k testKey) error {
		_, err := v.Verify(ctx, sign(t, k, claimsAt(clock.Now()), nil))
		return err
	}
	checkHits := func(step string, want int64) {
		t.Helper()
		if got := srv.hits.Load(); got != want {
			t.Errorf("%s: fetches = %d, want %d", step, got, want)
		}
	}

	if err := verify(es); err != nil {
		t.Fatalf("first key: %v", err)
	}
	checkHits("first use", 1)
	if err := verify(es); err != nil {
		t.Fatalf("first key again: %v", err)
	}
	checkHits("known kid", 1)

	// The provider rotates in a new key: the unknown kid makes the source
	// fetch again at once.
	srv.serve(http.StatusOK, jwksJSON(t, es.public(), ed.public()))
	clock.Advance(JWKSMinRefetch)
	if err := verify(ed); err != nil {
		t.Fatalf("rotated-in key: %v", err)
	}
	checkHits("new kid", 2)

	// Made-up kids cannot make it fetch more than once per JWKSMinRefetch.
	clock.Advance(JWKSMinRefetch)
	for range 5 {
		if _, err := src.Key(ctx, "made-up"); !errors.Is(err, ErrKeyNotFound) {
			t.Errorf("Key(made-up) error = %v, want ErrKeyNotFound", err)
		}
	}
	checkHits("made-up kids", 3)

	// The provider fails: the stale keys keep working, and an unknown kid
	// reports the failure.
	srv.serve(http.StatusInternalServerError, []byte("oops"))
	clock.Advance(JWKSMinRefetch)
	if err := verify(rs); err == nil || reasonOf(t, err) != reasonUnknownKeyID {
		t.Errorf("kid unknown while the provider fails: error = %v, want %q", err, reasonUnknownKeyID)
	} else if !strings.Contains(err.Error(), "unauthenticated: unknown key id") {
		t.Errorf("message = %q", err.Error())
	}
	if _, err := src.Key(ctx, "rs-1"); err == nil || !strings.Contains(err.Error(), "HTTP status 500") {
		t.Errorf("Key error = %v, want one naming the failed fetch", err)
	}
	checkHits("failed fetch", 4)
	if err := verify(es); err != nil {
		t.Errorf("stale key while the provider fails: %v", err)
	}
	if err := verify(ed); err != nil {
		t.Errorf("stale key while the provider fails: %v", err)
	}

	// The provider recovers, having retired es-1: the next fetch drops it.
	srv.serve(http.StatusOK, jwksJSON(t, ed.public(), rs.public()))
	clock.Advance(JWKSMinRefetch)
	if err := verify(rs); err != nil {
		t.Errorf("after recovery: %v", err)
	}
	if err := verify(es); err == nil || reasonOf(t, err) != reasonUnknownKeyID {
		t.Errorf("removed key: error = %v, want %q", err, reasonUnknownKeyID)
	}
}

func TestJWKSURLBadDocumentKeepsStale(t *testing.T) {
	keys := testKeys()
	srv := newJWKSServer(t, keys["es256"].public())
	clock := newClock()
	src := newTestJWKSURL(t, srv, clock, time.Hour)
	ctx := context.Background()
	if _, err := src.Key(ctx, "es-1"); err != nil {
		t.Fatal(err)
	}
	for _, body := range [][]byte{
		jwksJSON(t, keys["eddsa"].private),    // a private key
		[]byte(`{"keys":[`),                   // not JSON
		[]byte(strings.Repeat(" ", 2<<20)),    // too large
		jwksJSON(t, keys["rsa1024"].public()), // a weak key
	} {
		srv.serve(http.StatusOK, body)
		clock.Advance(JWKSMinRefetch)
		if _, err := src.Key(ctx, "ed-1"); !errors.Is(err, ErrKeyNotFound) {
			t.Errorf("Key(ed-1) error = %v, want ErrKeyNotFound", err)
		}
		if _, err := src.Key(ctx, "es-1"); err != nil {
			t.Errorf("stale Key(es-1): %v", err)
		}
	}
}

func TestJWKSURLInitialFailure(t *testing.T) {
	es := testKeys()["es256"]
	srv := newJWKSServer(t, es.public())
	srv.serve(http.StatusServiceUnavailable, nil)
	clock := newClock()
	src := newTestJWKSURL(t, srv, clock, time.Hour)
	v := newTestVerifier(t, src, clock)
	ctx := context.Background()
	token := sign(t, es, claimsAt(t0), nil)
	for range 3 {
		_, err := v.Verify(ctx, token)
		if got, want := reasonOf(t, err), reasonKeysUnavailable; got != want {
			t.Errorf("reason = %q, want %q", got, want)
		}
		if errors.Is(err, ErrKeyNotFound) {
			t.Errorf("error %v wraps ErrKeyNotFound; the keys were never fetched", err)
		}
	}
	if got, want := srv.hits.Load(), int64(1); got != want {
		t.Errorf("fetches = %d, want %d (rate-limited)", got, want)
	}
	srv.serve(http.StatusOK, jwksJSON(t, es.public()))
	clock.Advance(JWKSMinRefetch)
	if _, err := v.Verify(ctx, token); err != nil {
		t.Errorf("after recovery: %v", err)
	}
}

func TestJWKSURLPeriodicRefresh(t *testing.T) {
	keys := testKeys()
	srv := newJWKSServer(t, keys["es256"].public())
	clock := newClock()
	src := newTestJWKSURL(t, srv, clock, time.Minute)
	ctx := context.Background()
	if _, err := src.Key(ctx, "es-1"); err != nil {
		t.Fatal(err)
	}
	// es-1 is retired; the source learns it from the periodic refresh.
	srv.serve(http.StatusOK, jwksJSON(t, keys["eddsa"].public()))
	clock.Advance(30 * time.Second)
	if _, err := src.Key(ctx, "es-1"); err != nil {
		t.Fatalf("before the refresh interval: %v", err)
	}
	clock.Advance(30 * time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := src.Key(ctx, "es-1")
		if errors.Is(err, ErrKeyNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("es-1 still served 10s after the refresh was due (err %v)", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got, want := srv.hits.Load(), int64(2); got != want {
		t.Errorf("fetches = %d, want %d", got, want)
	}
}

func TestJWKSURLRefresh(t *testing.T) {
	keys := testKeys()
	srv := newJWKSServer(t, keys["es256"].public())
	src := newTestJWKSURL(t, srv, newClock(), time.Hour)
	ctx := context.Background()
	if err := src.Refresh(ctx); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	srv.serve(http.StatusNotFound, nil)
	if err := src.Refresh(ctx); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("Refresh error = %v, want one naming HTTP status 404", err)
	}
	if _, err := src.Key(ctx, "es-1"); err != nil {
		t.Errorf("stale Key(es-1) after a failed Refresh: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := src.Refresh(cancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("Refresh(cancelled) error = %v, want context.Canceled", err)
	}
}

func TestJWKSURLPlainHTTPOnLoopback(t *testing.T) {
	es := testKeys()["es256"]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(jwksJSON(t, es.public()))
	}))
	defer srv.Close()
	src, err := NewJWKSURL(srv.URL, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if src.refresh != DefaultJWKSRefresh {
		t.Errorf("refresh = %v, want %v", src.refresh, DefaultJWKSRefresh)
	}
	if _, err := src.Key(context.Background(), "es-1"); err != nil {
		t.Errorf("Key: %v", err)
	}
}

func TestNewJWKSURLErrors(t *testing.T) {
	tests := []struct {
		url     string
		refresh time.Duration
		wantErr bool
	}{
		{"https://idp.example.com/jwks.json", 0, false},
		{"http://127.0.0.1:8080/jwks.json", 0, false},
		{"http://[::1]:8080/jwks.json", 0, false},
		{"http://localhost/jwks.json", 0, false},
		{"http://idp.example.com/jwks.json", 0, true},
		{"ftp://idp.example.com/jwks.json", 0, true},
		{"/jwks.json", 0, true},
		{"https://", 0, true},
		{"https://idp.example.com/jwks.json", -time.Second, true},
		{"://bad", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			_, err := NewJWKSURL(tt.url, nil, tt.refresh)
			if got := err != nil; got != tt.wantErr {
				t.Errorf("NewJWKSURL(%q, %v) error = %v, want error: %v", tt.url, tt.refresh, err, tt.wantErr)
			}
		})
	}
}

func TestJWKSURLConcurrent(t *testing.T) {
	keys := testKeys()
	srv := newJWKSServer(t, keys["es256"].public(), keys["eddsa"].public())
	clock := newClock()
	src := newTestJWKSURL(t, srv, clock, time.Minute)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				kid := []string{"es-1", "ed-1", "unknown"}[(g+i)%3]
				_, err := src.Key(context.Background(), kid)
				if (kid == "unknown") != errors.Is(err, ErrKeyNotFound) || (kid != "unknown" && err != nil) {
					t.Errorf("Key(%s) error = %v", kid, err)
					return
				}
				if i%10 == 0 {
					clock.Advance(5 * time.Second)
				}
			}
		})
	}
	wg.Wait()
}

// TestJWKSURLSlowProvider: a provider that does not answer holds a request
// no longer than the request's own deadline, and a request giving up does
// not count as the provider's failure.
func TestJWKSURLSlowProvider(t *testing.T) {
	es := testKeys()["es256"]
	release := make(chan struct{})
	var hits atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		w.Write(jwksJSON(t, es.public()))
	}))
	defer srv.Close()
	defer close(release)
	clock := newClock()
	src, err := NewJWKSURL(srv.URL, srv.Client(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	src.now = clock.Now
	v := newTestVerifier(t, src, clock)
	token := sign(t, es, claimsAt(t0), nil)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = v.Verify(ctx, token)
	if got, want := reasonOf(t, err), reasonRequestCancelled; got != want {
		t.Errorf("reason = %q, want %q", got, want)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Verify took %v with a 100ms deadline", elapsed)
	}
	// Not rate-limited: the next request fetches at once.
	if _, err := v.Verify(context.Background(), token); err != nil {
		t.Errorf("Verify after the abandoned fetch: %v", err)
	}
}
