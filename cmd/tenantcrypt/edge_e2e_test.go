package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/auth"
	"github.com/tenantcrypt/tenantcrypt/internal/tlsconfig"
)

// The edge's end-to-end tests: strict bodies, HSTS, body and request
// limits, connection limits and the handshake error log, against a real
// server over TLS.

// TestStrictBodies shows that every endpoint with a body refuses invalid
// UTF-8, lone surrogates, duplicate and case-folded names and non-object
// bodies, so that no two different encryption contexts can collide.
func TestStrictBodies(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	admin := ts.token(auth.RolePlatformAdmin, "")
	if r := ts.do("POST", "/api/v1/tenants", admin, map[string]any{"id": "strict", "name": "Strict", "edition": "enterprise"}); r.status != 201 {
		t.Fatalf("create tenant: %d %s", r.status, r.body)
	}
	svc := ts.token(auth.RoleService, "strict")
	tadmin := ts.token(auth.RoleTenantAdmin, "strict")

	// The collision of the security review: \xff and \xfe both became
	// U+FFFD, so that a ciphertext bound to one context opened under the
	// other.
	r := ts.do("POST", "/api/v1/encryption/encrypt", svc, "{\"plaintext\":\"YQ==\",\"context\":{\"k\":\"\xff\"}}")
	if r.status != 400 || r.errorCode(t) != "Encryption-01" || !strings.Contains(string(r.body), "UTF-8") {
		t.Fatalf("encrypt with an invalid UTF-8 context: %d %s, want 400 Encryption-01 naming UTF-8", r.status, r.body)
	}

	routes := []struct{ method, path, token, good string }{
		{"POST", "/api/v1/encryption/encrypt", svc, `{"plaintext":"YQ==","context":{"k":"v"}}`},
		{"POST", "/api/v1/encryption/decrypt", svc, `{"ciphertext":"x","context":{"k":"v"}}`},
		{"POST", "/api/v1/encryption/rewrap", svc, `{"ciphertext":"x","context":{"k":"v"}}`},
		{"POST", "/api/v1/encryption/datakeys", svc, `{"context":{"k":"v"}}`},
		{"POST", "/api/v1/encryption/datakeys/decrypt", svc, `{"handle":"x","context":{"k":"v"}}`},
		{"POST", "/api/v1/encryption/encrypt", svc, `{"items":[{"plaintext":"YQ==","context":{"k":"v"}}]}`},
		{"POST", "/api/v1/tenants", admin, `{"name":"N","edition":"business"}`},
		{"PATCH", "/api/v1/tenants/strict", admin, `{"name":"N"}`},
		{"POST", "/api/v1/encryption/keyproviders", tadmin, `{"arn":"x","name":"n","keyprovider":"AWS-KMS"}`},
		{"PATCH", "/api/v1/encryption/keyproviders/abc", tadmin, `[{"op":"replace","path":"/name","value":"n"}]`},
	}
	for _, rt := range routes {
		name := rt.method + " " + rt.path
		if strings.HasPrefix(rt.good, `{"items"`) {
			name += " (batch)"
		}
		t.Run(name, func(t *testing.T) {
			bad := map[string]string{
				"invalid UTF-8":  strings.Replace(rt.good, `"n`, "\"\xfe", 1),
				"lone surrogate": strings.Replace(rt.good, `"n`, `"\ud800`, 1),
				"duplicate":      strings.Replace(rt.good, `{"`, `{"`+firstName(rt.good)+`":"x","`, 1),
				"case":           strings.Replace(rt.good, `"name"`, `"Name"`, 1),
			}
			if !strings.Contains(rt.good, `"n`) {
				bad["invalid UTF-8"] = strings.Replace(rt.good, `"v"`, "\"\xfe\"", 1)
				bad["lone surrogate"] = strings.Replace(rt.good, `"v"`, `"\udc00"`, 1)
			}
			if !strings.Contains(rt.good, `"name"`) {
				for _, f := range []string{"plaintext", "ciphertext", "context", "handle", "op"} {
					if strings.Contains(rt.good, `"`+f+`"`) {
						bad["case"] = strings.Replace(rt.good, `"`+f+`"`, `"`+strings.ToUpper(f[:1])+f[1:]+`"`, 1)
						break
					}
				}
			}
			if strings.HasPrefix(rt.good, "{") {
				bad["null"] = "null"
				bad["array"] = "[" + rt.good + "]"
			} else {
				bad["object"] = `{"op":"replace","path":"/name","value":"n"}`
			}
			for what, body := range bad {
				if body == rt.good {
					t.Fatalf("%s: no bad body made from %s", what, rt.good)
				}
				r := ts.do(rt.method, rt.path, rt.token, body)
				if r.status != 400 || r.errorCode(t) != "Encryption-01" {
					t.Errorf("%s body %q: %d %s, want 400 Encryption-01", what, body, r.status, r.body)
				}
			}
			r := ts.doWith(rt.method, rt.path, rt.token, rt.good, "application/json; charset=utf-16")
			if r.status != 415 || r.errorCode(t) != "Encryption-12" {
				t.Errorf("charset=utf-16: %d %s, want 415 Encryption-12", r.status, r.body)
			}
		})
	}

	// Strict is not stricter than the rules: a charset of UTF-8 and
	// escaped names and pairs are fine.
	r = ts.doWith("POST", "/api/v1/encryption/encrypt", svc, `{"pl\u0061intext":"YQ==","context":{"k":"\ud83d\ude00"}}`, "application/json; charset=UTF-8")
	if r.status != 200 {
		t.Errorf("valid body with charset=UTF-8: %d %s", r.status, r.body)
	}
}

// firstName is the name of the first member of the first object in body.
func firstName(body string) string {
	_, rest, _ := strings.Cut(body, `{"`)
	name, _, _ := strings.Cut(rest, `"`)
	return name
}

// TestHSTS shows Strict-Transport-Security on every answer over TLS, and
// none over the development mode's plain HTTP.
func TestHSTS(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	admin := ts.token(auth.RolePlatformAdmin, "")
	for _, c := range []struct{ method, path, token string }{
		{"GET", "/livez", ""}, {"GET", "/readyz", ""}, {"GET", "/metrics", ""}, {"GET", "/api/v1/openapi.json", ""},
		{"GET", "/no/such/path", ""}, {"DELETE", "/livez", ""}, {"GET", "/api/v1/tenants", ""},
		{"GET", "/api/v1/tenants/none", admin}, {"GET", "/console/", ""},
	} {
		r := ts.do(c.method, c.path, c.token, nil)
		if got := r.header.Get("Strict-Transport-Security"); !strings.HasPrefix(got, "max-age=") {
			t.Errorf("%s %s (%d): Strict-Transport-Security = %q, want max-age=…", c.method, c.path, r.status, got)
		}
	}
	plain := startServer(t, nil, "--insecure-plaintext-http")
	if r := plain.do("GET", "/livez", "", nil); r.status != 200 || r.header.Get("Strict-Transport-Security") != "" {
		t.Errorf("plain HTTP /livez: %d, Strict-Transport-Security %q, want none", r.status, r.header.Get("Strict-Transport-Security"))
	}
}

