package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/lifecycle"
	"github.com/tenantcrypt/tenantcrypt/internal/migration"
)

// Lease durations of the tests: long enough never to lapse during a test,
// or zero, which lapses at once.
const (
	hold   = time.Hour
	lapsed = 0
)

func testMigrationLeases(t *testing.T, s Store) {
	ctx := t.Context()
	createTenant(t, s, "acme")
	m := insertMigration(t, s, newMigration("acme", "m1"))

	got, err := s.ClaimMigration(ctx, m.ID, "replica-a", hold)
	if err != nil {
		t.Fatalf("ClaimMigration by a: %v", err)
	}
	checkMigration(t, got, m)
	_, err = s.ClaimMigration(ctx, m.ID, "replica-b", hold)
	checkErr(t, "ClaimMigration by b while a holds it", err, migration.ErrLeased)
	_, err = s.ClaimMigration(ctx, m.ID, "replica-a", hold)
	checkErr(t, "ClaimMigration by a again", err, nil)
	checkErr(t, "RenewMigrationLease by a", s.RenewMigrationLease(ctx, m.ID, "replica-a", hold), nil)
	checkErr(t, "RenewMigrationLease by b", s.RenewMigrationLease(ctx, m.ID, "replica-b", hold), migration.ErrLeased)

	// Progress is written by the holder only.
	progress := m
	progress.Done, progress.UpdatedAt = 1000, m.UpdatedAt.Add(time.Minute)
	stale := m
	stale.Done = 1
	checkErr(t, "UpdateLeasedMigration by b", s.UpdateLeasedMigration(ctx, stale, "replica-b"), migration.ErrLeased)
	checkErr(t, "UpdateLeasedMigration by a", s.UpdateLeasedMigration(ctx, progress, "replica-a"), nil)
	checkLatest(t, s, "acme", progress)

	// b's release does not free a's lease; a's does.
	checkErr(t, "ReleaseMigrationLease by b", s.ReleaseMigrationLease(ctx, m.ID, "replica-b"), nil)
	_, err = s.ClaimMigration(ctx, m.ID, "replica-b", hold)
	checkErr(t, "ClaimMigration by b after b's release", err, migration.ErrLeased)
	checkErr(t, "ReleaseMigrationLease by a", s.ReleaseMigrationLease(ctx, m.ID, "replica-a"), nil)
	checkErr(t, "RenewMigrationLease by a after its release", s.RenewMigrationLease(ctx, m.ID, "replica-a", hold), migration.ErrLeased)
	checkErr(t, "UpdateLeasedMigration by a after its release", s.UpdateLeasedMigration(ctx, progress, "replica-a"), migration.ErrLeased)
	got, err = s.ClaimMigration(ctx, m.ID, "replica-b", lapsed)
	checkErr(t, "ClaimMigration by b after a's release", err, nil)
	checkMigration(t, got, progress)

	// b's lease lapsed at once (b died, say): a takes over, and b, should
	// it come back, can neither renew nor write.
	got, err = s.ClaimMigration(ctx, m.ID, "replica-a", hold)
	checkErr(t, "ClaimMigration by a of b's lapsed lease", err, nil)
	checkMigration(t, got, progress)
	checkErr(t, "RenewMigrationLease by b after a took over", s.RenewMigrationLease(ctx, m.ID, "replica-b", hold), migration.ErrLeased)
	checkErr(t, "UpdateLeasedMigration by b after a took over", s.UpdateLeasedMigration(ctx, stale, "replica-b"), migration.ErrLeased)

	// A lapsed lease that nobody took is still its holder's to renew.
	checkErr(t, "RenewMigrationLease by a to lapse", s.RenewMigrationLease(ctx, m.ID, "replica-a", lapsed), nil)
	checkErr(t, "RenewMigrationLease by a of its lapsed lease", s.RenewMigrationLease(ctx, m.ID, "replica-a", hold), nil)

	// Completing ends the lease: nobody can claim a completed migration.
	done := completed(progress)
	checkErr(t, "UpdateLeasedMigration to Completed", s.UpdateLeasedMigration(ctx, done, "replica-a"), nil)
	checkLatest(t, s, "acme", done)
	checkUnfinished(t, s)
	_, err = s.ClaimMigration(ctx, m.ID, "replica-b", hold)
	checkErr(t, "ClaimMigration of a completed migration", err, fault.ErrNotFound)
	checkErr(t, "RenewMigrationLease of a completed migration", s.RenewMigrationLease(ctx, m.ID, "replica-a", hold), migration.ErrLeased)

	// Unknown ids.
	_, err = s.ClaimMigration(ctx, "missing", "replica-a", hold)
	checkErr(t, "ClaimMigration(missing)", err, fault.ErrNotFound)
	checkErr(t, "RenewMigrationLease(missing)", s.RenewMigrationLease(ctx, "missing", "replica-a", hold), fault.ErrNotFound)
	missing := newMigration("acme", "missing")
	checkErr(t, "UpdateLeasedMigration(missing)", s.UpdateLeasedMigration(ctx, missing, "replica-a"), fault.ErrNotFound)
	checkErr(t, "ReleaseMigrationLease(missing)", s.ReleaseMigrationLease(ctx, "missing", "replica-a"), nil)

	// UpdateMigration, for callers without a lease, still writes, and
	// leaves the lease as it is.
	createTenant(t, s, "beta")
	b := insertMigration(t, s, newMigration("beta", "m2"))
	if _, err := s.ClaimMigration(ctx, b.ID, "replica-a", hold); err != nil {
		t.Fatal(err)
	}
	b.LastError = "written without the lease"
	checkErr(t, "UpdateMigration of a leased migration", s.UpdateMigration(ctx, b), nil)
	checkLatest(t, s, "beta", b)
	_, err = s.ClaimMigration(ctx, b.ID, "replica-b", hold)
	checkErr(t, "ClaimMigration by b after UpdateMigration", err, migration.ErrLeased)
}

