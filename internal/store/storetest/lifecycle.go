package storetest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/lifecycle"
)

// createCMKTenant creates a tenant whose provider is cmk(1), in state.
func createCMKTenant(t *testing.T, s Store, id string, state keyring.TenantState) keyring.Tenant {
	t.Helper()
	tn := newTenant(id)
	tn.Provider, tn.State = cmk(1), state
	if err := s.CreateTenant(t.Context(), tn); err != nil {
		t.Fatalf("CreateTenant(%q): %v", id, err)
	}
	return tn
}

func mustTenant(t *testing.T, s Store, id string) keyring.Tenant {
	t.Helper()
	tn, err := s.Tenant(t.Context(), id)
	if err != nil {
		t.Fatalf("Tenant(%q): %v", id, err)
	}
	return tn
}

// newKeyCheck returns a check of the tenant's key in region with every field
// set.
func newKeyCheck(tenantID, region string) lifecycle.KeyCheck {
	return lifecycle.KeyCheck{
		TenantID:  tenantID,
		Provider:  cmk(1),
		Region:    region,
		KeyARN:    "arn:aws:kms:" + region + ":111122223333:key/mrk-1234abcd",
		CheckedAt: time.Date(2025, 8, 9, 10, 11, 12, 131415161, zone),
		Result:    lifecycle.ResultOK,
		KeyState:  "Enabled",
		Detail:    "key enabled in " + region,
	}
}

func replaceKeyChecks(t *testing.T, s Store, tenantID string, checks []lifecycle.KeyCheck) {
	t.Helper()
	if err := s.ReplaceKeyChecks(t.Context(), tenantID, checks); err != nil {
		t.Fatalf("ReplaceKeyChecks(%q, %d checks): %v", tenantID, len(checks), err)
	}
}

// checkKeyChecks reads the tenant's checks and wants those of want, in
// region (byte) order.
func checkKeyChecks(t *testing.T, s Store, tenantID string, want []lifecycle.KeyCheck) {
	t.Helper()
	got, err := s.KeyChecks(t.Context(), tenantID)
	if err != nil {
		t.Fatalf("KeyChecks(%q): %v", tenantID, err)
	}
	if got == nil {
		t.Errorf("KeyChecks(%q): got nil, want an empty slice", tenantID)
	}
	want = slices.Clone(want)
	slices.SortFunc(want, func(a, b lifecycle.KeyCheck) int { return strings.Compare(a.Region, b.Region) })
	if len(got) != len(want) {
		t.Fatalf("KeyChecks(%q): got %d checks %+v, want %d %+v", tenantID, len(got), got, len(want), want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.TenantID != w.TenantID || g.Provider != w.Provider || g.Region != w.Region || g.KeyARN != w.KeyARN ||
			g.Result != w.Result || g.KeyState != w.KeyState || g.Detail != w.Detail {
			t.Errorf("KeyChecks(%q)[%d]:\ngot  %+v\nwant %+v", tenantID, i, g, w)
		}
		checkTime(t, fmt.Sprintf("KeyChecks(%q)[%d] CheckedAt", tenantID, i), g.CheckedAt, w.CheckedAt)
	}
}

// testStateRoundTrip: CreateTenant writes the lifecycle fields and every
// read returns them.
func testStateRoundTrip(t *testing.T, s Store) {
	tests := []struct {
		name      string
		state     keyring.TenantState
		reason    string
		changedAt time.Time
	}{
		{"never-left-active", keyring.StateActive, "", time.Time{}},
		{"key-unavailable", keyring.StateKeyUnavailable, "KMS key arn:aws:kms:eu-west-1:111122223333:key/mrk-1 is disabled in eu-west-1",
			time.Date(2025, 3, 4, 5, 6, 7, 891011121, zone)},
		{"active-again", keyring.StateActive, "key enabled again", time.Date(2025, 3, 5, 0, 0, 0, 1000, time.UTC)},
		{"locked-at-epoch", keyring.StateLocked, "pending deletion", time.Unix(0, 0).In(zone)},
		{"destroyed-pre-epoch", keyring.StateDestroyed, "clé détruite 🔑 \"quoted\" 'single'\nsecond line\\",
			time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC)},
		{"reason-without-time", keyring.StateKeyUnavailable, "access denied", time.Time{}},
		{"time-without-reason", keyring.StateLocked, "", time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)},
	}
	want := map[string]keyring.Tenant{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tn := newTenant(tc.name)
			tn.Provider, tn.State, tn.StateReason, tn.StateChangedAt = cmk(1), tc.state, tc.reason, tc.changedAt
			if err := s.CreateTenant(t.Context(), tn); err != nil {
				t.Fatalf("CreateTenant: %v", err)
			}
			checkTenant(t, mustTenant(t, s, tc.name), tn)
			want[tn.ID] = tn
		})
	}

	t.Run("listed-alike", func(t *testing.T) {
		ts, err := s.ListTenants(t.Context(), "", 100)
		if err != nil {
			t.Fatalf("ListTenants: %v", err)
		}
		if len(ts) != len(want) {
			t.Fatalf("ListTenants: got %d tenants, want %d", len(ts), len(want))
		}
		for _, tn := range ts {
			checkTenant(t, tn, want[tn.ID])
		}
		watched, err := s.WatchedTenants(t.Context(), "", 100)
		if err != nil {
			t.Fatalf("WatchedTenants: %v", err)
		}
		if len(watched) != len(want)-1 {
			t.Fatalf("WatchedTenants: got %d tenants, want %d (all but the destroyed one)", len(watched), len(want)-1)
		}
		for _, tn := range watched {
			checkTenant(t, tn, want[tn.ID])
		}
	})
}

