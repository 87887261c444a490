package migration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

// Unit tests of the worker (run, batch, complete, the leases and the
// pacing) against the fakes of fakes_test.go. Most drive the worker in
// the test's goroutine (s.run); its waits go through Service.sleep, which
// the fixture records and returns from at once.

// leased stores a migration of acme from → to, leased to "me", with the
// tenant already switched to the target (as Migrate leaves it), and n
// cipherkeys under from.
func (f *fixture) leased(t *testing.T, from, to kms.Ref, n int, m Migration) Migration {
	t.Helper()
	f.store.addKeys(t, tenant, from, n)
	f.ring.setTenant(keyring.Tenant{ID: tenant, Edition: keyring.EditionEnterprise, Provider: to})
	m.ID, m.TenantID, m.From, m.To = "m1", tenant, from, to
	if m.State == StateUnknown {
		m.State, m.Total = StateNew, int64(n)
	}
	m.InitiatedAt, m.UpdatedAt = clock.Add(-time.Minute), clock.Add(-time.Minute)
	f.store.put(m, "me", f.store.now.Add(time.Hour))
	return m
}

// checkMoved fails unless every cipherkey of acme is wrapped by to, bound
// as it was, around the key it had.
func (f *fixture) checkMoved(t *testing.T, to kms.Ref) {
	t.Helper()
	for _, ck := range f.store.cipherKeys(tenant) {
		if ck.Provider != to {
			t.Errorf("cipherkey %s: got provider %s, want %s", ck.ID, ck.Provider, to)
			continue
		}
		key, err := unwrapBlob(to, ck.Wrapped, keyring.Binding(ck))
		if err != nil {
			t.Errorf("cipherkey %s: unwrapping with %s, bound as before: %v", ck.ID, to, err)
			continue
		}
		if !bytes.Equal(key.Reveal(), ck.ID[:]) {
			t.Errorf("cipherkey %s: the rewrapped key is not the key it had", ck.ID)
		}
		if want := "v-" + to.String(); ck.KeyVersion != want {
			t.Errorf("cipherkey %s: got key version %q, want %q (the target's)", ck.ID, ck.KeyVersion, want)
		}
	}
}

func (f *fixture) counters() (failed, rewrapped int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed, f.rewrapped
}

// TestWorkerProgress: the state machine New → InProgress → Completed as the
// store sees it, batch by batch, with Done counting the cipherkeys
// rewrapped and Total growing when more are found than planned.
func TestWorkerProgress(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		keys      int
		batch     int
		stored    Migration // State zero: New, Total = keys
		want      []string
		wantTotal int64
	}{
		{name: "one batch", keys: 5, batch: 256,
			want: []string{"InProgress 0/5", "InProgress 5/5", "Completed 5/5"}},
		{name: "batches of two", keys: 5, batch: 2,
			want: []string{"InProgress 0/5", "InProgress 2/5", "InProgress 4/5", "InProgress 5/5", "Completed 5/5"}},
		{name: "more keys than planned", keys: 5, batch: 2, stored: Migration{State: StateNew, Total: 3},
			want: []string{"InProgress 0/3", "InProgress 2/3", "InProgress 4/4", "InProgress 5/5", "Completed 5/5"}},
		{name: "resumed in progress", keys: 3, batch: 256, stored: Migration{State: StateInProgress, Total: 5, Done: 2},
			want: []string{"InProgress 5/5", "Completed 5/5"}},
		{name: "nothing to move", keys: 0, batch: 256,
			want: []string{"InProgress 0/0", "Completed 0/0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			m := f.leased(t, kms.InternalRef(), refA, tc.keys, tc.stored)
			s := f.service(t, Config{BatchSize: tc.batch})
			s.run(context.Background(), m)

			if got := f.store.progress(); !slices.Equal(got, tc.want) {
				t.Errorf("progress stored:\n got %q\nwant %q", got, tc.want)
			}
			got, owner := f.store.migration(t, m.ID)
			if got.State != StateCompleted || !got.CompletedAt.Equal(stamp) || !got.UpdatedAt.Equal(stamp) || got.LastError != "" {
				t.Errorf("migration: got %s completed %v updated %v error %q; want Completed at %v, no error",
					got.State, got.CompletedAt, got.UpdatedAt, got.LastError, stamp)
			}
			if owner != "" {
				t.Errorf("lease after completion: held by %q, want none", owner)
			}
			f.checkMoved(t, refA)
			if unwraps, _ := f.internal.calls(); unwraps != tc.keys {
				t.Errorf("unwraps at the source: got %d, want %d (one per cipherkey)", unwraps, tc.keys)
			}
			if _, wraps := f.a.calls(); wraps != tc.keys {
				t.Errorf("wraps at the target: got %d, want %d", wraps, tc.keys)
			}
			if failed, rewrapped := f.counters(); failed != 0 || rewrapped != tc.keys {
				t.Errorf("hooks: got %d failed batches, %d rewrapped; want 0, %d", failed, rewrapped, tc.keys)
			}
			if got := f.slept(); len(got) != 0 {
				t.Errorf("waits: got %v, want none (no failure, no rate)", got)
			}
		})
	}
}

