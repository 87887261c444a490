package main

import (
	"bytes"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/testkms"
	"github.com/tenantcrypt/tenantcrypt/internal/tlsconfig"
)

// The crash test runs the server as a child process: this test binary again,
// which TestMain turns into `tenantcrypt` when runMainEnv is "1".
const (
	runMainEnv = "TENANTCRYPT_TEST_RUN_MAIN"
	// exitWithStdinEnv makes the child exit when its standard input closes,
	// which happens when the test process that holds the other end dies
	// without running its cleanups (a test timeout, a panic): no server
	// outlives its test.
	exitWithStdinEnv = "TENANTCRYPT_TEST_EXIT_WITH_STDIN"
	// crashSeedEnv replays the kill times of an earlier run.
	crashSeedEnv = "TENANTCRYPT_TEST_CRASH_SEED"
)

func init() {
	if os.Getenv(runMainEnv) == "1" && os.Getenv(exitWithStdinEnv) == "1" {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			os.Exit(exitFailure)
		}()
	}
}

// Sizes of the crash test. At --migration-rate 300 the migration takes
// about crashDataKeys/300 seconds of server uptime: long enough for every
// kill to land in the middle of it.
const (
	crashDataKeys    = 3000
	crashCiphertexts = 200
	crashKills       = 5
	crashRate        = "300"
)

// TestMigrationCrash kills the server (SIGKILL) at random points of a
// provider migration several times, restarts it on the same data, and shows
// that the migration completes, that its progress never goes backwards, and
// that every cipherkey still resolves to the very key it was.
func TestMigrationCrash(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the crash test needs POSIX signals (SIGKILL, SIGTERM)")
	}
	if testing.Short() {
		t.Skip("the crash test takes a while; skipped with -short")
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(crashSeedEnv); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", crashSeedEnv, v, err)
		}
	}
	t.Logf("kill times seeded with %d (replay with %s=%d)", seed, crashSeedEnv, seed)
	b := backends(t)
	names := make([]string, 0, len(b))
	for name := range b {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			testMigrationCrash(t, rand.New(rand.NewPCG(seed, 0x7e4a47c4)), b[name](t))
		})
	}
}

// crashedKey is a data key handed out by the server, as the caller saw it.
type crashedKey struct {
	handle    string
	context   map[string]string
	plaintext string // base64
}

// crashedCiphertext is a ciphertext and what it must decrypt to.
type crashedCiphertext struct {
	ciphertext string
	context    map[string]string
	plaintext  string // base64
}