// testSetTenantState walks one tenant through the lifecycle; each step
// returns the tenant as the previous step left it.
func testSetTenantState(t *testing.T, s Store) {
	ctx := t.Context()
	cur := createCMKTenant(t, s, "acme", keyring.StateActive)
	bystander := createCMKTenant(t, s, "bystander", keyring.StateActive)
	at := func(day int) time.Time { return time.Date(2025, 9, day, 1, 2, 3, 456789123, zone) }

	steps := []struct {
		name        string
		state       keyring.TenantState
		reason      string
		at          time.Time
		wantChanged bool
		wantErr     error
		// wantChangedAt is StateChangedAt after the step.
		wantChangedAt time.Time
	}{
		{"disable", keyring.StateKeyUnavailable, "key disabled in eu-west-1", at(1), true, nil, at(1)},
		{"same-state-new-reason", keyring.StateKeyUnavailable, "access denied in eu-west-1", at(2), true, nil, at(1)},
		{"no-op", keyring.StateKeyUnavailable, "access denied in eu-west-1", at(3), false, nil, at(1)},
		{"lock", keyring.StateLocked, "pending deletion until 2025-10-01", at(4), true, nil, at(4)},
		{"lock-no-op", keyring.StateLocked, "pending deletion until 2025-10-01", at(5), false, nil, at(4)},
		{"reactivate", keyring.StateActive, "", at(6), true, nil, at(6)},
		{"active-no-op", keyring.StateActive, "", at(7), false, nil, at(6)},
		{"active-new-reason", keyring.StateActive, "key enabled again", at(8), true, nil, at(6)},
		{"destroy", keyring.StateDestroyed, "key deleted", at(9), true, nil, at(9)},
		{"destroyed-is-terminal", keyring.StateActive, "", at(10), false, fault.ErrConflict, at(9)},
		{"destroyed-same-reason", keyring.StateDestroyed, "key deleted", at(11), false, fault.ErrConflict, at(9)},
		{"destroyed-new-reason", keyring.StateDestroyed, "gone for good", at(12), false, fault.ErrConflict, at(9)},
	}
	for _, st := range steps {
		prev, changed, err := s.SetTenantState(ctx, "acme", cmk(1), st.state, st.reason, st.at)
		checkErr(t, "SetTenantState("+st.name+")", err, st.wantErr)
		if changed != st.wantChanged {
			t.Errorf("SetTenantState(%s): got changed %v, want %v", st.name, changed, st.wantChanged)
		}
		checkTenant(t, prev, cur)
		if changed {
			cur.State, cur.StateReason, cur.StateChangedAt = st.state, st.reason, st.wantChangedAt
		}
		// UpdatedAt is the admin edit time: only the lifecycle fields moved.
		checkTenant(t, mustTenant(t, s, "acme"), cur)
		if t.Failed() {
			t.Fatalf("step %s failed", st.name)
		}
	}
	checkTenant(t, mustTenant(t, s, "bystander"), bystander)
}

func testSetTenantStateErrors(t *testing.T, s Store) {
	ctx := t.Context()
	at := time.Date(2025, 10, 1, 2, 3, 4, 5000, time.UTC)
	acme := createCMKTenant(t, s, "acme", keyring.StateKeyUnavailable)
	internal := createTenant(t, s, "internal-tenant")
	destroyed := createCMKTenant(t, s, "destroyed", keyring.StateDestroyed)

	tests := []struct {
		name     string
		id       string
		provider kms.Ref
		state    keyring.TenantState
		want     error // nil: any error
		prev     *keyring.Tenant
	}{
		{"missing", "missing", cmk(1), keyring.StateLocked, fault.ErrNotFound, nil},
		{"missing-id-case", "ACME", cmk(1), keyring.StateLocked, fault.ErrNotFound, nil},
		{"other-provider", "acme", cmk(2), keyring.StateLocked, fault.ErrConflict, &acme},
		{"internal-for-cmk", "acme", kms.InternalRef(), keyring.StateActive, fault.ErrConflict, &acme},
		{"cmk-for-internal", "internal-tenant", cmk(1), keyring.StateKeyUnavailable, fault.ErrConflict, &internal},
		{"destroyed", "destroyed", cmk(1), keyring.StateActive, fault.ErrConflict, &destroyed},
		{"destroyed-other-provider", "destroyed", cmk(2), keyring.StateActive, fault.ErrConflict, &destroyed},
		{"state-unknown", "acme", cmk(1), keyring.StateUnknown, nil, nil},
		{"state-out-of-range", "acme", cmk(1), keyring.StateDestroyed + 1, nil, nil},
		{"state-negative", "acme", cmk(1), -1, nil, nil},
		{"state-unknown-missing-tenant", "missing", cmk(1), keyring.StateUnknown, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prev, changed, err := s.SetTenantState(ctx, tc.id, tc.provider, tc.state, "new reason", at)
			if err == nil {
				t.Fatalf("SetTenantState: got no error, want one")
			}
			if tc.want != nil {
				checkErr(t, "SetTenantState", err, tc.want)
			} else if errors.Is(err, fault.ErrConflict) {
				t.Errorf("SetTenantState: got %v, want an error that is not %v", err, fault.ErrConflict)
			}
			if changed {
				t.Error("SetTenantState: got changed true with an error")
			}
			if tc.prev != nil {
				checkTenant(t, prev, *tc.prev)
			}
		})
	}
	// Nothing was written.
	checkTenant(t, mustTenant(t, s, "acme"), acme)
	checkTenant(t, mustTenant(t, s, "internal-tenant"), internal)
	checkTenant(t, mustTenant(t, s, "destroyed"), destroyed)
	_, err := s.Tenant(ctx, "missing")
	checkErr(t, "Tenant(missing)", err, fault.ErrNotFound)
}

// testUpdateTenantKeepsState: an admin's edit based on a read from before a
// revocation does not undo it, and a provider switch makes the monitor's
// verdict about the old key a conflict.
func testUpdateTenantKeepsState(t *testing.T, s Store) {
	ctx := t.Context()
	stale := createCMKTenant(t, s, "acme", keyring.StateActive)
	revokedAt := time.Date(2025, 12, 24, 18, 0, 0, 123456789, zone)
	if _, _, err := s.SetTenantState(ctx, "acme", cmk(1), keyring.StateKeyUnavailable, "key disabled", revokedAt); err != nil {
		t.Fatalf("SetTenantState: %v", err)
	}

	edit := stale // State active, no reason: what the admin read
	edit.Name = "ACME renamed"
	edit.UpdatedAt = time.Date(2025, 12, 24, 18, 0, 1, 0, time.UTC)
	if err := s.UpdateTenant(ctx, edit); err != nil {
		t.Fatalf("UpdateTenant: %v", err)
	}
	want := edit
	want.State, want.StateReason, want.StateChangedAt = keyring.StateKeyUnavailable, "key disabled", revokedAt
	checkTenant(t, mustTenant(t, s, "acme"), want)

	// The admin switches the tenant to another key; a verdict about the old
	// one no longer applies.
	if err := s.SwitchTenantProvider(ctx, "acme", cmk(1), cmk(2), edit.UpdatedAt); err != nil {
		t.Fatalf("SwitchTenantProvider: %v", err)
	}
	want.Provider = cmk(2)
	_, changed, err := s.SetTenantState(ctx, "acme", cmk(1), keyring.StateLocked, "pending deletion", revokedAt.Add(time.Hour))
	checkErr(t, "SetTenantState(old provider)", err, fault.ErrConflict)
	if changed {
		t.Error("SetTenantState(old provider): got changed true")
	}
	checkTenant(t, mustTenant(t, s, "acme"), want)
	prev, changed, err := s.SetTenantState(ctx, "acme", cmk(2), keyring.StateActive, "", revokedAt.Add(2*time.Hour))
	if err != nil || !changed {
		t.Fatalf("SetTenantState(new provider): got changed %v, %v; want true, nil", changed, err)
	}
	checkTenant(t, prev, want)
}

