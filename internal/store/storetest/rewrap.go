package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/migration"
)

// keyID returns the key id that starts with b and continues with zeros.
func keyID(b ...byte) envelope.KeyID {
	var id envelope.KeyID
	copy(id[:], b)
	return id
}

func testCipherKeysNotWrappedBy(t *testing.T, s Store) {
	ctx := t.Context()
	createTenant(t, s, "acme")
	createTenant(t, s, "other")
	createTenant(t, s, "empty")

	// Ids whose byte order differs from a signed or a little-endian one,
	// inserted out of order.
	var last envelope.KeyID
	last[len(last)-1] = 1
	ids := []envelope.KeyID{
		keyID(0x80), keyID(0x01), keyID(0xff, 0xff, 0xff), last, keyID(0x7f, 0xff),
		keyID(0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1), keyID(0xfe), keyID(0x00, 0xff),
		keyID(0x41), keyID(0x61),
	}
	providers := []kms.Ref{kms.InternalRef(), cmk(1), cmk(2)}
	var acme []keyring.CipherKey
	for i, id := range ids {
		k := newDataKey(t, "acme")
		k.ID, k.Provider, k.UsesReserved = id, providers[i%len(providers)], int64(i)
		k.Wrapped = append([]byte("acme:"), id[:]...)
		onProvider(t, s, "acme", k.Provider)
		if i == 4 {
			k.Purpose, k.ContextDigest = keyring.PurposeEncryption, nil
			activate(t, s, k)
			k.Active = true
		} else if err := s.InsertCipherKey(ctx, k); err != nil {
			t.Fatalf("InsertCipherKey: %v", err)
		}
		acme = append(acme, k)
	}
	// The same ids in another tenant, which must not show.
	var other []keyring.CipherKey
	for i, id := range ids[:4] {
		k := newDataKey(t, "other")
		k.ID, k.Provider = id, []kms.Ref{kms.InternalRef(), cmk(1), cmk(9), kms.InternalRef()}[i]
		onProvider(t, s, "other", k.Provider)
		if err := s.InsertCipherKey(ctx, k); err != nil {
			t.Fatalf("InsertCipherKey: %v", err)
		}
		other = append(other, k)
	}

	// want is the reference implementation.
	want := func(keys []keyring.CipherKey, ref kms.Ref, after envelope.KeyID, limit int) []keyring.CipherKey {
		var w []keyring.CipherKey
		for _, k := range keys {
			if k.Provider != ref && bytes.Compare(k.ID[:], after[:]) > 0 {
				w = append(w, k)
			}
		}
		slices.SortFunc(w, func(a, b keyring.CipherKey) int { return bytes.Compare(a.ID[:], b.ID[:]) })
		if len(w) > max(limit, 0) {
			w = w[:max(limit, 0)]
		}
		return w
	}
	check := func(t *testing.T, what string, got, want []keyring.CipherKey) {
		t.Helper()
		if got == nil {
			t.Errorf("%s: got nil, want an empty slice", what)
		}
		keyIDs := func(ks []keyring.CipherKey) []string {
			var s []string
			for _, k := range ks {
				s = append(s, k.TenantID+"/"+k.ID.String())
			}
			return s
		}
		if g, w := keyIDs(got), keyIDs(want); !slices.Equal(g, w) {
			t.Fatalf("%s:\ngot  %q\nwant %q", what, g, w)
		}
		for i := range want {
			checkCipherKey(t, got[i], want[i])
		}
	}
	var zero envelope.KeyID
	tests := []struct {
		name   string
		tenant string
		ref    kms.Ref
		after  envelope.KeyID
		limit  int
		keys   []keyring.CipherKey // the tenant's
	}{
		{"not-internal", "acme", kms.InternalRef(), zero, 100, acme},
		{"not-cmk-1", "acme", cmk(1), zero, 100, acme},
		{"unused-ref", "acme", cmk(7), zero, 100, acme},
		{"zero-ref", "acme", kms.Ref{}, zero, 100, acme},
		{"exact-limit", "acme", cmk(7), zero, len(ids), acme},
		{"limit-one", "acme", kms.InternalRef(), zero, 1, acme},
		{"limit-three", "acme", cmk(2), zero, 3, acme},
		{"after-existing", "acme", cmk(7), keyID(0x7f, 0xff), 100, acme},
		{"after-existing-same-ref", "acme", kms.InternalRef(), ids[0], 100, acme},
		{"after-missing", "acme", kms.InternalRef(), keyID(0x42), 3, acme},
		{"after-first-byte-only", "acme", cmk(7), keyID(0x80), 100, acme},
		{"after-high", "acme", cmk(7), keyID(0xfe, 0xff), 100, acme},
		{"after-max", "acme", cmk(7), keyID(bytes.Repeat([]byte{0xff}, 16)...), 100, acme},
		{"limit-zero", "acme", cmk(7), zero, 0, acme},
		{"limit-negative", "acme", cmk(7), zero, -1, acme},
		{"other-tenant", "other", kms.InternalRef(), zero, 100, other},
		{"other-tenant-after", "other", kms.Ref{}, ids[1], 100, other},
		{"tenant-without-keys", "empty", kms.InternalRef(), zero, 100, nil},
		{"unknown-tenant", "missing", kms.InternalRef(), zero, 100, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.CipherKeysNotWrappedBy(ctx, tc.tenant, tc.ref, tc.after, tc.limit)
			if err != nil {
				t.Fatalf("CipherKeysNotWrappedBy: %v", err)
			}
			check(t, "CipherKeysNotWrappedBy", got, want(tc.keys, tc.ref, tc.after, tc.limit))
		})
	}

	t.Run("pages", func(t *testing.T) {
		for _, ref := range []kms.Ref{kms.InternalRef(), cmk(7)} {
			var got []keyring.CipherKey
			var after envelope.KeyID
			for page := 0; ; page++ {
				if page > len(ids) {
					t.Fatalf("paging by 3 does not end: got %d keys so far", len(got))
				}
				ks, err := s.CipherKeysNotWrappedBy(ctx, "acme", ref, after, 3)
				if err != nil {
					t.Fatalf("CipherKeysNotWrappedBy: %v", err)
				}
				if len(ks) > 3 {
					t.Fatalf("CipherKeysNotWrappedBy(limit 3): got %d", len(ks))
				}
				if len(ks) == 0 {
					break
				}
				got = append(got, ks...)
				after = ks[len(ks)-1].ID
			}
			check(t, "paging by 3, not "+ref.String(), got, want(acme, ref, zero, math.MaxInt))
		}
	})

	t.Run("drains-by-rewrapping", func(t *testing.T) {
		// How a migration uses it: fetch a batch from the start, rewrap it,
		// repeat until none is left.
		target := cmk(2)
		for round := 0; ; round++ {
			if round > len(ids) {
				t.Fatal("CipherKeysNotWrappedBy does not drain")
			}
			batch, err := s.CipherKeysNotWrappedBy(ctx, "acme", target, zero, 3)
			if err != nil {
				t.Fatalf("CipherKeysNotWrappedBy: %v", err)
			}
			if len(batch) == 0 {
				break
			}
			for _, k := range batch {
				if err := s.RewrapCipherKey(ctx, k, target, "v2", append([]byte("rewrapped:"), k.ID[:]...)); err != nil {
					t.Fatalf("RewrapCipherKey(%s): %v", k.ID, err)
				}
			}
		}
		counts, err := s.CountCipherKeys(ctx, "acme")
		if err != nil {
			t.Fatalf("CountCipherKeys: %v", err)
		}
		if w := map[kms.Ref]int{target: len(ids)}; !maps.Equal(counts, w) {
			t.Errorf("CountCipherKeys(acme) after draining: got %v, want %v", counts, w)
		}
		for _, k := range acme {
			got, err := s.CipherKey(ctx, "acme", k.ID)
			if err != nil {
				t.Fatalf("CipherKey: %v", err)
			}
			w := k
			if w.Provider != target {
				w.KeyVersion, w.Wrapped = "v2", append([]byte("rewrapped:"), k.ID[:]...)
			}
			w.Provider = target
			checkCipherKey(t, got, w)
		}
		for _, k := range other {
			got, err := s.CipherKey(ctx, "other", k.ID)
			if err != nil {
				t.Fatalf("CipherKey(other): %v", err)
			}
			checkCipherKey(t, got, k)
		}
	})
}

