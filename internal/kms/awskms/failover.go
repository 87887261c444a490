package awskms

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

// DefaultProbeInterval is how often a region that failed over is tried
// again, when Config.ProbeInterval is zero.
const DefaultProbeInterval = 5 * time.Second

// RegionEvent is a change of a region's health as the Client sees it: it
// failed over to replicas (Healthy false) or failed back (Healthy true).
type RegionEvent struct {
	Region  string
	Healthy bool
	// Since is when the region became unhealthy; for a failback, how long
	// it was is Time minus Since.
	Since, Time time.Time
	// Cause is the failure that made the region fail over; nil on failback.
	Cause error
}

// RegionHealth is a region's state: while Healthy is false, calls of
// multi-region keys whose home is Region go to their replicas, and the
// region is tried again every probe interval.
type RegionHealth struct {
	Healthy bool
	// Since is when the region became unhealthy (zero while healthy).
	Since time.Time
}

// RegionHealth reports the region's health.
func (c *Client) RegionHealth(region string) RegionHealth {
	b := c.breaker(region)
	b.mu.Lock()
	defer b.mu.Unlock()
	return RegionHealth{Healthy: !b.open, Since: b.since}
}

// breaker is a region's circuit breaker. Closed, calls go to the region;
// open (after a call met an outage there), calls of keys with a replica go
// to the replica at once, and one probe per interval tries the region again
// in the background, closing the breaker when it answers.
type breaker struct {
	mu        sync.Mutex
	open      bool
	since     time.Time
	nextProbe time.Time
	probing   bool
}

func (c *Client) breaker(region string) *breaker {
	c.breakersMu.Lock()
	defer c.breakersMu.Unlock()
	b, ok := c.breakers[region]
	if !ok {
		b = &breaker{}
		c.breakers[region] = b
	}
	return b
}

// isOpen reports whether calls should skip the region, and whether the
// caller should start a probe of it (at most one at a time, one per
// interval).
func (b *breaker) isOpen(now time.Time) (open, probe bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		return false, false
	}
	if !b.probing && !now.Before(b.nextProbe) {
		b.probing = true
		return true, true
	}
	return true, false
}

// trip opens the breaker; it reports whether it was closed.
func (b *breaker) trip(now time.Time, interval time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open {
		return false
	}
	b.open, b.since, b.nextProbe = true, now, now.Add(interval)
	return true
}

// probed ends a probe: a healthy region closes the breaker (true when this
// call closed it), an unhealthy one waits for the next interval.
func (b *breaker) probed(now time.Time, interval time.Duration, healthy bool) (closed bool, since time.Time) {
	b.mu.Lock()
	b.probing = false
	if !healthy {
		b.nextProbe = now.Add(interval)
		b.mu.Unlock()
		return false, time.Time{}
	}
	b.mu.Unlock()
	return b.heal()
}

// heal closes the breaker; it reports whether it was open, and since when.
func (b *breaker) heal() (closed bool, since time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		return false, time.Time{}
	}
	since = b.since
	b.open, b.since = false, time.Time{}
	return true, since
}

// served records that the region answered a call (whatever the answer):
// it serves, so its keys' calls fail back to it. The key monitor's checks
// reach here too, so a region fails back without waiting for traffic.
func (c *Client) served(region string) {
	if closed, since := c.breaker(region).heal(); closed {
		c.report(RegionEvent{Region: region, Healthy: true, Since: since, Time: c.now()})
	}
}

// outage reports whether err means that the region did not serve (a
// broken connection, a timeout, a 5xx or KMSInternalException): the call
// may go to a replica. A refusal of the key (disabled, pending deletion,
// access denied, not found) is an answer, never an outage; throttling is
// retried in the region.
func outage(err error) bool {
	return errors.Is(err, kms.ErrUnavailable) && !errors.Is(err, context.Canceled)
}

// do runs call against the key's own region and, for a multi-region key
// with replicas, fails over: on an outage of the home region the same call
// goes to each replica in turn (same key material, so their blobs are
// interchangeable), and the home region's breaker opens so that later
// calls go to the replica at once until a probe finds the region back.
func (p *provider) do(ctx context.Context, call func(t target) error) error {
	if len(p.replicas) == 0 {
		return call(p.t)
	}
	c := p.t.c
	b := c.breaker(p.t.region)
	open, probe := b.isOpen(c.now())
	if probe {
		go c.probe(p.t, b)
	}
	if !open {
		// One attempt: an outage goes to the replica at once rather than
		// after the retries; throttling is retried in the home region.
		home := p.t
		home.attempts = 1
		err := call(home)
		if errors.Is(err, kms.ErrThrottled) {
			err = call(p.t)
		}
		if !outage(err) || ctx.Err() != nil {
			return err
		}
		if b.trip(c.now(), c.cfg.ProbeInterval) {
			c.report(RegionEvent{Region: p.t.region, Healthy: false, Since: c.now(), Time: c.now(), Cause: err})
		}
	}
	var err error
	for _, r := range p.replicas {
		if err = call(r); !outage(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// probe tries the region again with one DescribeKey of t's key, and
// closes its breaker if the region answers at all (a refusal is an answer:
// the region serves).
func (c *Client) probe(t target, b *breaker) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.CallTimeout)
	defer cancel()
	t.attempts = 1
	_, err := t.describe(ctx, actionDescribeKey)
	if closed, since := b.probed(c.now(), c.cfg.ProbeInterval, !outage(err)); closed {
		c.report(RegionEvent{Region: t.region, Healthy: true, Since: since, Time: c.now()})
	}
}

func (c *Client) report(e RegionEvent) {
	if c.cfg.OnRegionEvent != nil {
		c.cfg.OnRegionEvent(e)
	}
}

func (c *Client) now() time.Time {
	if c.cfg.Now != nil {
		return c.cfg.Now()
	}
	return time.Now()
}

// attemptsOption limits one call's attempts (0: the client's policy).
func attemptsOption(n int) []func(*awskms.Options) {
	if n <= 0 {
		return nil
	}
	return []func(*awskms.Options){func(o *awskms.Options) { o.Retryer = retry.AddWithMaxAttempts(o.Retryer, n) }}
}
