package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
)

func testKeyProviderRoundTrip(t *testing.T, s Store) {
	createTenant(t, s, "acme")
	tests := []struct {
		name   string
		mutate func(p *keyprovider.Provider)
	}{
		// newKeyProvider sets every field: two replicas, a compliance error,
		// every time.
		{"every-field-two-replicas", func(*keyprovider.Provider) {}},
		{"single-region-no-replicas", func(p *keyprovider.Provider) {
			p.MultiRegion, p.Replicas = false, nil
		}},
		{"empty-replica-list", func(p *keyprovider.Provider) { p.Replicas = []keyprovider.Replica{} }},
		{"one-replica", func(p *keyprovider.Provider) {
			p.Replicas = []keyprovider.Replica{{ARN: "arn:aws:kms:eu-central-1:111122223333:key/mrk-" + p.Fingerprint, Region: "eu-central-1"}}
		}},
		{"replica-json-specials", func(p *keyprovider.Provider) {
			p.Replicas = []keyprovider.Replica{
				{ARN: `quote " backslash \ slash / <tag> & é 🔑`, Region: "\t\n\u2028"},
				{ARN: "", Region: ""},
				{ARN: "null", Region: "[]"},
			}
		}},
		{"dr-compliant", func(p *keyprovider.Provider) {
			p.DRCompliant, p.Compliance = true, keyprovider.ComplianceError{}
		}},
		{"compliance-code-only", func(p *keyprovider.Provider) {
			p.Compliance = keyprovider.ComplianceError{Code: "Encryption-88"}
		}},
		{"never-promoted-demoted-or-tested", func(p *keyprovider.Provider) {
			p.PromotedAt, p.DemotedAt, p.TestedAt = time.Time{}, time.Time{}, time.Time{}
		}},
		{"promoted-never-demoted", func(p *keyprovider.Provider) { p.DemotedAt = time.Time{} }},
		{"epoch-is-not-never", func(p *keyprovider.Provider) {
			p.PromotedAt = time.Unix(0, 0).UTC()
			p.DemotedAt = time.Unix(0, 0).In(zone)
			p.TestedAt = time.Unix(0, 1000).UTC()
		}},
		{"pre-epoch-and-far-future", func(p *keyprovider.Provider) {
			p.CreatedAt = time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC)
			p.PromotedAt = time.Date(1900, 1, 1, 0, 0, 0, 0, zone)
			p.TestedAt = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
		}},
		{"zero-created-at", func(p *keyprovider.Provider) { p.CreatedAt = time.Time{} }},
		{"other-kind-with-settings", func(p *keyprovider.Provider) {
			p.Kind, p.ARN = "KMIP", "kmip://kms.example:5696/"+p.Fingerprint
			p.Config, p.WrappedSecret = []byte(`{"endpoints":["a:5696","b:5696"]}`), []byte{0, 1, 2, 0xff}
		}},
		{"no-settings", func(p *keyprovider.Provider) { p.Config, p.WrappedSecret = nil, nil }},
		{"empty-strings", func(p *keyprovider.Provider) {
			p.ARN, p.Name, p.Description = "", "", ""
			p.Replicas = []keyprovider.Replica{{}}
		}},
		{"unicode-and-quotes", func(p *keyprovider.Provider) {
			p.Name = "Clé KMS — prod 🔑"
			p.Description = "it's \"the\" key\nsecond line\\ ; DROP TABLE key_providers; --"
			p.Compliance.Message = `refused "kms:Decrypt" in us-east-1 (AccessDenied)`
		}},
	}
	var all []keyprovider.Provider
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := newKeyProvider("acme", fingerprint(i+1))
			tc.mutate(&want)
			if err := s.InsertKeyProvider(t.Context(), want); err != nil {
				t.Fatalf("InsertKeyProvider: %v", err)
			}
			got, err := s.KeyProvider(t.Context(), want.TenantID, want.Fingerprint)
			if err != nil {
				t.Fatalf("KeyProvider: %v", err)
			}
			checkKeyProvider(t, got, want)
			all = append(all, want)
		})
	}

	t.Run("listed-alike", func(t *testing.T) {
		got, err := s.ListKeyProviders(t.Context(), "acme")
		if err != nil {
			t.Fatalf("ListKeyProviders: %v", err)
		}
		if len(got) != len(all) {
			t.Fatalf("ListKeyProviders: got %d providers, want %d", len(got), len(all))
		}
		for _, g := range got {
			i := slices.IndexFunc(all, func(w keyprovider.Provider) bool { return w.Fingerprint == g.Fingerprint })
			if i < 0 {
				t.Errorf("ListKeyProviders: got unexpected provider %s", g.Fingerprint)
				continue
			}
			checkKeyProvider(t, g, all[i])
		}
	})
}