func testRewrapCipherKey(t *testing.T, s Store) {
	ctx := t.Context()
	createTenant(t, s, "acme")
	createTenant(t, s, "other")
	k := newEncryptionKey(t, "acme") // active, 42 uses reserved
	activate(t, s, k)
	k.Active = true
	data := newDataKey(t, "acme")
	if err := s.InsertCipherKey(ctx, data); err != nil {
		t.Fatalf("InsertCipherKey: %v", err)
	}
	// The same id in another tenant, wrapped alike.
	twin := data
	twin.TenantID = "other"
	if err := s.InsertCipherKey(ctx, twin); err != nil {
		t.Fatalf("InsertCipherKey: %v", err)
	}
	unwrapped := newDataKey(t, "acme")
	unwrapped.Wrapped = nil
	if err := s.InsertCipherKey(ctx, unwrapped); err != nil {
		t.Fatalf("InsertCipherKey: %v", err)
	}
	orig := k

	with := func(k keyring.CipherKey, provider kms.Ref, wrapped []byte) keyring.CipherKey {
		k.Provider, k.Wrapped = provider, wrapped
		return k
	}
	steps := []struct {
		name       string
		old        keyring.CipherKey
		provider   kms.Ref
		keyVersion string
		wrapped    []byte
		err        error
		want       keyring.CipherKey // k afterwards
	}{
		{"rewrap", orig, cmk(2), "v9", []byte("under cmk 2"), nil,
			func() keyring.CipherKey {
				w := with(orig, cmk(2), []byte("under cmk 2"))
				w.KeyVersion = "v9"
				return w
			}()},
		{"stale", orig, cmk(3), "v1", []byte("lost"), fault.ErrConflict, keyring.CipherKey{}},
		{"stale-wrapped-current-provider", with(orig, cmk(2), orig.Wrapped), cmk(3), "v1", []byte("lost"), fault.ErrConflict, keyring.CipherKey{}},
		{"stale-provider-current-wrapped", with(orig, orig.Provider, []byte("under cmk 2")), cmk(3), "v1", []byte("lost"), fault.ErrConflict, keyring.CipherKey{}},
		{"wrapped-prefix", with(orig, cmk(2), []byte("under cmk")), cmk(3), "v1", []byte("lost"), fault.ErrConflict, keyring.CipherKey{}},
		{"wrapped-empty", with(orig, cmk(2), nil), cmk(3), "v1", []byte("lost"), fault.ErrConflict, keyring.CipherKey{}},
		// Only Provider and Wrapped of old are compared.
		{"same-provider-other-fields-stale", func() keyring.CipherKey {
			o := with(orig, cmk(2), []byte("under cmk 2"))
			o.KeyVersion, o.UsesReserved, o.Active, o.Purpose, o.CreatedAt = "stale", 0, false, keyring.PurposeDataKey, o.CreatedAt.AddDate(-1, 0, 0)
			return o
		}(), cmk(2), "v10", []byte("again under cmk 2"), nil,
			func() keyring.CipherKey {
				w := with(orig, cmk(2), []byte("again under cmk 2"))
				w.KeyVersion = "v10"
				return w
			}()},
		{"empty-version-and-wrapping", with(orig, cmk(2), []byte("again under cmk 2")), kms.InternalRef(), "", nil, nil,
			func() keyring.CipherKey {
				w := with(orig, kms.InternalRef(), nil)
				w.KeyVersion = ""
				return w
			}()},
		{"unknown-id", with(keyring.CipherKey{TenantID: "acme", ID: newKeyID(t)}, kms.InternalRef(), nil), cmk(1), "v1", []byte("x"), fault.ErrNotFound, keyring.CipherKey{}},
		{"unknown-tenant", func() keyring.CipherKey { o := with(orig, kms.InternalRef(), nil); o.TenantID = "missing"; return o }(), cmk(1), "v1", []byte("x"), fault.ErrNotFound, keyring.CipherKey{}},
		{"id-of-other-tenant", func() keyring.CipherKey { o := with(orig, kms.InternalRef(), nil); o.TenantID = "other"; return o }(), cmk(1), "v1", []byte("x"), fault.ErrNotFound, keyring.CipherKey{}},
	}
	want := orig
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			err := s.RewrapCipherKey(ctx, st.old, st.provider, st.keyVersion, st.wrapped)
			checkErr(t, "RewrapCipherKey", err, st.err)
			if st.err == nil {
				want = st.want
			}
			got, err := s.CipherKey(ctx, "acme", k.ID)
			if err != nil {
				t.Fatalf("CipherKey: %v", err)
			}
			checkCipherKey(t, got, want)
			active, err := s.ActiveCipherKey(ctx, "acme")
			if err != nil {
				t.Fatalf("ActiveCipherKey: %v", err)
			}
			checkCipherKey(t, active, want)
			for _, b := range []keyring.CipherKey{data, twin, unwrapped} {
				got, err := s.CipherKey(ctx, b.TenantID, b.ID)
				if err != nil {
					t.Fatalf("CipherKey(%s/%s): %v", b.TenantID, b.ID, err)
				}
				checkCipherKey(t, got, b)
			}
		})
	}

	t.Run("one-tenant-of-twins", func(t *testing.T) {
		if err := s.RewrapCipherKey(ctx, data, cmk(4), "v4", []byte("acme's")); err != nil {
			t.Fatalf("RewrapCipherKey: %v", err)
		}
		got, err := s.CipherKey(ctx, "acme", data.ID)
		if err != nil {
			t.Fatalf("CipherKey(acme): %v", err)
		}
		w := with(data, cmk(4), []byte("acme's"))
		w.KeyVersion = "v4"
		checkCipherKey(t, got, w)
		got, err = s.CipherKey(ctx, "other", twin.ID)
		if err != nil {
			t.Fatalf("CipherKey(other): %v", err)
		}
		checkCipherKey(t, got, twin)
	})

	t.Run("from-empty-wrapping", func(t *testing.T) {
		if err := s.RewrapCipherKey(ctx, unwrapped, cmk(1), "v1", []byte("now wrapped")); err != nil {
			t.Fatalf("RewrapCipherKey: %v", err)
		}
		got, err := s.CipherKey(ctx, "acme", unwrapped.ID)
		if err != nil {
			t.Fatalf("CipherKey: %v", err)
		}
		w := with(unwrapped, cmk(1), []byte("now wrapped"))
		w.KeyVersion = "v1"
		checkCipherKey(t, got, w)
	})
}