func testMigrationCrash(t *testing.T, rng *rand.Rand, extra []string) {
	start := time.Now()
	primary, dr := testkms.StartPair(t, primaryRegion, drRegion)
	pProxy, dProxy := testkms.NewProxy(t, primary), testkms.NewProxy(t, dr)
	pProxy.SetMultiRegion(testkms.MultiRegionKeyID, primaryRegion, drRegion)
	dProxy.SetMultiRegion(testkms.MultiRegionKeyID, primaryRegion, drRegion)

	dir := t.TempDir()
	p := &serverProcess{
		t:        t,
		dataDir:  filepath.Join(dir, "data"),
		addrFile: filepath.Join(dir, "addr"),
		logPath:  filepath.Join(dir, "server.log"),
	}
	p.args = append([]string{
		"serve", "--data-dir", p.dataDir, "--listen", "127.0.0.1:0", "--addr-file", p.addrFile,
		"--region", primaryRegion, "--dr-region", primaryRegion + "=" + drRegion,
		"--kms-endpoint", primaryRegion + "=" + pProxy.URL, "--kms-endpoint", drRegion + "=" + dProxy.URL,
		// A restarted server is a new replica: it takes the migration
		// over once the killed one's lease has lapsed.
		"--migration-rate", crashRate, "--migration-lease", "2s", "--log-level", "warn",
	}, extra...)
	p.env = childEnv()
	t.Cleanup(p.cleanup)

	ts := p.start()
	admin := ts.token(auth.RolePlatformAdmin, "")
	if r := ts.do("POST", "/api/v1/tenants", admin, map[string]any{"id": "crash", "name": "crash", "edition": "enterprise"}); r.status != 201 {
		t.Fatalf("create tenant: %d %s", r.status, r.body)
	}
	ta := ts.token(auth.RoleTenantAdmin, "crash")
	svc := ts.token(auth.RoleService, "crash")

	// The tenant's data, on the internal KMS.
	keys := newDataKeys(t, ts, svc, 0, crashDataKeys)
	cts := encryptSome(t, ts, svc, crashCiphertexts)
	t.Logf("%d data keys and %d ciphertexts made in %v", len(keys), len(cts), time.Since(start).Round(time.Millisecond))

	// Migrate to the multi-region CMK.
	mrk := primary.ARN(testkms.MultiRegionKeyID)
	fp := keyprovider.Fingerprint(mrk)
	if r := ts.do("POST", kp, ta, register(mrk, "crash key")); r.status != 201 {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	r := ts.do("POST", kp+"/"+fp+"/actions/migrate", ta, nil)
	if r.status != 200 {
		t.Fatalf("migrate: %d %s", r.status, r.body)
	}
	var m api.Migration
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatal(err)
	}
	mt := &migrationTracker{t: t, id: m.ID}
	migrateStart := time.Now()

	// From here on new data keys are the CMK's (their handles say so).
	cmkFrom := len(keys)

	// Kill it at random points: even kills within the first batch after a
	// (re)start, odd ones in the middle of the batch after one was stored,
	// so that the restarts resume from both kinds of state. The tenant keeps
	// working in between.
	for i := range crashKills {
		// The data plane works during the migration: new keys (wrapped by
		// the CMK already), and old ones resolved.
		keys = append(keys, newDataKeys(t, ts, svc, len(keys), 5)...)
		resolveSome(t, ts, svc, keys, rng, 5)
		phase := "in the first batch"
		if i%2 == 1 {
			phase = "after a stored batch"
			base := mt.last.Progress
			for waitUntil := time.Now().Add(30 * time.Second); mt.check(ts, ta).Progress == base && mt.last.State != "Completed"; {
				if time.Now().After(waitUntil) {
					t.Fatalf("no progress within 30s of a restart: %+v", mt.last)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		window := time.Duration(50+rng.IntN(451)) * time.Millisecond
		for deadline := time.Now().Add(window); time.Now().Before(deadline); {
			mt.check(ts, ta)
			time.Sleep(min(20*time.Millisecond, time.Until(deadline)))
		}
		rewrapped := rewrappedBy(t, ts)
		p.kill()
		before := mt.last
		restart := time.Now()
		ts = p.start()
		after := mt.check(ts, ta) // the details still answer after the crash
		t.Logf("kill %d %s, %v later, the server having rewrapped %d cipherkeys: progress %.2f%% (%s); %.2f%% (%s) after a restart of %v",
			i+1, phase, window, rewrapped, before.Progress, before.State, after.Progress, after.State, time.Since(restart).Round(time.Millisecond))
	}
	lastStart := time.Now()

	// Let it finish.
	for mt.check(ts, ta).State != "Completed" {
		if time.Since(migrateStart) > 2*time.Minute {
			t.Fatalf("migration not completed 2 minutes after it started (and %d crashes): %+v", crashKills, mt.last)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("migration completed %v after it started, %d crashes included; the last server rewrapped %d cipherkeys in %v",
		time.Since(migrateStart).Round(time.Millisecond), crashKills, rewrappedBy(t, ts), time.Since(lastStart).Round(time.Millisecond))
	verifyStart := time.Now()
	if mt.last.Progress != 100 || mt.last.Error != "" || mt.last.CompletedAt == api.NeverTime || mt.last.MigratingTo != mrk {
		t.Errorf("completed migration: %+v", mt.last)
	}

	for i, k := range keys[cmkFrom:] {
		if !strings.HasPrefix(k.handle, envelope.CMKPrefix(fp)+":") {
			t.Errorf("data key %d, made during the migration, has handle %s, want the prefix %s", cmkFrom+i, k.handle, envelope.CMKPrefix(fp))
		}
	}

	// Every cipherkey is intact, and wrapped by the CMK only.
	verifyDataKeys(t, ts, svc, keys)
	verifyCiphertexts(t, ts, svc, cts)
	t.Logf("%d data keys and %d ciphertexts verified in %v", len(keys), len(cts), time.Since(verifyStart).Round(time.Millisecond))
	var st api.EncryptionStatus
	if r := ts.do("GET", "/api/v1/encryption/status", ta, nil); r.status != 200 || json.Unmarshal(r.body, &st) != nil {
		t.Fatalf("status: %d %s", r.status, r.body)
	}
	if len(st.CipherKeys) != 1 || st.CipherKeys[kms.MustCMKRef(fp).String()] < len(keys)+1 {
		t.Errorf("cipherKeys = %v, want only %s, with at least %d (the data keys and the ciphertexts' key)",
			st.CipherKeys, kms.MustCMKRef(fp).String(), len(keys)+1)
	}
	t.Logf("cipherKeys after the migration: %v", st.CipherKeys)
	if st.Provider.ARN != mrk {
		t.Errorf("current provider = %+v, want %s", st.Provider, mrk)
	}
	var prov api.KeyProvider
	if r := ts.do("GET", kp+"/"+fp, ta, nil); r.status != 200 || json.Unmarshal(r.body, &prov) != nil ||
		!prov.Current || prov.PromotedToCurrentAt == api.NeverTime {
		t.Errorf("the CMK after the migration: %d %s", r.status, r.body)
	}

	// A graceful stop still ends well.
	if code := p.terminate(); code != exitOK {
		t.Errorf("exit code after SIGTERM = %d, want %d", code, exitOK)
	}
	if logs := p.logs(0); strings.Contains(logs, "DATA RACE") || strings.Contains(logs, "panic:") {
		t.Errorf("a server's log shows a data race or a panic (the log follows)")
	}
	t.Logf("crash test on this backend took %v", time.Since(start).Round(time.Millisecond))
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
	return append(env,
		runMainEnv+"=1", exitWithStdinEnv+"=1",
		"AWS_ACCESS_KEY_ID=AKIDTENANTCRYPTTEST", "AWS_SECRET_ACCESS_KEY=tenantcrypt-test-secret", "AWS_EC2_METADATA_DISABLED=true")
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
	tlsCfg, err := tlsconfig.ClientConfig(filepath.Join(p.dataDir, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return &testServer{
		t: t, url: "https://" + addr, dataDir: p.dataDir,
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true}},
	}
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

// migrationTracker follows a migration through the crashes: its progress
// and state must never go backwards.
type migrationTracker struct {
	t    *testing.T
	id   string
	last api.Migration
}

func (mt *migrationTracker) check(ts *testServer, token string) api.Migration {
	mt.t.Helper()
	r := ts.do("GET", kp+"/migration/actions/details", token, nil)
	var m api.Migration
	if r.status != 200 || json.Unmarshal(r.body, &m) != nil {
		mt.t.Fatalf("migration details: %d %s", r.status, r.body)
	}
	if m.ID != mt.id {
		mt.t.Fatalf("migration details show migration %q, want %q", m.ID, mt.id)
	}
	if m.Progress < mt.last.Progress {
		mt.t.Errorf("progress went back from %.2f%% to %.2f%%", mt.last.Progress, m.Progress)
	}
	if mt.last.State == "Completed" && m.State != "Completed" {
		mt.t.Errorf("state went back from Completed to %s", m.State)
	}
	if m.Progress < 0 || m.Progress > 100 {
		mt.t.Errorf("progress %.2f%% out of range", m.Progress)
	}
	mt.last = m
	return m
}

// crashChunk is how many items one data-plane request of the crash test
// carries; crashClients requests are in flight at once, so that the server
// and local-kms, not the round trips, set the pace.
const (
	crashChunk   = 250
	crashClients = 4
)

// inParallel runs fn for every chunk [from, to) of n items, crashClients at
// a time, and returns the first error.
func inParallel(n int, fn func(from, to int) error) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	sem := make(chan struct{}, crashClients)
	for from := 0; from < n; from += crashChunk {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(from, min(from+crashChunk, n)); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// post sends one JSON request and decodes a 200 answer into out; unlike
// testServer.do it may be called from any goroutine.
func post(ts *testServer, path, token string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequest("POST", ts.url+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := ts.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %d %.500s", path, resp.StatusCode, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	return nil
}

// newDataKeys asks for n fresh data keys, each with its own context; they
// are numbered from first on.
func newDataKeys(t *testing.T, ts *testServer, svc string, first, n int) []crashedKey {
	t.Helper()
	out := make([]crashedKey, n)
	err := inParallel(n, func(from, to int) error {
		req := api.BatchRequest[api.DataKeyRequest]{Items: make([]api.DataKeyRequest, to-from)}
		for i := range req.Items {
			k := first + from + i
			req.Items[i].Context = map[string]string{"object": "obj-" + strconv.Itoa(k), "bucket": "b" + strconv.Itoa(k%7)}
		}
		var resp api.BatchResponse[api.DataKeyResponse]
		if err := post(ts, "/api/v1/encryption/datakeys", svc, req, &resp); err != nil {
			return err
		}
		if len(resp.Items) != len(req.Items) {
			return fmt.Errorf("datakeys: %d answers to %d requests", len(resp.Items), len(req.Items))
		}
		for i, it := range resp.Items {
			if it.Error != nil || it.Result.Handle == "" || it.Result.Plaintext == "" {
				return fmt.Errorf("datakeys item %d: %+v", from+i, it)
			}
			out[from+i] = crashedKey{handle: it.Result.Handle, context: req.Items[i].Context, plaintext: it.Result.Plaintext}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// encryptSome encrypts n random payloads, each with its own context.
func encryptSome(t *testing.T, ts *testServer, svc string, n int) []crashedCiphertext {
	t.Helper()
	req := api.BatchRequest[api.EncryptRequest]{Items: make([]api.EncryptRequest, n)}
	for i := range req.Items {
		pt := make([]byte, 16+i%100)
		_, _ = crand.Read(pt)
		req.Items[i] = api.EncryptRequest{Plaintext: base64.StdEncoding.EncodeToString(pt), Context: map[string]string{"row": strconv.Itoa(i)}}
	}
	r := ts.do("POST", "/api/v1/encryption/encrypt", svc, req)
	var resp api.BatchResponse[api.EncryptResponse]
	if r.status != 200 || json.Unmarshal(r.body, &resp) != nil || len(resp.Items) != n {
		t.Fatalf("encrypt: %d %.500s", r.status, r.body)
	}
	out := make([]crashedCiphertext, n)
	for i, it := range resp.Items {
		if it.Error != nil {
			t.Fatalf("encrypt item %d: %+v", i, it.Error)
		}
		out[i] = crashedCiphertext{ciphertext: it.Result.Ciphertext, context: req.Items[i].Context, plaintext: req.Items[i].Plaintext}
	}
	return out
}

// resolveSome resolves n of the keys, chosen at random, during the
// migration.
func resolveSome(t *testing.T, ts *testServer, svc string, keys []crashedKey, rng *rand.Rand, n int) {
	t.Helper()
	sample := make([]crashedKey, n)
	for i := range sample {
		sample[i] = keys[rng.IntN(len(keys))]
	}
	verifyDataKeys(t, ts, svc, sample)
}

// verifyDataKeys resolves every handle and compares it with the plaintext
// handed out with it.
func verifyDataKeys(t *testing.T, ts *testServer, svc string, keys []crashedKey) {
	t.Helper()
	var (
		mu     sync.Mutex
		failed []string
		bad    int
	)
	err := inParallel(len(keys), func(from, to int) error {
		req := api.BatchRequest[api.DataKeyDecryptRequest]{Items: make([]api.DataKeyDecryptRequest, to-from)}
		for i, k := range keys[from:to] {
			req.Items[i] = api.DataKeyDecryptRequest{Handle: k.handle, Context: k.context}
		}
		var resp api.BatchResponse[api.DataKeyDecryptResponse]
		if err := post(ts, "/api/v1/encryption/datakeys/decrypt", svc, req, &resp); err != nil {
			return err
		}
		if len(resp.Items) != len(req.Items) {
			return fmt.Errorf("datakeys/decrypt: %d answers to %d requests", len(resp.Items), len(req.Items))
		}
		mu.Lock()
		defer mu.Unlock()
		for i, it := range resp.Items {
			k := keys[from+i]
			switch {
			case it.Error != nil:
				bad++
				failed = append(failed, fmt.Sprintf("data key %d (%s) does not resolve: %+v", from+i, k.handle, *it.Error))
			case it.Result.Plaintext != k.plaintext:
				bad++
				failed = append(failed, fmt.Sprintf("data key %d (%s) resolves to another key than it was", from+i, k.handle))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(failed)
	for _, f := range failed[:min(len(failed), 10)] {
		t.Error(f)
	}
	if bad > 0 {
		t.Errorf("%d of %d data keys are lost or changed", bad, len(keys))
	}
}

// verifyCiphertexts decrypts every ciphertext and compares the plaintext.
func verifyCiphertexts(t *testing.T, ts *testServer, svc string, cts []crashedCiphertext) {
	t.Helper()
	req := api.BatchRequest[api.DecryptRequest]{Items: make([]api.DecryptRequest, len(cts))}
	for i, c := range cts {
		req.Items[i] = api.DecryptRequest{Ciphertext: c.ciphertext, Context: c.context}
	}
	r := ts.do("POST", "/api/v1/encryption/decrypt", svc, req)
	var resp api.BatchResponse[api.DecryptResponse]
	if r.status != 200 || json.Unmarshal(r.body, &resp) != nil || len(resp.Items) != len(cts) {
		t.Fatalf("decrypt: %d %.500s", r.status, r.body)
	}
	for i, it := range resp.Items {
		switch {
		case it.Error != nil:
			t.Errorf("ciphertext %d does not decrypt: %+v", i, *it.Error)
		case it.Result.Plaintext != cts[i].plaintext:
			t.Errorf("ciphertext %d decrypts to another plaintext", i)
		}
	}
}

// rewrappedBy returns how many cipherkeys this server process has
// rewrapped, from its metrics.
func rewrappedBy(t *testing.T, ts *testServer) int {
	t.Helper()
	const name = "tenantcrypt_migration_cipherkeys_rewrapped_total "
	r := ts.do("GET", "/metrics", "", nil)
	for line := range strings.Lines(string(r.body)) {
		if v, ok := strings.CutPrefix(line, name); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return int(n)
		}
	}
	t.Fatalf("no %s in /metrics (%d)", strings.TrimSpace(name), r.status)
	return 0
}
