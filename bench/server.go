package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
	"github.com/tenantcrypt/tenantcrypt/internal/tlsconfig"
)

// This file holds what the scenarios (-tenants, -cmk-tenants, -noisy; see
// scenarios.go) share: a tenantcrypt server they can restart, tokens minted in this
// process, plain JSON requests, and the server's memory.

// server is one tenantcrypt process of a scenario, on its data directory
// (and, with -database, its own PostgreSQL schema).
type server struct {
	bin, tmp, name string
	dataDir        string
	args           []string // serve's arguments besides the data directory and listener
	env            []string // extra environment
	proc           *process
	url            string
	hc             *http.Client
	issuer         *auth.Issuer
	stopped        time.Duration // the last restart's stop
}

// startServer starts a tenantcrypt server named name (its log and address
// files are tmp/name.*) on dataDir with the extra serve arguments.
func startServer(ctx context.Context, bin, tmp, name, dataDir string, env []string, clients int, args ...string) (*server, error) {
	s := &server{bin: bin, tmp: tmp, name: name, dataDir: dataDir, args: args, env: env}
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	tlsCfg, err := tlsconfig.ClientConfig(filepath.Join(dataDir, "tls", "ca.pem"))
	if err != nil {
		return nil, errors.Join(err, s.stop())
	}
	s.hc = newLoadClient(tlsCfg, clients, true)
	// The server made the issuer key at its first start: tokens are minted
	// here, not by a `tenantcrypt token` process per tenant.
	if s.issuer, err = auth.LoadOrCreateIssuer(dataDir, auth.DefaultIssuerName); err != nil {
		return nil, errors.Join(err, s.stop())
	}
	return s, nil
}

// start starts the process and waits for its address.
func (s *server) start(ctx context.Context) error {
	addrFile := filepath.Join(s.tmp, s.name+".addr")
	_ = os.Remove(addrFile) // a restart's server writes a new one
	args := append([]string{"serve", "--data-dir", s.dataDir, "--listen", "127.0.0.1:0", "--addr-file", addrFile,
		"--log-level", "warn", "--shutdown-timeout", "5s"}, s.args...)
	p, err := startProcessEnv(ctx, s.name, filepath.Join(s.tmp, s.name+".log"), s.env, scenarioStopWait, s.bin, args...)
	if err != nil {
		return err
	}
	s.proc = p
	addr, err := p.waitAddr(ctx, addrFile)
	if err != nil {
		return errors.Join(err, p.stop())
	}
	s.url = "https://" + addr
	return nil
}

// stop stops the process; stopping twice is harmless.
func (s *server) stop() error {
	if s.proc == nil {
		return nil
	}
	return s.proc.stop()
}

// scenarioStopWait is how long a scenario's server may take to stop
// gracefully before it is killed: its stop is measured (a server stopping
// after a mass creation signs an audit checkpoint per new tenant's chain).
const scenarioStopWait = 5 * time.Minute

