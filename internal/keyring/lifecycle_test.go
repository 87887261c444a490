package keyring_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/providers"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// TestSetTenantStateActsAtOnce: a state change made through the Service
// refuses the data plane of this process at once, without waiting for the
// tenant's refresh, and reports the change once.
func TestSetTenantStateActsAtOnce(t *testing.T) {
	ctx := context.Background()
	var changes []keyring.StateChange
	h := newHarness(t, keyring.Config{TenantRefresh: time.Hour, OnStateChange: func(c keyring.StateChange) { changes = append(changes, c) }})
	tn := h.tenant("acme")
	ct := h.encrypt("acme", nil, []byte("x"))
	c, changed, err := h.svc.SetTenantState(ctx, "acme", tn.Provider, keyring.StateKeyUnavailable, "the key is disabled")
	if err != nil || !changed || c.From != keyring.StateActive || c.To != keyring.StateKeyUnavailable {
		t.Fatalf("SetTenantState = %+v, %v, %v", c, changed, err)
	}
	if h.svc.CacheStats().Entries != 0 {
		t.Errorf("cached keys survived the change")
	}
	var se *keyring.TenantStateError
	if _, err := h.svc.Decrypt(ctx, "acme", nil, ct); !errors.As(err, &se) || se.Reason != "the key is disabled" {
		t.Errorf("Decrypt right after: %v, want the refusal with its reason", err)
	}
	// Same state, same reason: nothing to do.
	if _, changed, err := h.svc.SetTenantState(ctx, "acme", tn.Provider, keyring.StateKeyUnavailable, "the key is disabled"); err != nil || changed {
		t.Errorf("repeated SetTenantState = %v, %v; want no change", changed, err)
	}
	// Another provider's verdict does not apply.
	if _, _, err := h.svc.SetTenantState(ctx, "acme", kms.MustCMKRef("other"), keyring.StateActive, ""); !errors.Is(err, fault.ErrConflict) {
		t.Errorf("SetTenantState for another provider: %v, want ErrConflict", err)
	}
	if _, _, err := h.svc.SetTenantState(ctx, "nobody", tn.Provider, keyring.StateActive, ""); !errors.Is(err, keyring.ErrTenantNotFound) {
		t.Errorf("SetTenantState of a missing tenant: %v, want ErrTenantNotFound", err)
	}
	if _, _, err := h.svc.SetTenantState(ctx, "acme", tn.Provider, keyring.StateActive, "the key is enabled"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Decrypt(ctx, "acme", nil, ct); err != nil {
		t.Errorf("Decrypt once active: %v", err)
	}
	if len(changes) != 2 {
		t.Errorf("OnStateChange saw %d changes, want 2", len(changes))
	}
	// An admin's edit does not undo a state set meanwhile.
	if _, _, err := h.svc.SetTenantState(ctx, "acme", tn.Provider, keyring.StateLocked, "pending deletion"); err != nil {
		t.Fatal(err)
	}
	name := "renamed"
	if _, err := h.svc.UpdateTenant(ctx, "acme", keyring.TenantUpdate{Name: &name}); err != nil {
		t.Fatal(err)
	}
	if got, err := h.svc.Tenant(ctx, "acme"); err != nil || got.State != keyring.StateLocked || got.Name != name {
		t.Errorf("after an edit: %+v, %v; want locked and renamed", got, err)
	}
}

// refusing wraps the real providers and makes their calls fail with an
// injected error, as a KMS that refuses the key would.
type refusing struct {
	keyring.Providers
	err atomic.Pointer[error]
}

func (r *refusing) Provider(ctx context.Context, tenantID string, ref kms.Ref) (kms.Provider, error) {
	p, err := r.Providers.Provider(ctx, tenantID, ref)
	if err != nil {
		return nil, err
	}
	return refusingProvider{p, r}, nil
}

type refusingProvider struct {
	kms.Provider
	r *refusing
}

func (p refusingProvider) fault() error {
	if e := p.r.err.Load(); e != nil {
		return *e
	}
	return nil
}

func (p refusingProvider) GenerateDataKey(ctx context.Context, b kms.Binding) (*secret.Bytes, kms.Wrapped, error) {
	if err := p.fault(); err != nil {
		return nil, kms.Wrapped{}, err
	}
	return p.Provider.GenerateDataKey(ctx, b)
}

func (p refusingProvider) Unwrap(ctx context.Context, w kms.Wrapped, b kms.Binding) (*secret.Bytes, error) {
	if err := p.fault(); err != nil {
		return nil, err
	}
	return p.Provider.Unwrap(ctx, w, b)
}

// TestKeyRefusedOnUse: the first call the tenant's key refuses moves the
// tenant out of active at once; throttling and outages never do.
func TestKeyRefusedOnUse(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		kind error
		want keyring.TenantState // StateActive: unchanged
	}{
		{kms.ErrKeyDisabled, keyring.StateKeyUnavailable},
		{kms.ErrAccessDenied, keyring.StateKeyUnavailable},
		{kms.ErrKeyNotFound, keyring.StateKeyUnavailable}, // only the monitor may destroy
		{kms.ErrKeyPendingDeletion, keyring.StateLocked},
		{kms.ErrThrottled, keyring.StateActive},
		{kms.ErrUnavailable, keyring.StateActive},
	}
	for _, tc := range tests {
		t.Run(kms.Outcome(tc.kind), func(t *testing.T) {
			var mu sync.Mutex
			var notified []string
			h := newHarness(t, keyring.Config{})
			ref := &refusing{Providers: providers.New(h.internal)}
			svc, err := keyring.New(keyring.Config{Store: h.store, Providers: ref, TenantRefresh: time.Hour,
				OnKeyRefused: func(tenantID string, _ kms.Ref, _ error) {
					mu.Lock()
					notified = append(notified, tenantID)
					mu.Unlock()
				}})
			if err != nil {
				t.Fatal(err)
			}
			defer svc.Close()
			h.tenant("acme")
			ct, err := svc.Encrypt(ctx, "acme", nil, []byte("x"))
			if err != nil {
				t.Fatal(err)
			}
			svc.PurgeTenantKeys("acme") // the next decrypt asks the KMS
			injected := error(&kms.Error{Op: "Unwrap", Region: "eu-west-1", Kind: tc.kind})
			ref.err.Store(&injected)
			if _, err := svc.Decrypt(ctx, "acme", nil, ct); !errors.Is(err, tc.kind) {
				t.Fatalf("Decrypt: %v, want %v", err, tc.kind)
			}
			got, err := svc.Tenant(ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			if got.State != tc.want {
				t.Fatalf("state after the refusal: %s, want %s", got.State, tc.want)
			}
			mu.Lock()
			n := len(notified)
			mu.Unlock()
			if tc.want != keyring.StateActive {
				if !strings.Contains(got.StateReason, "eu-west-1") || !strings.Contains(got.StateReason, "Unwrap") {
					t.Errorf("reason %q does not say where and what", got.StateReason)
				}
				if n != 1 {
					t.Errorf("the monitor was told %d times, want 1", n)
				}
				var se *keyring.TenantStateError
				if _, err := svc.Encrypt(ctx, "acme", nil, []byte("y")); !errors.As(err, &se) {
					t.Errorf("Encrypt after the refusal: %v, want TenantStateError", err)
				}
			} else if n != 0 {
				t.Errorf("a %v told the monitor", tc.kind)
			}
		})
	}
}