// testConcurrentClaimMigration: of replicas racing for a free lease,
// exactly one gets it.
func testConcurrentClaimMigration(t *testing.T, s Store) {
	ctx := t.Context()
	createTenant(t, s, "acme")
	m := insertMigration(t, s, newMigration("acme", "m1"))
	errs := make([]error, racers)
	race(racers, func(i int) {
		_, errs[i] = s.ClaimMigration(ctx, m.ID, fmt.Sprintf("replica-%d", i), hold)
	})
	winners := 0
	for i, err := range errs {
		switch {
		case err == nil:
			winners++
		case !errors.Is(err, migration.ErrLeased):
			t.Errorf("ClaimMigration (racer %d): got %v, want nil or %v", i, err, migration.ErrLeased)
		}
	}
	if winners != 1 {
		t.Errorf("ClaimMigration: %d racers won, want exactly 1", winners)
	}
}

func dueIDs(ds []lifecycle.Due) []string {
	ids := []string{}
	for _, d := range ds {
		ids = append(ids, d.Tenant.ID)
	}
	return ids
}

func claimChecks(t *testing.T, s Store, owner string, every, lease time.Duration, limit int) []lifecycle.Due {
	t.Helper()
	ds, err := s.ClaimKeyChecks(t.Context(), owner, every, 0, 0, lease, limit)
	if err != nil {
		t.Fatalf("ClaimKeyChecks(%q, limit %d): %v", owner, limit, err)
	}
	if ds == nil {
		t.Fatalf("ClaimKeyChecks(%q, limit %d): got nil, want a slice", owner, limit)
	}
	return ds
}

func finishCheck(t *testing.T, s Store, tenantID, owner string) {
	t.Helper()
	if err := s.FinishKeyCheck(t.Context(), tenantID, owner); err != nil {
		t.Fatalf("FinishKeyCheck(%q, %q): %v", tenantID, owner, err)
	}
}