func testWatchedTenants(t *testing.T, s Store) {
	ctx := t.Context()
	// Ids whose byte order differs from a linguistic collation's, with every
	// combination of a few providers and the states.
	ids := []string{"b", "a", "A", "a-b", "aB", "ab", "_x", "z", "é", "0", "a b", "Z9", "m", "n", "o", "p", "q", "r", "s", "t"}
	providers := []kms.Ref{kms.InternalRef(), cmk(1), cmk(2), cmk(3), kms.InternalRef()}
	states := []keyring.TenantState{keyring.StateActive, keyring.StateKeyUnavailable, keyring.StateLocked, keyring.StateDestroyed}
	created := map[string]keyring.Tenant{}
	for i, id := range ids {
		tn := newTenant(id)
		tn.Provider = providers[i%len(providers)]
		tn.State = states[(i/len(providers)+i)%len(states)]
		if err := s.CreateTenant(ctx, tn); err != nil {
			t.Fatalf("CreateTenant(%q): %v", id, err)
		}
		created[id] = tn
	}
	// want is the reference: the watched ids after after, in byte order, at
	// most limit.
	want := func(after string, limit int) []string {
		var w []string
		for _, id := range slices.Sorted(maps.Keys(created)) {
			tn := created[id]
			if id > after && len(w) < limit && tn.Provider != kms.InternalRef() && tn.State != keyring.StateDestroyed {
				w = append(w, id)
			}
		}
		return w
	}
	all := want("", len(ids))
	if len(all) < 5 || len(all) == len(ids) {
		t.Fatalf("fixture: %d of %d tenants watched; want some but not all", len(all), len(ids))
	}
	list := func(t *testing.T, after string, limit int) []string {
		t.Helper()
		ts, err := s.WatchedTenants(ctx, after, limit)
		if err != nil {
			t.Fatalf("WatchedTenants(%q, %d): %v", after, limit, err)
		}
		if ts == nil {
			t.Errorf("WatchedTenants(%q, %d): got nil, want a slice", after, limit)
		}
		var got []string
		for _, tn := range ts {
			checkTenant(t, tn, created[tn.ID])
			got = append(got, tn.ID)
		}
		return got
	}

	tests := []struct {
		name  string
		after string
		limit int
	}{
		{"all", "", 100},
		{"exact-limit", "", len(all)},
		{"first-page", "", 3},
		{"after-watched", all[2], 3},
		{"after-missing", "aa", 100},
		{"after-uppercase", "B", 100},
		{"after-last", all[len(all)-1], 10},
		{"after-beyond", "\U0010FFFF", 10},
		{"limit-zero", "", 0},
		{"limit-negative", "", -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := list(t, tc.after, tc.limit), want(tc.after, tc.limit); !slices.Equal(got, want) {
				t.Errorf("WatchedTenants(%q, %d): got %q, want %q", tc.after, tc.limit, got, want)
			}
		})
	}
	t.Run("after-unwatched", func(t *testing.T) {
		// An unwatched id is a cursor like any other.
		for _, id := range ids {
			if slices.Contains(all, id) {
				continue
			}
			if got, want := list(t, id, 4), want(id, 4); !slices.Equal(got, want) {
				t.Errorf("WatchedTenants(%q, 4): got %q, want %q", id, got, want)
			}
		}
	})

	t.Run("pages", func(t *testing.T) {
		var got []string
		after := ""
		for page := 0; ; page++ {
			if page > len(ids) {
				t.Fatalf("pagination does not end: got %q so far", got)
			}
			ts := list(t, after, 2)
			if len(ts) > 2 {
				t.Fatalf("WatchedTenants(%q, 2): got %d tenants", after, len(ts))
			}
			if len(ts) == 0 {
				break
			}
			got = append(got, ts...)
			after = ts[len(ts)-1]
		}
		if !slices.Equal(got, all) {
			t.Errorf("paging by 2: got %q, want %q", got, all)
		}
	})

	t.Run("follows-changes", func(t *testing.T) {
		// Destroying a tenant or moving it to the internal KMS stops its
		// checks; moving a tenant to a customer managed key starts them.
		destroy, internalize := all[0], all[1]
		if _, _, err := s.SetTenantState(ctx, destroy, created[destroy].Provider, keyring.StateDestroyed, "key deleted", time.Now()); err != nil {
			t.Fatalf("SetTenantState(%q): %v", destroy, err)
		}
		tn := mustTenant(t, s, internalize)
		if err := s.SwitchTenantProvider(ctx, internalize, tn.Provider, kms.InternalRef(), time.Now()); err != nil {
			t.Fatalf("SwitchTenantProvider(%q): %v", internalize, err)
		}
		var external string
		for _, id := range ids {
			if tn := created[id]; tn.Provider == kms.InternalRef() && tn.State != keyring.StateDestroyed {
				external = id
				break
			}
		}
		tn = mustTenant(t, s, external)
		if err := s.SwitchTenantProvider(ctx, external, tn.Provider, cmk(1), time.Now()); err != nil {
			t.Fatalf("SwitchTenantProvider(%q): %v", external, err)
		}
		for _, id := range []string{destroy, internalize, external} {
			created[id] = mustTenant(t, s, id)
		}
		if got, want := list(t, "", 100), want("", 100); !slices.Equal(got, want) {
			t.Errorf("WatchedTenants after the changes: got %q, want %q", got, want)
		}
		if got := list(t, "", 100); slices.Contains(got, destroy) || slices.Contains(got, internalize) || !slices.Contains(got, external) {
			t.Errorf("WatchedTenants after the changes: got %q; want without %q and %q, with %q", got, destroy, internalize, external)
		}
	})
}

