package keyring

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
)

// MaxQuotaRate bounds a quota's rate (operations per second).
const MaxQuotaRate = 1e9

// RateLimitError refuses operations beyond the tenant's data-plane quota.
type RateLimitError struct {
	TenantID string
	Quota    Quota
	// RetryAfter is when the quota has room for the refused operations.
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("tenant %s is over its data-plane quota (%g operations per second, burst %d)", e.TenantID, e.Quota.Rate, e.Quota.Burst)
}

// validateQuota checks a quota a platform admin sets: the zero Quota (the
// server's defaults), or a positive rate with a burst that takes the
// largest batch.
func validateQuota(q Quota) error {
	switch {
	case q == Quota{}:
		return nil
	case !(q.Rate > 0) || q.Rate > MaxQuotaRate || math.IsInf(q.Rate, 0):
		return &fault.InputError{Field: "quota", Reason: fmt.Sprintf("rate must be above 0 and at most %g operations per second ({\"rate\": 0, \"burst\": 0} for the server's defaults)", float64(MaxQuotaRate))}
	case q.Burst < api.MaxBatchItems || q.Burst > math.MaxInt32:
		return &fault.InputError{Field: "quota", Reason: fmt.Sprintf("burst must be at least %d (the largest batch) and at most %d", api.MaxBatchItems, math.MaxInt32)}
	}
	return nil
}

// quotaOf is the quota that applies to t: its own, else the server's.
func (s *Service) quotaOf(t Tenant) Quota {
	if t.Quota != (Quota{}) {
		return t.Quota
	}
	return s.cfg.TenantQuota
}

// Admit takes n data-plane operations (a batch's items) from the tenant's
// quota, or refuses them all with a *RateLimitError saying when there will
// be room. Quotas are kept per process (per replica). A tenant that cannot
// be read is admitted: its operations report why they fail.
func (s *Service) Admit(ctx context.Context, tenantID string, n int) error {
	if s.cfg.TenantQuota == (Quota{}) && !s.quotaOverrides.Load() {
		return nil // no quota anywhere: no tenant read on the hot path
	}
	if ValidateTenantID(tenantID) != nil {
		return nil
	}
	te, snap, err := s.snapshot(ctx, tenantID)
	if err != nil {
		return nil
	}
	q := s.quotaOf(snap.t)
	if q.Rate <= 0 {
		return nil
	}
	if wait := te.bucket.take(s.cfg.Now(), q, n); wait > 0 {
		return &RateLimitError{TenantID: tenantID, Quota: q, RetryAfter: wait}
	}
	return nil
}

// bucket is a token bucket: up to Burst tokens, refilled at Rate per
// second.
type bucket struct {
	mu     sync.Mutex
	q      Quota
	tokens float64
	last   time.Time
}

// take takes n tokens, or none and returns how long until n are there.
func (b *bucket) take(now time.Time, q Quota, n int) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.q != q {
		// The first use, or a quota changed by an admin: it starts full,
		// so that a raised quota helps at once.
		b.q, b.tokens, b.last = q, float64(q.Burst), now
	}
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(float64(q.Burst), b.tokens+elapsed.Seconds()*q.Rate)
		b.last = now
	}
	if need := float64(n); b.tokens < need {
		return time.Duration((need - b.tokens) / q.Rate * float64(time.Second))
	}
	b.tokens -= float64(n)
	return 0
}