func testKeyCheckClaims(t *testing.T, s Store) {
	t.Run("shared", func(t *testing.T) {
		want := []keyring.Tenant{
			createCMKTenant(t, s, "a", keyring.StateActive),
			createCMKTenant(t, s, "b", keyring.StateKeyUnavailable),
			createCMKTenant(t, s, "c", keyring.StateLocked),
		}
		createTenant(t, s, "internal")
		createCMKTenant(t, s, "destroyed", keyring.StateDestroyed)

		first := claimChecks(t, s, "r1", hold, hold, 2)
		if got := dueIDs(first); !slices.Equal(got, []string{"a", "b"}) {
			t.Fatalf("first claim: got %q, want [a b] (never checked, in id order)", got)
		}
		for i, d := range first {
			checkTenant(t, d.Tenant, want[i])
			if d.Late != 0 {
				t.Errorf("tenant %s never checked: Late = %v, want 0", d.Tenant.ID, d.Late)
			}
		}
		if got := dueIDs(claimChecks(t, s, "r2", hold, hold, 10)); !slices.Equal(got, []string{"c"}) {
			t.Fatalf("second replica's claim: got %q, want [c] (a and b are r1's; internal and destroyed tenants are not watched)", got)
		}
		if got := dueIDs(claimChecks(t, s, "r3", hold, hold, 10)); len(got) != 0 {
			t.Fatalf("third claim: got %q, want none", got)
		}
		// Finishing makes the next check due an interval after the claim,
		// not now; a replica that does not hold the claim finishes nothing.
		finishCheck(t, s, "a", "r2")
		finishCheck(t, s, "a", "r1")
		if got := dueIDs(claimChecks(t, s, "r3", hold, hold, 10)); len(got) != 0 {
			t.Errorf("claim after finishing: got %q, want none (not due for an hour)", got)
		}
	})
	t.Run("due-again", func(t *testing.T) {
		createCMKTenant(t, s, "due", keyring.StateActive)
		if got := dueIDs(claimChecks(t, s, "r1", lapsed, hold, 10)); !slices.Equal(got, []string{"due"}) {
			t.Fatalf("first claim: got %q", got)
		}
		// Due at once, but claimed until finished.
		if got := dueIDs(claimChecks(t, s, "r2", lapsed, hold, 10)); len(got) != 0 {
			t.Fatalf("claim of an unfinished check: got %q, want none", got)
		}
		finishCheck(t, s, "due", "r1")
		again := claimChecks(t, s, "r2", hold, hold, 10)
		if got := dueIDs(again); !slices.Equal(got, []string{"due"}) {
			t.Fatalf("claim after the check finished: got %q, want [due]", got)
		}
		if again[0].Late < 0 {
			t.Errorf("Late = %v, want at least 0", again[0].Late)
		}
	})
	t.Run("lapsed", func(t *testing.T) {
		createCMKTenant(t, s, "crashed", keyring.StateActive)
		if got := dueIDs(claimChecks(t, s, "dead", hold, lapsed, 10)); !slices.Equal(got, []string{"crashed"}) {
			t.Fatalf("first claim: got %q", got)
		}
		// Its owner never finishes: the lapsed claim is taken over at once,
		// though the next check is not due for an hour.
		if got := dueIDs(claimChecks(t, s, "alive", hold, hold, 10)); !slices.Equal(got, []string{"crashed"}) {
			t.Fatalf("claim of a lapsed check: got %q, want [crashed]", got)
		}
		finishCheck(t, s, "crashed", "dead") // too late: not its claim any more
		if got := dueIDs(claimChecks(t, s, "third", hold, hold, 10)); len(got) != 0 {
			t.Errorf("claim after the dead owner's finish: got %q, want none", got)
		}
	})
	t.Run("unwatched", func(t *testing.T) {
		moved := createCMKTenant(t, s, "moved", keyring.StateActive)
		gone := createCMKTenant(t, s, "gone", keyring.StateActive)
		if got := dueIDs(claimChecks(t, s, "r1", lapsed, lapsed, 10)); !slices.Contains(got, "moved") || !slices.Contains(got, "gone") {
			t.Fatalf("first claim: got %q", got)
		}
		if err := s.SwitchTenantProvider(t.Context(), moved.ID, moved.Provider, kms.InternalRef(), time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteTenant(t.Context(), gone.ID); err != nil {
			t.Fatal(err)
		}
		for _, id := range dueIDs(claimChecks(t, s, "r2", lapsed, lapsed, 10)) {
			if id == "moved" || id == "gone" {
				t.Errorf("claim: got %s, which is no longer watched", id)
			}
		}
	})
	t.Run("idle", func(t *testing.T) {
		// Every check is due again at once (lapsed), but an idle tenant
		// (active, no replica holds its keys) only an hour after its last
		// claim.
		mine := func(ds []lifecycle.Due) []string {
			var ids []string
			for _, id := range dueIDs(ds) {
				if strings.HasPrefix(id, "idle-") {
					ids = append(ids, id)
				}
			}
			slices.Sort(ids)
			return ids
		}
		claim := func(owner string) []string {
			t.Helper()
			ds, err := s.ClaimKeyChecks(t.Context(), owner, lapsed, hold, 0, hold, 100)
			if err != nil {
				t.Fatalf("ClaimKeyChecks: %v", err)
			}
			for _, d := range ds {
				finishCheck(t, s, d.Tenant.ID, owner)
				if d.Late > time.Minute {
					t.Errorf("tenant %s claimed %v late, want about 0", d.Tenant.ID, d.Late)
				}
			}
			return mine(ds)
		}
		mark := func(id string, until time.Time) {
			t.Helper()
			if err := s.MarkKeysInUse(t.Context(), id, until); err != nil {
				t.Fatalf("MarkKeysInUse(%s): %v", id, err)
			}
		}
		createCMKTenant(t, s, "idle-quiet", keyring.StateActive)
		createCMKTenant(t, s, "idle-refused", keyring.StateKeyUnavailable)
		createCMKTenant(t, s, "idle-hot", keyring.StateActive)
		createCMKTenant(t, s, "idle-cooled", keyring.StateActive)
		createCMKTenant(t, s, "idle-waking", keyring.StateActive)
		if got, want := claim("r1"), []string{"idle-cooled", "idle-hot", "idle-quiet", "idle-refused", "idle-waking"}; !slices.Equal(got, want) {
			t.Fatalf("first claim: got %q, want %q (never checked)", got, want)
		}
		mark("idle-hot", time.Now().Add(time.Hour))
		mark("idle-cooled", time.Now().Add(-time.Second)) // its keys are gone by now
		mark("idle-hot", time.Now().Add(-time.Hour))      // marks only move later
		if got, want := claim("r2"), []string{"idle-hot", "idle-refused"}; !slices.Equal(got, want) {
			t.Errorf("second claim: got %q, want %q (held keys, or not active)", got, want)
		}
		// Keys cached again: due at once, whatever the schedule said.
		mark("idle-waking", time.Now().Add(time.Hour))
		if got, want := claim("r3"), []string{"idle-hot", "idle-refused", "idle-waking"}; !slices.Equal(got, want) {
			t.Errorf("claim after idle-waking's keys were cached: got %q, want %q", got, want)
		}
		// Without an idle interval, every tenant keeps to the interval.
		ds, err := s.ClaimKeyChecks(t.Context(), "r4", lapsed, 0, 0, hold, 100)
		if err != nil {
			t.Fatal(err)
		}
		if got := mine(ds); len(got) != 5 {
			t.Errorf("claim without an idle interval: got %q, want all five", got)
		}
		mark("no-such-tenant", time.Now().Add(time.Hour))
		createTenant(t, s, "idle-internal")
		mark("idle-internal", time.Now().Add(time.Hour))
	})
	t.Run("limit", func(t *testing.T) {
		createCMKTenant(t, s, "limited", keyring.StateActive)
		if got := claimChecks(t, s, "r1", hold, hold, 0); len(got) != 0 {
			t.Errorf("claim with limit 0: got %q", dueIDs(got))
		}
	})
}

// testConcurrentClaimKeyChecks: replicas claiming at once share the due
// checks out: each tenant goes to exactly one of them.
func testConcurrentClaimKeyChecks(t *testing.T, s Store) {
	const tenants = 40
	for i := range tenants {
		createCMKTenant(t, s, fmt.Sprintf("t%02d", i), keyring.StateActive)
	}
	var (
		mu    sync.Mutex
		owner = map[string]int{}
		errs  []error
	)
	race(8, func(i int) {
		for {
			ds, err := s.ClaimKeyChecks(t.Context(), fmt.Sprintf("replica-%d", i), hold, 0, time.Minute, hold, 3)
			mu.Lock()
			if err != nil {
				errs = append(errs, err)
			}
			for _, d := range ds {
				if prev, dup := owner[d.Tenant.ID]; dup {
					errs = append(errs, fmt.Errorf("tenant %s claimed by replicas %d and %d", d.Tenant.ID, prev, i))
				}
				owner[d.Tenant.ID] = i
			}
			mu.Unlock()
			if err != nil || len(ds) == 0 {
				return
			}
		}
	})
	for _, err := range errs {
		t.Error(err)
	}
	if len(owner) != tenants {
		t.Errorf("%d tenants claimed, want %d", len(owner), tenants)
	}
}
