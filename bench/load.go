package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// targetNames are the loads measured at each concurrency level, in order.
var targetNames = []string{"baseline", "encrypt", "decrypt"}

const (
	// requestTimeout bounds one request; a request still running this
	// long after a load's deadline counts as an error.
	requestTimeout = 10 * time.Second
	// maxAnswerBytes bounds what is read of one answer.
	maxAnswerBytes = 1 << 20
)

// target is one kind of request sent under load.
type target struct {
	name string
	url  string
	// urls, when set, spread the load over several servers (replicas):
	// client i sends to urls[i%len(urls)] instead of url.
	urls   []string
	auth   string   // the Authorization header
	bodies [][]byte // JSON bodies, used in turn
	// wantPrefix starts every successful answer: a cheap check that the
	// answer is the one expected, not merely a 200.
	wantPrefix []byte
}

// result is one load's figures: one target at one concurrency level.
type result struct {
	Target      string  `json:"target"`
	Concurrency int     `json:"concurrency"`
	Requests    int     `json:"requests"` // successful, within the measured time
	Errors      int     `json:"errors"`   // during warm-up and measurement
	Seconds     float64 `json:"seconds"`  // measured time
	RPS         float64 `json:"requests_per_second"`
	P50ms       float64 `json:"p50_ms"`
	P90ms       float64 `json:"p90_ms"`
	P99ms       float64 `json:"p99_ms"`
	MaxMs       float64 `json:"max_ms"`
	FirstError  string  `json:"first_error,omitempty"`
}

// newLoadClient is the load generator's client, shared by all its
// goroutines: keep-alive connections to the servers on 127.0.0.1, trusting
// only the development CA, with HTTP/2 offered if h2 (then the goroutines
// share one connection per server, as Go's client does) and otherwise one
// HTTP/1.1 connection per goroutine.
func newLoadClient(tlsCfg *tls.Config, maxConcurrency int, h2 bool) *http.Client {
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(h2)
	t := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: 5 * time.Second,
		ForceAttemptHTTP2:   h2,
		Protocols:           &protos,
		MaxIdleConnsPerHost: maxConcurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &http.Client{Transport: t, Timeout: requestTimeout}
}

// runLoad runs n goroutines sending t's requests in a loop, each waiting
// for the answer before the next, for warmup and then duration. Only
// requests that start after the warm-up and end before the deadline count
// towards throughput and latency; errors count throughout. No goroutine
// starts a request after the deadline; one in flight then may finish
// within requestTimeout. If ctx ends, runLoad returns at once with ctx's
// error.
func runLoad(ctx context.Context, hc *http.Client, t target, n int, warmup, duration time.Duration) (result, error) {
	start := time.Now()
	measureFrom := start.Add(warmup)
	end := measureFrom.Add(duration)
	workers := make([]worker, n)
	var wg sync.WaitGroup
	for i := range workers {
		w := &workers[i]
		w.lat = make([]time.Duration, 0, 1024)
		wt := t
		if len(t.urls) > 0 {
			wt.url = t.urls[i%len(t.urls)]
		}
		wg.Go(func() { w.loop(ctx, hc, wt, i, n, measureFrom, end) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return result{}, err
	}

	res := result{Target: t.name, Concurrency: n, Seconds: duration.Seconds()}
	var lat []time.Duration
	for _, w := range workers {
		lat = append(lat, w.lat...)
		res.Errors += w.errs
		if w.firstErr != nil && res.FirstError == "" {
			res.FirstError = w.firstErr.Error()
		}
	}
	slices.Sort(lat)
	res.Requests = len(lat)
	res.RPS = float64(len(lat)) / duration.Seconds()
	res.P50ms = ms(percentile(lat, 0.50))
	res.P90ms = ms(percentile(lat, 0.90))
	res.P99ms = ms(percentile(lat, 0.99))
	res.MaxMs = ms(percentile(lat, 1))
	return res, nil
}

// worker is one client goroutine's own figures, merged after the load.
type worker struct {
	lat      []time.Duration
	errs     int
	firstErr error
	buf      bytes.Buffer
}

func (w *worker) loop(ctx context.Context, hc *http.Client, t target, first, step int, measureFrom, end time.Time) {
	for i := first; ; i += step {
		t0 := time.Now()
		if !t0.Before(end) || ctx.Err() != nil {
			return
		}
		_, err := w.do(ctx, hc, t, t.bodies[i%len(t.bodies)])
		t1 := time.Now()
		switch {
		case ctx.Err() != nil:
			return // interrupted: nothing to count
		case err != nil:
			w.errs++
			if w.firstErr == nil {
				w.firstErr = err
			}
		case !t0.Before(measureFrom) && !t1.After(end):
			w.lat = append(w.lat, t1.Sub(t0))
		}
	}
}

// do sends one request, reads its whole answer and checks it. It returns
// the protocol of the answer.
func (w *worker) do(ctx context.Context, hc *http.Client, t target, body []byte) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", t.auth)
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	w.buf.Reset()
	_, err = w.buf.ReadFrom(io.LimitReader(resp.Body, maxAnswerBytes))
	switch {
	case err != nil:
		return "", fmt.Errorf("%s: reading the answer: %w", t.name, err)
	case resp.StatusCode != http.StatusOK:
		return "", fmt.Errorf("%s: status %d: %s", t.name, resp.StatusCode, truncate(w.buf.Bytes(), 300))
	case !bytes.HasPrefix(w.buf.Bytes(), t.wantPrefix):
		return "", fmt.Errorf("%s: unexpected answer: %s", t.name, truncate(w.buf.Bytes(), 300))
	}
	return resp.Proto, nil
}

func truncate(b []byte, n int) string {
	b = bytes.TrimSpace(b)
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// percentile is the nearest-rank q-quantile of sorted (0 for none).
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// medianRound is the round with the median throughput, with the errors of
// every round added up so that none goes unreported.
func medianRound(rs []result) result {
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b result) int { return cmp.Compare(a.RPS, b.RPS) })
	m := sorted[len(sorted)/2]
	m.Errors = 0
	for _, r := range rs {
		m.Errors += r.Errors
		if m.FirstError == "" {
			m.FirstError = r.FirstError
		}
	}
	return m
}
