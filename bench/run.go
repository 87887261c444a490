package main

import (
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
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/client"
	"github.com/tenantcrypt/tenantcrypt/internal/tlsconfig"
)

// numCiphertexts is how many ciphertexts the decrypt load cycles through.
const numCiphertexts = 64

// encryptionContext is bound into every ciphertext of the run, so that the
// context's (small) cost is measured too.
var encryptionContext = map[string]string{"app": "bench"}

// run sets up both servers, runs every load, prints the table to stdout
// (progress to stderr) and stops the servers, whatever happens. It returns
// the results, and an error if a step failed or a server did not stop
// cleanly (then the results may be nil).
func run(ctx context.Context, cfg config, stdout, stderr io.Writer) (rep *report, err error) {
	if len(cfg.replicas) > 0 {
		return runReplicas(ctx, cfg, stdout, stderr)
	}
	if cfg.scenarios() {
		return runScenarios(ctx, cfg, stdout, stderr)
	}
	// Created first: it notes how busy the machine is before the build.
	rep = newReport(cfg, time.Now())
	fmt.Fprintf(stderr, "bench: %d levels × %d targets × (%s warm-up + %s) = %s of load, plus setup (seconds, or a minute or two to build tenantcrypt with a cold build cache)\n",
		len(cfg.levels), len(targetNames), cfg.warmup, cfg.duration, cfg.loadTime())
	tmp, bin, err := prepare(ctx, cfg, rep, stderr)
	if err != nil {
		return nil, err
	}
	// Deferred first, so it runs last: after the servers have stopped.
	defer os.RemoveAll(tmp)

	// tenantcrypt.
	dataDir := filepath.Join(tmp, "data")
	addrFile := filepath.Join(tmp, "tenantcrypt.addr")
	args := []string{"serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--addr-file", addrFile,
		"--log-level", "warn", "--shutdown-timeout", "5s"}
	if cfg.database != "" {
		args = append(args, "--database", cfg.database)
	}
	args = append(args, cfg.serverArgs...)
	srv, err := startProcess(ctx, "tenantcrypt", filepath.Join(tmp, "tenantcrypt.log"), bin, args...)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, srv.stop()) }()
	addr, err := srv.waitAddr(ctx, addrFile)
	if err != nil {
		return nil, err
	}
	baseURL := "https://" + addr

	tlsCfg, err := tlsconfig.ClientConfig(filepath.Join(dataDir, "tls", "ca.pem"))
	if err != nil {
		return nil, err
	}
	hc := newLoadClient(tlsCfg, slices.Max(cfg.levels), cfg.http2)
	defer hc.CloseIdleConnections()

	tenantID, svcToken, err := setupTenant(ctx, cfg, bin, dataDir, baseURL, hc)
	if err != nil {
		return nil, err
	}
	if cfg.database != "" {
		// A shared database keeps nothing of the run: deleting the tenant
		// destroys its keys.
		defer func() { err = errors.Join(err, deleteTenant(ctx, bin, dataDir, baseURL, hc, tenantID)) }()
	}
	svc, err := client.New(baseURL, client.WithHTTPClient(hc), client.WithToken(svcToken))
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "bench: tenantcrypt on %s, tenant %q; preparing %d ciphertexts\n", baseURL, tenantID, numCiphertexts)
	encBody, decBodies, ctLen, err := prepareBodies(ctx, svc, cfg.size, cfg.batch)
	if err != nil {
		return nil, err
	}

	// The baseline: this binary again, as its own process (see the package
	// comment).
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	baseAddrFile := filepath.Join(tmp, "baseline.addr")
	base, err := startProcess(ctx, "baseline", filepath.Join(tmp, "baseline.log"), self,
		baselineServerFlag, "-data-dir", dataDir, "-addr-file", baseAddrFile, "-ciphertext-len", strconv.Itoa(ctLen), "-batch", strconv.Itoa(cfg.batch))
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, base.stop()) }()
	baseAddr, err := base.waitAddr(ctx, baseAddrFile)
	if err != nil {
		return nil, err
	}

	bearer := "Bearer " + svcToken
	encAnswer, decAnswer := []byte(`{"ciphertext":"`), []byte(`{"plaintext":"`)
	if cfg.batch > 0 {
		encAnswer, decAnswer = []byte(`{"items":[{"ciphertext":"`), []byte(`{"items":[{"plaintext":"`)
	}
	targets := map[string]target{
		"baseline": {name: "baseline", url: "https://" + baseAddr + baselinePath, auth: bearer,
			bodies: [][]byte{encBody}, wantPrefix: encAnswer},
		"encrypt": {name: "encrypt", url: baseURL + api.RouteEncrypt.Path, auth: bearer,
			bodies: [][]byte{encBody}, wantPrefix: encAnswer},
		"decrypt": {name: "decrypt", url: baseURL + api.RouteDecrypt.Path, auth: bearer,
			bodies: decBodies, wantPrefix: decAnswer},
	}

	rep.CiphertextLen = ctLen
	for _, name := range targetNames {
		if rep.Protocols[name], err = probe(ctx, hc, targets[name]); err != nil {
			return nil, err
		}
	}
	if rep.Protocols["baseline"] != rep.Protocols["encrypt"] {
		fmt.Fprintf(stderr, "bench: WARNING: the baseline speaks %s and tenantcrypt %s: the comparison is not like for like\n",
			rep.Protocols["baseline"], rep.Protocols["encrypt"])
	}

	fmt.Fprintf(stderr, "bench: load for %s, until about %s\n", cfg.loadTime(), time.Now().Add(cfg.loadTime()).Format(time.TimeOnly))
	for _, n := range cfg.levels {
		l := levelResult{Concurrency: n}
		rounds := map[string][]result{}
		for round := range cfg.rounds {
			for _, name := range targetNames {
				res, err := runLoad(ctx, hc, targets[name], n, cfg.warmup, cfg.duration)
				if err != nil {
					return nil, err
				}
				fmt.Fprintf(stderr, "  %-8s %4d clients, round %d: %9s req/s  p50 %7.2f ms  p99 %7.2f ms  %d errors\n",
					name, n, round+1, thousands(res.RPS), res.P50ms, res.P99ms, res.Errors)
				rounds[name] = append(rounds[name], res)
			}
		}
		for _, name := range targetNames {
			res := medianRound(rounds[name])
			switch name {
			case "baseline":
				l.Baseline = res
			case "encrypt":
				l.Encrypt = res
			case "decrypt":
				l.Decrypt = res
			}
		}
		rep.add(l)
	}
	rep.ElapsedSec = time.Since(rep.Started).Seconds()

	fmt.Fprintln(stdout)
	rep.printTable(stdout)
	if cfg.jsonFile != "" {
		if err := rep.writeJSON(cfg.jsonFile); err != nil {
			return rep, fmt.Errorf("writing -json: %w", err)
		}
	}
	return rep, nil
}