func testInsertKeyProviderErrors(t *testing.T, s Store) {
	ctx := t.Context()
	createTenant(t, s, "acme")
	createTenant(t, s, "other")
	stored := insertKeyProvider(t, s, newKeyProvider("acme", fingerprint(1)))

	tests := []struct {
		name string
		p    keyprovider.Provider
		want error
	}{
		{"exists", func() keyprovider.Provider {
			dup := newKeyProvider("acme", fingerprint(1))
			dup.ARN, dup.Name, dup.Replicas = "arn:aws:kms:us-east-1:999999999999:key/impostor", "Impostor", nil
			return dup
		}(), keyring.ErrExists},
		{"exists-identical", stored, keyring.ErrExists},
		{"no-tenant", newKeyProvider("missing", fingerprint(2)), keyring.ErrNotFound},
		{"no-tenant-known-fingerprint", newKeyProvider("missing", fingerprint(1)), keyring.ErrNotFound},
		{"tenant-case-differs", newKeyProvider("ACME", fingerprint(3)), keyring.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, "InsertKeyProvider", s.InsertKeyProvider(ctx, tc.p), tc.want)
			got, err := s.KeyProvider(ctx, "acme", stored.Fingerprint)
			if err != nil {
				t.Fatalf("KeyProvider(acme): %v", err)
			}
			checkKeyProvider(t, got, stored)
			if tc.p.TenantID != "acme" {
				_, err := s.KeyProvider(ctx, tc.p.TenantID, tc.p.Fingerprint)
				checkErr(t, "KeyProvider after refused insert", err, keyring.ErrNotFound)
			}
			list, err := s.ListKeyProviders(ctx, "acme")
			if err != nil {
				t.Fatalf("ListKeyProviders: %v", err)
			}
			if got, want := len(list), 1; got != want {
				t.Errorf("ListKeyProviders(acme): got %d providers, want %d", got, want)
			}
		})
	}

	t.Run("same-fingerprint-other-tenant", func(t *testing.T) {
		theirs := newKeyProvider("other", stored.Fingerprint)
		theirs.Name, theirs.Description, theirs.DRCompliant = "Other's key", "", true
		theirs.Compliance = keyprovider.ComplianceError{}
		insertKeyProvider(t, s, theirs)
		for _, want := range []keyprovider.Provider{stored, theirs} {
			got, err := s.KeyProvider(ctx, want.TenantID, want.Fingerprint)
			if err != nil {
				t.Fatalf("KeyProvider(%q): %v", want.TenantID, err)
			}
			checkKeyProvider(t, got, want)
		}
	})

	createTenant(t, s, "empty")
	insertKeyProvider(t, s, newKeyProvider("acme", fingerprint(0xa)))
	lookups := []struct {
		name        string
		tenant      string
		fingerprint string
	}{
		{"unknown-fingerprint", "acme", fingerprint(99)},
		{"unknown-tenant", "missing", stored.Fingerprint},
		{"tenant-without-providers", "empty", stored.Fingerprint},
		{"empty-fingerprint", "acme", ""},
		{"empty-tenant", "", stored.Fingerprint},
		{"uppercase-fingerprint", "acme", "0000000000000000000000000000000A"},
		{"fingerprint-prefix", "acme", stored.Fingerprint[:31]},
		{"fingerprint-with-space", "acme", stored.Fingerprint + " "},
	}
	for _, tc := range lookups {
		t.Run("KeyProvider/"+tc.name, func(t *testing.T) {
			_, err := s.KeyProvider(ctx, tc.tenant, tc.fingerprint)
			checkErr(t, fmt.Sprintf("KeyProvider(%q, %q)", tc.tenant, tc.fingerprint), err, keyring.ErrNotFound)
		})
	}
}

