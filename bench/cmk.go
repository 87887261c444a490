package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
)

// The CMK scenario's AWS side: local-kms (the test-only loopback wrapper,
// ./internal/testkms/localkms) in two regions holding one multi-region
// key, each behind a counting proxy of this process that also adds the
// multi-region metadata local-kms lacks (as testkms.Proxy does in tests).
const (
	cmkPrimary  = "eu-west-1"
	cmkDR       = "eu-west-3"
	cmkAccount  = "111122223333"
	cmkCacheTTL = 2 * time.Second // the server's --cache-ttl and --cache-idle: tenants go idle quickly
	// cmkWarmEvery is how often each warm tenant encrypts.
	cmkWarmEvery = 200 * time.Millisecond
)

// cmkPhase is one phase's KMS calls.
type cmkPhase struct {
	Phase       string         `json:"phase"`
	Tenants     int            `json:"tenants"`
	WindowSec   float64        `json:"window_seconds"`
	Calls       map[string]int `json:"calls"` // by action, both regions
	DescribeKey int            `json:"describe_key"`
	// PerTenantMin are DescribeKey calls (key checks, both regions) and
	// all KMS calls per tenant per minute.
	DescribeKeyPerTenantMin float64 `json:"describe_key_per_tenant_minute"`
	CallsPerTenantMin       float64 `json:"kms_calls_per_tenant_minute"`
	Encrypts                int     `json:"encrypts"` // warm phase: the tenants' encrypts in the window
}

// cmkResult is the CMK scenario's figures (-cmk-tenants).
type cmkResult struct {
	Tenants int        `json:"tenants"`
	Phases  []cmkPhase `json:"phases"`
}

// kmsProxy forwards to a local-kms process, counts calls by action, and
// describes the multi-region key as AWS does.
type kmsProxy struct {
	url    string
	region string
	keyID  string
	srv    *http.Server
	mu     sync.Mutex
	calls  map[string]int
}

func newKMSProxy(target, region, keyID string) (*kmsProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	p := &kmsProxy{region: region, keyID: keyID, calls: map[string]int{}}
	rp := &httputil.ReverseProxy{
		Rewrite:        func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		Transport:      &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64},
		ModifyResponse: p.modify,
		ErrorLog:       log.New(io.Discard, "", 0),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p.url = "http://" + ln.Addr().String()
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		action := kmsAction(r.Header.Get("X-Amz-Target"))
		p.mu.Lock()
		p.calls[action]++
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

func (p *kmsProxy) close() { _ = p.srv.Close() }

// take returns the calls counted since the last take, and starts again.
func (p *kmsProxy) take() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.calls
	p.calls = map[string]int{}
	return c
}