// setupTenant mints the tokens and creates the run's tenant. It returns the
// tenant's id and a service token for it.
func setupTenant(ctx context.Context, cfg config, bin, dataDir, baseURL string, hc *http.Client) (string, string, error) {
	tenantID := "bench"
	if cfg.database != "" {
		// A database outlives the run; another run's tenant, with keys
		// wrapped under another run's root key, must not be in the way.
		var b [4]byte
		_, _ = rand.Read(b[:])
		tenantID = "bench-" + hex.EncodeToString(b[:])
	}
	ttl := cfg.loadTime() + time.Hour
	adminToken, err := mintToken(ctx, bin, dataDir, ttl, "--role", "platform-admin")
	if err != nil {
		return "", "", err
	}
	svcToken, err := mintToken(ctx, bin, dataDir, ttl, "--role", "service", "--tenant", tenantID)
	if err != nil {
		return "", "", err
	}
	admin, err := client.New(baseURL, client.WithHTTPClient(hc), client.WithToken(adminToken))
	if err != nil {
		return "", "", err
	}
	if _, err := admin.CreateTenant(ctx, api.CreateTenantRequest{ID: tenantID, Name: "Bench", Edition: "enterprise"}); err != nil {
		return "", "", fmt.Errorf("creating the tenant %q: %w", tenantID, err)
	}
	return tenantID, svcToken, nil
}

