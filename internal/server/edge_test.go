package server

import (
	"bytes"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
)

func TestErrorLogSamplesHandshakeErrors(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	reg := prometheus.NewRegistry()
	s := New(Config{Keyring: nil, Auth: principalAuth{}, Registry: reg, HandshakeLogInterval: time.Hour,
		Logger: slog.New(slog.NewTextHandler(&out, nil))})
	l := s.ErrorLog()
	for i := range 100 {
		l.Printf("http: TLS handshake error from 127.0.0.1:%d: EOF", 40000+i)
	}
	l.Printf("http: Accept error: too many open files; retrying in 5ms")
	l.Printf("http: Accept error: too many open files; retrying in 10ms")
	if got := strings.Count(out.String(), "TLS handshake error"); got != 1 {
		t.Errorf("100 handshake errors in one interval logged %d lines, want 1:\n%s", got, out.String())
	}
	if got := strings.Count(out.String(), "Accept error"); got != 2 {
		t.Errorf("other errors logged %d times, want every one (2)", got)
	}
	if got := counterValue(t, reg, "tenantcrypt_tls_handshake_errors_total"); got != 100 {
		t.Errorf("tenantcrypt_tls_handshake_errors_total = %v, want 100", got)
	}
}

func TestEdgeHeadersAndInflight(t *testing.T) {
	t.Parallel()
	svc := principalAuth{auth.Principal{Subject: "svc", TenantID: "acme", Roles: []auth.Role{auth.RoleService}}}
	ring, _ := newRing(t)
	s := New(Config{Keyring: ring, Auth: svc, MaxInflight: 1, MaxBodyBytes: 4096})
	h := s.Handler()

	// HSTS over TLS only, on errors too.
	for _, path := range []string{"/livez", "/nope"} {
		req := httptest.NewRequest("GET", path, nil)
		req.TLS = &tls.ConnectionState{}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if got := rec.Header().Get("Strict-Transport-Security"); got != hstsValue {
			t.Errorf("GET %s over TLS: Strict-Transport-Security %q, want %q", path, got, hstsValue)
		}
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if got := rec.Header().Get("Strict-Transport-Security"); got != "" {
			t.Errorf("GET %s over plain HTTP: Strict-Transport-Security %q, want none", path, got)
		}
	}

	// A Content-Length over the limit: 413 without reading the body.
	body := &countingReader{r: strings.NewReader(strings.Repeat("x", 10000))}
	req := httptest.NewRequest(api.RouteEncrypt.Method, api.RouteEncrypt.Path, body)
	req.ContentLength = 10000
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 413 || !strings.Contains(rec.Body.String(), string(api.CodeBodyTooLarge)) || body.n != 0 {
		t.Errorf("Content-Length over the limit: %d %s after reading %d bytes, want 413 %s before reading", rec.Code, rec.Body, body.n, api.CodeBodyTooLarge)
	}

	// One request in progress (its body blocks): a second is refused, a
	// probe is not.
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		req := httptest.NewRequest(api.RouteEncrypt.Method, api.RouteEncrypt.Path, pr)
		req.Header.Set("Authorization", "Bearer x")
		h.ServeHTTP(httptest.NewRecorder(), req)
	}()
	for s.inflight.Load() < 1 {
		select {
		case <-done:
			t.Fatal("the request with a blocked body ended")
		case <-time.After(time.Millisecond):
		}
	}
	rec = post(h, api.RouteEncrypt.Path, map[string]any{"plaintext": "YQ=="})
	if rec.Code != 503 || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), string(api.CodeUnavailable)) {
		t.Errorf("a second request at MaxInflight 1: %d %v %s, want 503 %s with Retry-After", rec.Code, rec.Header(), rec.Body, api.CodeUnavailable)
	}
	for _, p := range []string{"/livez", "/metrics"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		if rec.Code != 200 {
			t.Errorf("GET %s at MaxInflight: %d, want 200", p, rec.Code)
		}
	}
	pw.Write([]byte(`{"plaintext":"YQ=="}`))
	pw.Close()
	<-done
	if rec := post(h, api.RouteEncrypt.Path, map[string]any{"plaintext": "YQ=="}); rec.Code != 200 {
		t.Errorf("after the first request ended: %d %s, want 200", rec.Code, rec.Body)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestConnLimiter drives the limiter through a real loopback listener and
// http.Server: at the bound the longest idle connection makes room; without
// an idle one a new connection is closed; per-address bounds refuse.
func TestConnLimiter(t *testing.T) {
	t.Parallel()
	newServer := func(t *testing.T, max, perIP int) (string, *ConnLimiter, *prometheus.Registry) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		l := NewConnLimiter(max, perIP, reg)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/block" {
				<-r.Context().Done()
			}
		}), ConnState: l.ConnState}
		go srv.Serve(l.Listener(ln))
		t.Cleanup(func() { srv.Close() })
		return ln.Addr().String(), l, reg
	}
	get := func(c net.Conn, path string) error {
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 512)
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		if !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 200")) {
			t.Fatalf("answer %q", buf[:n])
		}
		return nil
	}
	dial := func(t *testing.T, addr string) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	idleCount := func(l *ConnLimiter) int {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.idle.Len()
	}

	t.Run("idle makes room", func(t *testing.T) {
		t.Parallel()
		addr, l, reg := newServer(t, 2, 0)
		a, b := dial(t, addr), dial(t, addr)
		for _, c := range []net.Conn{a, b} {
			if err := get(c, "/"); err != nil {
				t.Fatal(err)
			}
		}
		for idleCount(l) < 2 {
			time.Sleep(time.Millisecond)
		}
		c := dial(t, addr)
		if err := get(c, "/"); err != nil {
			t.Fatalf("a third connection at max 2 with two idle: %v", err)
		}
		if got := counterValue(t, reg, "tenantcrypt_connections_evicted_total"); got != 1 {
			t.Errorf("evicted = %v, want 1", got)
		}
		// The longest idle (a) was closed.
		_ = a.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := a.Read(make([]byte, 1)); err == nil {
			t.Error("the longest idle connection is still open")
		}
	})
	t.Run("none idle refuses", func(t *testing.T) {
		t.Parallel()
		addr, l, reg := newServer(t, 1, 0)
		busy := dial(t, addr)
		if _, err := io.WriteString(busy, "GET /block HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		for {
			l.mu.Lock()
			open := l.open
			l.mu.Unlock()
			if open == 1 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		c := dial(t, addr)
		if err := get(c, "/"); err == nil {
			t.Error("a connection beyond max 1 with none idle was served")
		}
		if got := counterValue(t, reg, "tenantcrypt_connections_refused_total", "max-conns"); got < 1 {
			t.Errorf("refused{max-conns} = %v, want ≥ 1", got)
		}
	})
	t.Run("per address", func(t *testing.T) {
		t.Parallel()
		addr, l, _ := newServer(t, 0, 1)
		a := dial(t, addr)
		if err := get(a, "/"); err != nil {
			t.Fatal(err)
		}
		if err := get(dial(t, addr), "/"); err == nil {
			t.Error("a second connection from one address at --max-conns-per-ip 1 was served")
		}
		a.Close()
		for {
			l.mu.Lock()
			open := l.open
			l.mu.Unlock()
			if open == 0 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		if err := get(dial(t, addr), "/"); err != nil {
			t.Errorf("after the first closed: %v", err)
		}
	})
}

// counterValue reads a counter from reg, the one with the label value
// given (any, if none).
func counterValue(t *testing.T, reg *prometheus.Registry, name string, label ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(label) == 0 || len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() == label[0] {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no metric %s %v", name, label)
	return 0
}
