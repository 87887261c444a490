package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/auth"
)

// The targets for many tenants (2 cores, 4 clients, defaults).
const (
	targetCreatePerSec   = 500              // tenant creation, SQLite
	targetKiBPerWarm     = 20               // memory per warm tenant
	targetRestart        = 5 * time.Second  // restart with 100,000 tenants
	targetRestartTenants = 100_000          //
	targetIdleChecks     = 1.0              // key checks per idle CMK tenant per minute
	scenarioTokenTTL     = 12 * time.Hour   // tokens of a scenario
	restartEncryptWait   = 30 * time.Second // bound on the first encrypt after a restart
)

// tenantsResult is one tenant count's figures (-tenants).
type tenantsResult struct {
	Tenants       int          `json:"tenants"`
	Clients       int          `json:"clients"`
	CreateSeconds float64      `json:"create_seconds"`
	CreatePerSec  float64      `json:"create_per_second"`
	Create        latencyStats `json:"create_latency"`
	// CreateCPUms is the server's CPU time (user and system) per created
	// tenant: what the creation rate is made of on a machine shared with
	// other work.
	CreateCPUms float64      `json:"create_server_cpu_ms"`
	Warm        int          `json:"warm_tenants"`
	ColdEncrypt latencyStats `json:"cold_encrypt_latency"` // a tenant's first encrypt
	WarmEncrypt latencyStats `json:"warm_encrypt_latency"`
	WarmPerSec  float64      `json:"warm_encrypt_per_second"`
	RSSStart    int64        `json:"rss_start_bytes"` // before any tenant
	RSSCreated  int64        `json:"rss_created_bytes"`
	RSSHalf     int64        `json:"rss_half_warmed_bytes"` // after the first encrypt of half the warm tenants
	RSSColdDone int64        `json:"rss_all_warmed_bytes"`  // after the first encrypt of all of them
	RSSWarmed   int64        `json:"rss_warmed_bytes"`      // after the warm encrypt load
	// KiBPerWarm is (RSSColdDone − RSSHalf) / the second half's tenants.
	KiBPerWarm   float64 `json:"kib_per_warm_tenant"`
	RSSRestarted int64   `json:"rss_restarted_bytes"` // after the restart, when ready
	StopSec      float64 `json:"stop_seconds"`        // SIGTERM to exit, before the restart
	RestartReady float64 `json:"restart_ready_seconds"`
	RestartFirst float64 `json:"restart_first_encrypt_seconds"` // from the start to a warm tenant's first encrypt
}

// warmCount is how many of n tenants a fraction warms: at least one.
func warmCount(n int, fraction float64) int {
	return min(n, max(1, int(math.Round(float64(n)*fraction))))
}

// warmIndex is the index of the j-th of w warm tenants among n: spread
// evenly, so that early and late tenants are both among them.
func warmIndex(j, w, n int) int { return int(int64(j) * int64(n) / int64(w)) }

