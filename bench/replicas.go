package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/client"
	"github.com/tenantcrypt/tenantcrypt/internal/tlsconfig"
)

// replicaTargets are the loads measured for each replica count.
var replicaTargets = []string{"encrypt", "decrypt"}

// replicaResult is one replica count's loads at one concurrency level, and
// their throughput as a ratio of the smallest count's (one replica).
type replicaResult struct {
	Replicas     int     `json:"replicas"`
	Concurrency  int     `json:"concurrency"`
	Encrypt      result  `json:"encrypt"`
	Decrypt      result  `json:"decrypt"`
	EncryptRatio float64 `json:"encrypt_to_fewest_replicas"`
	DecryptRatio float64 `json:"decrypt_to_fewest_replicas"`
}

// runReplicas is run with -replicas: tenantcrypt processes on one
// PostgreSQL database, the load spread over 1, 2, … of them (see the
// package comment).
func runReplicas(ctx context.Context, cfg config, stdout, stderr io.Writer) (rep *report, err error) {
	rep = newReport(cfg, time.Now())
	fmt.Fprintf(stderr, "bench: %d replica counts × %d levels × %d targets × %d rounds × (%s warm-up + %s) = %s of load, plus setup\n",
		len(cfg.replicas), len(cfg.levels), len(replicaTargets), cfg.rounds, cfg.warmup, cfg.duration, cfg.loadTime())
	if rep.LoadAvg > float64(rep.NumCPU)/2 {
		fmt.Fprintf(stderr, "bench: WARNING: load average %.2f on %d CPUs: other work will skew the figures\n", rep.LoadAvg, rep.NumCPU)
	}
	tmp, err := os.MkdirTemp("", "tenantcrypt-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp) // deferred first, so it runs after the servers have stopped

	bin := cfg.serverBin
	if bin == "" {
		fmt.Fprintln(stderr, "bench: building ./cmd/tenantcrypt")
		if bin, err = buildServer(ctx, tmp); err != nil {
			return nil, err
		}
	}

	// One data directory for all: the same root keys, token issuer and
	// development CA, as replicas share them. The first creates them.
	dataDir := filepath.Join(tmp, "data")
	urls := make([]string, slices.Max(cfg.replicas))
	for i := range urls {
		name := "tenantcrypt-" + strconv.Itoa(i+1)
		addrFile := filepath.Join(tmp, name+".addr")
		srv, err := startProcess(ctx, name, filepath.Join(tmp, name+".log"), bin,
			"serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--addr-file", addrFile,
			"--database", cfg.database, "--log-level", "warn", "--shutdown-timeout", "5s")
		if err != nil {
			return nil, err
		}
		defer func() { err = errors.Join(err, srv.stop()) }()
		addr, err := srv.waitAddr(ctx, addrFile)
		if err != nil {
			return nil, err
		}
		urls[i] = "https://" + addr
	}
	tlsCfg, err := tlsconfig.ClientConfig(filepath.Join(dataDir, "tls", "ca.pem"))
	if err != nil {
		return nil, err
	}
	hc := newLoadClient(tlsCfg, slices.Max(cfg.levels), cfg.http2)
	defer hc.CloseIdleConnections()

	tenantID, svcToken, err := setupTenant(ctx, cfg, bin, dataDir, urls[0], hc)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, deleteTenant(ctx, bin, dataDir, urls[0], hc, tenantID)) }()
	svc, err := client.New(urls[0], client.WithHTTPClient(hc), client.WithToken(svcToken))
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "bench: %d tenantcrypt replicas on PostgreSQL, tenant %q; preparing %d ciphertexts\n", len(urls), tenantID, numCiphertexts)
	encBody, decBodies, _, err := prepareBodies(ctx, svc, cfg.size, 0)
	if err != nil {
		return nil, err
	}
	bearer := "Bearer " + svcToken
	targets := func(n int) map[string]target {
		enc, dec := make([]string, n), make([]string, n)
		for i, u := range urls[:n] {
			enc[i], dec[i] = u+api.RouteEncrypt.Path, u+api.RouteDecrypt.Path
		}
		return map[string]target{
			"encrypt": {name: "encrypt", urls: enc, auth: bearer, bodies: [][]byte{encBody}, wantPrefix: []byte(`{"ciphertext":"`)},
			"decrypt": {name: "decrypt", urls: dec, auth: bearer, bodies: decBodies, wantPrefix: []byte(`{"plaintext":"`)},
		}
	}
	// Every replica reads the tenant and unwraps its key before anything
	// is measured.
	for _, u := range urls {
		t := targets(len(urls))["encrypt"]
		t.urls = nil
		t.url = u + api.RouteEncrypt.Path
		if rep.Protocols["encrypt"], err = probe(ctx, hc, t); err != nil {
			return nil, err
		}
	}

	fmt.Fprintf(stderr, "bench: load for %s, until about %s\n", cfg.loadTime(), time.Now().Add(cfg.loadTime()).Format(time.TimeOnly))
	fewest := slices.Min(cfg.replicas)
	for _, c := range cfg.levels {
		rounds := map[int]map[string][]result{}
		for round := range cfg.rounds {
			for _, n := range cfg.replicas {
				if rounds[n] == nil {
					rounds[n] = map[string][]result{}
				}
				for _, name := range replicaTargets {
					res, err := runLoad(ctx, hc, targets(n)[name], c, cfg.warmup, cfg.duration)
					if err != nil {
						return nil, err
					}
					fmt.Fprintf(stderr, "  %-8s %2d replicas %4d clients, round %d: %9s req/s  p50 %7.2f ms  p99 %7.2f ms  %d errors\n",
						name, n, c, round+1, thousands(res.RPS), res.P50ms, res.P99ms, res.Errors)
					rounds[n][name] = append(rounds[n][name], res)
				}
			}
		}
		base := medianRound(rounds[fewest]["encrypt"]).RPS
		baseDec := medianRound(rounds[fewest]["decrypt"]).RPS
		for _, n := range cfg.replicas {
			r := replicaResult{Replicas: n, Concurrency: c,
				Encrypt: medianRound(rounds[n]["encrypt"]), Decrypt: medianRound(rounds[n]["decrypt"])}
			r.EncryptRatio, r.DecryptRatio = ratio(r.Encrypt.RPS, base), ratio(r.Decrypt.RPS, baseDec)
			rep.Replicas = append(rep.Replicas, r)
		}
	}
	rep.ElapsedSec = time.Since(rep.Started).Seconds()

	fmt.Fprintln(stdout)
	rep.printReplicas(stdout, fewest)
	if cfg.jsonFile != "" {
		if err := rep.writeJSON(cfg.jsonFile); err != nil {
			return rep, fmt.Errorf("writing -json: %w", err)
		}
	}
	return rep, nil
}

