package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
)

const (
	// noisyFactor is how far over its quota tenant A sends.
	noisyFactor = 10
	// noisyClients and quietClients are the senders of A and of B.
	noisyClients = 16
	quietClients = 4
	// noisyWarmup lets A use up its burst before B is measured.
	noisyWarmup = 2 * time.Second
)

// noisyResult is the noisy-neighbour scenario's figures (-noisy).
type noisyResult struct {
	Rate        float64      `json:"tenant_rate"` // --tenant-rate
	Burst       int          `json:"tenant_burst"`
	QuietRate   float64      `json:"b_rate"` // B's offered rate
	DurationSec float64      `json:"duration_seconds"`
	BAlone      latencyStats `json:"b_alone"`
	BWithA      latencyStats `json:"b_with_a"`
	BErrors     int          `json:"b_errors"` // in both phases
	AOffered    float64      `json:"a_offered_per_second"`
	ASent       float64      `json:"a_sent_per_second"`
	AOKPerSec   float64      `json:"a_ok_per_second"`
	ARefused    float64      `json:"a_refused_share"` // 429 Encryption-13 of A's answers
	AOther      int          `json:"a_other_errors"`
}

// pacedSender sends requests at a steady rate on some goroutines (open
// loop: a slow answer delays that goroutine's next request, not the
// schedule's), until stop is closed.
type pacedSender struct {
	mu      sync.Mutex
	lat     []time.Duration
	status  map[int]int
	errs    int
	firstEr error
}

func (p *pacedSender) run(ctx context.Context, srv *server, token string, body []byte, rate float64, clients int, stop <-chan struct{}) {
	p.status = map[int]int{}
	interval := time.Duration(float64(time.Second) * float64(clients) / rate)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			next := time.Now().Add(time.Duration(c) * interval / time.Duration(clients))
			for {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				case <-time.After(time.Until(next)):
				}
				next = next.Add(interval)
				if now := time.Now(); next.Before(now) {
					next = now // behind: do not catch up in a burst
				}
				t0 := time.Now()
				status, out, err := srv.post(ctx, api.RouteEncrypt.Method, api.RouteEncrypt.Path, token, body)
				d := time.Since(t0)
				p.mu.Lock()
				switch {
				case err != nil:
					p.errs++
					if p.firstEr == nil && ctx.Err() == nil {
						p.firstEr = err
					}
				default:
					p.status[status]++
					if status == http.StatusOK {
						p.lat = append(p.lat, d)
					} else if status != http.StatusTooManyRequests && p.firstEr == nil {
						p.firstEr = fmt.Errorf("status %d: %s", status, truncate(out, 300))
					}
				}
				p.mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// runNoisy measures tenant B's latency alone and while tenant A sends at
// noisyFactor times its quota, on one server with --tenant-rate.
func runNoisy(ctx context.Context, cfg config, bin, tmp string, stderr io.Writer) (res noisyResult, err error) {
	res = noisyResult{Rate: cfg.noisyRate, Burst: 1000, QuietRate: cfg.noisyQuiet, DurationSec: cfg.noisyDuration.Seconds(),
		AOffered: noisyFactor * cfg.noisyRate}
	args := []string{"--tenant-rate", strconv.FormatFloat(cfg.noisyRate, 'g', -1, 64), "--tenant-burst", strconv.Itoa(res.Burst)}
	dbFlags, drop, err := scenarioDatabase(ctx, cfg)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, drop()) }()
	args = append(args, dbFlags...)
	srv, err := startServer(ctx, bin, tmp, "noisy", filepath.Join(tmp, "noisy"), nil, noisyClients+quietClients, args...)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, srv.stop()) }()
	admin, err := srv.token(auth.RolePlatformAdmin, "", scenarioTokenTTL)
	if err != nil {
		return res, err
	}
	prefix := "n" + runID() + "-"
	var tokA, tokB string
	for _, t := range []struct {
		id  string
		tok *string
	}{{prefix + "a", &tokA}, {prefix + "b", &tokB}} {
		if err := srv.createTenant(ctx, admin, t.id); err != nil {
			return res, err
		}
		if *t.tok, err = srv.token(auth.RoleService, t.id, scenarioTokenTTL); err != nil {
			return res, err
		}
	}
	body, err := encryptBody(cfg.size)
	if err != nil {
		return res, err
	}
	for _, tok := range []string{tokA, tokB} {
		if err := srv.encrypt(ctx, tok, body); err != nil {
			return res, err
		}
	}

	measureB := func() (latencyStats, int, error) {
		var b pacedSender
		stop := make(chan struct{})
		time.AfterFunc(cfg.noisyDuration, func() { close(stop) })
		b.run(ctx, srv, tokB, body, cfg.noisyQuiet, quietClients, stop)
		if err := ctx.Err(); err != nil {
			return latencyStats{}, 0, err
		}
		errs := b.errs
		for st, n := range b.status {
			if st != http.StatusOK {
				errs += n
			}
		}
		if b.firstEr != nil {
			fmt.Fprintf(stderr, "  B's first error: %v\n", b.firstEr)
		}
		return statsOf(b.lat), errs, nil
	}

	fmt.Fprintf(stderr, "bench: noisy neighbour: B alone at %g/s for %s\n", cfg.noisyQuiet, cfg.noisyDuration)
	var bErrs int
	if res.BAlone, bErrs, err = measureB(); err != nil {
		return res, err
	}
	res.BErrors += bErrs

	fmt.Fprintf(stderr, "bench: noisy neighbour: A at %g/s (quota %g/s) and B at %g/s for %s\n", res.AOffered, cfg.noisyRate, cfg.noisyQuiet, cfg.noisyDuration)
	var a pacedSender
	stopA := make(chan struct{})
	aDone := make(chan struct{})
	aStart := time.Now()
	go func() {
		defer close(aDone)
		a.run(ctx, srv, tokA, body, res.AOffered, noisyClients, stopA)
	}()
	select {
	case <-ctx.Done():
	case <-time.After(noisyWarmup):
	}
	res.BWithA, bErrs, err = measureB()
	close(stopA)
	<-aDone
	if err != nil {
		return res, err
	}
	res.BErrors += bErrs
	aTime := time.Since(aStart).Seconds()
	sent, refused := a.errs, 0
	for st, n := range a.status {
		sent += n
		if st == http.StatusTooManyRequests {
			refused += n
		} else if st != http.StatusOK {
			res.AOther += n
		}
	}
	res.AOther += a.errs
	res.ASent = float64(sent) / aTime
	res.AOKPerSec = float64(a.status[http.StatusOK]) / aTime
	if sent > 0 {
		res.ARefused = float64(refused) / float64(sent)
	}
	fmt.Fprintf(stderr, "  B alone p50 %.2f ms p99 %.2f ms; with A p50 %.2f ms p99 %.2f ms; A sent %.0f/s, %.0f/s served, %.0f %% refused\n",
		res.BAlone.P50ms, res.BAlone.P99ms, res.BWithA.P50ms, res.BWithA.P99ms, res.ASent, res.AOKPerSec, 100*res.ARefused)
	if a.firstEr != nil {
		fmt.Fprintf(stderr, "  A's first error other than 429: %v\n", a.firstEr)
	}
	return res, nil
}
