package storetest

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/migration"
)

// cmk is the provider Ref of the n-th test key provider.
func cmk(n int) kms.Ref { return kms.MustCMKRef(fingerprint(n)) }

// newMigration returns an unfinished migration of the tenant from the
// internal KMS to a customer managed key, with every field set but
// CompletedAt.
func newMigration(tenantID, id string) migration.Migration {
	return migration.Migration{
		ID:          id,
		TenantID:    tenantID,
		From:        kms.InternalRef(),
		To:          cmk(1),
		FromARN:     "tenantcrypt:internal",
		ToARN:       "arn:aws:kms:eu-west-1:111122223333:key/mrk-" + fingerprint(1),
		State:       migration.StateInProgress,
		Total:       1234,
		Done:        567,
		InitiatedAt: time.Date(2025, 8, 9, 10, 11, 12, 131415161, zone),
		UpdatedAt:   time.Date(2025, 8, 9, 10, 15, 0, 999999999, zone),
		LastError:   "unwrapping cipherkey 00ff: AccessDeniedException",
	}
}

// completed returns m as completed at its UpdatedAt.
func completed(m migration.Migration) migration.Migration {
	m.State, m.CompletedAt, m.Done, m.LastError = migration.StateCompleted, m.UpdatedAt, m.Total, ""
	return m
}

func insertMigration(t *testing.T, s Store, m migration.Migration) migration.Migration {
	t.Helper()
	if err := s.InsertMigration(t.Context(), m); err != nil {
		t.Fatalf("InsertMigration(%q, %q): %v", m.TenantID, m.ID, err)
	}
	return m
}

// checkMigration compares every field.
func checkMigration(t *testing.T, got, want migration.Migration) {
	t.Helper()
	if got.ID != want.ID || got.TenantID != want.TenantID || got.From != want.From || got.To != want.To ||
		got.FromARN != want.FromARN || got.ToARN != want.ToARN || got.State != want.State ||
		got.Total != want.Total || got.Done != want.Done || got.LastError != want.LastError {
		t.Errorf("migration:\ngot  %+v\nwant %+v", got, want)
	}
	what := "migration " + want.TenantID + "/" + want.ID
	checkTime(t, what+" InitiatedAt", got.InitiatedAt, want.InitiatedAt)
	checkOptionalTime(t, what+" CompletedAt", got.CompletedAt, want.CompletedAt)
	checkTime(t, what+" UpdatedAt", got.UpdatedAt, want.UpdatedAt)
}

// checkMigrations compares lists, order included.
func checkMigrations(t *testing.T, what string, got, want []migration.Migration) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: got nil, want an empty slice", what)
	}
	ids := func(ms []migration.Migration) []string {
		var s []string
		for _, m := range ms {
			s = append(s, m.TenantID+"/"+m.ID)
		}
		return s
	}
	if g, w := ids(got), ids(want); !slices.Equal(g, w) {
		t.Fatalf("%s: got %q, want %q", what, g, w)
	}
	for i := range want {
		checkMigration(t, got[i], want[i])
	}
}

// checkLatest fails unless the tenant's latest migration is want.
func checkLatest(t *testing.T, s Store, tenantID string, want migration.Migration) {
	t.Helper()
	got, err := s.LatestMigration(t.Context(), tenantID)
	if err != nil {
		t.Fatalf("LatestMigration(%q): %v", tenantID, err)
	}
	checkMigration(t, got, want)
}

func checkUnfinished(t *testing.T, s Store, want ...migration.Migration) {
	t.Helper()
	got, err := s.UnfinishedMigrations(t.Context())
	if err != nil {
		t.Fatalf("UnfinishedMigrations: %v", err)
	}
	if want == nil {
		want = []migration.Migration{}
	}
	checkMigrations(t, "UnfinishedMigrations", got, want)
}

