package main

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantcrypt/tenantcrypt/internal/audit"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/awskms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/kmip"
	"github.com/tenantcrypt/tenantcrypt/internal/lifecycle"
	"github.com/tenantcrypt/tenantcrypt/internal/migration"
)

// observer is where the service's parts report what they do. It exists
// before any of them, each report reaches it once, and it passes the
// report on to whichever of the audit log, the metrics and the log want
// it: the parts know nothing of who listens.
//
// Two reports concern KMS calls, and they are different events: a key
// provider's call (providerCall, any provider, counted in
// tenantcrypt_kms_operations_total), and each request that AWS KMS
// answered (awsCall, retries and failovers included, recorded in the audit
// log with its key, region and AWS request id).
type observer struct {
	audit     auditSink
	kmsCalls  *prometheus.CounterVec
	regions   func(awskms.RegionEvent)
	lifecycle *lifecycleMetrics
	migration migrationMetrics
}

// newObserver registers the metrics that count what the parts report,
// each series of the home regions from the start.
func newObserver(reg *prometheus.Registry, auditLog *audit.Log, st lifecycle.Store, log *slog.Logger, homeRegions []string) *observer {
	o := &observer{
		audit: auditSink{log: auditLog, slg: log},
		kmsCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantcrypt_kms_operations_total",
			Help: "Calls to key providers (KMSs) by provider, operation and result.",
		}, []string{"provider", "op", "result"}),
		regions:   newRegionMetrics(reg, log, homeRegions...),
		lifecycle: newLifecycleMetrics(reg, st, log),
		migration: newMigrationMetrics(reg),
	}
	reg.MustRegister(o.kmsCalls)
	initKMSSeries(o.kmsCalls)
	initLifecycleSeries(o.lifecycle, homeRegions)
	return o
}

// providerCall counts a key provider's call (a providers.Observer).
func (o *observer) providerCall(ref kms.Ref, op string, err error) {
	o.kmsCalls.WithLabelValues(providerLabel(ref), op, kms.Outcome(err)).Inc()
}

// awsCall records a request to AWS KMS in the audit log (awskms.Config's
// OnCall).
func (o *observer) awsCall(c awskms.Call) { o.audit.kmsCall(c) }

// kmipCall records a call to a customer's KMIP key manager in the audit
// log (kmipkind.Config's OnCall).
func (o *observer) kmipCall(c kmip.Call) { o.audit.kmipCall(c) }

// regionEvent counts, logs and records a region's failover or failback
// (awskms.Config's OnRegionEvent).
func (o *observer) regionEvent(e awskms.RegionEvent) {
	o.regions(e)
	o.audit.regionEvent(e)
}

// stateChange counts and records a tenant's state change (keyring.Config's
// OnStateChange).
func (o *observer) stateChange(c keyring.StateChange) {
	o.lifecycle.stateChanged(c)
	o.audit.stateChange(c)
}

// keyRotated records a new data key (keyring.Config's OnKeyRotated).
func (o *observer) keyRotated(tenantID, keyID string, provider kms.Ref) {
	o.audit.keyRotated(tenantID, keyID, provider)
}

// keyChecked counts a region's key check (lifecycle.Config's Checked).
func (o *observer) keyChecked(region, result string) {
	o.lifecycle.checks.WithLabelValues(region, result).Inc()
}

// checksClaimed gauges how late the claimed key checks were
// (lifecycle.Config's Claimed).
func (o *observer) checksClaimed(_ int, late time.Duration) { o.lifecycle.lag.Set(late.Seconds()) }

// migrationHooks counts a migration's progress (migration.Config's Hooks).
func (o *observer) migrationHooks() migration.Hooks {
	m := o.migration
	return migration.Hooks{
		Rewrapped:   func(n int) { m.rewrapped.Add(float64(n)) },
		BatchFailed: m.failures.Inc,
		Running:     func(d int) { m.running.Add(float64(d)) },
	}
}

// migrationMetrics count the cipherkeys that migrations rewrap.
type migrationMetrics struct {
	rewrapped, failures prometheus.Counter
	running             prometheus.Gauge
}

func newMigrationMetrics(reg *prometheus.Registry) migrationMetrics {
	m := migrationMetrics{
		rewrapped: prometheus.NewCounter(prometheus.CounterOpts{Name: "tenantcrypt_migration_cipherkeys_rewrapped_total",
			Help: "Cipherkeys rewrapped by provider migrations (its rate is the migrations' speed)."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "tenantcrypt_migration_batch_failures_total",
			Help: "Migration batches that failed and are retried."}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tenantcrypt_migrations_running",
			Help: "Provider migrations this process is working on."}),
	}
	reg.MustRegister(m.rewrapped, m.failures, m.running)
	return m
}