// TestWorkerStampsThroughKeyProviders: completing a migration stamps the
// target as promoted and the source as demoted, at the completion's time,
// through the key-provider service (the KeyProviders interface), and a
// migration that cannot stamp does not complete.
func TestWorkerStampsThroughKeyProviders(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		from, to kms.Ref
		want     []string
	}{
		{"internal to A", kms.InternalRef(), refA, []string{
			refA.String() + " promoted " + stamp.Format(time.RFC3339Nano),
			"internal demoted " + stamp.Format(time.RFC3339Nano)}},
		{"A to B", refA, refB, []string{
			refA.String() + " demoted " + stamp.Format(time.RFC3339Nano),
			refB.String() + " promoted " + stamp.Format(time.RFC3339Nano)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			m := f.leased(t, tc.from, tc.to, 2, Migration{})
			s := f.service(t, Config{})
			s.run(context.Background(), m)
			if got := f.kps.stamped(); !slices.Equal(got, tc.want) {
				t.Errorf("stamps:\n got %q\nwant %q", got, tc.want)
			}
			f.checkMoved(t, tc.to)
		})
	}
	t.Run("stamping fails", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		m := f.leased(t, kms.InternalRef(), refA, 2, Migration{})
		f.kps.errs["Stamp"] = errBoom
		s := f.service(t, Config{})
		ctx, cancel := context.WithCancel(context.Background())
		s.sleep = func(ctx context.Context, d time.Duration) error { cancel(); return context.Canceled }
		s.run(ctx, m)
		if got, _ := f.store.migration(t, m.ID); got.State == StateCompleted {
			t.Errorf("migration: got Completed, want it not completed while the stamps fail")
		}
	})
}

// TestWorkerBatchFailure: a failed batch is recorded as the migration's
// LastError (and counted by the BatchFailed hook), what it managed to
// rewrap is kept, and the next batch retries the rest and clears the
// error.
func TestWorkerBatchFailure(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		inject  func(f *fixture)
		want    []string
		wantErr string // in the recorded LastError
	}{
		{name: "one unwrap fails",
			inject: func(f *fixture) {
				f.internal.unwrapErrs = []error{&kms.Error{Op: "Unwrap", Provider: "internal", Kind: kms.ErrUnavailable}}
			},
			want:    []string{"InProgress 0/4", "InProgress 3/4 error", "InProgress 4/4", "Completed 4/4"},
			wantErr: "unwrapping cipherkey"},
		{name: "reading the cipherkeys fails",
			inject:  func(f *fixture) { f.store.listErrs = []error{errBoom} },
			want:    []string{"InProgress 0/4", "InProgress 0/4 error", "InProgress 4/4", "Completed 4/4"},
			wantErr: "reading cipherkeys: boom"},
		{name: "storing the batch fails",
			inject:  func(f *fixture) { f.store.fail("RewrapCipherKeys", fmt.Errorf("%w (%w)", errBoom, errOnce)) },
			want:    []string{"InProgress 0/4", "InProgress 0/4 error", "InProgress 4/4", "Completed 4/4"},
			wantErr: "storing rewrapped cipherkeys: boom"},
		{name: "the target is gone",
			inject: func(f *fixture) {
				f.providers.mu.Lock()
				delete(f.providers.kmss, refA)
				f.providers.mu.Unlock()
			},
			wantErr: "target provider: ",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			m := f.leased(t, kms.InternalRef(), refA, 4, Migration{})
			tc.inject(f)
			s := f.service(t, Config{})
			var lastErr string
			if tc.want == nil {
				// A failure that lasts: look at the first, then stop.
				ctx, cancel := context.WithCancel(context.Background())
				s.sleep = func(ctx context.Context, d time.Duration) error {
					got, _ := f.store.migration(t, m.ID)
					lastErr = got.LastError
					cancel()
					return context.Canceled
				}
				s.run(ctx, m)
			} else {
				s.run(context.Background(), m)
				if got := f.store.progress(); !slices.Equal(got, tc.want) {
					t.Errorf("progress stored:\n got %q\nwant %q", got, tc.want)
				}
				f.store.mu.Lock()
				lastErr = f.store.history[1].LastError
				f.store.mu.Unlock()
				f.checkMoved(t, refA)
				if got := f.slept(); !slices.Equal(got, []time.Duration{time.Second}) {
					t.Errorf("waits: got %v, want one backoff of 1s", got)
				}
			}
			if !strings.Contains(lastErr, tc.wantErr) {
				t.Errorf("recorded error: got %q, want it to say %q", lastErr, tc.wantErr)
			}
			if failed, _ := f.counters(); failed != 1 {
				t.Errorf("BatchFailed hook: got %d calls, want 1", failed)
			}
		})
	}
}