// testConcurrentRewrap: racing rewraps of one cipherkey from the same old
// wrapping; exactly one wins, the rest get ErrConflict and write nothing.
func testConcurrentRewrap(t *testing.T, s Store) {
	const rewrappers = 16
	ctx := t.Context()
	createTenant(t, s, "acme")
	k := newEncryptionKey(t, "acme")
	activate(t, s, k)
	k.Active = true

	errs := make([]error, rewrappers)
	race(rewrappers, func(i int) {
		errs[i] = s.RewrapCipherKey(ctx, k, cmk(i%3), fmt.Sprintf("v%d", i), fmt.Appendf(nil, "racer %d", i))
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("RewrapCipherKey: racers %d and %d both won", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, fault.ErrConflict):
			t.Errorf("RewrapCipherKey (racer %d): got error %v, want nil or %v", i, err, fault.ErrConflict)
		}
	}
	if winner < 0 {
		t.Fatal("RewrapCipherKey: no racer won")
	}
	got, err := s.CipherKey(ctx, "acme", k.ID)
	if err != nil {
		t.Fatalf("CipherKey: %v", err)
	}
	want := k
	want.Provider, want.KeyVersion, want.Wrapped = cmk(winner%3), fmt.Sprintf("v%d", winner), fmt.Appendf(nil, "racer %d", winner)
	checkCipherKey(t, got, want)
}

