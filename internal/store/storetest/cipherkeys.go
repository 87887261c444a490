package storetest

import (
	"maps"
	"math"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

func testInsertCipherKey(t *testing.T, s Store) {
	createTenant(t, s, "acme")
	createTenant(t, s, "other")
	tests := []struct {
		name string
		key  func(t *testing.T) keyring.CipherKey
	}{
		{"encryption", func(t *testing.T) keyring.CipherKey { return newEncryptionKey(t, "acme") }},
		{"datakey", func(t *testing.T) keyring.CipherKey { return newDataKey(t, "acme") }},
		{"active-is-ignored", func(t *testing.T) keyring.CipherKey {
			k := newEncryptionKey(t, "acme")
			k.Active = true
			return k
		}},
		{"empty-strings-and-zero-uses", func(t *testing.T) keyring.CipherKey {
			k := newDataKey(t, "acme")
			k.KeyVersion, k.ContextDigest, k.UsesReserved = "", nil, 0
			return k
		}},
		{"max-uses", func(t *testing.T) keyring.CipherKey {
			k := newEncryptionKey(t, "acme")
			k.UsesReserved = math.MaxInt64
			return k
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := tc.key(t)
			if err := s.InsertCipherKey(t.Context(), k); err != nil {
				t.Fatalf("InsertCipherKey: %v", err)
			}
			got, err := s.CipherKey(t.Context(), "acme", k.ID)
			if err != nil {
				t.Fatalf("CipherKey: %v", err)
			}
			want := k
			want.Active = false
			checkCipherKey(t, got, want)
		})
	}
	_, err := s.ActiveCipherKey(t.Context(), "acme")
	checkErr(t, "ActiveCipherKey after inserts only", err, fault.ErrNotFound)

	t.Run("same-id-other-tenant", func(t *testing.T) {
		a := newEncryptionKey(t, "acme")
		b := a
		b.TenantID, b.Provider, b.Wrapped = "other", kms.InternalRef(), []byte("other's wrapping")
		for _, k := range []keyring.CipherKey{a, b} {
			if err := s.InsertCipherKey(t.Context(), k); err != nil {
				t.Fatalf("InsertCipherKey(%q): %v", k.TenantID, err)
			}
		}
		for _, want := range []keyring.CipherKey{a, b} {
			got, err := s.CipherKey(t.Context(), want.TenantID, want.ID)
			if err != nil {
				t.Fatalf("CipherKey(%q): %v", want.TenantID, err)
			}
			checkCipherKey(t, got, want)
		}
	})
}

func testInsertCipherKeyErrors(t *testing.T, s Store) {
	ctx := t.Context()
	createTenant(t, s, "acme")
	createTenant(t, s, "other")
	stored := newDataKey(t, "acme")
	if err := s.InsertCipherKey(ctx, stored); err != nil {
		t.Fatalf("InsertCipherKey: %v", err)
	}

	t.Run("exists", func(t *testing.T) {
		dup := newEncryptionKey(t, "acme")
		dup.ID = stored.ID
		checkErr(t, "InsertCipherKey(duplicate)", s.InsertCipherKey(ctx, dup), fault.ErrExists)
		got, err := s.CipherKey(ctx, "acme", stored.ID)
		if err != nil {
			t.Fatalf("CipherKey: %v", err)
		}
		checkCipherKey(t, got, stored)
	})
	t.Run("no-tenant", func(t *testing.T) {
		k := newDataKey(t, "missing")
		checkErr(t, "InsertCipherKey(no tenant)", s.InsertCipherKey(ctx, k), fault.ErrNotFound)
		_, err := s.CipherKey(ctx, "missing", k.ID)
		checkErr(t, "CipherKey after refused insert", err, fault.ErrNotFound)
	})
	t.Run("invalid-purpose", func(t *testing.T) {
		k := newDataKey(t, "acme")
		k.Purpose = keyring.PurposeUnknown
		if err := s.InsertCipherKey(ctx, k); err == nil {
			t.Errorf("InsertCipherKey(PurposeUnknown): got no error, want one")
		}
		_, err := s.CipherKey(ctx, "acme", k.ID)
		checkErr(t, "CipherKey after refused insert", err, fault.ErrNotFound)
	})

	lookups := []struct {
		name   string
		tenant string
		id     envelope.KeyID
	}{
		{"unknown-id", "acme", newKeyID(t)},
		{"unknown-tenant", "missing", stored.ID},
		{"other-tenant", "other", stored.ID},
		{"zero-id", "acme", envelope.KeyID{}},
	}
	for _, tc := range lookups {
		t.Run("CipherKey/"+tc.name, func(t *testing.T) {
			_, err := s.CipherKey(ctx, tc.tenant, tc.id)
			checkErr(t, "CipherKey", err, fault.ErrNotFound)
		})
	}
	_, err := s.ActiveCipherKey(ctx, "missing")
	checkErr(t, "ActiveCipherKey(no tenant)", err, fault.ErrNotFound)
}

func testActivateCipherKey(t *testing.T, s Store) {
	ctx := t.Context()
	createTenant(t, s, "acme")
	createTenant(t, s, "other")

	k1, k2, k3 := newEncryptionKey(t, "acme"), newEncryptionKey(t, "acme"), newEncryptionKey(t, "acme")
	k1.UsesReserved = 0
	k2.Provider = kms.InternalRef()
	steps := []struct {
		name string
		prev *keyring.CipherKey
		next keyring.CipherKey
	}{
		{"first", nil, k1},
		{"rotate", &k1, k2},
		{"rotate-again", &k2, k3},
	}
	var retired []keyring.CipherKey
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			var prev *envelope.KeyID
			if st.prev != nil {
				prev = &st.prev.ID
				// Uses reserved on the active key stay with it when it retires.
				if _, err := s.ReserveUses(ctx, "acme", st.prev.ID, 5, 1000); err != nil {
					t.Fatalf("ReserveUses: %v", err)
				}
				st.prev.UsesReserved += 5
			}
			if err := s.ActivateCipherKey(ctx, "acme", prev, st.next); err != nil {
				t.Fatalf("ActivateCipherKey: %v", err)
			}
			want := st.next
			want.Active = true
			got, err := s.ActiveCipherKey(ctx, "acme")
			if err != nil {
				t.Fatalf("ActiveCipherKey: %v", err)
			}
			checkCipherKey(t, got, want)
			got, err = s.CipherKey(ctx, "acme", st.next.ID)
			if err != nil {
				t.Fatalf("CipherKey(next): %v", err)
			}
			checkCipherKey(t, got, want)

			if st.prev != nil {
				retired = append(retired, *st.prev)
			}
			for _, r := range retired {
				got, err := s.CipherKey(ctx, "acme", r.ID)
				if err != nil {
					t.Fatalf("CipherKey(retired): %v", err)
				}
				checkCipherKey(t, got, r) // Active false, everything else kept
			}
		})
	}

	t.Run("tenants-independent", func(t *testing.T) {
		o := newEncryptionKey(t, "other")
		activate(t, s, o)
		got, err := s.ActiveCipherKey(ctx, "acme")
		if err != nil {
			t.Fatalf("ActiveCipherKey(acme): %v", err)
		}
		if got.ID != k3.ID {
			t.Errorf("ActiveCipherKey(acme): got %s, want %s", got.ID, k3.ID)
		}
	})
}

func testActivateCipherKeyErrors(t *testing.T, s Store) {
	ctx := t.Context()
	createTenant(t, s, "acme")
	createTenant(t, s, "empty")
	k0, k1 := newEncryptionKey(t, "acme"), newEncryptionKey(t, "acme")
	activate(t, s, k0)
	if err := s.ActivateCipherKey(ctx, "acme", &k0.ID, k1); err != nil {
		t.Fatalf("ActivateCipherKey: %v", err)
	}
	k0.Active, k1.Active = false, true
	data := newDataKey(t, "acme")
	spare := newEncryptionKey(t, "acme") // inserted, never active
	for _, k := range []keyring.CipherKey{data, spare} {
		if err := s.InsertCipherKey(ctx, k); err != nil {
			t.Fatalf("InsertCipherKey: %v", err)
		}
	}
	before, err := s.CountCipherKeys(ctx, "acme")
	if err != nil {
		t.Fatalf("CountCipherKeys: %v", err)
	}
	unknown := newKeyID(t)

	tests := []struct {
		name   string
		tenant string
		prev   *envelope.KeyID
		next   func(t *testing.T) keyring.CipherKey
		want   error // nil: any error
	}{
		{"prev-nil-but-active", "acme", nil, nil, fault.ErrConflict},
		{"prev-retired", "acme", &k0.ID, nil, fault.ErrConflict},
		{"prev-unknown", "acme", &unknown, nil, fault.ErrConflict},
		{"prev-datakey", "acme", &data.ID, nil, fault.ErrConflict},
		{"prev-never-active", "acme", &spare.ID, nil, fault.ErrConflict},
		{"prev-given-none-active", "empty", &k1.ID, func(t *testing.T) keyring.CipherKey { return newEncryptionKey(t, "empty") }, fault.ErrConflict},
		{"next-exists", "acme", &k1.ID, func(*testing.T) keyring.CipherKey { return spare }, fault.ErrExists},
		{"next-is-prev", "acme", &k1.ID, func(*testing.T) keyring.CipherKey { return k1 }, fault.ErrExists},
		{"no-tenant", "missing", nil, func(t *testing.T) keyring.CipherKey { return newEncryptionKey(t, "missing") }, fault.ErrNotFound},
		{"next-datakey", "acme", &k1.ID, func(t *testing.T) keyring.CipherKey { return newDataKey(t, "acme") }, nil},
		{"next-of-other-tenant", "acme", &k1.ID, func(t *testing.T) keyring.CipherKey { return newEncryptionKey(t, "empty") }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			next := newEncryptionKey(t, tc.tenant)
			if tc.next != nil {
				next = tc.next(t)
			}
			err := s.ActivateCipherKey(ctx, tc.tenant, tc.prev, next)
			if err == nil {
				t.Fatalf("ActivateCipherKey: got no error, want one")
			}
			if tc.want != nil {
				checkErr(t, "ActivateCipherKey", err, tc.want)
			}

			// Nothing written.
			got, err := s.ActiveCipherKey(ctx, "acme")
			if err != nil {
				t.Fatalf("ActiveCipherKey: %v", err)
			}
			checkCipherKey(t, got, k1)
			for _, want := range []keyring.CipherKey{k0, k1, data, spare} {
				got, err := s.CipherKey(ctx, "acme", want.ID)
				if err != nil {
					t.Fatalf("CipherKey: %v", err)
				}
				checkCipherKey(t, got, want)
			}
			counts, err := s.CountCipherKeys(ctx, "acme")
			if err != nil {
				t.Fatalf("CountCipherKeys: %v", err)
			}
			if !maps.Equal(counts, before) {
				t.Errorf("CountCipherKeys: got %v, want %v", counts, before)
			}
			_, err = s.ActiveCipherKey(ctx, "empty")
			checkErr(t, "ActiveCipherKey(empty)", err, fault.ErrNotFound)
			if next.ID != spare.ID && next.ID != k1.ID {
				_, err := s.CipherKey(ctx, next.TenantID, next.ID)
				checkErr(t, "CipherKey(refused next)", err, fault.ErrNotFound)
			}
		})
	}
}

