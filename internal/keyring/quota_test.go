package keyring_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
)

// TestAdmit: the server's quota applies to every tenant, each on its own;
// a batch takes its items at once or not at all; the refusal says when
// there is room; a tenant's own quota overrides the server's, and the
// zero Quota gives the defaults back.
func TestAdmit(t *testing.T) {
	clock := &clock{t: time.Unix(1e9, 0)}
	h := newHarness(t, keyring.Config{Now: clock.Now, TenantQuota: keyring.Quota{Rate: 100, Burst: 1000}})
	ctx := context.Background()
	h.tenant("noisy")
	h.tenant("quiet")

	admit := func(tenant string, n int) error { t.Helper(); return h.svc.Admit(ctx, tenant, n) }
	refused := func(err error) *keyring.RateLimitError {
		t.Helper()
		var rl *keyring.RateLimitError
		if !errors.As(err, &rl) {
			t.Fatalf("got %v, want a *RateLimitError", err)
		}
		return rl
	}
	if err := admit("noisy", 1000); err != nil {
		t.Fatalf("a full burst: %v", err)
	}
	rl := refused(admit("noisy", 1))
	if rl.RetryAfter <= 0 || rl.RetryAfter > 10*time.Millisecond+time.Millisecond {
		t.Errorf("RetryAfter for 1 operation at 100/s = %v, want 10ms", rl.RetryAfter)
	}
	if err := admit("quiet", 1000); err != nil {
		t.Errorf("another tenant's quota is its own: %v", err)
	}
	clock.Advance(5 * time.Second) // 500 tokens back
	if err := admit("noisy", 500); err != nil {
		t.Errorf("after 5 s at 100/s, 500: %v", err)
	}
	rl = refused(admit("noisy", 1000))
	if want := 10 * time.Second; rl.RetryAfter != want {
		t.Errorf("RetryAfter for 1000 with none left = %v, want %v", rl.RetryAfter, want)
	}
	clock.Advance(time.Hour)
	if err := admit("noisy", 1000); err != nil {
		t.Errorf("the bucket never holds more than the burst, and refills to it: %v", err)
	}
	refused(admit("noisy", 1))

	// The tenant's own quota.
	own := keyring.Quota{Rate: 1e6, Burst: 1000}
	if _, err := h.svc.UpdateTenant(ctx, "noisy", keyring.TenantUpdate{Quota: &own}); err != nil {
		t.Fatal(err)
	}
	if err := admit("noisy", 1000); err != nil {
		t.Errorf("with its own quota, which starts full: %v", err)
	}
	refused(admit("noisy", 1000))
	clock.Advance(time.Millisecond) // 1,000 tokens at 10^6/s
	if err := admit("noisy", 1000); err != nil {
		t.Errorf("with its own quota, 1 ms later: %v", err)
	}
	if _, err := h.svc.UpdateTenant(ctx, "noisy", keyring.TenantUpdate{Quota: &keyring.Quota{}}); err != nil {
		t.Fatal(err)
	}
	got, _ := h.svc.Tenant(ctx, "noisy")
	if got.Quota != (keyring.Quota{}) {
		t.Errorf("after {0, 0}, the tenant's quota = %+v, want the defaults", got.Quota)
	}
	if err := admit("noisy", 1000); err != nil { // back at 100/s, full
		t.Errorf("back to the defaults: %v", err)
	}
	refused(admit("noisy", 1))

	// Unknown tenants are admitted: their operations say what is wrong.
	if err := admit("nobody", 1); err != nil {
		t.Errorf("an unknown tenant: %v", err)
	}
}

func TestQuotaValidation(t *testing.T) {
	h := newHarness(t, keyring.Config{})
	ctx := context.Background()
	h.tenant("acme")
	for _, q := range []keyring.Quota{
		{Rate: 100, Burst: 999}, {Rate: 0, Burst: 1000}, {Rate: -1, Burst: 1000}, {Rate: 2e9, Burst: 1000}, {Rate: 10, Burst: 0},
	} {
		var ie *fault.InputError
		if _, err := h.svc.UpdateTenant(ctx, "acme", keyring.TenantUpdate{Quota: &q}); !errors.As(err, &ie) || ie.Field != "quota" {
			t.Errorf("UpdateTenant with quota %+v: got %v, want an InputError for quota", q, err)
		}
		if _, err := h.svc.CreateTenant(ctx, keyring.TenantSpec{ID: "new", Name: "n", Edition: keyring.EditionBusiness, Quota: q}); err == nil {
			t.Errorf("CreateTenant with quota %+v: no error", q)
		}
	}
	// Without any quota, Admit never refuses.
	if err := h.svc.Admit(ctx, "acme", 1_000_000); err != nil {
		t.Errorf("Admit without quotas: %v", err)
	}
}