// testConcurrentRewrapAndWrites: rewraps of a key racing reservations of its
// uses and its retirement by a rotation lose none of them: each writer
// changes only its own columns.
func testConcurrentRewrapAndWrites(t *testing.T, s Store) {
	const (
		reservers    = 8
		reservations = 20 // per reserver
		rewraps      = 30
	)
	ctx := t.Context()
	createTenant(t, s, "acme")
	k0 := newEncryptionKey(t, "acme")
	k0.UsesReserved = 0
	activate(t, s, k0)
	k1, k2 := newEncryptionKey(t, "acme"), newEncryptionKey(t, "acme")

	last := k0
	race(reservers+2, func(i int) {
		switch i {
		case 0:
			// The rewrapper: each rewrap starts from the wrapping it wrote
			// last, which nobody else changes, so each must succeed.
			old := k0
			for r := range rewraps {
				provider := cmk(r % 2)
				wrapped := fmt.Appendf(nil, "rewrap %d", r)
				if err := s.RewrapCipherKey(ctx, old, provider, fmt.Sprintf("v%d", r), wrapped); err != nil {
					t.Errorf("RewrapCipherKey(round %d): %v", r, err)
					return
				}
				old.Provider, old.KeyVersion, old.Wrapped = provider, fmt.Sprintf("v%d", r), wrapped
			}
			last = old
		case 1:
			// The rotator retires k0, then its successor.
			if err := s.ActivateCipherKey(ctx, "acme", &k0.ID, k1); err != nil {
				t.Errorf("ActivateCipherKey(k1): %v", err)
			}
			if err := s.ActivateCipherKey(ctx, "acme", &k1.ID, k2); err != nil {
				t.Errorf("ActivateCipherKey(k2): %v", err)
			}
		default:
			for range reservations {
				if _, err := s.ReserveUses(ctx, "acme", k0.ID, 1, math.MaxInt64); err != nil {
					t.Errorf("ReserveUses: %v", err)
					return
				}
			}
		}
	})
	if t.Failed() {
		return
	}
	got, err := s.CipherKey(ctx, "acme", k0.ID)
	if err != nil {
		t.Fatalf("CipherKey(k0): %v", err)
	}
	want := last
	want.Active, want.UsesReserved = false, reservers*reservations
	checkCipherKey(t, got, want)
	active, err := s.ActiveCipherKey(ctx, "acme")
	if err != nil {
		t.Fatalf("ActiveCipherKey: %v", err)
	}
	k2.Active = true
	checkCipherKey(t, active, k2)
	got, err = s.CipherKey(ctx, "acme", k1.ID)
	if err != nil {
		t.Fatalf("CipherKey(k1): %v", err)
	}
	checkCipherKey(t, got, k1) // inserted active, retired: Active false again
}