func (p *kmsProxy) modify(resp *http.Response) error {
	if resp.StatusCode != http.StatusOK || kmsAction(resp.Request.Header.Get("X-Amz-Target")) != "DescribeKey" {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if out, err := addMultiRegion(body, p.keyID, p.region); err == nil {
		body = out
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return nil
}

// addMultiRegion adds AWS's multi-region metadata to a DescribeKey answer
// for keyID, seen from region (the primary's or the DR region's).
func addMultiRegion(body []byte, keyID, region string) ([]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, err
	}
	var md map[string]any
	dec := json.NewDecoder(bytes.NewReader(doc["KeyMetadata"]))
	dec.UseNumber()
	if err := dec.Decode(&md); err != nil {
		return nil, err
	}
	if id, _ := md["KeyId"].(string); id != keyID {
		return nil, errors.New("not the multi-region key")
	}
	arn := func(r string) string { return "arn:aws:kms:" + r + ":" + cmkAccount + ":key/" + keyID }
	kind := "REPLICA"
	if region == cmkPrimary {
		kind = "PRIMARY"
	}
	md["MultiRegion"] = true
	md["MultiRegionConfiguration"] = map[string]any{
		"MultiRegionKeyType": kind,
		"PrimaryKey":         map[string]string{"Arn": arn(cmkPrimary), "Region": cmkPrimary},
		"ReplicaKeys":        []map[string]string{{"Arn": arn(cmkDR), "Region": cmkDR}},
	}
	b, err := json.Marshal(md)
	if err != nil {
		return nil, err
	}
	doc["KeyMetadata"] = b
	return json.Marshal(doc)
}

func kmsAction(target string) string {
	if _, a, ok := strings.Cut(target, "."); ok {
		return a
	}
	return target
}

// seedFile is a local-kms seed file with one symmetric key.
func seedFile(keyID string, material []byte) string {
	return fmt.Sprintf("Keys:\n  Symmetric:\n    Aes:\n      - Metadata:\n          KeyId: %s\n          Description: \"bench multi-region key\"\n        BackingKeys:\n          - %s\n",
		keyID, hex.EncodeToString(material))
}

// startLocalKMS starts the local-kms wrapper for region and returns its URL.
func startLocalKMS(ctx context.Context, bin, tmp, region, seed string) (*process, string, error) {
	dir := filepath.Join(tmp, "kms-"+region)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	logPath := filepath.Join(dir, "out.log")
	p, err := startProcess(ctx, "local-kms "+region, logPath, bin,
		"-addr", "127.0.0.1:0", "-region", region, "-account", cmkAccount, "-data", filepath.Join(dir, "data"), "-seed", seed)
	if err != nil {
		return nil, "", err
	}
	// It prints "listening on http://127.0.0.1:PORT" once it listens.
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(logPath); err == nil {
			sc := bufio.NewScanner(bytes.NewReader(data))
			for sc.Scan() {
				if addr, ok := strings.CutPrefix(sc.Text(), "listening on "); ok && strings.HasPrefix(addr, "http://127.0.0.1:") {
					return p, addr, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil, "", errors.Join(ctx.Err(), p.stop())
		case <-p.done:
			return nil, "", fmt.Errorf("local-kms %s exited: %v%s", region, p.err, p.logTail())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil, "", errors.Join(fmt.Errorf("local-kms %s did not listen within %s%s", region, startTimeout, p.logTail()), p.stop())
}

// runCMK measures KMS calls per tenant on a customer managed key: m
// tenants migrated to a multi-region key, then idle, then encrypting, then
// idle on a server with the idle checks off (the behaviour before them).
func runCMK(ctx context.Context, cfg config, bin, tmp string, stderr io.Writer) (res cmkResult, err error) {
	m := cfg.cmkTenants
	res.Tenants = m
	fmt.Fprintln(stderr, "bench: CMK: building local-kms")
	kmsBin, err := buildCommand(ctx, tmp, "./internal/testkms/localkms", "localkms")
	if err != nil {
		return res, err
	}
	material := make([]byte, 32)
	if _, err := rand.Read(material); err != nil {
		return res, err
	}
	keyID := "mrk-" + runID() + runID() + runID() + runID()
	seed := filepath.Join(tmp, "kms-seed.yaml")
	if err := os.WriteFile(seed, []byte(seedFile(keyID, material)), 0o600); err != nil {
		return res, err
	}
	proxies := map[string]*kmsProxy{}
	for _, region := range []string{cmkPrimary, cmkDR} {
		var (
			p  *process
			u  string
			px *kmsProxy
		)
		if p, u, err = startLocalKMS(ctx, kmsBin, tmp, region, seed); err != nil {
			return res, err
		}
		defer func() { err = errors.Join(err, p.stop()) }()
		if px, err = newKMSProxy(u, region, keyID); err != nil {
			return res, err
		}
		defer px.close()
		proxies[region] = px
	}
	// The AWS SDK needs credentials; local-kms checks none.
	env := []string{"AWS_ACCESS_KEY_ID=AKIDTENANTCRYPTBENCH", "AWS_SECRET_ACCESS_KEY=tenantcrypt-bench-secret", "AWS_EC2_METADATA_DISABLED=true"}
	args := []string{"--region", cmkPrimary, "--dr-region", cmkPrimary + "=" + cmkDR,
		"--kms-endpoint", cmkPrimary + "=" + proxies[cmkPrimary].url, "--kms-endpoint", cmkDR + "=" + proxies[cmkDR].url,
		"--migration-rate", "0", "--cache-ttl", cmkCacheTTL.String(), "--cache-idle", cmkCacheTTL.String()}
	dbFlags, drop, err := scenarioDatabase(ctx, cfg)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, drop()) }()
	args = append(args, dbFlags...)
	dataDir := filepath.Join(tmp, "cmk")
	srv, err := startServer(ctx, bin, tmp, "cmk", dataDir, env, cfg.tenantClients, args...)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, srv.stop()) }()
	admin, err := srv.token(auth.RolePlatformAdmin, "", scenarioTokenTTL)
	if err != nil {
		return res, err
	}
	body, err := encryptBody(cfg.size)
	if err != nil {
		return res, err
	}
	arn := "arn:aws:kms:" + cmkPrimary + ":" + cmkAccount + ":key/" + keyID
	prefix := "cmk" + runID() + "-"
	svc := make([]string, m)
	fmt.Fprintf(stderr, "bench: CMK: %d tenants onto the multi-region key\n", m)
	if _, err := parallel(ctx, m, cfg.tenantClients, func(ctx context.Context, i int) error {
		id := prefix + strconv.Itoa(i)
		if err := srv.createTenant(ctx, admin, id); err != nil {
			return err
		}
		ta, err := srv.token(auth.RoleTenantAdmin, id, scenarioTokenTTL)
		if err != nil {
			return err
		}
		if svc[i], err = srv.token(auth.RoleService, id, scenarioTokenTTL); err != nil {
			return err
		}
		out, err := srv.expect(ctx, http.StatusCreated, api.RouteRegisterKeyProvider.Method, api.RouteRegisterKeyProvider.Path, ta,
			map[string]any{"arn": arn, "name": "bench key", "description": "bench", "keyprovider": "AWS-KMS"})
		if err != nil {
			return err
		}
		var kp api.KeyProvider
		if err := json.Unmarshal(out, &kp); err != nil {
			return err
		}
		if _, err := srv.expect(ctx, http.StatusOK, api.RouteMigrateToKeyProvider.Method, api.RouteMigrateToKeyProvider.Expand(kp.ARNFingerPrint), ta, nil); err != nil {
			return err
		}
		for start := time.Now(); ; {
			out, err := srv.expect(ctx, http.StatusOK, api.RouteMigrationDetails.Method, api.RouteMigrationDetails.Path, ta, nil)
			if err != nil {
				return err
			}
			var mig api.Migration
			if err := json.Unmarshal(out, &mig); err != nil {
				return err
			}
			if mig.State == "Completed" {
				break
			}
			if time.Since(start) > 2*time.Minute {
				return fmt.Errorf("tenant %s: migration not completed after 2 minutes: %s", id, truncate(out, 300))
			}
			time.Sleep(50 * time.Millisecond)
		}
		// One use: the tenant has had its key cached, as a tenant that
		// served and then went quiet.
		return srv.encrypt(ctx, svc[i], body)
	}); err != nil {
		return res, fmt.Errorf("CMK tenants: %w", err)
	}

	// The key checks' interval is half the revocation bound (5 s); cached
	// keys expire after the TTL and their in-use mark half a TTL later.
	settle := 3*cmkCacheTTL + 6*time.Second
	count := func(phase string, warm func(stop <-chan struct{}) int) (cmkPhase, error) {
		fmt.Fprintf(stderr, "bench: CMK: %s: %s to settle, then %s counted\n", phase, settle, cfg.cmkWindow)
		stop := make(chan struct{})
		encs := make(chan int, 1)
		if warm != nil {
			go func() { encs <- warm(stop) }()
		}
		select {
		case <-ctx.Done():
			close(stop)
			return cmkPhase{}, ctx.Err()
		case <-time.After(settle):
		}
		for _, px := range proxies {
			px.take()
		}
		start := time.Now()
		select {
		case <-ctx.Done():
			close(stop)
			return cmkPhase{}, ctx.Err()
		case <-time.After(cfg.cmkWindow):
		}
		window := time.Since(start)
		ph := cmkPhase{Phase: phase, Tenants: m, WindowSec: window.Seconds(), Calls: map[string]int{}}
		total := 0
		for _, px := range proxies {
			for a, c := range px.take() {
				ph.Calls[a] += c
				total += c
			}
		}
		close(stop)
		if warm != nil {
			ph.Encrypts = <-encs
		}
		ph.DescribeKey = ph.Calls["DescribeKey"]
		perMin := float64(m) * window.Minutes()
		ph.DescribeKeyPerTenantMin = float64(ph.DescribeKey) / perMin
		ph.CallsPerTenantMin = float64(total) / perMin
		fmt.Fprintf(stderr, "  %s: %d DescribeKey (%.2f per tenant per minute), %d KMS calls in all %v\n",
			phase, ph.DescribeKey, ph.DescribeKeyPerTenantMin, total, ph.Calls)
		return ph, nil
	}

	idle, err := count("idle", nil)
	if err != nil {
		return res, err
	}
	res.Phases = append(res.Phases, idle)

	var encErr error
	var encMu sync.Mutex
	warm, err := count("warm", func(stop <-chan struct{}) int {
		var wg sync.WaitGroup
		var n int
		for i := range m {
			wg.Go(func() {
				tick := time.NewTicker(cmkWarmEvery)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					err := srv.encrypt(ctx, svc[i], body)
					encMu.Lock()
					if err != nil && encErr == nil && ctx.Err() == nil {
						encErr = err
					}
					if err == nil {
						n++
					}
					encMu.Unlock()
				}
			})
		}
		wg.Wait()
		return n
	})
	if err != nil {
		return res, err
	}
	if encErr != nil {
		return res, fmt.Errorf("CMK warm tenants: %w", encErr)
	}
	res.Phases = append(res.Phases, warm)

	// The behaviour before idle checks: every tenant every check interval.
	srv.args = append(srv.args, "--idle-key-check-interval", "0")
	if _, _, err := srv.restart(ctx); err != nil {
		return res, err
	}
	before, err := count("idle, --idle-key-check-interval 0", nil)
	if err != nil {
		return res, err
	}
	res.Phases = append(res.Phases, before)
	return res, nil
}
