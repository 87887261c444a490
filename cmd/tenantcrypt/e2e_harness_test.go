package main

// The end-to-end harness: every test of this package reaches a server
// through the types and functions of this file.
//
//   - testServer is a server: started in this process (startServer,
//     restartServer) through the same code path as `tenantcrypt serve`, or
//     as a child process (serverProcess) when a test kills it or measures
//     it. Its HTTP helpers are layered on one request function: do and send
//     for the test's goroutine (they fail the test), call, post and postJSON
//     for any goroutine (they return an error).
//   - cmkEnv is a server whose AWS KMS is local-kms in two Regions, each
//     behind a fault-injecting proxy, with its helpers for customer managed
//     keys (register, migrate, disable, schedule deletion, ...).
//
// The tests run in parallel. Each has its own servers, data directories and
// local-kms processes: the CMK tests change the seeded keys (DisableKey,
// ScheduleKeyDeletion, rotation, a Region without the key), so a shared
// local-kms would let one test's key change reach another. Starting a
// server or a local-kms pair takes well under a second; the time of the
// suite goes into the tests' own waits, which run side by side.
//
// The AWS SDK reads credentials from the process environment, which
// t.Setenv would forbid to parallel tests: TestMain sets local-kms's
// credentials once, before any test starts.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/rogpeppe/go-internal/testscript"
	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/store/postgres/pgtest"
	"github.com/tenantcrypt/tenantcrypt/internal/testkms"
	"github.com/tenantcrypt/tenantcrypt/internal/tlsconfig"
)

// testAWSEnv are the AWS settings of every server of the tests: local-kms
// checks no signature, but the SDK wants credentials to sign with, and must
// not ask an instance metadata service for them.
var testAWSEnv = []string{"AWS_ACCESS_KEY_ID=AKIDTENANTCRYPTTEST", "AWS_SECRET_ACCESS_KEY=tenantcrypt-test-secret", "AWS_EC2_METADATA_DISABLED=true"}

// defaultParallel is how many tests run at once unless -test.parallel says
// otherwise. The tests mostly wait (for key checks, cache expiry, local-kms,
// a browser), so more of them than the machine has cores keep it busy; under
// the race detector each costs several times the CPU, and eight at once on
// two cores made servers miss their own request timeouts.
func defaultParallel() int {
	if raceDetector {
		return 4
	}
	return 8
}

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		return
	}
	testscript.Main(testRun{m}, map[string]func(){"tenantcrypt": main})
}

// testRun runs the tests, after setting up the process for them; not the
// commands that testscript runs, whose environment is the scripts'.
type testRun struct{ m *testing.M }

func (r testRun) Run() int {
	// The in-process servers' AWS SDK reads the environment: the
	// developer's AWS settings are not the tests', and local-kms's
	// credentials are set once for all, so that no test needs t.Setenv
	// (which parallel tests cannot use).
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			os.Unsetenv(k)
		}
	}
	for _, kv := range testAWSEnv {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	// A -test.parallel on the command line overrides this default when
	// m.Run parses the flags.
	if err := flag.Set("test.parallel", strconv.Itoa(defaultParallel())); err != nil {
		panic(err)
	}
	return r.m.Run()
}

// testServer is a real tenantcrypt server on a free loopback port, with TLS
// unless started with --insecure-plaintext-http.
type testServer struct {
	t       testing.TB
	url     string
	dataDir string
	http    *http.Client
	stop    func() int // stops an in-process server; nil for a child process
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

// startServer runs `serve` in this process with a temporary data directory
// and the given extra flags; env is its environment (the server's getenv)
// besides the process's AWS settings. It is stopped (gracefully) when the
// test ends.
func startServer(t testing.TB, env map[string]string, args ...string) *testServer {
	t.Helper()
	return serveInProcess(t, filepath.Join(serverDir(t), "data"), env, args...)
}

// serverDir is a temporary directory for a server's data, removed when the
// test ends: in memory (/dev/shm) where the machine has it, else
// t.TempDir(). SQLite syncs every commit to disk, and on a small machine
// running the tests side by side those syncs, not the code under test,
// would set the pace; a process that is killed loses nothing either way.
func serverDir(t testing.TB) string {
	t.Helper()
	const shm = "/dev/shm"
	if fi, err := os.Stat(shm); err != nil || !fi.IsDir() {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp(shm, "tenantcrypt-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing %s: %v", dir, err)
		}
	})
	return dir
}