func testListKeyProviders(t *testing.T, s Store) {
	ctx := t.Context()
	createTenant(t, s, "acme")
	createTenant(t, s, "other")
	createTenant(t, s, "empty")

	at := func(ts time.Time) func(p *keyprovider.Provider) {
		return func(p *keyprovider.Provider) { p.CreatedAt = ts }
	}
	tie := time.Date(2025, 1, 1, 10, 0, 0, 0, time.UTC)
	// Inserted in this order; listed oldest first, ties by fingerprint.
	inserts := []struct {
		tenant string
		fp     int
		mutate func(p *keyprovider.Provider)
	}{
		{"acme", 0xb, at(tie)},
		{"acme", 0x2, at(tie.Add(time.Microsecond))},
		{"acme", 0x3, at(tie)},
		// Later wall clock, earlier instant: 09:30 UTC.
		{"acme", 0x1, at(time.Date(2025, 1, 1, 15, 0, 0, 0, zone))},
		{"acme", 0xa, at(tie.In(zone))},
		{"acme", 0x9, at(time.Date(2024, 12, 31, 23, 0, 0, 0, time.UTC))},
		{"acme", 0x7, at(time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC))},
		{"acme", 0x4, at(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))},
		// Another tenant's providers, older and in between: never listed for acme.
		{"other", 0x5, at(time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC))},
		{"other", 0x3, at(tie)},
	}
	stored := map[string]keyprovider.Provider{}
	for _, in := range inserts {
		p := newKeyProvider(in.tenant, fingerprint(in.fp))
		p.Name = fmt.Sprintf("%s key %x", in.tenant, in.fp)
		in.mutate(&p)
		insertKeyProvider(t, s, p)
		stored[in.tenant+"/"+p.Fingerprint] = p
	}
	wantOrder := func(tenant string, fps ...int) []keyprovider.Provider {
		var w []keyprovider.Provider
		for _, fp := range fps {
			w = append(w, stored[tenant+"/"+fingerprint(fp)])
		}
		return w
	}

	tests := []struct {
		name   string
		tenant string
		want   []keyprovider.Provider
	}{
		{"oldest-first-then-fingerprint", "acme", wantOrder("acme", 0x7, 0x9, 0x1, 0x3, 0xa, 0xb, 0x2, 0x4)},
		{"other-tenant", "other", wantOrder("other", 0x5, 0x3)},
		{"tenant-without-providers", "empty", nil},
		{"no-tenant", "missing", nil},
		{"tenant-case-differs", "ACME", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListKeyProviders(ctx, tc.tenant)
			if err != nil {
				t.Fatalf("ListKeyProviders(%q): %v", tc.tenant, err)
			}
			checkKeyProviders(t, fmt.Sprintf("ListKeyProviders(%q)", tc.tenant), got, tc.want)
		})
	}

	t.Run("update-keeps-order", func(t *testing.T) {
		// UpdateKeyProvider ignores CreatedAt, so the order stays.
		p := stored["acme/"+fingerprint(0x4)]
		upd := p
		upd.CreatedAt = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
		upd.Name = "renamed"
		if err := s.UpdateKeyProvider(ctx, upd); err != nil {
			t.Fatalf("UpdateKeyProvider: %v", err)
		}
		p.Name = "renamed"
		stored["acme/"+fingerprint(0x4)] = p
		got, err := s.ListKeyProviders(ctx, "acme")
		if err != nil {
			t.Fatalf("ListKeyProviders: %v", err)
		}
		checkKeyProviders(t, "ListKeyProviders(acme) after update", got, wantOrder("acme", 0x7, 0x9, 0x1, 0x3, 0xa, 0xb, 0x2, 0x4))
	})

	t.Run("after-delete", func(t *testing.T) {
		if err := s.DeleteKeyProvider(ctx, "acme", fingerprint(0x3)); err != nil {
			t.Fatalf("DeleteKeyProvider: %v", err)
		}
		got, err := s.ListKeyProviders(ctx, "acme")
		if err != nil {
			t.Fatalf("ListKeyProviders: %v", err)
		}
		checkKeyProviders(t, "ListKeyProviders(acme) after delete", got, wantOrder("acme", 0x7, 0x9, 0x1, 0xa, 0xb, 0x2, 0x4))
		got, err = s.ListKeyProviders(ctx, "other")
		if err != nil {
			t.Fatalf("ListKeyProviders: %v", err)
		}
		checkKeyProviders(t, "ListKeyProviders(other) after deleting acme's", got, wantOrder("other", 0x5, 0x3))
	})
}

