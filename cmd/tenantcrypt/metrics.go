package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantcrypt/tenantcrypt/internal/audit"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/lifecycle"
)

// Every metric exists from the first scrape, at zero, with the label values
// that are known at start (docs/operations.md lists them; a test compares
// that list with a fresh server's /metrics): a rate() or an alert on a
// series that appears only at its first event misses that event.

// homeRegions are the regions whose series exist from the start: the
// service's own and its DR region.
func homeRegions(region string, drs map[string]string) []string {
	regions := []string{region}
	if dr, ok := drs[region]; ok && dr != region {
		regions = append(regions, dr)
	}
	return regions
}

// keyCheckResults are the results a key check reports.
var keyCheckResults = []string{
	lifecycle.ResultOK, lifecycle.ResultDisabled, lifecycle.ResultPendingDeletion, lifecycle.ResultNotFound,
	lifecycle.ResultAccessDenied, lifecycle.ResultThrottled, lifecycle.ResultUnavailable, lifecycle.ResultError,
}

// initLifecycleSeries creates the key checks' series of the home regions
// and every tenant state change (a destroyed tenant changes no more).
func initLifecycleSeries(m *lifecycleMetrics, regions []string) {
	for _, region := range regions {
		for _, result := range keyCheckResults {
			m.checks.WithLabelValues(region, result)
		}
	}
	states := []keyring.TenantState{keyring.StateActive, keyring.StateKeyUnavailable, keyring.StateLocked, keyring.StateDestroyed}
	for _, from := range states[:3] {
		for _, to := range states {
			if from != to {
				m.changes.WithLabelValues(from.String(), to.String())
			}
		}
	}
}

// initKMSSeries creates the successful calls' series of every provider
// kind and operation (failures appear with their first occurrence: their
// outcomes are many).
func initKMSSeries(calls *prometheus.CounterVec) {
	for _, provider := range []string{providerLabel(kms.InternalRef()), cmkLabel} {
		for _, op := range []string{"GenerateDataKey", "Wrap", "Unwrap", "Describe"} {
			calls.WithLabelValues(provider, op, "ok")
		}
	}
}

// registerAuditMetrics exposes the audit writer's queue, writes and
// refusals.
func registerAuditMetrics(reg prometheus.Registerer, l *audit.Log) {
	stat := func(f func(audit.Stats) float64) func() float64 {
		return func() float64 { return f(l.Stats()) }
	}
	refusals := func(reason string, f func(audit.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tenantcrypt_audit_refusals_total",
			Help:        "Audit events, and the admin actions and per-request data-plane calls that need one, refused because the audit queue was full (queue-full) or the audit store failed (unwritable).",
			ConstLabels: prometheus.Labels{"reason": reason}},
			stat(func(s audit.Stats) float64 { return float64(f(s)) }))
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tenantcrypt_audit_queue_depth",
			Help: "Audit events waiting to be written (bounded; beyond the bound events are refused)."},
			stat(func(s audit.Stats) float64 { return float64(s.Queued) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tenantcrypt_audit_events_written_total",
			Help: "Audit events this process has stored."},
			stat(func(s audit.Stats) float64 { return float64(s.Written) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tenantcrypt_audit_writable",
			Help: "1 while the audit log's last write worked, 0 while admin actions are refused because it fails."},
			stat(func(s audit.Stats) float64 {
				if s.Writable {
					return 1
				}
				return 0
			})),
		refusals("queue-full", func(s audit.Stats) uint64 { return s.RefusedQueueFull }),
		refusals("unwritable", func(s audit.Stats) uint64 { return s.RefusedUnwritable }),
	)
}