// TestWorkerBackoff: the waits between failed batches double up to
// RetryMax, and start over after a batch that works.
func TestWorkerBackoff(t *testing.T) {
	t.Parallel()
	s := time.Second
	for _, tc := range []struct {
		name     string
		retryMax time.Duration
		keys     int
		fails    []error // of the reads of cipherkeys, in order
		want     []time.Duration
	}{
		{name: "doubling to the default bound", keys: 1,
			fails: []error{errBoom, errBoom, errBoom, errBoom, errBoom, errBoom, errBoom},
			want:  []time.Duration{1 * s, 2 * s, 4 * s, 8 * s, 16 * s, 30 * s, 30 * s}},
		{name: "starting over after a batch that works", retryMax: 5 * s, keys: 2,
			fails: []error{errBoom, errBoom, errBoom, errBoom, nil, errBoom},
			want:  []time.Duration{1 * s, 2 * s, 4 * s, 5 * s, 1 * s}},
		{name: "a bound below a second", retryMax: 300 * time.Millisecond, keys: 1,
			fails: []error{errBoom, errBoom, errBoom},
			want:  []time.Duration{300 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			m := f.leased(t, kms.InternalRef(), refA, tc.keys, Migration{})
			f.store.listErrs = tc.fails
			svc := f.service(t, Config{RetryMax: tc.retryMax, BatchSize: 1})
			svc.run(context.Background(), m)
			if got := f.slept(); !slices.Equal(got, tc.want) {
				t.Errorf("backoffs: got %v, want %v", got, tc.want)
			}
			if got, _ := f.store.migration(t, m.ID); got.State != StateCompleted {
				t.Errorf("state: got %s, want Completed", got.State)
			}
		})
	}
}