func testUpdateKeyProvider(t *testing.T, s Store) {
	ctx := t.Context()
	createTenant(t, s, "acme")
	createTenant(t, s, "other")
	orig := insertKeyProvider(t, s, newKeyProvider("acme", fingerprint(1)))
	sibling := insertKeyProvider(t, s, newKeyProvider("acme", fingerprint(2)))
	theirs := insertKeyProvider(t, s, newKeyProvider("other", fingerprint(1)))

	steps := []struct {
		name   string
		mutate func(p *keyprovider.Provider)
	}{
		{"rename", func(p *keyprovider.Provider) {
			p.Name, p.Description = "Production key", "rotated yearly"
		}},
		{"settings-changed", func(p *keyprovider.Provider) {
			p.Config, p.WrappedSecret = []byte(`{"serverCA":"renewed"}`), []byte("rewrapped secret")
		}},
		{"settings-removed", func(p *keyprovider.Provider) { p.Config, p.WrappedSecret = nil, nil }},
		{"test-found-not-compliant", func(p *keyprovider.Provider) {
			p.MultiRegion, p.Replicas, p.DRCompliant = false, nil, false
			p.Compliance = keyprovider.ComplianceError{Code: "Encryption-88", Region: "us-west-2", Message: "the key is not a multi-region key"}
			p.TestedAt = time.Date(2025, 8, 9, 10, 11, 12, 131415161, zone)
		}},
		{"test-found-compliant", func(p *keyprovider.Provider) {
			p.MultiRegion, p.DRCompliant = true, true
			p.Replicas = []keyprovider.Replica{{ARN: "arn:aws:kms:us-west-2:111122223333:key/mrk-" + p.Fingerprint, Region: "us-west-2"}}
			p.Compliance = keyprovider.ComplianceError{}
			p.TestedAt = time.Date(2025, 8, 10, 0, 0, 0, 0, time.UTC)
		}},
		{"promote", func(p *keyprovider.Provider) {
			p.PromotedAt, p.DemotedAt = time.Date(2025, 9, 1, 2, 3, 4, 5006, zone), time.Time{}
		}},
		{"demote", func(p *keyprovider.Provider) { p.DemotedAt = time.Date(2025, 10, 1, 0, 0, 0, 999, time.UTC) }},
		{"clear-everything", func(p *keyprovider.Provider) {
			p.Name, p.Description, p.MultiRegion, p.Replicas, p.DRCompliant = "", "", false, nil, false
			p.Compliance = keyprovider.ComplianceError{}
			p.PromotedAt, p.DemotedAt, p.TestedAt = time.Time{}, time.Time{}, time.Time{}
		}},
		{"set-everything-again", func(p *keyprovider.Provider) {
			*p = newKeyProvider(p.TenantID, p.Fingerprint)
			p.Name = "Again"
			p.Replicas = append(p.Replicas, keyprovider.Replica{ARN: "arn:aws:kms:ap-south-1:111122223333:key/mrk-x", Region: "ap-south-1"})
		}},
	}
	want := orig
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			upd := want
			upd.Replicas = slices.Clone(want.Replicas)
			st.mutate(&upd)
			next := upd
			// Must be ignored.
			upd.ARN = "arn:aws:kms:us-east-1:999999999999:key/impostor"
			upd.CreatedAt = time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)
			if err := s.UpdateKeyProvider(ctx, upd); err != nil {
				t.Fatalf("UpdateKeyProvider: %v", err)
			}
			next.ARN, next.CreatedAt = orig.ARN, orig.CreatedAt
			want = next

			got, err := s.KeyProvider(ctx, "acme", orig.Fingerprint)
			if err != nil {
				t.Fatalf("KeyProvider: %v", err)
			}
			checkKeyProvider(t, got, want)
			for _, b := range []keyprovider.Provider{sibling, theirs} {
				got, err := s.KeyProvider(ctx, b.TenantID, b.Fingerprint)
				if err != nil {
					t.Fatalf("KeyProvider(%q, %s): %v", b.TenantID, b.Fingerprint, err)
				}
				checkKeyProvider(t, got, b)
			}
		})
	}

	errs := []struct {
		name string
		p    keyprovider.Provider
	}{
		{"unknown-fingerprint", newKeyProvider("acme", fingerprint(9))},
		{"unknown-tenant", newKeyProvider("missing", fingerprint(1))},
		{"other-tenant-lacks-fingerprint", newKeyProvider("other", fingerprint(2))},
		{"empty-fingerprint", newKeyProvider("acme", "")},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, "UpdateKeyProvider", s.UpdateKeyProvider(ctx, tc.p), keyring.ErrNotFound)
			_, err := s.KeyProvider(ctx, tc.p.TenantID, tc.p.Fingerprint)
			checkErr(t, "KeyProvider after refused update", err, keyring.ErrNotFound)
			for _, w := range []keyprovider.Provider{want, sibling, theirs} {
				got, err := s.KeyProvider(ctx, w.TenantID, w.Fingerprint)
				if err != nil {
					t.Fatalf("KeyProvider(%q, %s): %v", w.TenantID, w.Fingerprint, err)
				}
				checkKeyProvider(t, got, w)
			}
		})
	}
}