// testRewrapCipherKeys: a batch applies every rewrap whose key is still
// wrapped as read, skips the others, and touches nothing else.
func testRewrapCipherKeys(t *testing.T, s Store) {
	ctx := t.Context()
	createTenant(t, s, "acme")
	var keys []keyring.CipherKey
	for range 5 {
		k := newDataKey(t, "acme")
		if err := s.InsertCipherKey(ctx, k); err != nil {
			t.Fatalf("InsertCipherKey: %v", err)
		}
		keys = append(keys, k)
	}
	// Key 1 is rewrapped by someone else first; key 2 is gone (its tenant
	// is another one in the batch's eyes: wrong tenant id).
	if err := s.RewrapCipherKey(ctx, keys[1], kms.MustCMKRef("elsewhere"), "v9", []byte("theirs")); err != nil {
		t.Fatalf("RewrapCipherKey: %v", err)
	}
	gone := keys[2]
	gone.TenantID = "nobody"
	var rs []migration.Rewrap
	for i, k := range keys {
		if i == 2 {
			k = gone
		}
		rs = append(rs, migration.Rewrap{Old: k, Provider: kms.MustCMKRef("target"), KeyVersion: "v1", Wrapped: fmt.Appendf(nil, "batch %d", i)})
	}
	n, err := s.RewrapCipherKeys(ctx, rs)
	if err != nil {
		t.Fatalf("RewrapCipherKeys: %v", err)
	}
	if got, want := n, 3; got != want {
		t.Errorf("applied = %d, want %d", got, want)
	}
	for i, k := range keys {
		got, err := s.CipherKey(ctx, "acme", k.ID)
		if err != nil {
			t.Fatalf("CipherKey: %v", err)
		}
		want := kms.MustCMKRef("target")
		switch i {
		case 1:
			want = kms.MustCMKRef("elsewhere")
		case 2:
			want = k.Provider
		}
		if got.Provider != want {
			t.Errorf("key %d provider = %q, want %q", i, got.Provider, want)
		}
		if want == kms.MustCMKRef("target") && (string(got.Wrapped) != fmt.Sprintf("batch %d", i) || got.KeyVersion != "v1") {
			t.Errorf("key %d = %q/%q, want the batch's wrapping", i, got.KeyVersion, got.Wrapped)
		}
		if got.UsesReserved != k.UsesReserved || got.Purpose != k.Purpose {
			t.Errorf("key %d: rewrap touched other fields", i)
		}
	}
	if n, err := s.RewrapCipherKeys(ctx, nil); n != 0 || err != nil {
		t.Errorf("empty batch = %d, %v", n, err)
	}
}
