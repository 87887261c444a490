package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/auth"
	"github.com/tenantcrypt/tenantcrypt/internal/store/postgres/pgtest"
	"github.com/tenantcrypt/tenantcrypt/internal/tlsconfig"
)

// testServer is a real tenantcrypt server, started through the same code
// path as `tenantcrypt serve`, on a free loopback port, with TLS.
type testServer struct {
	t       testing.TB
	url     string
	dataDir string
	http    *http.Client
	stop    func() int
	logs    *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServer runs `serve` with a temporary data directory and the given
// extra flags; it is stopped (gracefully) when the test ends.
func startServer(t testing.TB, env map[string]string, args ...string) *testServer {
	t.Helper()
	dir := t.TempDir()
	addrFile := filepath.Join(dir, "addr")
	dataDir := filepath.Join(dir, "data")
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	getenv := func(k string) string { return env[k] }
	done := make(chan int, 1)
	argv := append([]string{"serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--addr-file", addrFile, "--log-level", "debug"}, args...)
	go func() { done <- run(ctx, argv, getenv, strings.NewReader(""), io.Discard, logs) }()

	var addr string
	deadline := time.Now().Add(30 * time.Second)
	for addr == "" {
		select {
		case code := <-done:
			cancel()
			t.Fatalf("server exited with %d before serving:\n%s", code, logs.String())
		default:
		}
		if b, err := os.ReadFile(addrFile); err == nil {
			addr = strings.TrimSpace(string(b))
		} else if time.Now().After(deadline) {
			cancel()
			t.Fatalf("server did not start in time:\n%s", logs.String())
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	ts := &testServer{t: t, url: "https://" + addr, dataDir: dataDir, logs: logs}
	if strings.Contains(strings.Join(args, " "), "--insecure-plaintext-http") {
		ts.url = "http://" + addr
		ts.http = &http.Client{Timeout: 30 * time.Second}
	} else {
		tlsCfg, err := tlsconfig.ClientConfig(filepath.Join(dataDir, "tls", "ca.pem"))
		if err != nil {
			t.Fatal(err)
		}
		ts.http = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true}}
	}
	var once sync.Once
	code := 0
	ts.stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(30 * time.Second):
				t.Errorf("server did not stop in time")
			}
		})
		return code
	}
	t.Cleanup(func() {
		if got := ts.stop(); got != exitOK {
			t.Errorf("server exit code = %d, want %d", got, exitOK)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return ts
}

// backends lists the databases end-to-end tests run on: SQLite always,
// PostgreSQL when TENANTCRYPT_TEST_POSTGRES is set.
func backends(t *testing.T) map[string]func(t *testing.T) []string {
	return map[string]func(t *testing.T) []string{
		"sqlite": func(t *testing.T) []string { return nil },
		"postgres": func(t *testing.T) []string {
			return []string{"--database", pgtest.DSN(t)}
		},
	}
}

// token mints a real token with the server's built-in issuer.
func (ts *testServer) token(role auth.Role, tenant string) string {
	ts.t.Helper()
	iss, err := auth.LoadOrCreateIssuer(ts.dataDir, auth.DefaultIssuerName)
	if err != nil {
		ts.t.Fatal(err)
	}
	tok, err := iss.Mint(auth.TokenRequest{Subject: "test:" + role.String(), TenantID: tenant, Roles: []auth.Role{role}, TTL: time.Hour})
	if err != nil {
		ts.t.Fatal(err)
	}
	return tok
}

// response is an answer, decoded loosely for assertions.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, r.body)
	}
	return m
}

// errorCode returns the code of an error envelope, failing the test if the
// body is not one.
func (r response) errorCode(t testing.TB) string {
	t.Helper()
	var env struct {
		Errors []struct {
			Code, Title, Detail string
		}
	}
	if err := json.Unmarshal(r.body, &env); err != nil || len(env.Errors) != 1 || env.Errors[0].Code == "" || env.Errors[0].Title == "" {
		t.Fatalf("status %d: body is not an error envelope: %s", r.status, r.body)
	}
	if bytes.Contains(r.body, []byte("goroutine")) || bytes.Contains(r.body, []byte(".go:")) {
		t.Fatalf("error body leaks a stack trace: %s", r.body)
	}
	return env.Errors[0].Code
}

// do sends a request; body may be a string (sent as is) or a value (JSON),
// as application/json.
func (ts *testServer) do(method, path, token string, body any) response {
	ts.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			ts.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	contentType := ""
	if body != nil {
		contentType = "application/json"
	}
	return ts.send(method, path, token, contentType, rd)
}

// send sends a request with the given Content-Type (none if empty) and
// bearer token (none if empty), and reads the whole answer.
func (ts *testServer) send(method, path, token, contentType string, body io.Reader) response {
	ts.t.Helper()
	req, err := http.NewRequest(method, ts.url+path, body)
	if err != nil {
		ts.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := ts.http.Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		ts.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

func tlsClient(caFile string, min, max uint16, suites []uint16) *http.Client {
	cfg, err := tlsconfig.ClientConfig(caFile)
	if err != nil {
		panic(err)
	}
	cfg.MinVersion, cfg.MaxVersion, cfg.CipherSuites = min, max, suites
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

var _ = tls.VersionTLS12

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