// rawConn is a TLS connection on which the test writes requests by hand;
// it is closed when the test ends.
func (ts *testServer) rawConn(t testing.TB, protos ...string) *tls.Conn {
	t.Helper()
	c, err := ts.dialTLS(t, protos...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// dialTLS is rawConn for other goroutines than the test's.
func (ts *testServer) dialTLS(t testing.TB, protos ...string) (*tls.Conn, error) {
	cfg, err := tlsconfig.ClientConfig(filepath.Join(ts.dataDir, "tls", "ca.pem"))
	if err != nil {
		return nil, err
	}
	cfg.NextProtos = protos
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", strings.TrimPrefix(ts.url, "https://"), cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// startSlowBody sends a request's head announcing length bytes, and the
// first few of them; the rest never comes.
func startSlowBody(c net.Conn, token string, length int) error {
	_, err := fmt.Fprintf(c, "POST /api/v1/encryption/encrypt HTTP/1.1\r\nHost: tenantcrypt\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"plaintext\":\"", token, length)
	return err
}

// readAnswer reads one HTTP answer from c (within a generous bound, so that
// a server that never answers fails the test instead of hanging it).
func readAnswer(t testing.TB, c net.Conn) response {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

// TestRequestLimits: a Content-Length over the limit is refused before
// the body is read; --max-inflight refuses requests beyond it with 503 and
// Retry-After but not probes; a body that does not arrive within
// --body-read-timeout is a 408.
func TestRequestLimits(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, "--max-request-bytes", "65536", "--max-inflight", "2", "--body-read-timeout", "1s")
	svc := ts.token(auth.RoleService, "acme")

	t.Run("content-length over the limit", func(t *testing.T) {
		c := ts.rawConn(t)
		if err := startSlowBody(c, svc, 1000000); err != nil {
			t.Fatal(err)
		}
		r := readAnswer(t, c)
		if r.status != 413 || r.errorCode(t) != "Encryption-06" {
			t.Errorf("Content-Length 1000000 over a 65536 limit: %d %s, want 413 Encryption-06 at once", r.status, r.body)
		}
	})

	t.Run("body read timeout", func(t *testing.T) {
		c := ts.rawConn(t)
		if err := startSlowBody(c, svc, 1000); err != nil {
			t.Fatal(err)
		}
		r := readAnswer(t, c)
		if r.status != 408 || r.errorCode(t) != "Encryption-01" {
			t.Errorf("a body that never arrives: %d %s, want 408", r.status, r.body)
		}
	})

	t.Run("max inflight", func(t *testing.T) {
		// Long bodies, sent slowly: each holds a request in progress for
		// up to the body read timeout; keep two in progress until a third
		// request is refused.
		var refused response
		for attempt := 0; attempt < 20 && refused.status == 0; attempt++ {
			held := []*tls.Conn{ts.rawConn(t), ts.rawConn(t)}
			for _, c := range held {
				if err := startSlowBody(c, svc, 1000); err != nil {
					t.Fatal(err)
				}
			}
			waitMetric(t, ts, "tenantcrypt_http_requests_inflight", 2)
			r := ts.do("POST", "/api/v1/encryption/encrypt", svc, map[string]any{"plaintext": "YQ=="})
			if r.status == 503 {
				refused = r
			}
			for _, c := range held {
				c.Close()
			}
		}
		if refused.status != 503 || refused.errorCode(t) != "Encryption-11" || refused.header.Get("Retry-After") == "" {
			t.Fatalf("a third request while two are in progress: %d %v %s, want 503 Encryption-11 with Retry-After", refused.status, refused.header, refused.body)
		}
		if n := metric(t, ts, "tenantcrypt_http_requests_overloaded_total"); n < 1 {
			t.Errorf("tenantcrypt_http_requests_overloaded_total = %v, want ≥ 1", n)
		}
	})

	t.Run("probes are exempt", func(t *testing.T) {
		held := []*tls.Conn{ts.rawConn(t), ts.rawConn(t), ts.rawConn(t)}
		for _, c := range held {
			if err := startSlowBody(c, svc, 1000); err != nil {
				t.Fatal(err)
			}
		}
		waitMetric(t, ts, "tenantcrypt_http_requests_inflight", 2)
		for _, p := range []string{"/livez", "/readyz", "/metrics"} {
			if r := ts.do("GET", p, "", nil); r.status != 200 {
				t.Errorf("GET %s at --max-inflight: %d %s, want 200", p, r.status, r.body)
			}
		}
	})
}

// h2Idle opens an HTTP/2 connection that sends the preface and SETTINGS
// and nothing else, and returns once the server has read them (it has
// acknowledged the SETTINGS).
func h2Idle(t testing.TB, ts *testServer) *tls.Conn {
	t.Helper()
	c := ts.rawConn(t, "h2")
	if c.ConnectionState().NegotiatedProtocol != "h2" {
		t.Fatalf("negotiated %q, want h2", c.ConnectionState().NegotiatedProtocol)
	}
	if _, err := c.Write(append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, 0, 0, 4, 0, 0, 0, 0, 0)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
	var hdr [9]byte
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			t.Fatalf("reading the server's frames: %v", err)
		}
		n := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
		if _, err := io.CopyN(io.Discard, c, int64(n)); err != nil {
			t.Fatal(err)
		}
		if hdr[3] == 4 && hdr[4]&1 == 1 && binary.BigEndian.Uint32(hdr[5:]) == 0 {
			return c // SETTINGS with ACK
		}
	}
}

// TestConnectionLimits: idle HTTP/2 connections (preface and SETTINGS
// only) cannot take every connection slot: at --max-conns a new connection
// replaces the longest idle one, and /livez keeps answering. Beyond
// --max-conns-per-ip a client's new connection is closed.
func TestConnectionLimits(t *testing.T) {
	t.Parallel()
	t.Run("max-conns", func(t *testing.T) {
		t.Parallel()
		const max = 20
		ts := startServer(t, nil, "--max-conns", strconv.Itoa(max))
		for range max + 5 {
			h2Idle(t, ts)
		}
		for i := range 5 {
			// A fresh connection each time.
			ts.http.CloseIdleConnections()
			if r := ts.do("GET", "/livez", "", nil); r.status != 200 {
				t.Fatalf("/livez %d with %d idle HTTP/2 connections: %d", i, max+5, r.status)
			}
		}
		if n := metric(t, ts, "tenantcrypt_connections_evicted_total"); n < 5 {
			t.Errorf("tenantcrypt_connections_evicted_total = %v, want ≥ 5", n)
		}
		if n := metric(t, ts, "tenantcrypt_connections_open"); n > max {
			t.Errorf("tenantcrypt_connections_open = %v, want ≤ %d", n, max)
		}
	})
	t.Run("max-conns-per-ip", func(t *testing.T) {
		t.Parallel()
		ts := startServer(t, nil, "--max-conns-per-ip", "3")
		var open []*tls.Conn
		for range 3 {
			open = append(open, h2Idle(t, ts))
		}
		cfg, err := tlsconfig.ClientConfig(filepath.Join(ts.dataDir, "tls", "ca.pem"))
		if err != nil {
			t.Fatal(err)
		}
		c, err := tls.Dial("tcp", strings.TrimPrefix(ts.url, "https://"), cfg)
		if err == nil {
			_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
			_, err = c.Read(make([]byte, 1))
			c.Close()
		}
		if err == nil {
			t.Fatal("a fourth connection from the same address was served")
		}
		open[0].Close()
		deadline := time.Now().Add(60 * time.Second)
		for {
			ts.http.CloseIdleConnections()
			req, _ := http.NewRequest("GET", ts.url+"/livez", nil)
			resp, err := ts.http.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no connection served after one of three was closed: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if n := metric(t, ts, `tenantcrypt_connections_refused_total{limit="max-conns-per-ip"}`); n < 1 {
			t.Errorf(`tenantcrypt_connections_refused_total{limit="max-conns-per-ip"} = %v, want ≥ 1`, n)
		}
	})
}

// TestHandshakeErrorLog: many connections that never speak TLS are all
// counted, but logged only a few times.
func TestHandshakeErrorLog(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	const bad = 300
	addr := strings.TrimPrefix(ts.url, "https://")
	var wg sync.WaitGroup
	sem := make(chan struct{}, 20)
	for range bad {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			_, _ = c.Write([]byte("\x00\x01 this is not TLS\r\n\r\n"))
			_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
			_, _ = io.Copy(io.Discard, c) // until the server closes it
		}()
	}
	wg.Wait()
	waitMetric(t, ts, "tenantcrypt_tls_handshake_errors_total", bad)
	lines := strings.Count(ts.logs.String(), "TLS handshake error")
	if lines < 1 || lines > 10 {
		t.Errorf("%d bad connections wrote %d log lines about TLS handshake errors, want 1 to 10", bad, lines)
	}
}

// TestSlowBodiesMemory is the security review's memory attack: 600 TLS
// connections each announce a body of 1,000,000 bytes and send it slowly.
// The server runs as its own process, whose resident memory must grow by
// at most 150 MiB (without -race: the race detector's shadow memory
// multiplies it), as must its Go heap and stacks (always), and /livez keeps
// answering.
func TestSlowBodiesMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("600 connections to a server process; not with -short")
	}
	t.Parallel()
	const conns = 600
	dir := t.TempDir()
	p := &serverProcess{
		t:        t,
		dataDir:  filepath.Join(dir, "data"),
		addrFile: filepath.Join(dir, "addr"),
		logPath:  filepath.Join(dir, "server.log"),
	}
	// The timeouts are long so that every request stays in progress
	// while memory is measured: this is about what a request holds.
	p.args = []string{"serve", "--data-dir", p.dataDir, "--listen", "127.0.0.1:0", "--addr-file", p.addrFile,
		"--log-level", "warn", "--body-read-timeout", "10m", "--request-timeout", "10m"}
	p.env = childEnv()
	t.Cleanup(p.cleanup)
	ts := p.start()
	pid := p.cmd.Process.Pid
	svc := ts.token(auth.RoleService, "acme")
	for range 20 {
		ts.do("POST", "/api/v1/encryption/encrypt", svc, map[string]any{"plaintext": "YQ=="})
	}
	before, heapBefore := rss(t, pid), goMemory(t, ts)

	held := make([]*tls.Conn, conns)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range held {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := ts.dialTLS(t)
			if err == nil {
				err = startSlowBody(c, svc, 1000000)
			}
			if err != nil {
				t.Error(err)
				return
			}
			held[i] = c
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	waitMetric(t, ts, "tenantcrypt_http_requests_inflight", conns)
	chunk := bytes.Repeat([]byte("A"), 1024)
	for _, c := range held {
		if _, err := c.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	peak, heapPeak := before, heapBefore
	for i := range 30 {
		if r := ts.do("GET", "/livez", "", nil); r.status != 200 {
			t.Fatalf("/livez %d with %d slow bodies: %d", i, conns, r.status)
		}
		peak = max(peak, rss(t, pid))
		heapPeak = max(heapPeak, goMemory(t, ts))
	}
	grew := float64(peak-before) / (1 << 20)
	heapGrew := (heapPeak - heapBefore) / (1 << 20)
	t.Logf("server RSS %d MiB before, %d MiB with %d slow bodies in progress: +%.0f MiB (Go heap and stacks: +%.0f MiB)",
		before>>20, peak>>20, conns, grew, heapGrew)
	if grew > 150 && !raceEnabled {
		t.Errorf("%d slow bodies grew the server's resident memory by %.0f MiB, want ≤ 150 MiB", conns, grew)
	}
	if heapGrew > 150 {
		t.Errorf("%d slow bodies grew the server's Go heap and stacks by %.0f MiB, want ≤ 150 MiB", conns, heapGrew)
	}
}

// goMemory is the Go heap and stack memory a server reports in /metrics.
func goMemory(t testing.TB, ts *testServer) float64 {
	t.Helper()
	heap, stack := metric(t, ts, "go_memstats_heap_inuse_bytes"), metric(t, ts, "go_memstats_stack_inuse_bytes")
	if heap == 0 || stack == 0 {
		t.Fatal("the server reports no go_memstats_heap_inuse_bytes or go_memstats_stack_inuse_bytes")
	}
	return heap + stack
}

// rss returns the resident memory of process pid, in bytes.
func rss(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/PID/status")
	return 0
}
