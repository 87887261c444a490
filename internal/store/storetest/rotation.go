package storetest

import (
	"bytes"
	"context"
	"maps"
	"math"
	"slices"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/migration"
)

// The store methods of the internal KMS's rotations (package rotation, and
// the KEK counts of internalkms.Service's status).

func testCountKEKsByRootVersion(t *testing.T, s Store) {
	ctx := t.Context()
	got, err := s.CountKEKsByRootVersion(ctx)
	if err != nil {
		t.Fatalf("CountKEKsByRootVersion(no KEKs): %v", err)
	}
	if got == nil || len(got) != 0 {
		t.Errorf("CountKEKsByRootVersion(no KEKs): got %#v, want an empty map", got)
	}

	// KEKs need no tenant row, but DeleteTenant below needs one for acme.
	createTenant(t, s, "acme")
	for _, k := range [][2]uint32{{1, 1}, {2, 1}, {3, 2}, {4, math.MaxUint32}} {
		insertKEK(t, s, newKEK("acme", k[0], k[1]))
	}
	insertKEK(t, s, newKEK("other", 1, 1))
	insertKEK(t, s, newKEK("other", 2, 0))
	insertKEK(t, s, newKEK("third", 7, 2))
	check := func(what string, want map[uint32]int) {
		t.Helper()
		got, err := s.CountKEKsByRootVersion(ctx)
		if err != nil {
			t.Fatalf("CountKEKsByRootVersion(%s): %v", what, err)
		}
		if !maps.Equal(got, want) {
			t.Errorf("CountKEKsByRootVersion(%s): got %v, want %v", what, got, want)
		}
	}
	check("inserted", map[uint32]int{0: 1, 1: 3, 2: 2, math.MaxUint32: 1})

	// A rewrap moves a KEK from one count to the other.
	if err := s.RewrapKEK(ctx, "acme", 1, 1, 2, []byte("resealed")); err != nil {
		t.Fatalf("RewrapKEK: %v", err)
	}
	check("after a rewrap", map[uint32]int{0: 1, 1: 2, 2: 3, math.MaxUint32: 1})

	// Deleting a tenant removes its KEKs from the counts; a version left
	// with none is absent, not zero.
	if err := s.DeleteTenant(ctx, "acme"); err != nil {
		t.Fatalf("DeleteTenant: %v", err)
	}
	check("after deleting acme", map[uint32]int{0: 1, 1: 1, 2: 1})

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.CountKEKsByRootVersion(canceled); err == nil {
		t.Error("CountKEKsByRootVersion(canceled context): got no error, want one")
	}
}

func testCipherKeysWrappedByOtherVersion(t *testing.T, s Store) {
	ctx := t.Context()
	createTenant(t, s, "acme")
	createTenant(t, s, "other")
	createTenant(t, s, "empty")

	// Ids in an order that differs from a signed or little-endian one; KEK
	// versions whose string order differs from their number order.
	var last envelope.KeyID
	last[len(last)-1] = 1
	ids := []envelope.KeyID{
		keyID(0x80), keyID(0x01), keyID(0xff, 0xff), last, keyID(0x7f, 0xff),
		keyID(0xfe), keyID(0x00, 0xff), keyID(0x41), keyID(0x61), keyID(0x62),
	}
	versions := []string{"1", "2", "10", "2", "3"}
	var acme []keyring.CipherKey
	for i, id := range ids {
		k := newDataKey(t, "acme")
		k.ID, k.KeyVersion = id, versions[i%len(versions)]
		k.Wrapped = append([]byte("acme:"), id[:]...)
		if i%4 == 3 {
			k.Provider, k.KeyVersion = cmk(1), "2"
		}
		onProvider(t, s, "acme", k.Provider)
		if i == 4 {
			k.Purpose, k.ContextDigest, k.Active = keyring.PurposeEncryption, nil, true
			activate(t, s, k)
		} else if err := s.InsertCipherKey(ctx, k); err != nil {
			t.Fatalf("InsertCipherKey: %v", err)
		}
		acme = append(acme, k)
	}
	var other []keyring.CipherKey
	for i, id := range ids[:3] {
		k := newDataKey(t, "other")
		k.ID, k.KeyVersion = id, []string{"1", "2", "1"}[i]
		if err := s.InsertCipherKey(ctx, k); err != nil {
			t.Fatalf("InsertCipherKey: %v", err)
		}
		other = append(other, k)
	}

	// want is the reference implementation.
	want := func(keys []keyring.CipherKey, ref kms.Ref, version string, after envelope.KeyID, limit int) []keyring.CipherKey {
		var w []keyring.CipherKey
		for _, k := range keys {
			if k.Provider == ref && k.KeyVersion != version && bytes.Compare(k.ID[:], after[:]) > 0 {
				w = append(w, k)
			}
		}
		slices.SortFunc(w, func(a, b keyring.CipherKey) int { return bytes.Compare(a.ID[:], b.ID[:]) })
		return w[:min(len(w), max(limit, 0))]
	}
	check := func(t *testing.T, what string, got, want []keyring.CipherKey) {
		t.Helper()
		if got == nil {
			t.Errorf("%s: got nil, want an empty slice", what)
		}
		names := func(ks []keyring.CipherKey) []string {
			var s []string
			for _, k := range ks {
				s = append(s, k.TenantID+"/"+k.ID.String()+"@"+k.Provider.String()+"/"+k.KeyVersion)
			}
			return s
		}
		if g, w := names(got), names(want); !slices.Equal(g, w) {
			t.Fatalf("%s:\ngot  %q\nwant %q", what, g, w)
		}
		for i := range want {
			checkCipherKey(t, got[i], want[i])
		}
	}
	var zero envelope.KeyID
	tests := []struct {
		name         string
		tenant       string
		ref          kms.Ref
		version      string
		after        envelope.KeyID
		limit        int
		keys         []keyring.CipherKey
		wantNonEmpty bool
	}{
		{"internal-not-2", "acme", kms.InternalRef(), "2", zero, 100, acme, true},
		{"internal-not-10", "acme", kms.InternalRef(), "10", zero, 100, acme, true},
		{"internal-not-unused", "acme", kms.InternalRef(), "99", zero, 100, acme, true},
		{"cmk-not-2", "acme", cmk(1), "2", zero, 100, acme, false},
		{"cmk-not-1", "acme", cmk(1), "1", zero, 100, acme, true},
		{"unused-ref", "acme", cmk(7), "1", zero, 100, acme, false},
		{"limit-one", "acme", kms.InternalRef(), "2", zero, 1, acme, true},
		{"limit-three", "acme", kms.InternalRef(), "99", zero, 3, acme, true},
		{"after-existing", "acme", kms.InternalRef(), "2", keyID(0x41), 100, acme, true},
		{"after-missing", "acme", kms.InternalRef(), "99", keyID(0x42), 100, acme, true},
		{"after-max", "acme", kms.InternalRef(), "99", keyID(bytes.Repeat([]byte{0xff}, 16)...), 100, acme, false},
		{"limit-zero", "acme", kms.InternalRef(), "99", zero, 0, acme, false},
		{"limit-negative", "acme", kms.InternalRef(), "99", zero, -1, acme, false},
		{"other-tenant", "other", kms.InternalRef(), "2", zero, 100, other, true},
		{"tenant-without-keys", "empty", kms.InternalRef(), "1", zero, 100, nil, false},
		{"unknown-tenant", "missing", kms.InternalRef(), "1", zero, 100, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.CipherKeysWrappedByOtherVersion(ctx, tc.tenant, tc.ref, tc.version, tc.after, tc.limit)
			if err != nil {
				t.Fatalf("CipherKeysWrappedByOtherVersion: %v", err)
			}
			w := want(tc.keys, tc.ref, tc.version, tc.after, tc.limit)
			if (len(w) > 0) != tc.wantNonEmpty {
				t.Fatalf("the fixture gives %d keys, want the case to expect some = %v", len(w), tc.wantNonEmpty)
			}
			check(t, "CipherKeysWrappedByOtherVersion", got, w)
		})
	}

	t.Run("drains-by-rewrapping", func(t *testing.T) {
		// How a tenant's KEK rotation uses it: pass over the keys in pages,
		// rewrap each page in one batch, until a pass finds none.
		const target = "11"
		for pass := 0; ; pass++ {
			if pass > 2 {
				t.Fatal("passes do not drain")
			}
			var after envelope.KeyID
			found := 0
			for page := 0; ; page++ {
				if page > len(ids) {
					t.Fatal("paging by 3 does not end")
				}
				ks, err := s.CipherKeysWrappedByOtherVersion(ctx, "acme", kms.InternalRef(), target, after, 3)
				if err != nil {
					t.Fatalf("CipherKeysWrappedByOtherVersion: %v", err)
				}
				if len(ks) == 0 {
					break
				}
				found += len(ks)
				after = ks[len(ks)-1].ID
				var rs []migration.Rewrap
				for _, k := range ks {
					rs = append(rs, migration.Rewrap{Old: k, Provider: kms.InternalRef(), KeyVersion: target, Wrapped: append([]byte("v11:"), k.ID[:]...)})
				}
				if n, err := s.RewrapCipherKeys(ctx, rs); err != nil || n != len(rs) {
					t.Fatalf("RewrapCipherKeys = %d, %v; want %d, nil", n, err, len(rs))
				}
			}
			if found == 0 {
				break
			}
		}
		for _, k := range acme {
			got, err := s.CipherKey(ctx, "acme", k.ID)
			if err != nil {
				t.Fatalf("CipherKey: %v", err)
			}
			w := k
			if k.Provider == kms.InternalRef() {
				w.KeyVersion, w.Wrapped = target, append([]byte("v11:"), k.ID[:]...)
			}
			checkCipherKey(t, got, w)
		}
		// The other tenant's keys did not move.
		ks, err := s.CipherKeysWrappedByOtherVersion(ctx, "other", kms.InternalRef(), target, zero, 100)
		if err != nil {
			t.Fatalf("CipherKeysWrappedByOtherVersion: %v", err)
		}
		check(t, "other tenant after acme's rewrap", ks, want(other, kms.InternalRef(), target, zero, 100))
	})

	t.Run("canceled-context", func(t *testing.T) {
		canceled, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.CipherKeysWrappedByOtherVersion(canceled, "acme", kms.InternalRef(), "1", zero, 10); err == nil {
			t.Error("CipherKeysWrappedByOtherVersion(canceled context): got no error, want one")
		}
	})
}
