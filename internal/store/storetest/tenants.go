package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
)

func testTenantRoundTrip(t *testing.T, s Store) {
	tests := []struct {
		name    string
		edition keyring.Edition
		state   keyring.TenantState
		hipaa   bool
	}{
		{"enterprise-active-hipaa", keyring.EditionEnterprise, keyring.StateActive, true},
		{"business-key-unavailable", keyring.EditionBusiness, keyring.StateKeyUnavailable, false},
		{"business-locked", keyring.EditionBusiness, keyring.StateLocked, false},
		{"enterprise-destroyed", keyring.EditionEnterprise, keyring.StateDestroyed, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := newTenant(tc.name)
			want.Edition, want.State, want.HIPAA = tc.edition, tc.state, tc.hipaa
			if tc.hipaa {
				want.Quota = keyring.Quota{Rate: 2500.5, Burst: 5000}
			}
			if err := s.CreateTenant(t.Context(), want); err != nil {
				t.Fatalf("CreateTenant: %v", err)
			}
			got, err := s.Tenant(t.Context(), tc.name)
			if err != nil {
				t.Fatalf("Tenant: %v", err)
			}
			checkTenant(t, got, want)
		})
	}

	t.Run("zero-and-utc-times", func(t *testing.T) {
		want := newTenant("times")
		want.CreatedAt = time.Unix(0, 0).UTC()
		want.UpdatedAt = time.Date(2262, 4, 11, 23, 47, 16, 854775000, time.UTC)
		if err := s.CreateTenant(t.Context(), want); err != nil {
			t.Fatalf("CreateTenant: %v", err)
		}
		got, err := s.Tenant(t.Context(), want.ID)
		if err != nil {
			t.Fatalf("Tenant: %v", err)
		}
		checkTenant(t, got, want)
	})
}

func testCreateTenantExists(t *testing.T, s Store) {
	want := createTenant(t, s, "acme")
	dup := newTenant("acme")
	dup.Name = "Impostor"
	checkErr(t, "CreateTenant(duplicate)", s.CreateTenant(t.Context(), dup), fault.ErrExists)
	got, err := s.Tenant(t.Context(), "acme")
	if err != nil {
		t.Fatalf("Tenant: %v", err)
	}
	checkTenant(t, got, want)
}

func testTenantNotFound(t *testing.T, s Store) {
	createTenant(t, s, "acme")
	for _, id := range []string{"", "nope", "ACME", "acme "} {
		_, err := s.Tenant(t.Context(), id)
		checkErr(t, "Tenant("+id+")", err, fault.ErrNotFound)
	}
}

func testUpdateTenant(t *testing.T, s Store) {
	orig := createTenant(t, s, "acme")
	createTenant(t, s, "other")
	// Out of the initial state, so that keeping the lifecycle fields shows.
	revokedAt := time.Date(2025, 11, 12, 13, 14, 15, 161718192, zone)
	if _, _, err := s.SetTenantState(t.Context(), "acme", orig.Provider, keyring.StateKeyUnavailable, "key disabled", revokedAt); err != nil {
		t.Fatalf("SetTenantState: %v", err)
	}

	upd := keyring.Tenant{
		ID:             "acme",
		Name:           "ACME Health",
		Edition:        keyring.EditionBusiness,
		HIPAA:          false,
		State:          keyring.StateLocked, // must be ignored, as the two below
		StateReason:    "edited",
		StateChangedAt: time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC),
		Provider:       cmk(5),                                      // must be ignored: only SwitchTenantProvider writes it
		CreatedAt:      time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC), // must be ignored
		UpdatedAt:      time.Date(2026, 7, 8, 9, 10, 11, 121314151, zone),
		Quota:          keyring.Quota{Rate: 0.5, Burst: 1000},
	}
	if err := s.UpdateTenant(t.Context(), upd); err != nil {
		t.Fatalf("UpdateTenant: %v", err)
	}
	got, err := s.Tenant(t.Context(), "acme")
	if err != nil {
		t.Fatalf("Tenant: %v", err)
	}
	want := upd
	want.CreatedAt, want.Provider = orig.CreatedAt, orig.Provider
	want.State, want.StateReason, want.StateChangedAt = keyring.StateKeyUnavailable, "key disabled", revokedAt
	checkTenant(t, got, want)

	other, err := s.Tenant(t.Context(), "other")
	if err != nil {
		t.Fatalf("Tenant(other): %v", err)
	}
	checkTenant(t, other, newTenant("other"))

	missing := newTenant("missing")
	checkErr(t, "UpdateTenant(missing)", s.UpdateTenant(t.Context(), missing), fault.ErrNotFound)
	_, err = s.Tenant(t.Context(), "missing")
	checkErr(t, "Tenant(missing) after UpdateTenant", err, fault.ErrNotFound)
}