// testSetKeyProviderCompliance: SetKeyProviderCompliance writes DRCompliant,
// Compliance and TestedAt of one provider and nothing else, so that a
// monitor's check and an admin's rename racing each other lose neither.
func testSetKeyProviderCompliance(t *testing.T, s Store) {
	ctx := t.Context()
	createTenant(t, s, "acme")
	createTenant(t, s, "other")
	// newKeyProvider sets every field, so a write of a column it should
	// leave alone shows.
	want := insertKeyProvider(t, s, newKeyProvider("acme", fingerprint(1)))
	sibling := insertKeyProvider(t, s, newKeyProvider("acme", fingerprint(2)))
	theirs := newKeyProvider("other", fingerprint(1))
	theirs.Name, theirs.DRCompliant, theirs.Compliance = "Other's key", true, keyprovider.ComplianceError{}
	insertKeyProvider(t, s, theirs)

	checkStored := func(t *testing.T, ws ...keyprovider.Provider) {
		t.Helper()
		for _, w := range ws {
			got, err := s.KeyProvider(ctx, w.TenantID, w.Fingerprint)
			if err != nil {
				t.Fatalf("KeyProvider(%q, %s): %v", w.TenantID, w.Fingerprint, err)
			}
			checkKeyProvider(t, got, w)
		}
	}

	steps := []struct {
		name        string
		drCompliant bool
		compliance  keyprovider.ComplianceError
		testedAt    time.Time
	}{
		{"not-compliant", false, keyprovider.ComplianceError{
			Code:    "Encryption-89",
			Region:  "eu-central-1",
			Message: `replica refused "kms:Decrypt" in eu-central-1 (KMSInvalidStateException)`,
		}, time.Date(2025, 8, 9, 10, 11, 12, 131415161, zone)},
		{"compliant", true, keyprovider.ComplianceError{}, time.Date(2025, 8, 10, 0, 0, 0, 999, time.UTC)},
		{"not-compliant-again", false, keyprovider.ComplianceError{Code: "Encryption-88"}, time.Date(2025, 8, 11, 1, 2, 3, 456789000, zone)},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := s.SetKeyProviderCompliance(ctx, "acme", want.Fingerprint, st.drCompliant, st.compliance, st.testedAt); err != nil {
				t.Fatalf("SetKeyProviderCompliance: %v", err)
			}
			want.DRCompliant, want.Compliance, want.TestedAt = st.drCompliant, st.compliance, st.testedAt
			checkStored(t, want, sibling, theirs)
		})
	}

	t.Run("then-rename", func(t *testing.T) {
		// An admin's rename of a value read after the check keeps it.
		fresh, err := s.KeyProvider(ctx, "acme", want.Fingerprint)
		if err != nil {
			t.Fatalf("KeyProvider: %v", err)
		}
		fresh.Name = "Renamed after the check"
		if err := s.UpdateKeyProvider(ctx, fresh); err != nil {
			t.Fatalf("UpdateKeyProvider: %v", err)
		}
		want.Name = fresh.Name
		checkStored(t, want, sibling, theirs)
	})

	errs := []struct {
		name        string
		tenant      string
		fingerprint string
	}{
		{"unknown-fingerprint", "acme", fingerprint(9)},
		{"unknown-tenant", "missing", want.Fingerprint},
		{"other-tenant-lacks-fingerprint", "other", sibling.Fingerprint},
		{"tenant-case-differs", "ACME", want.Fingerprint},
		{"empty-fingerprint", "acme", ""},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			err := s.SetKeyProviderCompliance(ctx, tc.tenant, tc.fingerprint, true, keyprovider.ComplianceError{}, time.Now())
			checkErr(t, fmt.Sprintf("SetKeyProviderCompliance(%q, %q)", tc.tenant, tc.fingerprint), err, keyring.ErrNotFound)
			_, err = s.KeyProvider(ctx, tc.tenant, tc.fingerprint)
			checkErr(t, "KeyProvider after refused SetKeyProviderCompliance", err, keyring.ErrNotFound)
			checkStored(t, want, sibling, theirs)
		})
	}

	t.Run("racing-rename", func(t *testing.T) {
		// UpdateKeyProvider replaces every field, so its stale copy of the
		// compliance may land after the check's; the rename must survive
		// either way, and the monitor's next check then records its result.
		for i := range 8 {
			before, err := s.KeyProvider(ctx, "acme", want.Fingerprint)
			if err != nil {
				t.Fatalf("KeyProvider: %v", err)
			}
			renamed := before
			renamed.Name = fmt.Sprintf("Renamed %d", i)
			checked := renamed
			checked.DRCompliant = i%2 == 0
			checked.Compliance = keyprovider.ComplianceError{}
			if !checked.DRCompliant {
				checked.Compliance = keyprovider.ComplianceError{Code: "Encryption-88", Region: "us-east-1", Message: fmt.Sprintf("check %d", i)}
			}
			checked.TestedAt = time.Date(2025, 9, 1, i, 2, 3, 456789123, zone)
			set := func() error {
				return s.SetKeyProviderCompliance(ctx, "acme", want.Fingerprint, checked.DRCompliant, checked.Compliance, checked.TestedAt)
			}

			var errUpdate, errSet error
			race(2, func(j int) {
				if j == 0 {
					errUpdate = s.UpdateKeyProvider(ctx, renamed)
				} else {
					errSet = set()
				}
			})
			checkErr(t, "UpdateKeyProvider", errUpdate, nil)
			checkErr(t, "SetKeyProviderCompliance", errSet, nil)
			got, err := s.KeyProvider(ctx, "acme", want.Fingerprint)
			if err != nil {
				t.Fatalf("KeyProvider: %v", err)
			}
			if got.TestedAt.Equal(checked.TestedAt.Truncate(time.Microsecond)) {
				checkKeyProvider(t, got, checked)
			} else {
				checkKeyProvider(t, got, renamed)
			}

			checkErr(t, "SetKeyProviderCompliance again", set(), nil)
			checkStored(t, checked, sibling, theirs)
		}
	})
}