func testMigrationRoundTrip(t *testing.T, s Store) {
	tests := []struct {
		name   string
		mutate func(m *migration.Migration)
	}{
		{"in-progress-every-field", func(*migration.Migration) {}},
		{"new", func(m *migration.Migration) {
			m.State, m.Done, m.LastError = migration.StateNew, 0, ""
			m.UpdatedAt = m.InitiatedAt
		}},
		{"completed", func(m *migration.Migration) { *m = completed(*m) }},
		{"completed-with-error", func(m *migration.Migration) {
			m.State, m.CompletedAt = migration.StateCompleted, time.Date(2025, 8, 10, 0, 0, 0, 1000, time.UTC)
			m.LastError = "not started: concurrent update"
		}},
		{"completed-at-epoch-is-not-never", func(m *migration.Migration) {
			m.State, m.CompletedAt = migration.StateCompleted, time.Unix(0, 0).In(zone)
		}},
		{"zero-counts", func(m *migration.Migration) { m.Total, m.Done = 0, 0 }},
		{"max-counts", func(m *migration.Migration) { m.Total, m.Done = math.MaxInt64, math.MaxInt64-1 }},
		{"zero-and-far-times", func(m *migration.Migration) {
			m.InitiatedAt = time.Time{}
			m.UpdatedAt = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
		}},
		{"pre-epoch", func(m *migration.Migration) {
			m.InitiatedAt = time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC)
			m.State, m.CompletedAt = migration.StateCompleted, time.Date(1900, 1, 1, 0, 0, 0, 0, zone)
		}},
		{"back-to-internal", func(m *migration.Migration) {
			m.From, m.To, m.FromARN, m.ToARN = m.To, m.From, m.ToARN, m.FromARN
		}},
		{"empty-strings", func(m *migration.Migration) {
			m.FromARN, m.ToARN, m.LastError = "", "", ""
		}},
		{"unicode-quotes-and-long-error", func(m *migration.Migration) {
			m.ID = `id with 'quotes' "and" é 🔑`
			m.FromARN = "Clé — prod 🔑"
			m.LastError = "it's \"the\" error\nsecond line\\ ; DROP TABLE migrations; --\u2028\t" + strings.Repeat("x", 20000)
		}},
	}
	var unfinished []migration.Migration
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// One tenant each: a tenant has one unfinished migration at most.
			createTenant(t, s, tc.name)
			want := newMigration(tc.name, "mig-"+tc.name)
			tc.mutate(&want)
			insertMigration(t, s, want)
			checkLatest(t, s, tc.name, want)
			if want.State != migration.StateCompleted {
				unfinished = append(unfinished, want)
			}
		})
	}

	t.Run("unfinished-alike", func(t *testing.T) {
		got, err := s.UnfinishedMigrations(t.Context())
		if err != nil {
			t.Fatalf("UnfinishedMigrations: %v", err)
		}
		if len(got) != len(unfinished) {
			t.Fatalf("UnfinishedMigrations: got %d, want %d", len(got), len(unfinished))
		}
		for _, g := range got {
			i := slices.IndexFunc(unfinished, func(w migration.Migration) bool { return w.ID == g.ID })
			if i < 0 {
				t.Errorf("UnfinishedMigrations: got unexpected migration %q (%v)", g.ID, g.State)
				continue
			}
			checkMigration(t, g, unfinished[i])
		}
	})
}