// restartServer stops ts gracefully and starts a server on the same data
// directory with args (which name the same database), as an operator's
// restart would.
func restartServer(t *testing.T, ts *testServer, env map[string]string, args ...string) *testServer {
	t.Helper()
	if code := ts.stop(); code != exitOK {
		t.Fatalf("server exit code = %d, want %d", code, exitOK)
	}
	return serveInProcess(t, ts.dataDir, env, args...)
}

// serveInProcess runs `serve` on dataDir, waits until it serves and stops
// it when the test ends.
func serveInProcess(t testing.TB, dataDir string, env map[string]string, args ...string) *testServer {
	t.Helper()
	addrFile := filepath.Join(t.TempDir(), "addr")
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
	ts := newTestServer(t, addr, dataDir, strings.Contains(strings.Join(args, " "), "--insecure-plaintext-http"))
	ts.logs = logs
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

// requestTimeout bounds one request of a test, so that a server that never
// answers fails the test rather than hanging it. It is long: the tests run
// side by side, and a batch of a thousand keys on PostgreSQL, on a loaded
// machine, may take more than half a minute.
const requestTimeout = 2 * time.Minute

// newTestServer is the client side of a server listening on addr: HTTPS
// trusting the development CA in dataDir, or plain HTTP.
func newTestServer(t testing.TB, addr, dataDir string, plain bool) *testServer {
	t.Helper()
	ts := &testServer{t: t, url: "https://" + addr, dataDir: dataDir, logs: &syncBuffer{}}
	if plain {
		ts.url = "http://" + addr
		ts.http = &http.Client{Timeout: requestTimeout}
		return ts
	}
	tlsCfg, err := tlsconfig.ClientConfig(filepath.Join(dataDir, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ts.http = &http.Client{Timeout: requestTimeout, Transport: &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true}}
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

// eachBackend runs fn as a parallel subtest per database backend.
func eachBackend(t *testing.T, fn func(t *testing.T, name string, dbArgs []string)) {
	for name, db := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, name, db(t))
		})
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

// request sends a request with the given Content-Type (none if empty) and
// bearer token (none if empty), and reads the whole answer. It is the one
// function every other helper sends through, and may be called from any
// goroutine; err is set when no answer came.
func (ts *testServer) request(method, path, token, contentType string, body io.Reader) (response, error) {
	req, err := http.NewRequest(method, ts.url+path, body)
	if err != nil {
		return response{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := ts.http.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

// jsonBody is body as a request body: a string or []byte as is, another
// value as JSON; nil for no body.
func jsonBody(body any) (io.Reader, error) {
	switch b := body.(type) {
	case nil:
		return nil, nil
	case string:
		return strings.NewReader(b), nil
	case []byte:
		return bytes.NewReader(b), nil
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		return bytes.NewReader(j), nil
	}
}

// do sends a request; body may be a string (sent as is) or a value (JSON),
// as application/json. It fails the test when no answer comes.
func (ts *testServer) do(method, path, token string, body any) response {
	ts.t.Helper()
	rd, err := jsonBody(body)
	if err != nil {
		ts.t.Fatal(err)
	}
	contentType := ""
	if body != nil {
		contentType = "application/json"
	}
	return ts.send(method, path, token, contentType, rd)
}

// send is request for the test's goroutine: it fails the test when no
// answer comes.
func (ts *testServer) send(method, path, token, contentType string, body io.Reader) response {
	ts.t.Helper()
	r, err := ts.request(method, path, token, contentType, body)
	if err != nil {
		ts.t.Fatal(err)
	}
	return r
}

// doWith sends body with the given Content-Type.
func (ts *testServer) doWith(method, path, token, body, contentType string) response {
	ts.t.Helper()
	return ts.send(method, path, token, contentType, strings.NewReader(body))
}

// call sends one JSON request (GET without a body) from any goroutine and
// returns the status and body; err is set when no answer came.
func call(ts *testServer, path, token string, in any) (int, []byte, error) {
	method, contentType := "GET", ""
	if in != nil {
		method, contentType = "POST", "application/json"
	}
	rd, err := jsonBody(in)
	if err != nil {
		return 0, nil, err
	}
	r, err := ts.request(method, path, token, contentType, rd)
	return r.status, r.body, err
}

// post sends one JSON request and decodes a 200 answer into out; unlike
// testServer.do it may be called from any goroutine.
func post(ts *testServer, path, token string, in, out any) error {
	status, data, err := call(ts, path, token, in)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("POST %s: %d %.500s", path, status, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	return nil
}

// postJSON is post for the test's goroutine: it fails the test unless the
// answer is a 200 that decodes into out.
func postJSON(t *testing.T, ts *testServer, token, path string, in, out any) {
	t.Helper()
	if err := post(ts, path, token, in, out); err != nil {
		t.Fatal(err)
	}
}

// metric reads one unlabelled metric of a server (0 when absent).
func metric(t testing.TB, ts *testServer, name string) float64 {
	t.Helper()
	n, _ := metricValue(t, ts, name)
	return n
}

// metricValue reads one unlabelled metric of a server, and whether the
// server reports it.
func metricValue(t testing.TB, ts *testServer, name string) (float64, bool) {
	t.Helper()
	r := ts.do("GET", "/metrics", "", nil)
	for line := range strings.Lines(string(r.body)) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return n, true
		}
	}
	return 0, false
}

// metricSum is the sum of every series of a metric whose line starts with
// prefix (a name, or a name and the start of its labels).
func metricSum(t testing.TB, ts *testServer, prefix string) float64 {
	t.Helper()
	r := ts.do("GET", "/metrics", "", nil)
	sum := 0.0
	for line := range strings.Lines(string(r.body)) {
		if strings.HasPrefix(line, prefix) {
			f := strings.Fields(line)
			n, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			sum += n
		}
	}
	return sum
}

// waitMetric waits until the metric reaches at least want.
func waitMetric(t testing.TB, ts *testServer, name string, want float64) float64 {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for {
		got := metric(t, ts, name)
		if got >= want {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("metric %s = %v, want at least %v", name, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// until polls fn every 20 ms until it returns true, failing the test after
// limit; it returns how long that took.
func until(t testing.TB, what string, limit time.Duration, fn func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !fn() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
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

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// A server as a child process: this test binary again, which TestMain turns
// into `tenantcrypt` when runMainEnv is "1".
const (
	runMainEnv = "TENANTCRYPT_TEST_RUN_MAIN"
	// exitWithStdinEnv makes the child exit when its standard input closes,
	// which happens when the test process that holds the other end dies
	// without running its cleanups (a test timeout, a panic): no server
	// outlives its test.
	exitWithStdinEnv = "TENANTCRYPT_TEST_EXIT_WITH_STDIN"
)

func init() {
	if os.Getenv(runMainEnv) == "1" && os.Getenv(exitWithStdinEnv) == "1" {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			os.Exit(exitFailure)
		}()
	}
}

// childEnv is the test's environment without any TENANTCRYPT_ or AWS_
// setting of the developer's, with local-kms's credentials.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TENANTCRYPT_") || strings.HasPrefix(kv, "AWS_") {
			continue
		}
		env = append(env, kv)
	}
	return append(append(env, runMainEnv+"=1", exitWithStdinEnv+"=1"), testAWSEnv...)
}

// serverProcess runs `tenantcrypt serve` as a child process, again and again
// on the same data directory.
type serverProcess struct {
	t         *testing.T
	args, env []string
	// shell, if set, is a sh script that ends by running the server
	// ("$@"), to set up its process first (ulimit, say).
	shell                      string
	dataDir, addrFile, logPath string

	starts int
	cmd    *exec.Cmd
	stdin  *os.File      // our end of the child's standard input
	exited chan struct{} // closed when cmd has exited
}

// start starts the server and waits until it serves.
func (p *serverProcess) start() *testServer {
	t := p.t
	t.Helper()
	if p.cmd != nil {
		t.Fatal("serverProcess.start: the previous server is still running")
	}
	p.starts++
	if err := os.Remove(p.addrFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	fmt.Fprintf(logFile, "=== start %d\n", p.starts)
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdinR.Close()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, p.args...)
	if p.shell != "" {
		cmd = exec.Command("/bin/sh", append([]string{"-c", p.shell, "tenantcrypt", exe}, p.args...)...)
	}
	cmd.Env = p.env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdinR, logFile, logFile
	if err := cmd.Start(); err != nil {
		stdinW.Close()
		t.Fatalf("starting the server: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	p.cmd, p.stdin, p.exited = cmd, stdinW, exited

	var addr string
	for deadline := time.Now().Add(60 * time.Second); ; {
		if b, err := os.ReadFile(p.addrFile); err == nil && strings.HasSuffix(string(b), "\n") {
			addr = strings.TrimSpace(string(b))
			break
		}
		select {
		case <-exited:
			t.Fatalf("server %d exited with %v before serving", p.starts, cmd.ProcessState)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("server %d did not serve within 60s", p.starts)
		}
	}
	return newTestServer(t, addr, p.dataDir, false)
}

// kill ends the server with SIGKILL: no cleanup of any kind.
func (p *serverProcess) kill() {
	p.t.Helper()
	select {
	case <-p.exited:
		p.t.Fatalf("server %d exited by itself (%v) before it was killed", p.starts, p.cmd.ProcessState)
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatalf("SIGKILL: %v", err)
	}
	if code := p.wait(10 * time.Second); code != -1 {
		p.t.Fatalf("server ended with exit code %d, not by SIGKILL", code)
	}
}

// terminate asks the server to stop (SIGTERM) and returns its exit code.
func (p *serverProcess) terminate() int {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("SIGTERM: %v", err)
	}
	return p.wait(40 * time.Second)
}

// wait waits for the server to exit and returns its exit code (-1: killed
// by a signal).
func (p *serverProcess) wait(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(d):
		p.t.Fatalf("server %d did not exit within %v", p.starts, d)
	}
	code := p.cmd.ProcessState.ExitCode()
	p.stdin.Close()
	p.cmd = nil
	return code
}

// cleanup kills a server that is still running, whatever happened.
func (p *serverProcess) cleanup() {
	if p.cmd != nil {
		_ = p.cmd.Process.Kill()
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			p.t.Errorf("server %d (pid %d) did not exit after SIGKILL", p.starts, p.cmd.Process.Pid)
		}
		p.stdin.Close()
		p.cmd = nil
	}
	if p.t.Failed() {
		p.t.Logf("server log (its end):\n%s", p.logs(64<<10))
	}
}

// logs returns the log of every server started, or its last max bytes
// (0: all of it).
func (p *serverProcess) logs(max int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	if max > 0 && len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

const (
	primaryRegion = "eu-west-1"
	drRegion      = "eu-west-3"
)

// kp is the key-provider API.
const kp = "/api/v1/encryption/keyproviders"

// Shorter lifecycle intervals for tests that wait for key checks: a check
// every half second (the shortest allowed) within a revocation bound of two
// seconds, so that "three check intervals" is a second and a half; and every
// tenant checked at that interval, also one that holds no cached key (which
// would otherwise be idle, checked hourly), so that counting key checks
// (cmkEnv.waitKeyChecks) counts intervals.
var fastChecks = []string{"--revocation-bound", "2s", "--key-check-interval", "500ms", "--idle-key-check-interval", "0"}

// cmkEnv is a tenantcrypt server whose AWS KMS is local-kms in two regions,
// each behind a fault-injecting proxy, with the seeded multi-region keys
// described as such (local-kms lacks that metadata; the proxy adds it).
type cmkEnv struct {
	*testServer
	primary, dr   *testkms.Server
	pProxy, dProx *testkms.Proxy
	admin         string
}

func startCMKEnv(t testing.TB, extra ...string) *cmkEnv {
	t.Helper()
	primary, dr := testkms.StartPair(t, primaryRegion, drRegion)
	e := &cmkEnv{primary: primary, dr: dr, pProxy: testkms.NewProxy(t, primary), dProx: testkms.NewProxy(t, dr)}
	for _, id := range []string{testkms.MultiRegionKeyID, testkms.SecondMultiRegionKeyID} {
		e.pProxy.SetMultiRegion(id, primaryRegion, drRegion)
		e.dProx.SetMultiRegion(id, primaryRegion, drRegion)
	}
	e.testServer = startServer(t, nil, append(e.kmsArgs(), extra...)...)
	e.admin = e.token(auth.RolePlatformAdmin, "")
	return e
}

// cmkKMSTimeout is the servers' --kms-timeout. A call to the primary region
// that times out is an outage there, which fails the multi-region key's
// calls over to the DR region: on a loaded machine, with tests running side
// by side, local-kms may take several hundred milliseconds to answer, and a
// shorter timeout would move data keys to the DR region in the middle of
// tests that check where they are made. Faults that are about timeouts
// inject latencies longer than this.
const cmkKMSTimeout = 2 * time.Second

// kmsArgs are the server flags that point it at the proxies.
func (e *cmkEnv) kmsArgs() []string {
	return []string{
		"--region", primaryRegion, "--dr-region", primaryRegion + "=" + drRegion,
		"--kms-endpoint", primaryRegion + "=" + e.pProxy.URL, "--kms-endpoint", drRegion + "=" + e.dProx.URL,
		"--kms-timeout", cmkKMSTimeout.String(), "--migration-rate", "0",
	}
}

// restart restarts the server on its data with the same KMS and extra.
func (e *cmkEnv) restart(t *testing.T, extra ...string) {
	t.Helper()
	e.testServer = restartServer(t, e.testServer, nil, append(e.kmsArgs(), extra...)...)
}

// cmkBackends runs run as a parallel subtest per database backend: SQLite,
// and PostgreSQL when TENANTCRYPT_TEST_POSTGRES is set.
func cmkBackends(t *testing.T, run func(t *testing.T, extra ...string)) {
	eachBackend(t, func(t *testing.T, _ string, dbArgs []string) { run(t, dbArgs...) })
}

func (e *cmkEnv) tenant(t testing.TB, id, edition string) string {
	t.Helper()
	if r := e.do("POST", "/api/v1/tenants", e.admin, map[string]any{"id": id, "name": id, "edition": edition}); r.status != 201 {
		t.Fatalf("create tenant %s: %d %s", id, r.status, r.body)
	}
	return e.token(auth.RoleTenantAdmin, id)
}

func register(arn, name string) map[string]any {
	return map[string]any{"arn": arn, "name": name, "description": "test key", "keyprovider": "AWS-KMS"}
}

// waitMigration polls the migration details until the migration completes.
// It fails when the progress stands still for a minute (a slow, race-enabled
// run on a busy machine still moves), or after ten minutes in all.
func (e *cmkEnv) waitMigration(t testing.TB, token string) api.Migration {
	t.Helper()
	start, moved, last := time.Now(), time.Now(), -1.0
	for {
		r := e.do("GET", kp+"/migration/actions/details", token, nil)
		var m api.Migration
		if err := json.Unmarshal(r.body, &m); err != nil || r.status != 200 {
			t.Fatalf("details: %d %s", r.status, r.body)
		}
		if m.State == "Completed" {
			return m
		}
		if m.Progress != last {
			last, moved = m.Progress, time.Now()
		}
		if time.Since(moved) > time.Minute || time.Since(start) > 10*time.Minute {
			t.Fatalf("migration stuck at %v%% after %s: %s", m.Progress, time.Since(start).Round(time.Second), r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// migrateTo registers the key keyID of the primary region (unless it is
// registered already) and asks for the tenant's migration onto it.
func (e *cmkEnv) migrateTo(t testing.TB, token, keyID string) (string, response) {
	t.Helper()
	arn := e.primary.ARN(keyID)
	fp := keyprovider.Fingerprint(arn)
	if r := e.do("GET", kp+"/"+fp, token, nil); r.status == 404 {
		if r := e.do("POST", kp, token, register(arn, keyID)); r.status != 201 {
			t.Fatalf("register %s: %d %s", keyID, r.status, r.body)
		}
	}
	return fp, e.do("POST", kp+"/"+fp+"/actions/migrate", token, nil)
}

// onCMK creates an enterprise tenant, registers the multi-region key and
// migrates the tenant onto it. It returns the tenant admin's and a
// service's tokens.
func (e *cmkEnv) onCMK(t testing.TB, id string) (admin, svc string) {
	t.Helper()
	admin = e.tenant(t, id, "enterprise")
	mrk := e.primary.ARN(testkms.MultiRegionKeyID)
	if r := e.do("POST", kp, admin, register(mrk, "customer key")); r.status != 201 {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	if r := e.do("POST", kp+"/"+keyprovider.Fingerprint(mrk)+"/actions/migrate", admin, nil); r.status != 200 {
		t.Fatalf("migrate: %d %s", r.status, r.body)
	}
	e.waitMigration(t, admin)
	return admin, e.token(auth.RoleService, id)
}

// cmkTenant is onCMK and a ciphertext made under the customer managed key.
func (e *cmkEnv) cmkTenant(t testing.TB, id string) (admin, svc, ciphertext string) {
	t.Helper()
	admin, svc = e.onCMK(t, id)
	r := e.do("POST", "/api/v1/encryption/encrypt", svc, map[string]any{"plaintext": b64("tenant data")})
	if r.status != 200 {
		t.Fatalf("encrypt: %d %s", r.status, r.body)
	}
	ciphertext, _ = r.json(t)["ciphertext"].(string)
	if !strings.HasPrefix(ciphertext, "#BYOKv1#:") {
		t.Fatalf("ciphertext %q is not under the customer managed key", ciphertext)
	}
	return admin, svc, ciphertext
}

// customer is the key owner's own AWS KMS client in the primary region.
func (e *cmkEnv) customer(t testing.TB) *kms.Client { return e.primary.Client(t) }

// scheduleDeletion schedules the key's deletion as its owner would, with
// AWS's shortest waiting period.
func (e *cmkEnv) scheduleDeletion(t testing.TB) {
	t.Helper()
	if _, err := e.customer(t).ScheduleKeyDeletion(context.Background(), &kms.ScheduleKeyDeletionInput{
		KeyId: aws.String(testkms.MultiRegionKeyID), PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
}

// restore cancels the key's deletion and enables it: AWS leaves a key whose
// deletion was cancelled disabled, so its owner enables it.
func (e *cmkEnv) restore(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.customer(t).CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(testkms.MultiRegionKeyID)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.customer(t).EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(testkms.MultiRegionKeyID)}); err != nil {
		t.Fatal(err)
	}
}

func (e *cmkEnv) decrypt(svc, ciphertext string) response {
	return e.do("POST", "/api/v1/encryption/decrypt", svc, map[string]any{"ciphertext": ciphertext})
}

// dataKey issues a data key under ectx and returns its handle.
func (e *cmkEnv) dataKey(t testing.TB, svc string, ectx map[string]string) (handle, key string) {
	t.Helper()
	r := e.do("POST", "/api/v1/encryption/datakeys", svc, map[string]any{"context": ectx})
	if r.status != 200 {
		t.Fatalf("datakeys: %d %s", r.status, r.body)
	}
	m := r.json(t)
	return m["handle"].(string), m["plaintext"].(string)
}

func (e *cmkEnv) resolve(svc, handle string, ectx map[string]string) response {
	return e.do("POST", "/api/v1/encryption/datakeys/decrypt", svc, map[string]any{"handle": handle, "context": ectx})
}

func (e *cmkEnv) status(t testing.TB, token string) api.EncryptionStatus {
	t.Helper()
	r := e.do("GET", "/api/v1/encryption/status", token, nil)
	var st api.EncryptionStatus
	if r.status != 200 || json.Unmarshal(r.body, &st) != nil {
		t.Fatalf("status: %d %s", r.status, r.body)
	}
	return st
}

// keyChecks is how many key checks the server has made in the primary
// region, whatever their result.
func (e *cmkEnv) keyChecks(t testing.TB) int {
	t.Helper()
	return int(metricSum(t, e.testServer, `tenantcrypt_key_checks_total{region="`+primaryRegion+`"`))
}

// waitKeyChecks waits until the server has made n more key checks in the
// primary region than it had when called: what a test means by "for n
// check intervals", counted rather than slept.
func (e *cmkEnv) waitKeyChecks(t testing.TB, n int) {
	t.Helper()
	want := e.keyChecks(t) + n
	until(t, fmt.Sprintf("%d key checks", n), 60*time.Second, func() bool { return e.keyChecks(t) >= want })
}

// until503 waits, while the key manager is down, until decrypting
// ciphertext answers 503 with Retry-After (the cached data key expired);
// 200 before that is the cache serving, anything else fails the test.
func (e *cmkEnv) until503(t *testing.T, svc, ciphertext, during string) {
	t.Helper()
	until(t, "503 once the cached key expired", 20*time.Second, func() bool {
		r := e.decrypt(svc, ciphertext)
		switch r.status {
		case 200:
			return false
		case 503:
			if r.header.Get("Retry-After") == "" {
				t.Fatalf("503 without Retry-After: %s", r.body)
			}
			return true
		}
		t.Fatalf("decrypt %s: %d %s, want 200 then 503", during, r.status, r.body)
		return false
	})
}

// measureRevocation disables the tenant's key in the customer's account and
// decrypts without pause until the service refuses; it returns the time from
// the DisableKey answer to the first refusal, and fails the test if any
// request succeeds after a refusal or if another error than the key's
// unavailability comes back.
func measureRevocation(t testing.TB, e *cmkEnv, svc, ciphertext string, bound time.Duration) time.Duration {
	t.Helper()
	if r := e.decrypt(svc, ciphertext); r.status != 200 {
		t.Fatalf("decrypt before the revocation: %d %s", r.status, r.body)
	}
	if _, err := e.customer(t).DisableKey(context.Background(), &kms.DisableKeyInput{KeyId: aws.String(testkms.MultiRegionKeyID)}); err != nil {
		t.Fatal(err)
	}
	disabled := time.Now()
	var refused time.Time
	for refused.IsZero() || time.Since(refused) < time.Second {
		r := e.decrypt(svc, ciphertext)
		switch {
		case r.status == 200 && !refused.IsZero():
			t.Fatalf("a decrypt succeeded %s after the first refusal", time.Since(refused))
		case r.status == 200:
		case r.status == 403 && r.errorCode(t) == string(api.CodeKeyUnavailable):
			if refused.IsZero() {
				refused = time.Now()
			}
		default:
			t.Fatalf("decrypt after DisableKey: %d %s, want 200 or 403 %s", r.status, r.body, api.CodeKeyUnavailable)
		}
		if refused.IsZero() && time.Since(disabled) > 3*bound {
			t.Fatalf("decrypts still succeed %s after DisableKey (bound %s)", time.Since(disabled), bound)
		}
	}
	return refused.Sub(disabled)
}

// waitCacheEmpty waits until the server holds no unwrapped data key, as its
// metrics report.
func waitCacheEmpty(t *testing.T, ts *testServer) {
	t.Helper()
	const name = "tenantcrypt_datakey_cache_entries"
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, ok := metricValue(t, ts, name)
		switch {
		case !ok:
			t.Fatalf("no %s in /metrics", name)
		case n == 0:
			return
		case time.Now().After(deadline):
			t.Fatalf("the server still caches %v data keys 30s after their last use", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