func testReserveUses(t *testing.T, s Store) {
	ctx := t.Context()
	createTenant(t, s, "acme")
	k := newEncryptionKey(t, "acme")
	k.UsesReserved = 0
	activate(t, s, k)
	bystander := newDataKey(t, "acme")
	bystander.UsesReserved = 7
	if err := s.InsertCipherKey(ctx, bystander); err != nil {
		t.Fatalf("InsertCipherKey: %v", err)
	}

	steps := []struct {
		name   string
		n, max int64
		want   int64 // UsesReserved afterwards
		err    error
	}{
		{"first", 10, 100, 10, nil},
		{"up-to-max", 90, 100, 100, nil},
		{"one-over", 1, 100, 100, keyring.ErrExhausted},
		{"zero", 0, 100, 100, nil},
		{"higher-max", 5, 200, 105, nil},
		{"max-below-current", 1, 50, 105, keyring.ErrExhausted},
		{"n-above-max", 300, 200, 105, keyring.ErrExhausted},
		{"negative-max", 1, -1, 105, keyring.ErrExhausted},
		{"no-overflow", math.MaxInt64, math.MaxInt64, 105, keyring.ErrExhausted},
		{"to-int64-max", math.MaxInt64 - 105, math.MaxInt64, math.MaxInt64, nil},
		{"at-int64-max", 1, math.MaxInt64, math.MaxInt64, keyring.ErrExhausted},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			got, err := s.ReserveUses(ctx, "acme", k.ID, st.n, st.max)
			checkErr(t, "ReserveUses", err, st.err)
			if st.err == nil && got != st.want {
				t.Errorf("ReserveUses(%d, %d): got %d, want %d", st.n, st.max, got, st.want)
			}
			stored, err := s.CipherKey(ctx, "acme", k.ID)
			if err != nil {
				t.Fatalf("CipherKey: %v", err)
			}
			if stored.UsesReserved != st.want {
				t.Errorf("stored UsesReserved: got %d, want %d", stored.UsesReserved, st.want)
			}
		})
	}

	notFound := []struct {
		name   string
		tenant string
		id     envelope.KeyID
		n, max int64
	}{
		{"unknown-key", "acme", newKeyID(t), 1, 10},
		{"unknown-tenant", "missing", k.ID, 1, 10},
		{"unknown-key-n-above-max", "acme", newKeyID(t), 10, 1},
	}
	for _, tc := range notFound {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.ReserveUses(ctx, tc.tenant, tc.id, tc.n, tc.max)
			checkErr(t, "ReserveUses", err, fault.ErrNotFound)
		})
	}

	got, err := s.CipherKey(ctx, "acme", bystander.ID)
	if err != nil {
		t.Fatalf("CipherKey(bystander): %v", err)
	}
	if got.UsesReserved != 7 {
		t.Errorf("bystander UsesReserved: got %d, want 7", got.UsesReserved)
	}
}

