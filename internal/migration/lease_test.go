package migration_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/migration"
)

// unreachable is a migration.Store that a test can cut off, as a replica
// that lost its database connection (or froze) would be.
type unreachable struct {
	migration.Store
	down atomic.Bool
}

var errUnreachable = errors.New("connection refused")

func (u *unreachable) ClaimMigration(ctx context.Context, id, owner string, ttl time.Duration) (migration.Migration, error) {
	if u.down.Load() {
		return migration.Migration{}, errUnreachable
	}
	return u.Store.ClaimMigration(ctx, id, owner, ttl)
}

func (u *unreachable) RenewMigrationLease(ctx context.Context, id, owner string, ttl time.Duration) error {
	if u.down.Load() {
		return errUnreachable
	}
	return u.Store.RenewMigrationLease(ctx, id, owner, ttl)
}

func (u *unreachable) ReleaseMigrationLease(ctx context.Context, id, owner string) error {
	if u.down.Load() {
		return errUnreachable
	}
	return u.Store.ReleaseMigrationLease(ctx, id, owner)
}

func (u *unreachable) UpdateLeasedMigration(ctx context.Context, m migration.Migration, owner string) error {
	if u.down.Load() {
		return errUnreachable
	}
	return u.Store.UpdateLeasedMigration(ctx, m, owner)
}

func (u *unreachable) UnfinishedMigrations(ctx context.Context) ([]migration.Migration, error) {
	if u.down.Load() {
		return nil, errUnreachable
	}
	return u.Store.UnfinishedMigrations(ctx)
}

func (u *unreachable) RewrapCipherKeys(ctx context.Context, rs []migration.Rewrap) (int, error) {
	if u.down.Load() {
		return 0, errUnreachable
	}
	return u.Store.RewrapCipherKeys(ctx, rs)
}

// workers counts the workers running in all replicas together and keeps
// the most there ever were at once.
type workers struct {
	now, most atomic.Int64
	started   map[string]*atomic.Int64
	mu        sync.Mutex
}

func (w *workers) hooks(replica string) migration.Hooks {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started == nil {
		w.started = map[string]*atomic.Int64{}
	}
	n := &atomic.Int64{}
	w.started[replica] = n
	return migration.Hooks{Running: func(d int) {
		cur := w.now.Add(int64(d))
		if d > 0 {
			n.Add(1)
		}
		for {
			most := w.most.Load()
			if cur <= most || w.most.CompareAndSwap(most, cur) {
				break
			}
		}
	}}
}

func (w *workers) startedBy(replica string) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.started[replica].Load()
}

// TestLeaseTakeover: a migration started on one replica is worked on by
// that one only; when it stops (gracefully, or by losing the database) the
// other takes it over and completes it, and at no time do two work on it.
func TestLeaseTakeover(t *testing.T) {
	for _, crash := range []bool{false, true} {
		name := "graceful stop"
		if crash {
			name = "lost its database"
		}
		t.Run(name, func(t *testing.T) {
			e := newBenchEnv(t)
			// The lease must outlast a renewal delayed by a loaded machine
			// (-race, parallel packages): with 300 ms, a late renewal let b
			// take over legitimately, and the test took it for two owners.
			// 1,200 keys at 200/s keep a busy well past b's 2 TTL look.
			e.keys = 1200
			tenant := e.seed(t, "")
			var w workers
			const ttl = time.Second
			newReplica := func(name string, st migration.Store) *migration.Service {
				s, err := migration.New(migration.Config{
					Store: st, KeyProviders: e.keyProviders, Keyring: e.ring, Providers: e.providers,
					Rate: 200, BatchSize: 50, Owner: name, LeaseTTL: ttl, RetryMax: 50 * time.Millisecond,
					Hooks: w.hooks(name),
				})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(s.Close)
				return s
			}
			cut := &unreachable{Store: e.store}
			a := newReplica("a", cut)
			b := newReplica("b", e.store)
			a.Start()
			if _, err := a.Migrate(context.Background(), tenant, keyprovider.Fingerprint(e.keyA)); err != nil {
				t.Fatal(err)
			}
			// Let a make some progress: it is a's, and b, looking for
			// migrations to take over every TTL/2, keeps off it.
			b.Start()
			deadline := time.Now().Add(time.Minute)
			for {
				m, err := b.Latest(context.Background(), tenant)
				if err != nil {
					t.Fatal(err)
				}
				if m.Done > 0 {
					time.Sleep(2 * ttl) // b looks a few times
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no progress within a minute")
				}
				time.Sleep(5 * time.Millisecond)
			}
			if n := w.startedBy("b"); n != 0 {
				t.Fatalf("b started %d workers while a held the lease", n)
			}
			before, _ := b.Latest(context.Background(), tenant)
			if before.State == migration.StateCompleted {
				t.Fatal("a completed the migration before the handover: slow it down")
			}
			if crash {
				cut.down.Store(true)
			} else {
				a.Close()
			}
			m := e.wait(t, tenant)
			if w.startedBy("b") == 0 {
				t.Errorf("b never worked on the migration; it completed anyway?")
			}
			if m.Done < before.Done {
				t.Errorf("progress went back from %d to %d", before.Done, m.Done)
			}
			if most := w.most.Load(); most > 1 {
				t.Errorf("%d workers ran at once, want at most 1", most)
			}
			counts, err := e.ring.CipherKeyCounts(context.Background(), tenant)
			if err != nil {
				t.Fatal(err)
			}
			if len(counts) != 1 || counts[kms.MustCMKRef(keyprovider.Fingerprint(e.keyA))] < e.keys {
				t.Errorf("cipherkeys after the migration: %v, want all %d under the target", counts, e.keys)
			}
		})
	}
}