// runTenantCount creates n tenants on a new server (a new data directory,
// and a new schema with -database), warms some, restarts the server, and
// measures each step (see the package comment).
func runTenantCount(ctx context.Context, cfg config, bin, tmp string, n int, stderr io.Writer) (res tenantsResult, err error) {
	res = tenantsResult{Tenants: n, Clients: cfg.tenantClients, Warm: warmCount(n, cfg.warm)}
	name := "tenants-" + strconv.Itoa(n)
	var args []string
	dbFlags, drop, err := scenarioDatabase(ctx, cfg)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, drop()) }()
	args = append(args, dbFlags...)
	srv, err := startServer(ctx, bin, tmp, name, filepath.Join(tmp, name), nil, cfg.tenantClients, args...)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, srv.stop()) }()
	if res.RSSStart, err = srv.rss(); err != nil {
		return res, err
	}
	admin, err := srv.token(auth.RolePlatformAdmin, "", scenarioTokenTTL)
	if err != nil {
		return res, err
	}

	prefix := "t" + runID() + "-"
	id := func(i int) string { return prefix + strconv.Itoa(i) }
	fmt.Fprintf(stderr, "bench: %d tenants: creating them with %d clients\n", n, cfg.tenantClients)
	var (
		done     sync.WaitGroup
		created  atomic.Int64
		progress = make(chan struct{})
		start    = time.Now()
	)
	cpu0, err := srv.cpu()
	if err != nil {
		return res, err
	}
	done.Go(func() { reportProgress(progress, stderr, n, &created, start) })
	lat, err := parallel(ctx, n, cfg.tenantClients, func(ctx context.Context, i int) error {
		err := srv.createTenant(ctx, admin, id(i))
		created.Add(1)
		return err
	})
	elapsed := time.Since(start)
	close(progress)
	done.Wait()
	if err != nil {
		return res, fmt.Errorf("creating tenants: %w", err)
	}
	cpu1, err := srv.cpu()
	if err != nil {
		return res, err
	}
	res.CreateCPUms = ms(cpu1-cpu0) / float64(n)
	res.CreateSeconds = elapsed.Seconds()
	res.CreatePerSec = float64(n) / elapsed.Seconds()
	res.Create = statsOf(lat)
	if res.RSSCreated, err = srv.rss(); err != nil {
		return res, err
	}
	fmt.Fprintf(stderr, "  created %d tenants in %s: %.0f/s, p50 %.2f ms, p99 %.2f ms, server CPU %.2f ms per tenant; RSS %s MiB\n",
		n, elapsed.Round(time.Millisecond), res.CreatePerSec, res.Create.P50ms, res.Create.P99ms, res.CreateCPUms, mib(res.RSSCreated))

	// Warm a fraction: each warm tenant's first encrypt (cold: the tenant
	// is read, its key made and cached), then encrypt load over them.
	body, err := encryptBody(cfg.size)
	if err != nil {
		return res, err
	}
	tokens := make([]string, res.Warm)
	for j := range tokens {
		if tokens[j], err = srv.token(auth.RoleService, id(warmIndex(j, res.Warm, n)), scenarioTokenTTL); err != nil {
			return res, err
		}
	}
	// In two halves: the memory per warm tenant is the second half's
	// growth, when the connections and buffers that any load needs exist
	// already.
	half := res.Warm / 2
	cold, err := parallel(ctx, half, cfg.tenantClients, func(ctx context.Context, j int) error {
		return srv.encrypt(ctx, tokens[j], body)
	})
	if err != nil {
		return res, fmt.Errorf("first encrypt of the warm tenants: %w", err)
	}
	if res.RSSHalf, err = srv.rss(); err != nil {
		return res, err
	}
	lat, err = parallel(ctx, res.Warm-half, cfg.tenantClients, func(ctx context.Context, j int) error {
		return srv.encrypt(ctx, tokens[half+j], body)
	})
	if err != nil {
		return res, fmt.Errorf("first encrypt of the warm tenants: %w", err)
	}
	if res.RSSColdDone, err = srv.rss(); err != nil {
		return res, err
	}
	if res.Warm-half > 0 {
		res.KiBPerWarm = float64(res.RSSColdDone-res.RSSHalf) / 1024 / float64(res.Warm-half)
	}
	res.ColdEncrypt = statsOf(append(cold, lat...))
	var warmLat []time.Duration
	warmStart := time.Now()
	for time.Since(warmStart) < cfg.duration {
		lat, err := parallel(ctx, res.Warm, cfg.tenantClients, func(ctx context.Context, j int) error {
			return srv.encrypt(ctx, tokens[j], body)
		})
		if err != nil {
			return res, fmt.Errorf("encrypt of the warm tenants: %w", err)
		}
		warmLat = append(warmLat, lat...)
	}
	res.WarmEncrypt = statsOf(warmLat)
	res.WarmPerSec = float64(len(warmLat)) / time.Since(warmStart).Seconds()
	if res.RSSWarmed, err = srv.rss(); err != nil {
		return res, err
	}
	fmt.Fprintf(stderr, "  %d warm tenants: cold encrypt p50 %.2f ms p99 %.2f ms, warm p50 %.2f ms p99 %.2f ms; RSS %s MiB (%.1f KiB per warm tenant)\n",
		res.Warm, res.ColdEncrypt.P50ms, res.ColdEncrypt.P99ms, res.WarmEncrypt.P50ms, res.WarmEncrypt.P99ms, mib(res.RSSWarmed), res.KiBPerWarm)

	// Restart: until ready, then until a warm tenant encrypts again, both
	// from the new process's start.
	started, ready, err := srv.restart(ctx)
	if err != nil {
		return res, err
	}
	res.RestartReady = ready.Seconds()
	res.StopSec = srv.stopped.Seconds()
	if res.RSSRestarted, err = srv.rss(); err != nil {
		return res, err
	}
	for {
		err := srv.encrypt(ctx, tokens[0], body)
		if err == nil {
			break
		}
		if ctx.Err() != nil || time.Since(started) > restartEncryptWait {
			return res, fmt.Errorf("first encrypt after the restart: %w", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	res.RestartFirst = time.Since(started).Seconds()
	fmt.Fprintf(stderr, "  restart: stopped in %.2f s; ready after %.2f s, first encrypt after %.2f s; RSS %s MiB\n", res.StopSec, res.RestartReady, res.RestartFirst, mib(res.RSSRestarted))
	return res, nil
}

// reportProgress prints, every 10 seconds until progress is closed, how
// many tenants have been created.
func reportProgress(progress <-chan struct{}, stderr io.Writer, n int, created *atomic.Int64, start time.Time) {
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-progress:
			return
		case <-tick.C:
			c := created.Load()
			fmt.Fprintf(stderr, "  … %d of %d tenants after %s (%.0f/s)\n", c, n, time.Since(start).Round(time.Second), float64(c)/time.Since(start).Seconds())
		}
	}
}
