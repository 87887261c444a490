package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/client/internal/fakeservice"
)

var encryptPath = api.RouteEncrypt.Path

func TestRetryHonoursRetryAfter(t *testing.T) {
	s := newFake(t)
	c, w := newTestClient(t, s, "acme")
	s.Inject(fakeservice.Fault{Path: encryptPath, Times: 2, Status: 503, Code: api.CodeUnavailable, RetryAfter: "2"})
	if _, err := c.Encrypt(context.Background(), []byte("x"), nil); err != nil {
		t.Fatalf("encrypt after two 503s: %v", err)
	}
	if got := s.Requests(encryptPath); got != 3 {
		t.Errorf("attempts = %d, want 3", got)
	}
	waits := w.list()
	if len(waits) != 2 {
		t.Fatalf("waits = %v, want 2", waits)
	}
	for _, d := range waits {
		// Retry-After is the minimum; jitter comes on top, within half a
		// backoff step.
		if d < 2*time.Second || d > 2*time.Second+DefaultRetryPolicy.MaxDelay/2 {
			t.Errorf("wait %v, want Retry-After (2s) plus jitter", d)
		}
	}
}

func TestRetryBackoffAndJitter(t *testing.T) {
	s := newFake(t)
	p := RetryPolicy{MaxAttempts: 6, BaseDelay: 100 * time.Millisecond, MaxDelay: 400 * time.Millisecond}
	c, w := newTestClient(t, s, "acme", WithRetryPolicy(p))
	s.Inject(fakeservice.Fault{Path: encryptPath, Times: 10, Status: 503, Code: api.CodeKMSThrottled})
	_, err := c.Encrypt(context.Background(), []byte("x"), nil)
	if !errors.Is(err, ErrRetryLater) {
		t.Fatalf("got %v, want ErrRetryLater once the attempts are spent", err)
	}
	if got := s.Requests(encryptPath); got != 6 {
		t.Errorf("attempts = %d, want MaxAttempts (6)", got)
	}
	steps := []time.Duration{100, 200, 400, 400, 400}
	waits := w.list()
	if len(waits) != len(steps) {
		t.Fatalf("waits = %v, want %d", waits, len(steps))
	}
	for i, d := range waits {
		step := steps[i] * time.Millisecond
		if d < step/2 || d > step {
			t.Errorf("wait %d = %v, want within [%v, %v]", i, d, step/2, step)
		}
	}
}

func TestRetryOnlyWhatIsRetryable(t *testing.T) {
	for _, tc := range []struct {
		name     string
		target   target
		status   int
		code     api.Code
		attempts int
	}{
		{"bad request", to(api.RouteEncrypt), 400, api.CodeBadRequest, 1},
		{"decryption failed", to(api.RouteDecrypt), 400, api.CodeDecryptionFailed, 1},
		{"key revoked", to(api.RouteEncrypt), 403, api.CodeKeyUnavailable, 1},
		{"internal error", to(api.RouteEncrypt), 500, api.CodeInternal, 1},
		{"503 on a data key", to(api.RouteGenerateDataKey), 503, api.CodeUnavailable, 4},
		{"503 on a GET", to(api.RouteTenant, "acme"), 503, api.CodeUnavailable, 4},
		{"503 on create tenant", to(api.RouteCreateTenant), 503, api.CodeUnavailable, 1},
		{"audit log down on delete", to(api.RouteDeleteTenant, "acme"), 503, api.CodeAuditUnavailable, 1},
		{"429 on create tenant", to(api.RouteCreateTenant), 429, api.CodeRateLimited, 4},
		{"503 on migrate", to(api.RouteMigrateToKeyProvider, "fp"), 503, api.CodeUnavailable, 1},
		{"503 on a key test", to(api.RouteTestKeyProvider, "fp"), 503, api.CodeUnavailable, 4},
		{"502 from a proxy on decrypt", to(api.RouteDecrypt), 502, "", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFake(t)
			c, _ := newTestClient(t, s, "acme")
			s.Inject(fakeservice.Fault{Path: tc.target.path, Times: 100, Status: tc.status, Code: tc.code})
			_, _, err := c.send(context.Background(), tc.target, struct{}{})
			var e *Error
			if !errors.As(err, &e) || e.StatusCode != tc.status {
				t.Fatalf("got %v, want a %d", err, tc.status)
			}
			if got := s.Requests(tc.target.path); got != tc.attempts {
				t.Errorf("attempts = %d, want %d", got, tc.attempts)
			}
		})
	}
}