func testKeyChecks(t *testing.T, s Store) {
	createCMKTenant(t, s, "acme", keyring.StateActive)
	createCMKTenant(t, s, "other", keyring.StateActive)
	otherChecks := []lifecycle.KeyCheck{newKeyCheck("other", "eu-west-1")}
	replaceKeyChecks(t, s, "other", otherChecks)

	checkKeyChecks(t, s, "acme", nil)
	checkKeyChecks(t, s, "missing", nil)

	disabled := newKeyCheck("acme", "us-east-1")
	disabled.Result, disabled.KeyState = lifecycle.ResultDisabled, "Disabled"
	disabled.Detail = `KMS refused "kms:Decrypt": key arn:aws:kms:us-east-1:111122223333:key/mrk-1234abcd is disabled`
	throttled := newKeyCheck("acme", "ap-southeast-2")
	throttled.Result, throttled.KeyState, throttled.Detail = lifecycle.ResultThrottled, "", ""
	throttled.CheckedAt = time.Unix(0, 0).UTC() // the epoch is a time like any other
	unicode := newKeyCheck("acme", "é-region")
	unicode.Detail = "clé 🔑 \"quoted\"\nline two\\ ; DROP TABLE key_checks; --"
	unicode.Provider, unicode.KeyARN = cmk(2), ""
	never := newKeyCheck("acme", "EU-central-1") // before the lower-case regions in byte order
	never.CheckedAt = time.Time{}
	never.Result = lifecycle.ResultUnavailable
	farFuture := newKeyCheck("acme", "eu-west-1")
	farFuture.CheckedAt = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)

	tests := []struct {
		name   string
		checks []lifecycle.KeyCheck
	}{
		{"every-field", []lifecycle.KeyCheck{newKeyCheck("acme", "eu-west-1")}},
		{"several-regions", []lifecycle.KeyCheck{disabled, throttled, unicode, never, farFuture}},
		{"fewer-regions", []lifecycle.KeyCheck{throttled, never}},
		{"same-region-new-result", func() []lifecycle.KeyCheck {
			c := throttled
			c.Result, c.KeyState, c.Detail = lifecycle.ResultPendingDeletion, "PendingDeletion", "deletion on 2026-01-01"
			c.CheckedAt = c.CheckedAt.Add(time.Hour)
			return []lifecycle.KeyCheck{c}
		}()},
		{"other-regions-only", []lifecycle.KeyCheck{disabled, unicode}},
		{"empty", []lifecycle.KeyCheck{}},
		{"again", []lifecycle.KeyCheck{farFuture}},
		{"nil", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			replaceKeyChecks(t, s, "acme", tc.checks)
			checkKeyChecks(t, s, "acme", tc.checks)
			checkKeyChecks(t, s, "other", otherChecks)
		})
	}
	checkKeyChecks(t, s, "acme", nil)
}