// TestWorkerPasses: a cipherkey that a lost compare-and-swap left behind is
// found by the next pass over the keys, and a completion that fails is
// retried; neither counts anything twice.
func TestWorkerPasses(t *testing.T) {
	t.Parallel()
	t.Run("skipped key", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		m := f.leased(t, kms.InternalRef(), refA, 3, Migration{})
		f.store.skipOnce[f.store.cipherKeys(tenant)[1].ID] = true
		s := f.service(t, Config{})
		s.run(context.Background(), m)
		want := []string{"InProgress 0/3", "InProgress 2/3", "InProgress 3/3", "Completed 3/3"}
		if got := f.store.progress(); !slices.Equal(got, want) {
			t.Errorf("progress stored:\n got %q\nwant %q", got, want)
		}
		f.checkMoved(t, refA)
	})
	t.Run("completion fails once", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		m := f.leased(t, kms.InternalRef(), refA, 3, Migration{})
		s := f.service(t, Config{})
		// Counted once by the planner (not here: the migration is stored
		// already), so the first count is the completion's.
		f.ring.errs["CipherKeyCounts"] = fmt.Errorf("%w (%w)", errBoom, errOnce)
		s.run(context.Background(), m)
		want := []string{"InProgress 0/3", "InProgress 3/3", "Completed 3/3"}
		if got := f.store.progress(); !slices.Equal(got, want) {
			t.Errorf("progress stored:\n got %q\nwant %q", got, want)
		}
		if got := f.slept(); !slices.Equal(got, []time.Duration{time.Second}) {
			t.Errorf("waits: got %v, want one of 1s", got)
		}
	})
	t.Run("a key under another provider remains", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		m := f.leased(t, kms.InternalRef(), refA, 2, Migration{})
		// One the worker's reads do not return, but the count does.
		f.ring.extra = map[kms.Ref]int{refB: 1}
		s := f.service(t, Config{})
		ctx, cancel := context.WithCancel(context.Background())
		s.sleep = func(ctx context.Context, d time.Duration) error { cancel(); return context.Canceled }
		s.run(ctx, m)
		if got, _ := f.store.migration(t, m.ID); got.State != StateInProgress || got.Done != 2 {
			t.Errorf("migration: got %s %d/%d, want InProgress 2/2 (not completed while a key remains)", got.State, got.Done, got.Total)
		}
		if got := f.kps.stamped(); len(got) != 0 {
			t.Errorf("stamps: got %q, want none", got)
		}
	})
}

// TestWorkerEnsureSwitched: a migration resumed after a crash between
// recording it and switching the tenant switches the tenant first; one
// whose tenant was moved elsewhere meanwhile goes no further.
func TestWorkerEnsureSwitched(t *testing.T) {
	t.Parallel()
	t.Run("tenant still on the source", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		m := f.leased(t, kms.InternalRef(), refA, 2, Migration{})
		f.ring.setTenant(keyring.Tenant{ID: tenant, Edition: keyring.EditionEnterprise, Provider: kms.InternalRef()})
		s := f.service(t, Config{})
		s.run(context.Background(), m)
		if got, want := f.ring.switches, []string{"internal→" + refA.String()}; !slices.Equal(got, want) {
			t.Errorf("switches: got %q, want %q", got, want)
		}
		if got, _ := f.store.migration(t, m.ID); got.State != StateCompleted {
			t.Errorf("state: got %s, want Completed", got.State)
		}
		f.checkMoved(t, refA)
	})
	t.Run("tenant on neither", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		m := f.leased(t, kms.InternalRef(), refA, 2, Migration{})
		f.ring.setTenant(keyring.Tenant{ID: tenant, Edition: keyring.EditionEnterprise, Provider: refB})
		s := f.service(t, Config{})
		ctx, cancel := context.WithCancel(context.Background())
		s.sleep = func(ctx context.Context, d time.Duration) error { cancel(); return context.Canceled }
		s.run(ctx, m)
		got, _ := f.store.migration(t, m.ID)
		if got.State != StateInProgress || got.Done != 0 || !strings.Contains(got.LastError, "neither the migration's source nor its target") {
			t.Errorf("migration: got %s %d/%d error %q; want InProgress 0/2 and the reason", got.State, got.Done, got.Total, got.LastError)
		}
		if p := f.ring.provider(t, tenant); p != refB || len(f.ring.switches) != 0 {
			t.Errorf("tenant: got provider %s after switches %q, want %s untouched", p, f.ring.switches, refB)
		}
		if unwraps, _ := f.internal.calls(); unwraps != 0 {
			t.Errorf("unwraps: got %d, want 0", unwraps)
		}
	})
}

// TestWorkerLosesLease: a worker whose lease another replica took over
// stops at its next write, without completing or stamping anything.
func TestWorkerLosesLease(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		stealAfter int // writes of the worker that succeed; 0: none
		want       []string
	}{
		{"before it starts", 0, nil},
		{"after a batch", 2, []string{"InProgress 0/3", "InProgress 1/3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			m := f.leased(t, kms.InternalRef(), refA, 3, Migration{})
			if tc.stealAfter == 0 {
				f.store.mu.Lock()
				f.store.find(m.ID).owner = "thief"
				f.store.mu.Unlock()
			}
			f.store.stealAfter = tc.stealAfter
			s := f.service(t, Config{BatchSize: 1})
			s.run(context.Background(), m)
			if got := f.store.progress(); !slices.Equal(got, tc.want) {
				t.Errorf("progress stored:\n got %q\nwant %q", got, tc.want)
			}
			got, owner := f.store.migration(t, m.ID)
			if got.State == StateCompleted || owner != "thief" {
				t.Errorf("migration: got %s leased to %q, want not completed, still the thief's", got.State, owner)
			}
			if got := f.kps.stamped(); len(got) != 0 {
				t.Errorf("stamps: got %q, want none", got)
			}
		})
	}
}