func testInsertMigrationErrors(t *testing.T, s Store) {
	ctx := t.Context()
	createTenant(t, s, "acme")
	createTenant(t, s, "other")
	history := insertMigration(t, s, completed(newMigration("acme", "history")))
	running := newMigration("acme", "running")
	running.InitiatedAt = running.InitiatedAt.Add(time.Hour)
	insertMigration(t, s, running)

	tests := []struct {
		name string
		m    migration.Migration
		want []error // any of them
	}{
		{"running-new", func() migration.Migration {
			m := newMigration("acme", "second")
			m.State = migration.StateNew
			return m
		}(), []error{migration.ErrRunning}},
		{"running-in-progress", newMigration("acme", "second"), []error{migration.ErrRunning}},
		{"exists-other-tenant", newMigration("other", running.ID), []error{fault.ErrExists}},
		{"exists-completed-id", completed(newMigration("acme", history.ID)), []error{fault.ErrExists}},
		{"exists-completed-id-other-tenant", newMigration("other", history.ID), []error{fault.ErrExists}},
		// Both are true: the taken id is reported, whatever order the
		// database checks its constraints in.
		{"exists-and-running", newMigration("acme", running.ID), []error{fault.ErrExists}},
		{"exists-completed-and-running", newMigration("acme", history.ID), []error{fault.ErrExists}},
		{"no-tenant", newMigration("missing", "new"), []error{fault.ErrNotFound}},
		{"unknown-state", func() migration.Migration {
			m := newMigration("other", "unknown-state")
			m.State = migration.StateUnknown
			return m
		}(), nil},
		{"state-out-of-range", func() migration.Migration {
			m := newMigration("other", "out-of-range")
			m.State = 99
			return m
		}(), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.InsertMigration(ctx, tc.m)
			if err == nil {
				t.Fatal("InsertMigration: got no error, want one")
			}
			if tc.want != nil && !slices.ContainsFunc(tc.want, func(w error) bool { return errors.Is(err, w) }) {
				t.Errorf("InsertMigration: got %v, want one of %v", err, tc.want)
			}
			// Nothing written.
			checkLatest(t, s, "acme", running)
			_, err = s.LatestMigration(ctx, "other")
			checkErr(t, "LatestMigration(other)", err, fault.ErrNotFound)
			_, err = s.LatestMigration(ctx, "missing")
			checkErr(t, "LatestMigration(missing)", err, fault.ErrNotFound)
			checkUnfinished(t, s, running)
		})
	}
}

func testLatestMigration(t *testing.T, s Store) {
	ctx := t.Context()
	createTenant(t, s, "acme")
	createTenant(t, s, "other")
	for _, id := range []string{"acme", "missing", "other"} {
		_, err := s.LatestMigration(ctx, id)
		checkErr(t, "LatestMigration("+id+") without migrations", err, fault.ErrNotFound)
	}

	at := func(tenantID, id string, hour int, done bool) migration.Migration {
		m := newMigration(tenantID, id)
		m.InitiatedAt = time.Date(2025, 1, 1, hour, 0, 0, 0, zone)
		m.UpdatedAt = m.InitiatedAt.Add(time.Minute)
		if done {
			m = completed(m)
		}
		return m
	}
	steps := []struct {
		name   string
		insert migration.Migration
		want   string // acme's latest id afterwards
	}{
		{"first", at("acme", "B2", 2, true), "B2"},
		{"older-inserted-later", at("acme", "m1", 1, true), "B2"},
		// Equal InitiatedAt: the greater id in byte order ("a" > "B"; a
		// linguistic collation would say otherwise).
		{"tie-smaller-id", at("acme", "A-tie", 2, true), "B2"},
		{"tie-greater-id", at("acme", "a-tie", 2, true), "a-tie"},
		{"other-tenant-later", at("other", "o9", 9, false), "a-tie"},
		{"newer-running", at("acme", "m3", 3, false), "m3"},
	}
	inserted := map[string]migration.Migration{}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			insertMigration(t, s, st.insert)
			inserted[st.insert.ID] = st.insert
			checkLatest(t, s, "acme", inserted[st.want])
		})
	}
	checkLatest(t, s, "other", inserted["o9"])

	t.Run("sub-second-order", func(t *testing.T) {
		createTenant(t, s, "micro")
		base := time.Date(2025, 5, 5, 5, 5, 5, 0, time.UTC)
		later := completed(newMigration("micro", "a-later"))
		later.InitiatedAt = base.Add(time.Microsecond)
		earlier := completed(newMigration("micro", "z-earlier"))
		earlier.InitiatedAt = base
		insertMigration(t, s, later)
		insertMigration(t, s, earlier)
		checkLatest(t, s, "micro", later)
	})
}