func testDeleteKeyProvider(t *testing.T, s Store) {
	ctx := t.Context()
	createTenant(t, s, "acme")
	createTenant(t, s, "other")
	gone := insertKeyProvider(t, s, newKeyProvider("acme", fingerprint(1)))
	sibling := insertKeyProvider(t, s, newKeyProvider("acme", fingerprint(2)))
	theirs := insertKeyProvider(t, s, newKeyProvider("other", fingerprint(1)))

	if err := s.DeleteKeyProvider(ctx, "acme", gone.Fingerprint); err != nil {
		t.Fatalf("DeleteKeyProvider: %v", err)
	}

	t.Run("deleted", func(t *testing.T) {
		_, err := s.KeyProvider(ctx, "acme", gone.Fingerprint)
		checkErr(t, "KeyProvider(deleted)", err, keyring.ErrNotFound)
		got, err := s.ListKeyProviders(ctx, "acme")
		if err != nil {
			t.Fatalf("ListKeyProviders: %v", err)
		}
		checkKeyProviders(t, "ListKeyProviders(acme)", got, []keyprovider.Provider{sibling})
		checkErr(t, "UpdateKeyProvider(deleted)", s.UpdateKeyProvider(ctx, gone), keyring.ErrNotFound)
	})
	t.Run("others-untouched", func(t *testing.T) {
		for _, w := range []keyprovider.Provider{sibling, theirs} {
			got, err := s.KeyProvider(ctx, w.TenantID, w.Fingerprint)
			if err != nil {
				t.Fatalf("KeyProvider(%q, %s): %v", w.TenantID, w.Fingerprint, err)
			}
			checkKeyProvider(t, got, w)
		}
		if _, err := s.Tenant(ctx, "acme"); err != nil {
			t.Errorf("Tenant(acme): %v", err)
		}
	})

	errs := []struct {
		name        string
		tenant      string
		fingerprint string
	}{
		{"again", "acme", gone.Fingerprint},
		{"unknown-fingerprint", "acme", fingerprint(9)},
		{"unknown-tenant", "missing", sibling.Fingerprint},
		{"other-tenant-lacks-fingerprint", "other", sibling.Fingerprint},
		{"empty-fingerprint", "acme", ""},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, fmt.Sprintf("DeleteKeyProvider(%q, %q)", tc.tenant, tc.fingerprint),
				s.DeleteKeyProvider(ctx, tc.tenant, tc.fingerprint), keyring.ErrNotFound)
			for _, w := range []keyprovider.Provider{sibling, theirs} {
				if _, err := s.KeyProvider(ctx, w.TenantID, w.Fingerprint); err != nil {
					t.Errorf("KeyProvider(%q, %s) after refused delete: %v", w.TenantID, w.Fingerprint, err)
				}
			}
		})
	}

	t.Run("reinsert", func(t *testing.T) {
		again := newKeyProvider("acme", gone.Fingerprint)
		again.Name, again.Replicas = "Registered again", nil
		again.PromotedAt, again.DemotedAt = time.Time{}, time.Time{}
		again.CreatedAt = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
		insertKeyProvider(t, s, again)
		got, err := s.KeyProvider(ctx, "acme", gone.Fingerprint)
		if err != nil {
			t.Fatalf("KeyProvider: %v", err)
		}
		checkKeyProvider(t, got, again)
	})
}

