package storetest

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

// onProvider makes ref the tenant's provider, as a provider switch does, so
// that keys wrapped by ref can be stored for it.
func onProvider(t *testing.T, s Store, tenantID string, ref kms.Ref) {
	t.Helper()
	tn := mustTenant(t, s, tenantID)
	if tn.Provider == ref {
		return
	}
	if err := s.SwitchTenantProvider(t.Context(), tenantID, tn.Provider, ref, time.Now()); err != nil {
		t.Fatalf("SwitchTenantProvider(%q, %q → %q): %v", tenantID, tn.Provider, ref, err)
	}
}

// testProviderFence: a key wrapped by another provider than the tenant's is
// refused, stored or activated, and nothing is written.
func testProviderFence(t *testing.T, s Store) {
	ctx := t.Context()
	createTenant(t, s, "acme") // on "internal"
	first := newEncryptionKey(t, "acme")
	activate(t, s, first)

	stale := newDataKey(t, "acme")
	stale.Provider = cmk(1)
	checkErr(t, "InsertCipherKey of another provider's key", s.InsertCipherKey(ctx, stale), fault.ErrConflict)
	_, err := s.CipherKey(ctx, "acme", stale.ID)
	checkErr(t, "CipherKey of the refused key", err, fault.ErrNotFound)

	next := newEncryptionKey(t, "acme")
	next.Provider = cmk(1)
	checkErr(t, "ActivateCipherKey of another provider's key", s.ActivateCipherKey(ctx, "acme", &first.ID, next), fault.ErrConflict)
	if got, err := s.ActiveCipherKey(ctx, "acme"); err != nil || got.ID != first.ID {
		t.Errorf("ActiveCipherKey after a refused activation: got %v, %v; want %s", got.ID, err, first.ID)
	}

	// The switch, as a migration makes it: from now on only the new
	// provider's keys are taken.
	onProvider(t, s, "acme", cmk(1))
	old := newDataKey(t, "acme")
	checkErr(t, "InsertCipherKey under the provider the tenant left", s.InsertCipherKey(ctx, old), fault.ErrConflict)
	oldActive := newEncryptionKey(t, "acme")
	checkErr(t, "ActivateCipherKey under the provider the tenant left", s.ActivateCipherKey(ctx, "acme", &first.ID, oldActive), fault.ErrConflict)
	checkErr(t, "InsertCipherKey under the new provider", s.InsertCipherKey(ctx, stale), nil)
	checkErr(t, "ActivateCipherKey under the new provider", s.ActivateCipherKey(ctx, "acme", &first.ID, next), nil)

	// The other errors keep their precedence.
	checkErr(t, "InsertCipherKey of a taken id", s.InsertCipherKey(ctx, stale), fault.ErrExists)
	missing := newDataKey(t, "missing")
	checkErr(t, "InsertCipherKey for no tenant", s.InsertCipherKey(ctx, missing), fault.ErrNotFound)
	counts, err := s.CountCipherKeys(ctx, "acme")
	if err != nil || len(counts) != 2 || counts[kms.InternalRef()] != 1 || counts[cmk(1)] != 2 {
		t.Errorf("CountCipherKeys: got %v, %v; want internal 1 (the first key), %s 2", counts, err, cmk(1))
	}
}