func testUpdateMigration(t *testing.T, s Store) {
	ctx := t.Context()
	createTenant(t, s, "acme")
	createTenant(t, s, "other")
	orig := newMigration("acme", "m1")
	orig.State, orig.Done, orig.LastError = migration.StateNew, 0, ""
	insertMigration(t, s, orig)
	// Initiated when orig was: listed after it, by id.
	bystander := insertMigration(t, s, newMigration("other", "o1"))

	// Only State, Done, Total, CompletedAt, LastError and UpdatedAt change;
	// the rest of the value given is ignored.
	ignored := func(m migration.Migration) migration.Migration {
		m.From, m.To, m.FromARN, m.ToARN = cmk(8), cmk(9), "ignored", "ignored"
		m.InitiatedAt = time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)
		return m
	}
	steps := []struct {
		name   string
		mutate func(m *migration.Migration)
	}{
		{"in-progress", func(m *migration.Migration) {
			m.State, m.Done, m.Total = migration.StateInProgress, 10, 2000
			m.UpdatedAt = time.Date(2025, 8, 9, 11, 0, 0, 123456789, zone)
		}},
		{"failed-batch", func(m *migration.Migration) {
			m.LastError = "wrapping cipherkey 0102: ThrottlingException"
			m.UpdatedAt = m.UpdatedAt.Add(time.Second)
		}},
		{"grown-total", func(m *migration.Migration) {
			m.Done, m.Total, m.LastError = 2001, 2001, ""
		}},
		{"completed", func(m *migration.Migration) {
			m.State = migration.StateCompleted
			m.CompletedAt = time.Date(2025, 8, 9, 12, 0, 0, 555666777, zone)
			m.UpdatedAt = m.CompletedAt
		}},
		{"completed-at-cleared", func(m *migration.Migration) {
			m.State, m.CompletedAt = migration.StateInProgress, time.Time{}
		}},
		{"zero-counts", func(m *migration.Migration) { m.Done, m.Total = 0, 0 }},
		{"max-counts", func(m *migration.Migration) { m.Done, m.Total = math.MaxInt64, math.MaxInt64 }},
		{"back-to-new", func(m *migration.Migration) { m.State = migration.StateNew }},
	}
	want := orig
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.mutate(&want)
			if err := s.UpdateMigration(ctx, ignored(want)); err != nil {
				t.Fatalf("UpdateMigration: %v", err)
			}
			checkLatest(t, s, "acme", want)
			checkLatest(t, s, "other", bystander)
			if want.State == migration.StateCompleted {
				checkUnfinished(t, s, bystander)
			} else {
				checkUnfinished(t, s, want, bystander)
			}
		})
	}

	errs := []struct {
		name string
		m    func() migration.Migration
		want error // nil: any error
	}{
		{"unknown-id", func() migration.Migration { m := want; m.ID = "m2"; return m }, fault.ErrNotFound},
		{"other-tenant", func() migration.Migration { m := want; m.TenantID = "other"; return m }, fault.ErrNotFound},
		{"unknown-tenant", func() migration.Migration { m := want; m.TenantID = "missing"; return m }, fault.ErrNotFound},
		{"id-of-other-tenant", func() migration.Migration { m := want; m.ID = bystander.ID; return m }, fault.ErrNotFound},
		{"unknown-state", func() migration.Migration { m := want; m.State = migration.StateUnknown; return m }, nil},
		{"state-out-of-range", func() migration.Migration { m := want; m.State = -1; return m }, nil},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.m()
			m.Done, m.LastError = 99, "must not be written"
			err := s.UpdateMigration(ctx, m)
			if err == nil {
				t.Fatal("UpdateMigration: got no error, want one")
			}
			if tc.want != nil {
				checkErr(t, "UpdateMigration", err, tc.want)
			}
			checkLatest(t, s, "acme", want)
			checkLatest(t, s, "other", bystander)
			_, err = s.LatestMigration(ctx, "missing")
			checkErr(t, "LatestMigration(missing)", err, fault.ErrNotFound)
		})
	}
}