func testReplaceKeyChecksErrors(t *testing.T, s Store) {
	ctx := t.Context()
	createCMKTenant(t, s, "acme", keyring.StateActive)
	createCMKTenant(t, s, "other", keyring.StateActive)
	stored := []lifecycle.KeyCheck{newKeyCheck("acme", "eu-west-1"), newKeyCheck("acme", "us-east-1")}
	replaceKeyChecks(t, s, "acme", stored)
	otherChecks := []lifecycle.KeyCheck{newKeyCheck("other", "eu-west-1")}
	replaceKeyChecks(t, s, "other", otherChecks)

	tests := []struct {
		name   string
		tenant string
		checks []lifecycle.KeyCheck
		want   error // nil: any error
	}{
		{"missing", "missing", []lifecycle.KeyCheck{newKeyCheck("missing", "eu-west-1")}, fault.ErrNotFound},
		{"missing-no-checks", "missing", nil, fault.ErrNotFound},
		{"missing-id-case", "ACME", []lifecycle.KeyCheck{newKeyCheck("ACME", "eu-west-1")}, fault.ErrNotFound},
		{"another-tenants-check", "acme", []lifecycle.KeyCheck{newKeyCheck("acme", "ap-south-1"), newKeyCheck("other", "ap-south-1")}, nil},
		{"check-without-tenant", "acme", []lifecycle.KeyCheck{newKeyCheck("", "ap-south-1")}, nil},
		{"two-checks-of-a-region", "acme", []lifecycle.KeyCheck{
			newKeyCheck("acme", "ap-south-1"), newKeyCheck("acme", "eu-west-1"), newKeyCheck("acme", "ap-south-1"),
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.ReplaceKeyChecks(ctx, tc.tenant, tc.checks)
			if err == nil {
				t.Fatal("ReplaceKeyChecks: got no error, want one")
			}
			if tc.want != nil {
				checkErr(t, "ReplaceKeyChecks", err, tc.want)
			} else if errors.Is(err, fault.ErrNotFound) {
				t.Errorf("ReplaceKeyChecks: got %v, want an error that is not %v", err, fault.ErrNotFound)
			}
			// Nothing was written, nothing deleted.
			checkKeyChecks(t, s, "acme", stored)
			checkKeyChecks(t, s, "other", otherChecks)
			checkKeyChecks(t, s, tc.tenant, func() []lifecycle.KeyCheck {
				switch tc.tenant {
				case "acme":
					return stored
				case "other":
					return otherChecks
				}
				return nil
			}())
		})
	}
}

func testKeyChecksDeleteTenant(t *testing.T, s Store) {
	ctx := t.Context()
	createCMKTenant(t, s, "gone", keyring.StateActive)
	createCMKTenant(t, s, "kept", keyring.StateActive)
	replaceKeyChecks(t, s, "gone", []lifecycle.KeyCheck{newKeyCheck("gone", "eu-west-1"), newKeyCheck("gone", "us-east-1")})
	kept := []lifecycle.KeyCheck{newKeyCheck("kept", "eu-west-1"), newKeyCheck("kept", "us-east-1")}
	replaceKeyChecks(t, s, "kept", kept)

	if err := s.DeleteTenant(ctx, "gone"); err != nil {
		t.Fatalf("DeleteTenant: %v", err)
	}
	checkKeyChecks(t, s, "gone", nil)
	checkKeyChecks(t, s, "kept", kept)
	checkErr(t, "ReplaceKeyChecks(deleted)", s.ReplaceKeyChecks(ctx, "gone", []lifecycle.KeyCheck{newKeyCheck("gone", "eu-west-1")}), fault.ErrNotFound)
	checkKeyChecks(t, s, "gone", nil)

	checkKeyChecks(t, s, "kept", kept)
}