// testTenantInvalidEnums: a store refuses what it could not read back.
// UpdateTenant does not write the state, so it neither refuses an invalid one.
func testTenantInvalidEnums(t *testing.T, s Store) {
	tests := []struct {
		name   string
		mutate func(*keyring.Tenant)
		// updated: UpdateTenant ignores the field and succeeds.
		updated bool
	}{
		{"edition", func(tn *keyring.Tenant) { tn.Edition = keyring.EditionUnknown }, false},
		{"state", func(tn *keyring.Tenant) { tn.State = keyring.StateUnknown }, true},
		{"edition-out-of-range", func(tn *keyring.Tenant) { tn.Edition = 99 }, false},
		{"state-out-of-range", func(tn *keyring.Tenant) { tn.State = 99 }, true},
	}
	createTenant(t, s, "valid")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tn := newTenant(tc.name)
			tc.mutate(&tn)
			if err := s.CreateTenant(t.Context(), tn); err == nil {
				t.Errorf("CreateTenant: got no error, want one")
			}
			_, err := s.Tenant(t.Context(), tc.name)
			checkErr(t, "Tenant after refused CreateTenant", err, fault.ErrNotFound)

			upd := newTenant("valid")
			tc.mutate(&upd)
			switch err := s.UpdateTenant(t.Context(), upd); {
			case tc.updated && err != nil:
				t.Errorf("UpdateTenant: got error %v, want none", err)
			case !tc.updated && err == nil:
				t.Errorf("UpdateTenant: got no error, want one")
			}
			got, err := s.Tenant(t.Context(), "valid")
			if err != nil {
				t.Fatalf("Tenant(valid): %v", err)
			}
			checkTenant(t, got, newTenant("valid"))
		})
	}
}

func testListTenants(t *testing.T, s Store) {
	// Ids whose byte order differs from a linguistic collation's.
	ids := []string{"b", "a", "A", "a-b", "aB", "ab", "_x", "z", "é", "0", "a b", "Z9"}
	for _, id := range ids {
		createTenant(t, s, id)
	}
	sorted := slices.Clone(ids)
	slices.Sort(sorted) // byte order

	ctx := t.Context()
	// want is the reference: the ids above after, in byte order, at most limit.
	want := func(after string, limit int) []string {
		var w []string
		for _, id := range sorted {
			if id > after && len(w) < limit {
				w = append(w, id)
			}
		}
		return w
	}
	tests := []struct {
		name  string
		after string
		limit int
	}{
		{"all", "", 100},
		{"exact-limit", "", len(ids)},
		{"first-page", "", 3},
		{"after-existing", sorted[4], 3},
		{"after-missing", "aa", 100},
		{"after-uppercase", "B", 100},
		{"after-last", sorted[len(sorted)-1], 10},
		{"after-beyond", "\U0010FFFF", 10},
		{"limit-zero", "", 0},
		{"limit-negative", "", -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListTenants(ctx, tc.after, tc.limit)
			if err != nil {
				t.Fatalf("ListTenants(%q, %d): %v", tc.after, tc.limit, err)
			}
			var gotIDs []string
			for _, tn := range got {
				gotIDs = append(gotIDs, tn.ID)
			}
			if want := want(tc.after, tc.limit); !slices.Equal(gotIDs, want) {
				t.Errorf("ListTenants(%q, %d): got %q, want %q", tc.after, tc.limit, gotIDs, want)
			}
		})
	}

	t.Run("pages", func(t *testing.T) {
		var got []string
		after := ""
		for page := 0; ; page++ {
			if page > len(ids) {
				t.Fatalf("pagination does not end: got %q so far", got)
			}
			ts, err := s.ListTenants(ctx, after, 5)
			if err != nil {
				t.Fatalf("ListTenants(%q, 5): %v", after, err)
			}
			if len(ts) > 5 {
				t.Fatalf("ListTenants(%q, 5): got %d tenants", after, len(ts))
			}
			if len(ts) == 0 {
				break
			}
			for _, tn := range ts {
				checkTenant(t, tn, newTenant(tn.ID))
				got = append(got, tn.ID)
			}
			after = ts[len(ts)-1].ID
		}
		if !slices.Equal(got, sorted) {
			t.Errorf("paging by 5: got %q, want %q", got, sorted)
		}
	})
}