// fingerprint returns the n-th test fingerprint: 32 lowercase hex
// characters, as keyprovider derives them from an ARN.
func fingerprint(n int) string { return fmt.Sprintf("%032x", n) }

// newKeyProvider returns a provider of the tenant with every field set: a
// multi-region key with two replicas, not DR compliant, promoted, demoted
// and tested.
func newKeyProvider(tenantID, fingerprint string) keyprovider.Provider {
	return keyprovider.Provider{
		TenantID:      tenantID,
		Fingerprint:   fingerprint,
		Kind:          "AWS-KMS",
		ARN:           "arn:aws:kms:eu-west-1:111122223333:key/mrk-" + fingerprint,
		Config:        []byte(`{"note":"kind settings"}`),
		WrappedSecret: []byte("wrapped kind secret"),
		Name:          "Key of " + tenantID,
		Description:   "Customer managed key " + fingerprint,
		MultiRegion:   true,
		Replicas: []keyprovider.Replica{
			{ARN: "arn:aws:kms:eu-central-1:111122223333:key/mrk-" + fingerprint, Region: "eu-central-1"},
			{ARN: "arn:aws:kms:us-east-1:111122223333:key/mrk-" + fingerprint, Region: "us-east-1"},
		},
		DRCompliant: false,
		Compliance: keyprovider.ComplianceError{
			Code:    "Encryption-88",
			Region:  "us-east-1",
			Message: "the key policy or state refuses Decrypt in us-east-1 (AccessDenied)",
		},
		CreatedAt:  time.Date(2025, 3, 4, 5, 6, 7, 891011121, zone),
		PromotedAt: time.Date(2025, 3, 5, 0, 0, 1, 123456789, zone),
		DemotedAt:  time.Date(2025, 4, 6, 12, 30, 0, 1000, time.UTC),
		TestedAt:   time.Date(2025, 5, 7, 8, 9, 10, 111222333, zone),
	}
}