// testConcurrentProviderSwitch: writers that have not seen a provider switch
// keep storing and activating keys of the old provider while it happens.
// Once the switch (SwitchTenantProvider) has returned, none of them succeeds: the
// number of the old provider's keys, which a migration counts to know it is
// done, never grows again.
func testConcurrentProviderSwitch(t *testing.T, s Store) {
	ctx := t.Context()
	tn := createTenant(t, s, "acme")
	first := newEncryptionKey(t, "acme")
	activate(t, s, first)

	var (
		switched atomic.Bool // set once UpdateTenant has returned
		writesOK atomic.Int64
		refused  atomic.Int64
		late     atomic.Int64 // writes that began after the switch and succeeded
		mu       sync.Mutex
		errs     []error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, err)
	}
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			// Each writer goes on for a few writes after the switch.
			for post := 0; post < 5; {
				after := switched.Load()
				if after {
					post++
				}
				var err error
				if i%4 == 0 {
					// A rotation from whatever key is active.
					cur, rerr := s.ActiveCipherKey(ctx, "acme")
					if rerr != nil {
						fail(rerr)
						return
					}
					next := newEncryptionKey(t, "acme")
					err = s.ActivateCipherKey(ctx, "acme", &cur.ID, next)
				} else {
					err = s.InsertCipherKey(ctx, newDataKey(t, "acme"))
				}
				switch {
				case err == nil && after:
					late.Add(1)
				case err == nil:
					writesOK.Add(1)
				case errors.Is(err, fault.ErrConflict):
					refused.Add(1)
				default:
					fail(err)
					return
				}
			}
		})
	}
	// Let the writers get going, then switch.
	for writesOK.Load() < racers {
		time.Sleep(time.Millisecond)
	}
	if err := s.SwitchTenantProvider(ctx, tn.ID, tn.Provider, cmk(1), time.Now()); err != nil {
		t.Fatalf("SwitchTenantProvider: %v", err)
	}
	switched.Store(true)
	counted, err := s.CountCipherKeys(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for _, err := range errs {
		t.Errorf("unexpected error: %v", err)
	}
	if n := late.Load(); n > 0 {
		t.Errorf("%d writes under the old provider began after the switch had returned and succeeded", n)
	}
	after, err := s.CountCipherKeys(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if after[kms.InternalRef()] != counted[kms.InternalRef()] {
		t.Errorf("keys under the old provider: %d when the switch returned, %d later", counted[kms.InternalRef()], after[kms.InternalRef()])
	}
	if refused.Load() == 0 {
		t.Errorf("no write was refused: the writers did not overlap the switch")
	}
	// The active key is the old provider's (the switch does not rotate);
	// the next activation must be the new provider's.
	cur, err := s.ActiveCipherKey(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	next := newEncryptionKey(t, "acme")
	next.Provider = cmk(1)
	checkErr(t, "ActivateCipherKey under the new provider", s.ActivateCipherKey(ctx, "acme", &cur.ID, next), nil)
}

// testSwitchTenantProvider: the provider changes only from the expected
// one, and an admin's edit never changes it, so that an edit racing a
// switch (on another replica) cannot undo the switch.
func testSwitchTenantProvider(t *testing.T, s Store) {
	ctx := t.Context()
	orig := createTenant(t, s, "acme") // on "internal"
	at := time.Date(2026, 3, 4, 5, 6, 7, 891011121, zone)
	checkErr(t, "SwitchTenantProvider from another provider", s.SwitchTenantProvider(ctx, "acme", cmk(9), cmk(1), at), fault.ErrConflict)
	checkTenant(t, mustTenant(t, s, "acme"), orig)
	checkErr(t, "SwitchTenantProvider(missing)", s.SwitchTenantProvider(ctx, "missing", kms.InternalRef(), cmk(1), at), fault.ErrNotFound)

	stale := orig // what an admin's edit read before the switch
	checkErr(t, "SwitchTenantProvider", s.SwitchTenantProvider(ctx, "acme", kms.InternalRef(), cmk(1), at), nil)
	want := orig
	want.Provider, want.UpdatedAt = cmk(1), at
	checkTenant(t, mustTenant(t, s, "acme"), want)
	// Of two replicas switching from the same provider, one wins.
	checkErr(t, "SwitchTenantProvider from the old provider again", s.SwitchTenantProvider(ctx, "acme", kms.InternalRef(), cmk(2), at), fault.ErrConflict)

	stale.Name = "renamed after the switch"
	stale.UpdatedAt = at.Add(time.Second)
	checkErr(t, "UpdateTenant with a stale provider", s.UpdateTenant(ctx, stale), nil)
	want.Name, want.UpdatedAt = stale.Name, stale.UpdatedAt
	checkTenant(t, mustTenant(t, s, "acme"), want)
}