// testOneRunningMigration: the store itself refuses a second unfinished
// migration of a tenant, on insert and on update; tenants are independent.
func testOneRunningMigration(t *testing.T, s Store) {
	ctx := t.Context()
	createTenant(t, s, "acme")
	createTenant(t, s, "other")
	hour := func(m migration.Migration, h int) migration.Migration {
		m.InitiatedAt = time.Date(2025, 2, 3, h, 0, 0, 0, zone)
		m.UpdatedAt = m.InitiatedAt
		return m
	}
	m1 := insertMigration(t, s, hour(newMigration("acme", "m1"), 1))
	m2 := hour(newMigration("acme", "m2"), 2)
	m2.State = migration.StateNew
	checkErr(t, "InsertMigration(second unfinished)", s.InsertMigration(ctx, m2), migration.ErrRunning)

	o1 := insertMigration(t, s, hour(newMigration("other", "o1"), 3))
	checkUnfinished(t, s, m1, o1)

	// Completing m1 frees the tenant.
	m1 = completed(m1)
	if err := s.UpdateMigration(ctx, m1); err != nil {
		t.Fatalf("UpdateMigration(complete m1): %v", err)
	}
	insertMigration(t, s, m2)
	checkLatest(t, s, "acme", m2)
	checkUnfinished(t, s, m2, o1)
	m3 := hour(newMigration("acme", "m3"), 4)
	checkErr(t, "InsertMigration(third)", s.InsertMigration(ctx, m3), migration.ErrRunning)

	// m1 cannot become unfinished again while m2 is.
	reopened := m1
	reopened.State, reopened.CompletedAt = migration.StateInProgress, time.Time{}
	checkErr(t, "UpdateMigration(reopen m1)", s.UpdateMigration(ctx, reopened), migration.ErrRunning)
	checkUnfinished(t, s, m2, o1)
	// Updating the unfinished one and keeping it unfinished does not
	// conflict with itself.
	m2.State, m2.Done = migration.StateInProgress, m2.Done+1
	if err := s.UpdateMigration(ctx, m2); err != nil {
		t.Fatalf("UpdateMigration(m2 in progress): %v", err)
	}
	checkLatest(t, s, "acme", m2)

	// Completing both leaves the tenant free; the other tenant's stays.
	m2 = completed(m2)
	if err := s.UpdateMigration(ctx, m2); err != nil {
		t.Fatalf("UpdateMigration(complete m2): %v", err)
	}
	checkUnfinished(t, s, o1)
	if err := s.UpdateMigration(ctx, reopened); err != nil {
		t.Fatalf("UpdateMigration(reopen m1 once alone): %v", err)
	}
	checkUnfinished(t, s, reopened, o1)
}

func testUnfinishedMigrations(t *testing.T, s Store) {
	checkUnfinished(t, s)
	at := func(tenantID, id string, minute int, state migration.State) migration.Migration {
		m := newMigration(tenantID, id)
		m.InitiatedAt = time.Date(2025, 3, 4, 5, minute, 0, 0, zone)
		m.State = state
		if state == migration.StateCompleted {
			m = completed(m)
		}
		return m
	}
	for _, id := range []string{"t1", "t2", "t3", "t4", "t5"} {
		createTenant(t, s, id)
	}
	insertMigration(t, s, at("t1", "t1-old", 0, migration.StateCompleted))
	insertMigration(t, s, at("t3", "t3", 5, migration.StateCompleted))
	t1 := insertMigration(t, s, at("t1", "t1-new", 30, migration.StateInProgress))
	// Equal InitiatedAt: by id, in byte order ("Z" < "a" < "b").
	t2 := insertMigration(t, s, at("t2", "b-t2", 10, migration.StateNew))
	t4 := insertMigration(t, s, at("t4", "a-t4", 10, migration.StateInProgress))
	t5 := insertMigration(t, s, at("t5", "Z-t5", 10, migration.StateNew))
	checkUnfinished(t, s, t5, t4, t2, t1)

	t2 = completed(t2)
	if err := s.UpdateMigration(t.Context(), t2); err != nil {
		t.Fatalf("UpdateMigration: %v", err)
	}
	checkUnfinished(t, s, t5, t4, t1)
}