// TestMigrateRunsToCompletion: Migrate claims the migration it records and
// its worker, in the background, moves every cipherkey and completes it.
func TestMigrateRunsToCompletion(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.store.addKeys(t, tenant, kms.InternalRef(), 7)
	s := f.service(t, Config{BatchSize: 3})
	m, err := s.Migrate(context.Background(), tenant, fpA)
	if err != nil {
		t.Fatal(err)
	}
	f.waitStopped(t)
	got, err := s.Latest(context.Background(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != m.ID || got.State != StateCompleted || got.Done != 7 || got.Total != 7 {
		t.Errorf("latest migration: got %s %s %d/%d, want %s Completed 7/7", got.ID, got.State, got.Done, got.Total, m.ID)
	}
	if !slices.Equal(f.store.claims, []string{"me"}) {
		t.Errorf("claims: got %q, want one by this replica", f.store.claims)
	}
	f.checkMoved(t, refA)
	if n := f.workersStarted(); n != 1 {
		t.Errorf("workers started: got %d, want 1", n)
	}
}

// TestResume: a replica takes over an unfinished migration once the lease
// of the replica that worked on it lapses (it died), and not before.
func TestResume(t *testing.T) {
	t.Parallel()
	t.Run("lapsed lease", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		m := f.leased(t, kms.InternalRef(), refA, 3, Migration{State: StateInProgress, Total: 3, Done: 1})
		f.store.mu.Lock()
		f.store.find(m.ID).owner = "dead"
		f.store.find(m.ID).leasedUntil = f.store.now.Add(10 * time.Second)
		f.store.mu.Unlock()
		s := f.service(t, Config{Owner: "b"})
		if err := s.Resume(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := f.workersStarted(); n != 0 || len(f.store.claims) != 0 {
			t.Fatalf("while the lease holds: %d workers started, claims %q; want none", n, f.store.claims)
		}
		f.store.mu.Lock()
		f.store.now = f.store.now.Add(11 * time.Second)
		f.store.mu.Unlock()
		if err := s.Resume(context.Background()); err != nil {
			t.Fatal(err)
		}
		f.waitStopped(t)
		got, owner := f.store.migration(t, m.ID)
		if got.State != StateCompleted || got.Done != 4 || owner != "" {
			t.Errorf("migration: got %s %d/%d leased to %q, want Completed 4/4 (1 before the crash, 3 after), no lease", got.State, got.Done, got.Total, owner)
		}
		if !slices.Equal(f.store.claims, []string{"b"}) {
			t.Errorf("claims: got %q, want [b]", f.store.claims)
		}
		f.checkMoved(t, refA)
	})
	t.Run("worker running here", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.leased(t, kms.InternalRef(), refA, 1, Migration{})
		s := f.service(t, Config{})
		s.mu.Lock()
		s.running[tenant] = true
		s.mu.Unlock()
		if err := s.Resume(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(f.store.claims) != 0 {
			t.Errorf("claims: got %q, want none (this process works on the tenant)", f.store.claims)
		}
	})
	t.Run("store errors", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.leased(t, kms.InternalRef(), refA, 1, Migration{})
		s := f.service(t, Config{})
		f.store.fail("ClaimMigration", errBoom)
		if err := s.Resume(context.Background()); outcome(err) != "store error" || !errors.Is(err, errBoom) || !strings.Contains(err.Error(), "claiming a migration") {
			t.Errorf("Resume with claims failing: got %v, want a store error claiming a migration", err)
		}
		f.store.fail("UnfinishedMigrations", errBoom)
		if err := s.Resume(context.Background()); outcome(err) != "store error" || !strings.Contains(err.Error(), "listing unfinished migrations") {
			t.Errorf("Resume with the list failing: got %v, want a store error listing unfinished migrations", err)
		}
		if n := f.workersStarted(); n != 0 {
			t.Errorf("workers started: got %d, want 0", n)
		}
	})
}

// TestWorkerLeaseEnds: a running worker stops when a renewal finds another
// replica's lease, and one stopped by Close gives its lease up.
func TestWorkerLeaseEnds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		stop      func(f *fixture, s *Service, id string)
		wantOwner string
	}{
		{"taken over", func(f *fixture, s *Service, id string) {
			f.store.mu.Lock()
			f.store.find(id).owner = "thief"
			f.store.mu.Unlock()
		}, "thief"},
		{"closed", func(f *fixture, s *Service, id string) { s.Close() }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.store.addKeys(t, tenant, kms.InternalRef(), 1)
			unwrapping := make(chan struct{}, 1)
			f.internal.unwrapping = unwrapping // Unwrap waits until the worker ends
			// Renewals every 10 ms (LeaseTTL/3), so that the take-over is
			// seen soon; the fake store's clock stands still, so the lease
			// itself never lapses.
			s := f.service(t, Config{LeaseTTL: 30 * time.Millisecond})
			m, err := s.Migrate(context.Background(), tenant, fpA)
			if err != nil {
				t.Fatal(err)
			}
			<-unwrapping
			tc.stop(f, s, m.ID)
			f.waitStopped(t)
			got, owner := f.store.migration(t, m.ID)
			if got.State == StateCompleted || owner != tc.wantOwner {
				t.Errorf("migration: got %s leased to %q, want not completed, leased to %q", got.State, owner, tc.wantOwner)
			}
		})
	}
}