func testCountTenantsByState(t *testing.T, s Store) {
	ctx := t.Context()
	count := func(t *testing.T, want map[keyring.TenantState]int) {
		t.Helper()
		got, err := s.CountTenantsByState(ctx)
		if err != nil {
			t.Fatalf("CountTenantsByState: %v", err)
		}
		if !maps.Equal(got, want) {
			t.Errorf("CountTenantsByState: got %v, want %v", got, want)
		}
	}
	count(t, map[keyring.TenantState]int{})

	createTenant(t, s, "internal-1")
	createTenant(t, s, "internal-2")
	createCMKTenant(t, s, "cmk-active", keyring.StateActive)
	createCMKTenant(t, s, "cmk-unavailable-1", keyring.StateKeyUnavailable)
	createCMKTenant(t, s, "cmk-unavailable-2", keyring.StateKeyUnavailable)
	createCMKTenant(t, s, "cmk-destroyed-1", keyring.StateDestroyed)
	createCMKTenant(t, s, "cmk-destroyed-2", keyring.StateDestroyed)
	createCMKTenant(t, s, "cmk-destroyed-3", keyring.StateDestroyed)
	count(t, map[keyring.TenantState]int{
		keyring.StateActive:         3,
		keyring.StateKeyUnavailable: 2,
		keyring.StateDestroyed:      3,
	})

	if _, _, err := s.SetTenantState(ctx, "cmk-unavailable-1", cmk(1), keyring.StateLocked, "pending deletion", time.Now()); err != nil {
		t.Fatalf("SetTenantState: %v", err)
	}
	if err := s.DeleteTenant(ctx, "internal-1"); err != nil {
		t.Fatalf("DeleteTenant: %v", err)
	}
	count(t, map[keyring.TenantState]int{
		keyring.StateActive:         2,
		keyring.StateKeyUnavailable: 1,
		keyring.StateLocked:         1,
		keyring.StateDestroyed:      3,
	})
}

// testConcurrentSetTenantState: racing state changes of one tenant apply one
// after the other, each compared with what its predecessor wrote: no lost
// update, and nothing after destroyed.
func testConcurrentSetTenantState(t *testing.T, s Store) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, zone)
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	type result struct {
		prev    keyring.Tenant
		changed bool
		err     error
	}
	// run races the calls and returns what each got.
	run := func(t *testing.T, id string, state func(i int) (keyring.TenantState, string)) []result {
		t.Helper()
		createCMKTenant(t, s, id, keyring.StateActive)
		rs := make([]result, racers)
		race(racers, func(i int) {
			st, reason := state(i)
			rs[i].prev, rs[i].changed, rs[i].err = s.SetTenantState(t.Context(), id, cmk(1), st, reason, at(i))
		})
		return rs
	}
	// chain checks that the changes form one sequence from the initial
	// active state, each changing what the one before wrote, and returns the
	// racers in that order.
	chain := func(t *testing.T, rs []result, reason func(i int) string) []int {
		t.Helper()
		byPrev := map[string]int{}
		for i, r := range rs {
			if !r.changed {
				continue
			}
			if j, ok := byPrev[r.prev.StateReason]; ok {
				t.Fatalf("racers %d and %d both changed the tenant from reason %q: a lost update", j, i, r.prev.StateReason)
			}
			byPrev[r.prev.StateReason] = i
		}
		var order []int
		for cur := ""; ; {
			i, ok := byPrev[cur]
			if !ok {
				break
			}
			order = append(order, i)
			cur = reason(i)
		}
		if len(order) != len(byPrev) {
			t.Fatalf("the %d changes do not form one sequence from the initial state (%d do)", len(byPrev), len(order))
		}
		if len(order) > 0 && rs[order[0]].prev.State != keyring.StateActive {
			t.Errorf("first change (racer %d): got prev state %v, want active", order[0], rs[order[0]].prev.State)
		}
		return order
	}

	t.Run("same-transition", func(t *testing.T) {
		rs := run(t, "same", func(int) (keyring.TenantState, string) { return keyring.StateKeyUnavailable, "key disabled" })
		winner := -1
		for i, r := range rs {
			switch {
			case r.err != nil:
				t.Errorf("SetTenantState (racer %d): %v", i, r.err)
			case r.changed && winner >= 0:
				t.Errorf("SetTenantState: racers %d and %d both changed the state", winner, i)
			case r.changed:
				winner = i
				if r.prev.State != keyring.StateActive {
					t.Errorf("winner %d: got prev state %v, want active", i, r.prev.State)
				}
			}
		}
		if winner < 0 {
			t.Fatal("SetTenantState: no racer changed the state")
		}
		for i, r := range rs {
			if i == winner || r.err != nil {
				continue
			}
			if r.prev.State != keyring.StateKeyUnavailable || r.prev.StateReason != "key disabled" {
				t.Errorf("racer %d: got prev %v %q, want the winner's change", i, r.prev.State, r.prev.StateReason)
			}
			checkTime(t, fmt.Sprintf("racer %d prev StateChangedAt", i), r.prev.StateChangedAt, at(winner))
		}
		got := mustTenant(t, s, "same")
		if got.State != keyring.StateKeyUnavailable || got.StateReason != "key disabled" {
			t.Errorf("stored: got %v %q, want key-unavailable \"key disabled\"", got.State, got.StateReason)
		}
		checkTime(t, "stored StateChangedAt", got.StateChangedAt, at(winner))
	})

	t.Run("new-reasons", func(t *testing.T) {
		reason := func(i int) string { return fmt.Sprintf("reason %d", i) }
		rs := run(t, "reasons", func(i int) (keyring.TenantState, string) { return keyring.StateKeyUnavailable, reason(i) })
		for i, r := range rs {
			if r.err != nil || !r.changed {
				t.Errorf("SetTenantState (racer %d): got changed %v, %v; want true, nil (every reason is new)", i, r.changed, r.err)
			}
		}
		order := chain(t, rs, reason)
		if len(order) != racers {
			t.Fatalf("got %d changes in sequence, want %d", len(order), racers)
		}
		got := mustTenant(t, s, "reasons")
		if last := order[len(order)-1]; got.State != keyring.StateKeyUnavailable || got.StateReason != reason(last) {
			t.Errorf("stored: got %v %q, want key-unavailable %q (the last change)", got.State, got.StateReason, reason(last))
		}
		// Only the first change changed the state.
		checkTime(t, "stored StateChangedAt", got.StateChangedAt, at(order[0]))
	})

	t.Run("destroyed-is-terminal", func(t *testing.T) {
		reason := func(i int) string {
			if i == racers/2 {
				return "key deleted"
			}
			return fmt.Sprintf("reason %d", i)
		}
		state := func(i int) (keyring.TenantState, string) {
			if i == racers/2 {
				return keyring.StateDestroyed, reason(i)
			}
			return keyring.StateLocked, reason(i)
		}
		rs := run(t, "destroyed", state)
		if r := rs[racers/2]; r.err != nil || !r.changed {
			t.Fatalf("SetTenantState(destroyed): got changed %v, %v; want true, nil", r.changed, r.err)
		}
		for i, r := range rs {
			if r.err != nil && !errors.Is(r.err, fault.ErrConflict) {
				t.Errorf("SetTenantState (racer %d): got %v, want nil or %v", i, r.err, fault.ErrConflict)
			}
			if r.err != nil && (r.changed || r.prev.State != keyring.StateDestroyed) {
				t.Errorf("SetTenantState (racer %d): got %v with changed %v and prev state %v; want a conflict only after destroyed", i, r.err, r.changed, r.prev.State)
			}
			if r.err == nil && !r.changed {
				t.Errorf("SetTenantState (racer %d): got no change and no error; every reason is new", i)
			}
		}
		order := chain(t, rs, reason)
		if last := order[len(order)-1]; last != racers/2 {
			t.Errorf("last change: got racer %d (%q), want the destruction", last, reason(last))
		}
		got := mustTenant(t, s, "destroyed")
		if got.State != keyring.StateDestroyed || got.StateReason != "key deleted" {
			t.Errorf("stored: got %v %q, want destroyed \"key deleted\"", got.State, got.StateReason)
		}
		checkTime(t, "stored StateChangedAt", got.StateChangedAt, at(racers/2))
	})
}