// printReplicas writes the replica comparison as a markdown table.
func (r *report) printReplicas(w io.Writer, fewest int) {
	fmt.Fprintf(w, "tenantcrypt data plane spread over replicas on PostgreSQL: %d-byte plaintext, %s, median of %d rounds of %s warm-up + %s per cell, %d CPUs shared by every replica and the load, %s %s/%s\n\n",
		r.Config.Size, r.Protocols["encrypt"], r.Config.Rounds, seconds(r.Config.WarmupSec), seconds(r.Config.DurationSec), r.NumCPU, r.GoVersion, r.GOOS, r.GOARCH)
	fmt.Fprintf(w, "| replicas | clients | encrypt req/s | decrypt req/s | encrypt vs %d | decrypt vs %d | encrypt p50 / p99 ms | decrypt p50 / p99 ms | errors e/d |\n", fewest, fewest)
	fmt.Fprintln(w, "|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, l := range r.Replicas {
		fmt.Fprintf(w, "| %d | %d | %s | %s | %s | %s | %s | %s | %d/%d |\n",
			l.Replicas, l.Concurrency, thousands(l.Encrypt.RPS), thousands(l.Decrypt.RPS),
			ratioText(l.EncryptRatio), ratioText(l.DecryptRatio), latencies(l.Encrypt), latencies(l.Decrypt),
			l.Encrypt.Errors, l.Decrypt.Errors)
	}
	fmt.Fprintln(w)
	if r.LoadAvg > float64(r.NumCPU)/2 {
		fmt.Fprintf(w, "Warning: the host's load average was %.2f on %d CPUs when the run started: rerun on a quiet machine.\n", r.LoadAvg, r.NumCPU)
	}
	for _, l := range r.Replicas {
		for _, res := range []result{l.Encrypt, l.Decrypt} {
			if res.FirstError != "" {
				fmt.Fprintf(w, "First error, %s with %d replicas at %d clients: %s\n", res.Target, l.Replicas, res.Concurrency, res.FirstError)
			}
		}
	}
}
