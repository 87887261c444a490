package keyring_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/providers"
	"github.com/tenantcrypt/tenantcrypt/internal/store/postgres/pgtest"
)

// readCounter counts the reads of tenant records, and can run a hook in the
// middle of one (between the read and its answer).
type readCounter struct {
	store
	reads  atomic.Int64
	during atomic.Pointer[func()]
}

func (c *readCounter) Tenant(ctx context.Context, id string) (keyring.Tenant, error) {
	c.reads.Add(1)
	t, err := c.store.Tenant(ctx, id)
	if f := c.during.Swap(nil); f != nil {
		(*f)()
	}
	return t, err
}

// replicas is two keyrings on one store, as two processes: a, which makes
// the changes, and b, which is told of them (or not), with a fake clock.
type replicas struct {
	h     *harness
	clock *clock
	a, b  *keyring.Service
	reads *readCounter // b's store
}

const refresh = 2 * time.Second

func newReplicas(t *testing.T) *replicas {
	t.Helper()
	r := &replicas{clock: &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}
	r.h = newHarness(t, keyring.Config{})
	r.a = r.h.svc
	r.reads = &readCounter{store: r.h.store}
	b, err := keyring.New(keyring.Config{Store: r.reads, Providers: providers.New(r.h.internal), TenantRefresh: refresh, Now: r.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	r.b = b
	return r
}

// use encrypts and decrypts on b and returns the reads of the tenant it
// took, or the error.
func (r *replicas) use(tenant string) (int64, error) {
	before := r.reads.reads.Load()
	ct, err := r.b.Encrypt(context.Background(), tenant, nil, []byte("x"))
	if err == nil {
		_, err = r.b.Decrypt(context.Background(), tenant, nil, ct)
	}
	return r.reads.reads.Load() - before, err
}

func (r *replicas) mustUse(t *testing.T, tenant string) int64 {
	t.Helper()
	n, err := r.use(tenant)
	if err != nil {
		t.Fatalf("using %s: %v", tenant, err)
	}
	return n
}

// TestChangesSeenKeepsCopies: while the feed vouches for every change, a
// copy older than TenantRefresh is used without a read; without the feed,
// or once it stops vouching, the copy is read again after TenantRefresh.
func TestChangesSeenKeepsCopies(t *testing.T) {
	tests := []struct {
		name string
		// feed sets up the feed, given when b last read the tenant and now.
		feed  func(b *keyring.Service, fetched, now time.Time)
		reads int64 // after TenantRefresh has passed
	}{
		{"no feed", func(*keyring.Service, time.Time, time.Time) {}, 1},
		{"vouching", func(b *keyring.Service, fetched, now time.Time) { b.ChangesSeen(fetched.Add(-time.Second), now) }, 0},
		{"lost", func(b *keyring.Service, fetched, now time.Time) {
			b.ChangesSeen(fetched.Add(-time.Second), now)
			b.ChangesUnseen()
		}, 1},
		{"silent for too long", func(b *keyring.Service, fetched, now time.Time) {
			b.ChangesSeen(fetched.Add(-time.Second), now.Add(-refresh))
		}, 1},
		{"listening since after the read", func(b *keyring.Service, fetched, now time.Time) {
			b.ChangesSeen(fetched.Add(time.Millisecond), now)
		}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newReplicas(t)
			r.h.tenant("acme")
			fetched := r.clock.Now()
			if n := r.mustUse(t, "acme"); n != 1 {
				t.Fatalf("first use read the tenant %d times, want 1", n)
			}
			if n := r.mustUse(t, "acme"); n != 0 {
				t.Fatalf("second use read the tenant %d times, want 0", n)
			}
			r.clock.Advance(10 * refresh)
			tc.feed(r.b, fetched, r.clock.Now())
			if n := r.mustUse(t, "acme"); n != tc.reads {
				t.Errorf("use after 10 × TenantRefresh read the tenant %d times, want %d", n, tc.reads)
			}
		})
	}
}

// TestTenantChangedActsAtOnce: a change pushed by the feed is seen at once,
// however young the copy, and the keys of a tenant that may no longer use
// them are purged without waiting for a request.
func TestTenantChangedActsAtOnce(t *testing.T) {
	ctx := context.Background()
	r := newReplicas(t)
	tn := r.h.tenant("acme")
	r.h.tenant("bystander")
	r.mustUse(t, "acme")
	r.mustUse(t, "bystander")
	r.b.ChangesSeen(r.clock.Now().Add(-time.Second), r.clock.Now())

	// A change that does not matter: one read, then the copy holds again.
	r.b.TenantChanged("acme")
	r.b.TenantChanged("nobody here") // a tenant b never used: nothing to do
	waitUntil(t, "the background read", func() bool { return r.reads.reads.Load() >= 3 })
	if n := r.mustUse(t, "acme"); n != 0 {
		t.Errorf("use after the background read read the tenant %d times, want 0", n)
	}

	// a revokes; b is told and refuses at once, though its copy is young.
	if _, _, err := r.a.SetTenantState(ctx, "acme", tn.Provider, keyring.StateKeyUnavailable, "the key is disabled"); err != nil {
		t.Fatal(err)
	}
	r.b.TenantChanged("acme")
	var se *keyring.TenantStateError
	if _, err := r.use("acme"); !errors.As(err, &se) {
		t.Fatalf("use after the pushed revocation: %v, want a TenantStateError", err)
	}
	waitUntil(t, "acme's keys purged, the bystander's kept", func() bool { return r.b.CacheStats().Entries == 1 })

	// a deletes; b is told and forgets the tenant.
	if err := r.a.DeleteTenant(ctx, "bystander"); err != nil {
		t.Fatal(err)
	}
	r.b.TenantChanged("bystander")
	waitUntil(t, "the deleted tenant's keys purged", func() bool { return r.b.CacheStats().Entries == 0 })
	if _, err := r.use("bystander"); !errors.Is(err, keyring.ErrTenantNotFound) {
		t.Errorf("use of the deleted tenant: %v, want ErrTenantNotFound", err)
	}
}

// TestChangeDuringRead: a change pushed while the tenant is being read makes
// what that read got stale too (it may predate the change).
func TestChangeDuringRead(t *testing.T) {
	r := newReplicas(t)
	r.h.tenant("acme")
	r.b.ChangesSeen(r.clock.Now().Add(-time.Second), r.clock.Now())
	push := func() { r.b.TenantChanged("acme") }
	r.reads.during.Store(&push)
	r.mustUse(t, "acme") // reads, and the change arrives meanwhile
	// The copy that read got is stale: the background read (or the next
	// use) reads the tenant once more. Had the copy been taken for fresh,
	// nobody would read it again.
	waitUntil(t, "a second read", func() bool { return r.reads.reads.Load() >= 2 })
	if n := r.mustUse(t, "acme"); n != 0 {
		t.Errorf("use after the second read read the tenant %d times, want 0", n)
	}
	if n := r.reads.reads.Load(); n != 2 {
		t.Errorf("the tenant was read %d times, want 2", n)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
	}
}

// aliases resolves a second provider Ref, aliasRef, to the internal KMS
// (with its own Ref), so that a tenant can switch providers in a test.
type aliases struct{ keyring.Providers }

func (a aliases) Provider(ctx context.Context, tenantID string, ref kms.Ref) (kms.Provider, error) {
	if ref == aliasRef {
		p, err := a.Providers.Provider(ctx, tenantID, kms.InternalRef())
		return aliased{p}, err
	}
	return a.Providers.Provider(ctx, tenantID, ref)
}

func (a aliases) Prefix(tenantID string, ref kms.Ref) string {
	return envelope.InternalPrefix(tenantID)
}

type aliased struct{ kms.Provider }

func (aliased) Ref() kms.Ref { return aliasRef }

var aliasRef = kms.MustCMKRef("alias")

// TestStaleProviderAcrossReplicas: a replica whose copy of the tenant has
// not caught up with a provider switch made by another (no feed, within
// TenantRefresh) makes its next keys under the new provider all the same:
// the store refuses keys of the provider the tenant left, and the replica
// reads the tenant again. No key of the old provider appears after the
// switch, so that a migration's final count cannot miss one.
func TestStaleProviderAcrossReplicas(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) (store, store){
		"sqlite": func(t *testing.T) (store, store) {
			h := newHarness(t, keyring.Config{})
			return h.store, h.store
		},
		"postgres": func(t *testing.T) (store, store) {
			dsn := pgtest.DSN(t)
			return pgtest.OpenDSN(t, dsn), pgtest.OpenDSN(t, dsn)
		},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			sa, sb := open(t)
			h := newHarnessOn(t, t.TempDir(), sa, keyring.Config{})
			newRing := func(st store) *keyring.Service {
				svc, err := keyring.New(keyring.Config{Store: st, Providers: aliases{providers.New(h.internal)}, TenantRefresh: time.Hour, UseBlock: 2})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(svc.Close)
				return svc
			}
			a, b := newRing(sa), newRing(sb)
			if _, err := a.CreateTenant(ctx, keyring.TenantSpec{ID: "acme", Name: "acme", Edition: keyring.EditionEnterprise}); err != nil {
				t.Fatal(err)
			}
			// b caches the tenant on the internal KMS, with a block of uses.
			if _, err := b.Encrypt(ctx, "acme", nil, []byte("before")); err != nil {
				t.Fatal(err)
			}
			if err := a.SwitchProvider(ctx, "acme", kms.InternalRef(), aliasRef); err != nil {
				t.Fatal(err)
			}
			before, err := a.CipherKeyCounts(ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			// b's block of the old active key is still good (it was
			// reserved before the switch, and counted); once spent, b
			// would rotate to a key of the provider its copy names, which
			// the store refuses: b reads the tenant again and takes the
			// new provider's active key.
			var last string
			for range 3 {
				if last, err = b.Encrypt(ctx, "acme", nil, []byte("after")); err != nil {
					t.Fatalf("Encrypt on the stale replica: %v", err)
				}
			}
			active, err := sa.ActiveCipherKey(ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			if got := keyIDOf(t, last); got != active.ID || active.Provider != aliasRef {
				t.Errorf("the stale replica encrypts under key %s, want the new provider's active key %s (%s)", got, active.ID, active.Provider)
			}
			// b's data keys: made under the new provider.
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					dk, err := b.IssuePlaintextDataKey(ctx, "acme", nil)
					if err != nil {
						t.Errorf("IssuePlaintextDataKey on the stale replica: %v", err)
						return
					}
					dk.Plaintext.Destroy()
				})
			}
			wg.Wait()
			after, err := a.CipherKeyCounts(ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			if after[kms.InternalRef()] != before[kms.InternalRef()] {
				t.Errorf("keys under the provider the tenant left: %d at the switch, %d after the stale replica's writes",
					before[kms.InternalRef()], after[kms.InternalRef()])
			}
			if after[aliasRef] < before[aliasRef]+8 {
				t.Errorf("keys under the new provider: %v, want at least 8 more than %v", after, before)
			}
		})
	}
}