// testConcurrentReplaceKeyChecks: racing replacements of a tenant's checks
// all succeed, and the checks of exactly one of them are left, none mixed.
func testConcurrentReplaceKeyChecks(t *testing.T, s Store) {
	createCMKTenant(t, s, "acme", keyring.StateActive)
	regions := []string{"eu-west-1", "us-east-1", "ap-south-1", "eu-central-1"}
	sets := make([][]lifecycle.KeyCheck, racers)
	for i := range sets {
		// Overlapping sets of regions, each racer's checks told apart by
		// their detail.
		for j := range i%len(regions) + 1 {
			c := newKeyCheck("acme", regions[(i+j)%len(regions)])
			c.Detail = fmt.Sprintf("racer %d", i)
			sets[i] = append(sets[i], c)
		}
	}
	errs := make([]error, racers)
	race(racers, func(i int) {
		errs[i] = s.ReplaceKeyChecks(t.Context(), "acme", sets[i])
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("ReplaceKeyChecks (racer %d): %v", i, err)
		}
	}
	got, err := s.KeyChecks(t.Context(), "acme")
	if err != nil {
		t.Fatalf("KeyChecks: %v", err)
	}
	if len(got) == 0 {
		t.Fatal("KeyChecks: got none, want one racer's")
	}
	var last int
	if _, err := fmt.Sscanf(got[0].Detail, "racer %d", &last); err != nil {
		t.Fatalf("KeyChecks: got detail %q: %v", got[0].Detail, err)
	}
	checkKeyChecks(t, s, "acme", sets[last])
}