func insertKeyProvider(t *testing.T, s Store, p keyprovider.Provider) keyprovider.Provider {
	t.Helper()
	if err := s.InsertKeyProvider(t.Context(), p); err != nil {
		t.Fatalf("InsertKeyProvider(%q, %s): %v", p.TenantID, p.Fingerprint, err)
	}
	return p
}

// checkKeyProvider compares every field. An empty replica list may come back
// nil or empty.
func checkKeyProvider(t *testing.T, got, want keyprovider.Provider) {
	t.Helper()
	if got.TenantID != want.TenantID || got.Fingerprint != want.Fingerprint || got.ARN != want.ARN ||
		got.Name != want.Name || got.Description != want.Description || got.MultiRegion != want.MultiRegion ||
		!slices.Equal(got.Replicas, want.Replicas) || got.DRCompliant != want.DRCompliant || got.Compliance != want.Compliance ||
		got.Kind != want.Kind || !bytes.Equal(got.Config, want.Config) || !bytes.Equal(got.WrappedSecret, want.WrappedSecret) {
		t.Errorf("key provider:\ngot  %+v\nwant %+v", got, want)
	}
	what := "key provider " + want.TenantID + "/" + want.Fingerprint
	checkOptionalTime(t, what+" CreatedAt", got.CreatedAt, want.CreatedAt)
	checkOptionalTime(t, what+" PromotedAt", got.PromotedAt, want.PromotedAt)
	checkOptionalTime(t, what+" DemotedAt", got.DemotedAt, want.DemotedAt)
	checkOptionalTime(t, what+" TestedAt", got.TestedAt, want.TestedAt)
}

// checkKeyProviders compares lists, order included.
func checkKeyProviders(t *testing.T, what string, got, want []keyprovider.Provider) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: got nil, want an empty slice", what)
	}
	fps := func(ps []keyprovider.Provider) []string {
		var s []string
		for _, p := range ps {
			s = append(s, p.TenantID+"/"+p.Fingerprint)
		}
		return s
	}
	if g, w := fps(got), fps(want); !slices.Equal(g, w) {
		t.Fatalf("%s: got %q, want %q", what, g, w)
	}
	for i := range want {
		checkKeyProvider(t, got[i], want[i])
	}
}

// checkOptionalTime is checkTime, but wants the zero time ("never") back as
// the zero time.
func checkOptionalTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if want.IsZero() {
		if !got.IsZero() {
			t.Errorf("%s: got %v, want the zero time", what, got)
		}
		return
	}
	checkTime(t, what, got, want)
}