// testMigrationsDeleteTenant: a tenant's migrations go with it.
func testMigrationsDeleteTenant(t *testing.T, s Store) {
	ctx := t.Context()
	setup := func(id string) migration.Migration {
		createTenant(t, s, id)
		insertMigration(t, s, completed(newMigration(id, id+"-history")))
		running := newMigration(id, id+"-running")
		running.InitiatedAt = running.InitiatedAt.Add(time.Hour)
		return insertMigration(t, s, running)
	}
	goneRunning, keptRunning := setup("gone"), setup("kept")
	checkUnfinished(t, s, goneRunning, keptRunning)

	if err := s.DeleteTenant(ctx, "gone"); err != nil {
		t.Fatalf("DeleteTenant: %v", err)
	}
	_, err := s.LatestMigration(ctx, "gone")
	checkErr(t, "LatestMigration of the deleted tenant", err, fault.ErrNotFound)
	checkUnfinished(t, s, keptRunning)
	checkLatest(t, s, "kept", keptRunning)
	checkErr(t, "UpdateMigration of the deleted tenant", s.UpdateMigration(ctx, completed(goneRunning)), fault.ErrNotFound)

	// The migration ids of the deleted tenant are free again.
	insertMigration(t, s, completed(newMigration("kept", "gone-history")))
}

// testConcurrentInsertMigration: racing migrations of one tenant; exactly
// one is recorded, the rest get ErrRunning. Racing migrations of different
// tenants all are.
func testConcurrentInsertMigration(t *testing.T, s Store) {
	ctx := t.Context()
	t.Run("one-tenant", func(t *testing.T) {
		createTenant(t, s, "acme")
		insertMigration(t, s, completed(newMigration("acme", "history")))
		ms := make([]migration.Migration, racers)
		for i := range ms {
			ms[i] = newMigration("acme", fmt.Sprintf("racer-%02d", i))
			ms[i].State = migration.StateNew
			ms[i].InitiatedAt = ms[i].InitiatedAt.Add(time.Duration(i+1) * time.Second)
		}
		errs := make([]error, racers)
		race(racers, func(i int) { errs[i] = s.InsertMigration(ctx, ms[i]) })
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Errorf("InsertMigration: racers %d and %d both won", winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, migration.ErrRunning):
				t.Errorf("InsertMigration (racer %d): got error %v, want nil or %v", i, err, migration.ErrRunning)
			}
		}
		if winner < 0 {
			t.Fatal("InsertMigration: no racer won")
		}
		checkLatest(t, s, "acme", ms[winner])
		checkUnfinished(t, s, ms[winner])
	})

	t.Run("many-tenants", func(t *testing.T) {
		ms := make([]migration.Migration, racers)
		for i := range ms {
			tenant := fmt.Sprintf("tenant-%02d", i)
			createTenant(t, s, tenant)
			ms[i] = newMigration(tenant, tenant+"-m")
		}
		race(racers, func(i int) {
			if err := s.InsertMigration(ctx, ms[i]); err != nil {
				t.Errorf("InsertMigration(%s): %v", ms[i].TenantID, err)
			}
		})
		for _, m := range ms {
			checkLatest(t, s, m.TenantID, m)
		}
	})
}