// restart stops the server and starts it again on the same data
// directory. It returns when the new process was started and how long it
// then took until /readyz answered 200; s.stopped is how long the old one
// took to stop.
func (s *server) restart(ctx context.Context) (time.Time, time.Duration, error) {
	t0 := time.Now()
	if err := s.stop(); err != nil {
		return time.Time{}, 0, err
	}
	s.stopped = time.Since(t0)
	s.hc.CloseIdleConnections()
	start := time.Now()
	if err := s.start(ctx); err != nil {
		return time.Time{}, 0, err
	}
	for {
		req, err := http.NewRequestWithContext(ctx, api.RouteReadyz.Method, s.url+api.RouteReadyz.Path, nil)
		if err != nil {
			return time.Time{}, 0, err
		}
		if resp, err := s.hc.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return start, time.Since(start), nil
			}
		}
		if time.Since(start) > startTimeout {
			return time.Time{}, 0, fmt.Errorf("%s: /readyz did not answer 200 within %s%s", s.name, startTimeout, s.proc.logTail())
		}
		select {
		case <-ctx.Done():
			return time.Time{}, 0, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// token mints a token of the server's built-in issuer.
func (s *server) token(role auth.Role, tenantID string, ttl time.Duration) (string, error) {
	return s.issuer.Mint(auth.TokenRequest{Subject: "bench:" + role.String(), TenantID: tenantID, Roles: []auth.Role{role}, TTL: ttl})
}

// rss is the server process's resident memory in bytes.
func (s *server) rss() (int64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(s.proc.pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("reading the server's memory: %w", err)
	}
	return parseVmRSS(data)
}

// cpu is the CPU time (user and system) the server process has used.
func (s *server) cpu() (time.Duration, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(s.proc.pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("reading the server's CPU time: %w", err)
	}
	return parseCPUTime(data)
}

// clockTicks is the kernel's USER_HZ, the unit of /proc/PID/stat's
// times: 100 on every Linux architecture Go supports.
const clockTicks = 100

// parseCPUTime reads utime and stime of a /proc/PID/stat line.
func parseCPUTime(stat []byte) (time.Duration, error) {
	// The command name, field 2, is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc/PID/stat: no command name")
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc/PID/stat: too few fields")
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("unexpected /proc/PID/stat time %q", s)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// parseVmRSS reads the VmRSS line of a /proc/PID/status file, in bytes.
func parseVmRSS(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("unexpected VmRSS line %q", sc.Text())
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 {
			return 0, fmt.Errorf("unexpected VmRSS line %q", sc.Text())
		}
		return kb << 10, nil
	}
	return 0, errors.New("no VmRSS line in the process status")
}

// post sends a JSON request and returns the answer's status and body.
func (s *server) post(ctx context.Context, method, path, token string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			var err error
			if b, err = json.Marshal(body); err != nil {
				return 0, nil, err
			}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.url+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	return resp.StatusCode, out, err
}

// expect is post that wants the status want.
func (s *server) expect(ctx context.Context, want int, method, path, token string, body any) ([]byte, error) {
	status, out, err := s.post(ctx, method, path, token, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if status != want {
		return nil, fmt.Errorf("%s %s: status %d, want %d: %s", method, path, status, want, truncate(out, 300))
	}
	return out, nil
}

// createTenant creates an enterprise tenant.
func (s *server) createTenant(ctx context.Context, admin, id string) error {
	_, err := s.expect(ctx, http.StatusCreated, api.RouteCreateTenant.Method, api.RouteCreateTenant.Path, admin,
		api.CreateTenantRequest{ID: id, Name: id, Edition: "enterprise"})
	return err
}

// encryptBody is an encrypt request of size random bytes with the run's
// encryption context.
func encryptBody(size int) ([]byte, error) {
	pt := make([]byte, size)
	if _, err := rand.Read(pt); err != nil {
		return nil, err
	}
	return json.Marshal(api.EncryptRequest{Plaintext: base64.StdEncoding.EncodeToString(pt), Context: encryptionContext})
}

// encrypt sends one encrypt request and checks the answer.
func (s *server) encrypt(ctx context.Context, token string, body []byte) error {
	out, err := s.expect(ctx, http.StatusOK, api.RouteEncrypt.Method, api.RouteEncrypt.Path, token, body)
	if err == nil && !bytes.HasPrefix(out, []byte(`{"ciphertext":"`)) {
		err = fmt.Errorf("encrypt: unexpected answer: %s", truncate(out, 300))
	}
	return err
}

// runID is a short random name for this run's tenants and schemas: tenant
// ids are never reused, and a database outlives the run.
func runID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// scenarioDatabase is a scenario's server's --database flag: with
// -database, a schema of its own (pgSchema) and the function that drops it;
// without, SQLite in the server's data directory and nothing to drop.
func scenarioDatabase(ctx context.Context, cfg config) ([]string, func() error, error) {
	if cfg.database == "" {
		return nil, func() error { return nil }, nil
	}
	dsn, drop, err := pgSchema(ctx, cfg.database)
	if err != nil {
		return nil, nil, err
	}
	return []string{"--database", dsn}, drop, nil
}

// pgSchema creates a schema of its own in the -database for a scenario
// and returns the DSN that selects it and a function that drops it.
func pgSchema(ctx context.Context, dsn string) (string, func() error, error) {
	schema := "tc_bench_" + runID() + runID()
	if err := pgExec(ctx, dsn, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, err
	}
	drop := func() error {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		return pgExec(ctx, dsn, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", nil, errors.Join(err, drop())
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), drop, nil
}

func pgExec(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connecting to -database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// latencyStats are the figures of a set of latencies.
type latencyStats struct {
	Count int     `json:"count"`
	P50ms float64 `json:"p50_ms"`
	P99ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
}

func statsOf(lat []time.Duration) latencyStats {
	lat = slices.Clone(lat)
	slices.Sort(lat)
	return latencyStats{Count: len(lat), P50ms: ms(percentile(lat, 0.5)), P99ms: ms(percentile(lat, 0.99)), MaxMs: ms(percentile(lat, 1))}
}

func (l latencyStats) String() string {
	if l.Count == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f / %.2f", l.P50ms, l.P99ms)
}

// parallel runs fn(i) for i in [0, n) on clients goroutines, timing each
// call; it stops at the first error.
func parallel(ctx context.Context, n, clients int, fn func(ctx context.Context, i int) error) ([]time.Duration, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu   sync.Mutex
		next int
		lat  = make([]time.Duration, 0, n)
		wg   sync.WaitGroup
	)
	for range min(clients, n) {
		wg.Go(func() {
			var mine []time.Duration
			defer func() {
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}()
			for ctx.Err() == nil {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				t0 := time.Now()
				if err := fn(ctx, i); err != nil {
					cancel(err)
					return
				}
				mine = append(mine, time.Since(t0))
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return lat, nil
}

// mib formats bytes in MiB.
func mib(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }
