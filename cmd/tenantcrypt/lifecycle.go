package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/awskms"
	"github.com/tenantcrypt/tenantcrypt/internal/lifecycle"
)

// lifecycleConfig is the key monitor's part: the revocation bound, and the
// checks of customer managed keys that keep it.
type lifecycleConfig struct {
	revocationBound time.Duration
	// monitor holds what the flags set of lifecycle.Config: Interval (0:
	// half the revocation bound, see times), IdleInterval, Concurrency.
	monitor lifecycle.Config
}

func (c *lifecycleConfig) flags(fs *flag.FlagSet) {
	fs.DurationVar(&c.revocationBound, "revocation-bound", lifecycle.DefaultRevocationBound, "longest time a tenant state change (a revoked key) takes to reach this process")
	fs.DurationVar(&c.monitor.Interval, "key-check-interval", 0, "how often every customer managed key is checked (DescribeKey per tenant and region); 0: half the revocation bound")
	fs.DurationVar(&c.monitor.IdleInterval, "idle-key-check-interval", lifecycle.DefaultIdleInterval, "how often the key of an idle tenant (active, and no replica holds any of its keys) is checked, for the status page and DR compliance; 0: every tenant every --key-check-interval")
	fs.IntVar(&c.monitor.Concurrency, "key-check-concurrency", lifecycle.DefaultConcurrency, "how many tenants' keys are checked at once")
}

// lifecycleTimes splits the revocation bound into its terms: a revoked key
// is noticed by the next check (within interval), the check itself takes
// at most timeout, and other replicas read the tenant's new state within
// refresh. Their sum stays within the bound.
type lifecycleTimes struct {
	interval, timeout, refresh time.Duration
}

func (c *lifecycleConfig) times() lifecycleTimes {
	lt := lifecycleTimes{interval: c.monitor.Interval, timeout: c.revocationBound / 5, refresh: c.revocationBound / 5}
	if lt.interval <= 0 {
		lt.interval = c.revocationBound / 2
	}
	return lt
}

// config is the lifecycle.Config of the flags, with the check interval
// and timeout that the revocation bound allows; serve adds the monitor's
// dependencies.
func (c *lifecycleConfig) config() lifecycle.Config {
	m := c.monitor
	lt := c.times()
	m.Interval, m.Timeout = lt.interval, lt.timeout
	return m
}

func (c *lifecycleConfig) validate() error {
	if c.revocationBound < time.Second {
		return fmt.Errorf("--revocation-bound must be at least 1s")
	}
	if c.monitor.Interval < 0 {
		return fmt.Errorf("--key-check-interval must not be negative (0: half the revocation bound)")
	}
	lt := c.times()
	if lt.interval < 500*time.Millisecond {
		return fmt.Errorf("--key-check-interval must be at least 500ms")
	}
	if sum := lt.interval + lt.timeout + lt.refresh; sum > c.revocationBound {
		return fmt.Errorf("--key-check-interval %s does not fit the --revocation-bound %s: a check every %s, taking up to %s, seen by other replicas within %s, can take %s; use an interval of at most %s or a longer bound",
			lt.interval, c.revocationBound, lt.interval, lt.timeout, lt.refresh, sum, c.revocationBound-lt.timeout-lt.refresh)
	}
	if c.monitor.IdleInterval != 0 && c.monitor.IdleInterval < lt.interval {
		return fmt.Errorf("--idle-key-check-interval %s must be 0 (off) or at least the key check interval %s", c.monitor.IdleInterval, lt.interval)
	}
	if c.monitor.Concurrency < 1 {
		return fmt.Errorf("--key-check-concurrency must be at least 1")
	}
	return nil
}

// lifecycleMetrics counts key checks and tenant state changes, and gauges
// tenants by state (read from the database at scrape time).
type lifecycleMetrics struct {
	checks  *prometheus.CounterVec
	changes *prometheus.CounterVec
	lag     prometheus.Gauge
}

func newLifecycleMetrics(reg *prometheus.Registry, st lifecycle.Store, log *slog.Logger) *lifecycleMetrics {
	m := &lifecycleMetrics{
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tenantcrypt_key_checks_total",
			Help: "Checks of customer managed keys by region and result (ok, disabled, pending-deletion, not-found, access-denied, throttled, unavailable, error)."},
			[]string{"region", "result"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tenantcrypt_tenant_state_changes_total",
			Help: "Tenant lifecycle state changes made by this process, by old and new state."},
			[]string{"from", "to"}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tenantcrypt_key_check_lag_seconds",
			Help: "How late, past its schedule, the latest of the key checks this replica last claimed was; above a tenth of the check interval, the revocation bound is not kept."}),
	}
	reg.MustRegister(m.checks, m.changes, m.lag, &tenantStates{st: st, log: log})
	return m
}

func (m *lifecycleMetrics) stateChanged(c keyring.StateChange) {
	m.changes.WithLabelValues(c.From.String(), c.To.String()).Inc()
}

// tenantStates is the tenantcrypt_tenants gauge: tenants by state, counted
// in the database when scraped, so that every replica reports the same.
type tenantStates struct {
	st  lifecycle.Store
	log *slog.Logger
}

var tenantStatesDesc = prometheus.NewDesc("tenantcrypt_tenants", "Tenants by lifecycle state (active, key-unavailable, locked, destroyed).", []string{"state"}, nil)

func (c *tenantStates) Describe(ch chan<- *prometheus.Desc) { ch <- tenantStatesDesc }

func (c *tenantStates) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := c.st.CountTenantsByState(ctx)
	if err != nil {
		c.log.Warn("counting tenants by state for /metrics failed", "error", err.Error())
		return
	}
	for _, s := range []keyring.TenantState{keyring.StateActive, keyring.StateKeyUnavailable, keyring.StateLocked, keyring.StateDestroyed} {
		ch <- prometheus.MustNewConstMetric(tenantStatesDesc, prometheus.GaugeValue, float64(counts[s]), s.String())
	}
}

// newRegionMetrics counts and logs the failovers of multi-region keys to
// their DR replicas and the failbacks, and gauges each region's health
// (the regions given from the start, healthy; others from their first
// failover); it returns the awskms.Config.OnRegionEvent that feeds them.
func newRegionMetrics(reg *prometheus.Registry, log *slog.Logger, regions ...string) func(awskms.RegionEvent) {
	failovers := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tenantcrypt_kms_failovers_total",
		Help: "Times a region's outage made multi-region keys fail over to their DR replicas, by region."}, []string{"region"})
	failbacks := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tenantcrypt_kms_failbacks_total",
		Help: "Times a region came back and its keys' calls returned to it, by region."}, []string{"region"})
	healthy := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tenantcrypt_kms_region_healthy",
		Help: "1 while calls go to the region, 0 while its keys fail over to their replicas; the service's region and its DR region from the start, others once they failed over."}, []string{"region"})
	reg.MustRegister(failovers, failbacks, healthy)
	for _, region := range regions {
		failovers.WithLabelValues(region)
		failbacks.WithLabelValues(region)
		healthy.WithLabelValues(region).Set(1)
	}
	return func(e awskms.RegionEvent) {
		if e.Healthy {
			failbacks.WithLabelValues(e.Region).Inc()
			healthy.WithLabelValues(e.Region).Set(1)
			log.Info("AWS KMS region is back; calls fail back to it", "region", e.Region, "failed_over_for", e.Time.Sub(e.Since).Round(time.Millisecond).String())
			return
		}
		failovers.WithLabelValues(e.Region).Inc()
		healthy.WithLabelValues(e.Region).Set(0)
		cause := ""
		if e.Cause != nil {
			cause = e.Cause.Error()
		}
		log.Warn("AWS KMS region is unavailable; multi-region keys fail over to their DR replicas", "region", e.Region, "error", cause)
	}
}