// testConcurrentUpdateMigration: racing updates that each reopen another
// completed migration of one tenant; exactly one succeeds.
func testConcurrentUpdateMigration(t *testing.T, s Store) {
	ctx := t.Context()
	createTenant(t, s, "acme")
	ms := make([]migration.Migration, racers)
	for i := range ms {
		m := newMigration("acme", fmt.Sprintf("m-%02d", i))
		m.InitiatedAt = m.InitiatedAt.Add(time.Duration(i) * time.Minute)
		ms[i] = insertMigration(t, s, completed(m))
	}
	errs := make([]error, racers)
	race(racers, func(i int) {
		m := ms[i]
		m.State, m.CompletedAt = migration.StateInProgress, time.Time{}
		errs[i] = s.UpdateMigration(ctx, m)
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("UpdateMigration: racers %d and %d both won", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, migration.ErrRunning):
			t.Errorf("UpdateMigration (racer %d): got error %v, want nil or %v", i, err, migration.ErrRunning)
		}
	}
	if winner < 0 {
		t.Fatal("UpdateMigration: no racer won")
	}
	want := ms[winner]
	want.State, want.CompletedAt = migration.StateInProgress, time.Time{}
	checkUnfinished(t, s, want)
}

// testProviderSwitchTimes: when a provider last became and last stopped
// being the tenant's current one, from its completed migrations only.
func testProviderSwitchTimes(t *testing.T, s Store) {
	ctx := t.Context()
	createTenant(t, s, "acme")
	createTenant(t, s, "other")
	check := func(what, tenantID string, ref kms.Ref, wantPromoted, wantDemoted time.Time) {
		t.Helper()
		promoted, demoted, err := s.ProviderSwitchTimes(ctx, tenantID, ref)
		if err != nil {
			t.Fatalf("%s: ProviderSwitchTimes(%q, %q): %v", what, tenantID, ref, err)
		}
		checkOptionalTime(t, what+": "+ref.String()+" promoted", promoted, wantPromoted)
		checkOptionalTime(t, what+": "+ref.String()+" demoted", demoted, wantDemoted)
	}
	never := time.Time{}
	check("no migrations", "acme", kms.InternalRef(), never, never)
	check("no such tenant", "missing", kms.InternalRef(), never, never)

	switchAt := func(tenantID, id string, from, to kms.Ref, hour int, done bool) {
		t.Helper()
		m := newMigration(tenantID, id)
		m.From, m.To = from, to
		m.InitiatedAt = time.Date(2025, 1, 1, hour, 0, 0, 0, zone)
		m.UpdatedAt = m.InitiatedAt.Add(time.Minute + 123456*time.Microsecond)
		if done {
			m = completed(m)
		}
		insertMigration(t, s, m)
	}
	t1 := time.Date(2025, 1, 1, 1, 1, 0, 123456000, zone)
	t2 := time.Date(2025, 1, 1, 2, 1, 0, 123456000, zone)

	switchAt("acme", "to-cmk", kms.InternalRef(), cmk(1), 1, true)
	check("after the migration to a CMK", "acme", kms.InternalRef(), never, t1)
	check("after the migration to a CMK", "acme", cmk(1), t1, never)

	switchAt("acme", "reset", cmk(1), kms.InternalRef(), 2, true)
	check("after the reset", "acme", kms.InternalRef(), t2, t1)
	check("after the reset", "acme", cmk(1), t1, t2)

	// A running migration changes nothing yet; an older completed one
	// does not replace a later time; another tenant's are its own.
	switchAt("acme", "running", kms.InternalRef(), cmk(2), 3, false)
	switchAt("acme", "older", kms.InternalRef(), cmk(1), 0, true)
	switchAt("other", "other-to-cmk", kms.InternalRef(), cmk(1), 9, true)
	check("with a running, an older and another tenant's migration", "acme", kms.InternalRef(), t2, t1)
	check("with a running, an older and another tenant's migration", "acme", cmk(1), t1, t2)
	check("with a running, an older and another tenant's migration", "acme", cmk(2), never, never)
}