// TestPacer: the rate cap spaces the calls evenly from the first, without
// letting idle time build up a burst.
func TestPacer(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	for _, tc := range []struct {
		name  string
		rate  float64
		calls []time.Duration // when each call comes, from the start
		want  []time.Duration // the waits asked for
	}{
		{name: "no cap", rate: 0, calls: []time.Duration{0, 0, 0, 0}},
		{name: "4 per second at once", rate: 4, calls: []time.Duration{0, 0, 0, 0, 0},
			want: []time.Duration{250 * ms, 500 * ms, 750 * ms, 1000 * ms}},
		{name: "half a call per second", rate: 0.5, calls: []time.Duration{0, 0}, want: []time.Duration{2000 * ms}},
		{name: "slower than the cap", rate: 4, calls: []time.Duration{0, 300 * ms, 600 * ms}},
		{name: "after a pause", rate: 4, calls: []time.Duration{0, 0, 10_000 * ms, 10_000 * ms},
			want: []time.Duration{250 * ms, 250 * ms}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var now time.Time
			var got []time.Duration
			p := newPacer(tc.rate, func(ctx context.Context, d time.Duration) error {
				got = append(got, d)
				return nil
			})
			start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			p.now = func() time.Time { return now }
			for i, at := range tc.calls {
				now = start.Add(at)
				if err := p.wait(context.Background()); err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("waits: got %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("ended context", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		for _, rate := range []float64{0, 4} {
			if err := newPacer(rate, sleepCtx).wait(ctx); !errors.Is(err, context.Canceled) {
				t.Errorf("rate %v: got %v, want context.Canceled", rate, err)
			}
		}
	})
}

// TestWorkerRate: the worker asks the pacer once per cipherkey, so Rate
// caps the cipherkeys rewrapped per second.
func TestWorkerRate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		rate      float64
		wantWaits int
	}{
		{"no cap", 0, 0},
		// One per 100 s: every call after the first waits.
		{"capped", 0.01, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			m := f.leased(t, kms.InternalRef(), refA, 5, Migration{})
			s := f.service(t, Config{Rate: tc.rate, BatchSize: 2})
			s.run(context.Background(), m)
			got := f.slept()
			if len(got) != tc.wantWaits {
				t.Fatalf("waits: got %v, want %d", got, tc.wantWaits)
			}
			for i, d := range got {
				if limit := time.Duration(i+1) * 100 * time.Second; d <= 0 || d > limit {
					t.Errorf("wait %d: got %v, want in (0, %v]", i, d, limit)
				}
			}
			f.checkMoved(t, refA)
		})
	}
}