func testCountCipherKeys(t *testing.T, s Store) {
	ctx := t.Context()
	aws := cmk(3)
	createTenant(t, s, "acme")
	createTenant(t, s, "other")
	createTenant(t, s, "empty")
	insert := func(tenant string, provider kms.Ref, n int) {
		for range n {
			k := newDataKey(t, tenant)
			k.Provider = provider
			onProvider(t, s, tenant, provider)
			if err := s.InsertCipherKey(ctx, k); err != nil {
				t.Fatalf("InsertCipherKey: %v", err)
			}
		}
	}
	insert("acme", kms.InternalRef(), 2)
	insert("acme", aws, 3)
	insert("other", kms.InternalRef(), 1)
	active := newEncryptionKey(t, "acme")
	active.Provider = aws
	onProvider(t, s, "acme", aws)
	activate(t, s, active)

	tests := []struct {
		tenant string
		want   map[kms.Ref]int
	}{
		{"acme", map[kms.Ref]int{kms.InternalRef(): 2, aws: 4}},
		{"other", map[kms.Ref]int{kms.InternalRef(): 1}},
		{"empty", map[kms.Ref]int{}},
		{"missing", map[kms.Ref]int{}},
	}
	for _, tc := range tests {
		t.Run(tc.tenant, func(t *testing.T) {
			got, err := s.CountCipherKeys(ctx, tc.tenant)
			if err != nil {
				t.Fatalf("CountCipherKeys: %v", err)
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("CountCipherKeys(%q): got %v, want %v", tc.tenant, got, tc.want)
			}
		})
	}
}