// deleteTenant deletes the run's tenant, even after ctx has ended.
func deleteTenant(ctx context.Context, bin, dataDir, baseURL string, hc *http.Client, tenantID string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	tok, err := mintToken(ctx, bin, dataDir, time.Hour, "--role", "platform-admin")
	if err != nil {
		return err
	}
	admin, err := client.New(baseURL, client.WithHTTPClient(hc), client.WithToken(tok))
	if err != nil {
		return err
	}
	if err := admin.DeleteTenant(ctx, tenantID); err != nil {
		return fmt.Errorf("deleting the tenant %q: %w", tenantID, err)
	}
	return nil
}

// prepareBodies makes the request bodies: one encrypt body with size random
// bytes, and decrypt bodies of as many ciphertexts of them, checking on the
// way that a ciphertext decrypts to the plaintext; with batch > 0, batches
// of that many of these items. It returns the length of a ciphertext, for
// the baseline's answers.
func prepareBodies(ctx context.Context, svc *client.Client, size, batch int) (enc []byte, dec [][]byte, ctLen int, err error) {
	enc, dec, ctLen, err = prepareItems(ctx, svc, size)
	if err != nil || batch == 0 {
		return enc, dec, ctLen, err
	}
	join := func(items [][]byte) []byte {
		return append(append([]byte(`{"items":[`), bytes.Join(items, []byte(","))...), "]}"...)
	}
	encItems := make([][]byte, batch)
	for i := range encItems {
		encItems[i] = enc
	}
	var batches [][]byte
	for j := range numCiphertexts {
		items := make([][]byte, batch)
		for i := range items {
			items[i] = dec[(j*batch+i)%len(dec)]
		}
		batches = append(batches, join(items))
	}
	return join(encItems), batches, ctLen, nil
}

// prepareItems makes the single requests' bodies (see prepareBodies).
func prepareItems(ctx context.Context, svc *client.Client, size int) (enc []byte, dec [][]byte, ctLen int, err error) {
	plaintext := make([]byte, size)
	if _, err := rand.Read(plaintext); err != nil {
		return nil, nil, 0, err
	}
	enc, err = json.Marshal(api.EncryptRequest{Plaintext: base64.StdEncoding.EncodeToString(plaintext), Context: encryptionContext})
	if err != nil {
		return nil, nil, 0, err
	}
	for range numCiphertexts {
		ct, err := svc.Encrypt(ctx, plaintext, encryptionContext)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("preparing ciphertexts: %w", err)
		}
		b, err := json.Marshal(api.DecryptRequest{Ciphertext: ct, Context: encryptionContext})
		if err != nil {
			return nil, nil, 0, err
		}
		dec = append(dec, b)
		ctLen = max(ctLen, len(ct))
	}
	var first api.DecryptRequest
	if err := json.Unmarshal(dec[0], &first); err != nil {
		return nil, nil, 0, err
	}
	got, err := svc.Decrypt(ctx, first.Ciphertext, encryptionContext)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("checking a ciphertext: %w", err)
	}
	if !bytes.Equal(got, plaintext) {
		return nil, nil, 0, errors.New("checking a ciphertext: it decrypts to something else than its plaintext")
	}
	return enc, dec, ctLen, nil
}

// probe sends one request to t and returns the protocol its server
// negotiated, or why the request failed.
func probe(ctx context.Context, hc *http.Client, t target) (string, error) {
	var w worker
	proto, err := w.do(ctx, hc, t, t.bodies[0])
	if err != nil {
		return "", fmt.Errorf("probing: %w", err)
	}
	return proto, nil
}

// prepare warns when the machine is busy, makes the run's temporary
// directory (the caller removes it, after its servers have stopped) and
// builds ./cmd/tenantcrypt there unless -server-bin names a binary.
func prepare(ctx context.Context, cfg config, rep *report, stderr io.Writer) (tmp, bin string, err error) {
	if rep.LoadAvg > float64(rep.NumCPU)/2 {
		fmt.Fprintf(stderr, "bench: WARNING: load average %.2f on %d CPUs: other work will skew the figures\n", rep.LoadAvg, rep.NumCPU)
	}
	if tmp, err = os.MkdirTemp("", "tenantcrypt-bench-"); err != nil {
		return "", "", err
	}
	bin = cfg.serverBin
	if bin == "" {
		fmt.Fprintln(stderr, "bench: building ./cmd/tenantcrypt")
		if bin, err = buildServer(ctx, tmp); err != nil {
			os.RemoveAll(tmp)
			return "", "", err
		}
	}
	return tmp, bin, nil
}