func TestRetryGivesUpEarly(t *testing.T) {
	s := newFake(t)
	t.Run("Retry-After longer than MaxDelay", func(t *testing.T) {
		c, w := newTestClient(t, s, "acme")
		s.Inject(fakeservice.Fault{Path: encryptPath, Times: 1, Status: 503, Code: api.CodeUnavailable, RetryAfter: "60"})
		_, err := c.Encrypt(context.Background(), []byte("x"), nil)
		var e *Error
		if !errors.As(err, &e) || e.RetryAfter != time.Minute || !errors.Is(err, ErrRetryLater) {
			t.Fatalf("got %v, want the 503 with its Retry-After", err)
		}
		if len(w.list()) != 0 {
			t.Errorf("waited %v for a Retry-After beyond MaxDelay", w.list())
		}
	})
	t.Run("deadline before the wait ends", func(t *testing.T) {
		c, w := newTestClient(t, s, "acme")
		s.Inject(fakeservice.Fault{Path: encryptPath, Times: 1, Status: 503, Code: api.CodeUnavailable, RetryAfter: "5"})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ctx2, cancel2 := context.WithDeadline(ctx, time.Now().Add(2*time.Second))
		defer cancel2()
		if _, err := c.Encrypt(ctx2, []byte("x"), nil); !errors.Is(err, ErrRetryLater) {
			t.Fatalf("got %v", err)
		}
		if len(w.list()) != 0 {
			t.Errorf("waited %v past the deadline", w.list())
		}
	})
	t.Run("MaxAttempts 1", func(t *testing.T) {
		c, _ := newTestClient(t, s, "acme", WithRetryPolicy(RetryPolicy{MaxAttempts: 1}))
		before := s.Requests(encryptPath)
		s.Inject(fakeservice.Fault{Path: encryptPath, Times: 1, Status: 503, Code: api.CodeUnavailable})
		if _, err := c.Encrypt(context.Background(), []byte("x"), nil); !errors.Is(err, ErrRetryLater) {
			t.Fatalf("got %v", err)
		}
		if got := s.Requests(encryptPath) - before; got != 1 {
			t.Errorf("attempts = %d, want 1", got)
		}
	})
	t.Run("cancelled while waiting", func(t *testing.T) {
		c, _ := newTestClient(t, s, "acme")
		ctx, cancel := context.WithCancel(context.Background())
		c.sleep = func(ctx context.Context, d time.Duration) error { cancel(); return ctx.Err() }
		s.Inject(fakeservice.Fault{Path: encryptPath, Times: 1, Status: 503, Code: api.CodeUnavailable})
		if _, err := c.Encrypt(ctx, []byte("x"), nil); !errors.Is(err, ErrRetryLater) {
			t.Fatalf("got %v, want the service's error", err)
		}
	})
}

// TestRetryTransportErrors: a connection that fails is retried for safe
// requests only, and a certificate the client refuses is not retried.
func TestRetryTransportErrors(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		// Drop the connection without an answer.
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer srv.Close()
	tlsCfg := srv.Client().Transport.(*http.Transport).TLSClientConfig
	c, err := New(srv.URL, WithToken("t"), WithTLSConfig(tlsCfg))
	if err != nil {
		t.Fatal(err)
	}
	w := &waits{}
	c.sleep = w.sleep
	if _, err := c.DecryptDataKey(context.Background(), "h", nil); err == nil {
		t.Fatal("no error from a server that hangs up")
	}
	if got := len(w.list()); got != 3 {
		t.Errorf("safe request: %d retries, want 3", got)
	}
	before := len(w.list())
	if _, err := c.CreateTenant(context.Background(), api.CreateTenantRequest{Name: "x"}); err == nil {
		t.Fatal("no error from a server that hangs up")
	}
	if got := len(w.list()) - before; got != 0 {
		t.Errorf("create tenant: %d retries after a transport error, want 0", got)
	}

	// No TLS configuration: the test server's certificate is unknown.
	c2, _ := New(srv.URL, WithToken("t"))
	w2 := &waits{}
	c2.sleep = w2.sleep
	if _, err := c2.DecryptDataKey(context.Background(), "h", nil); err == nil {
		t.Fatal("an unknown certificate was accepted")
	}
	if len(w2.list()) != 0 {
		t.Errorf("retried a certificate error %d times", len(w2.list()))
	}
}

// TestRetryRefreshesToken: the token source is asked again per attempt.
func TestRetryRefreshesToken(t *testing.T) {
	s := newFake(t)
	var calls atomic.Int32
	c, _ := newTestClient(t, s, "acme", WithTokenSource(func(context.Context) (string, error) {
		calls.Add(1)
		return fakeservice.Token("acme"), nil
	}))
	s.Inject(fakeservice.Fault{Path: encryptPath, Times: 1, Status: 503, Code: api.CodeUnavailable})
	if _, err := c.Encrypt(context.Background(), []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if got := calls.Load(); got != 2 {
		t.Errorf("token source called %d times for 2 attempts", got)
	}
	boom := errors.New("no token")
	c2, _ := newTestClient(t, s, "acme", WithTokenSource(func(context.Context) (string, error) { return "", boom }))
	if _, err := c2.Encrypt(context.Background(), []byte("x"), nil); !errors.Is(err, boom) {
		t.Errorf("got %v, want the token source's error", err)
	}
}

func TestRetryPolicyValidation(t *testing.T) {
	if _, err := New("https://x", WithRetryPolicy(RetryPolicy{MaxAttempts: -1})); err == nil {
		t.Error("a negative MaxAttempts was accepted")
	}
	if _, err := New("https://x", WithKeyCache(KeyCacheConfig{MaxUses: -1})); err == nil {
		t.Error("a negative MaxUses was accepted")
	}
}