func testDeleteTenant(t *testing.T, s Store) {
	ctx := t.Context()
	type fixture struct {
		active, retired, data keyring.CipherKey
		providers             []keyprovider.Provider
	}
	setup := func(id string) fixture {
		createTenant(t, s, id)
		f := fixture{retired: newEncryptionKey(t, id), active: newEncryptionKey(t, id), data: newDataKey(t, id)}
		activate(t, s, f.retired)
		if err := s.ActivateCipherKey(ctx, id, &f.retired.ID, f.active); err != nil {
			t.Fatalf("ActivateCipherKey: %v", err)
		}
		if err := s.InsertCipherKey(ctx, f.data); err != nil {
			t.Fatalf("InsertCipherKey: %v", err)
		}
		insertKEK(t, s, newKEK(id, 1, 1))
		insertKEK(t, s, newKEK(id, 2, 1))
		// Both tenants register the same key under the same fingerprint.
		f.providers = []keyprovider.Provider{
			insertKeyProvider(t, s, newKeyProvider(id, fingerprint(1))),
			insertKeyProvider(t, s, newKeyProvider(id, fingerprint(2))),
		}
		return f
	}
	gone, kept := setup("gone"), setup("kept")
	keptBefore, err := s.KEKs(ctx, "kept")
	if err != nil {
		t.Fatalf("KEKs(kept): %v", err)
	}

	if err := s.DeleteTenant(ctx, "gone"); err != nil {
		t.Fatalf("DeleteTenant: %v", err)
	}

	t.Run("deleted", func(t *testing.T) {
		_, err := s.Tenant(ctx, "gone")
		checkErr(t, "Tenant", err, fault.ErrNotFound)
		for _, k := range []keyring.CipherKey{gone.active, gone.retired, gone.data} {
			_, err := s.CipherKey(ctx, "gone", k.ID)
			checkErr(t, "CipherKey", err, fault.ErrNotFound)
		}
		_, err = s.ActiveCipherKey(ctx, "gone")
		checkErr(t, "ActiveCipherKey", err, fault.ErrNotFound)
		counts, err := s.CountCipherKeys(ctx, "gone")
		if err != nil || len(counts) != 0 {
			t.Errorf("CountCipherKeys: got %v, %v; want empty, nil", counts, err)
		}
		keks, err := s.KEKs(ctx, "gone")
		if err != nil || len(keks) != 0 {
			t.Errorf("KEKs: got %+v, %v; want none, nil", keks, err)
		}
		stale, err := s.KEKsNotWrappedBy(ctx, 99, 100)
		if err != nil {
			t.Fatalf("KEKsNotWrappedBy: %v", err)
		}
		for _, k := range stale {
			if k.TenantID == "gone" {
				t.Errorf("KEKsNotWrappedBy: got KEK %d of the deleted tenant", k.Version)
			}
		}
		for _, p := range gone.providers {
			_, err := s.KeyProvider(ctx, "gone", p.Fingerprint)
			checkErr(t, "KeyProvider", err, fault.ErrNotFound)
		}
		providers, err := s.ListKeyProviders(ctx, "gone")
		if err != nil || len(providers) != 0 {
			t.Errorf("ListKeyProviders: got %+v, %v; want none, nil", providers, err)
		}
		checkErr(t, "DeleteTenant again", s.DeleteTenant(ctx, "gone"), fault.ErrNotFound)
	})

	t.Run("others-untouched", func(t *testing.T) {
		got, err := s.Tenant(ctx, "kept")
		if err != nil {
			t.Fatalf("Tenant(kept): %v", err)
		}
		checkTenant(t, got, newTenant("kept"))
		active, err := s.ActiveCipherKey(ctx, "kept")
		if err != nil {
			t.Fatalf("ActiveCipherKey(kept): %v", err)
		}
		want := kept.active
		want.Active = true
		checkCipherKey(t, active, want)
		for _, k := range []keyring.CipherKey{kept.retired, kept.data} {
			if _, err := s.CipherKey(ctx, "kept", k.ID); err != nil {
				t.Errorf("CipherKey(kept, %s): %v", k.ID, err)
			}
		}
		keks, err := s.KEKs(ctx, "kept")
		if err != nil {
			t.Fatalf("KEKs(kept): %v", err)
		}
		checkKEKs(t, "KEKs(kept)", keks, keptBefore)
		providers, err := s.ListKeyProviders(ctx, "kept")
		if err != nil {
			t.Fatalf("ListKeyProviders(kept): %v", err)
		}
		checkKeyProviders(t, "ListKeyProviders(kept)", providers, kept.providers)
	})

	t.Run("id-retired", func(t *testing.T) {
		// Ids are never reused: nothing of the old tenant can reach a new one.
		checkErr(t, "CreateTenant of a deleted tenant's id", s.CreateTenant(ctx, newTenant("gone")), keyring.ErrRetired)
		_, err := s.Tenant(ctx, "gone")
		checkErr(t, "Tenant after the refused creation", err, fault.ErrNotFound)
		checkErr(t, "CreateTenant of a live tenant's id", s.CreateTenant(ctx, newTenant("kept")), fault.ErrExists)
	})

	checkErr(t, "DeleteTenant(missing)", s.DeleteTenant(ctx, "missing"), fault.ErrNotFound)
}
