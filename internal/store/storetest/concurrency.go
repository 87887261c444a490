package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
)

// racers is how many goroutines race in the concurrency tests: more than any
// connection pool the stores use by default, so that they really contend.
const racers = 24

// race runs f(i) for i in [0, n) in goroutines released together, and
// returns once all have returned.
func race(n int, f func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			f(i)
		})
	}
	close(start)
	wg.Wait()
}

// testConcurrentActivate: racing activations from the same prev; exactly one
// wins, the rest get ErrConflict and write nothing.
func testConcurrentActivate(t *testing.T, s Store) {
	tests := []struct {
		name  string
		first bool // race for the first key (prev nil) instead of a rotation
	}{
		{"first-key", true},
		{"rotation", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			tenant := tc.name
			createTenant(t, s, tenant)
			var prev *envelope.KeyID
			keys := 0
			if !tc.first {
				k0 := newEncryptionKey(t, tenant)
				activate(t, s, k0)
				prev = &k0.ID
				keys = 1
			}
			nexts := make([]keyring.CipherKey, racers)
			for i := range nexts {
				nexts[i] = newEncryptionKey(t, tenant)
			}
			errs := make([]error, racers)
			race(racers, func(i int) {
				errs[i] = s.ActivateCipherKey(ctx, tenant, prev, nexts[i])
			})

			winner := -1
			for i, err := range errs {
				switch {
				case err == nil && winner >= 0:
					t.Errorf("ActivateCipherKey: racers %d and %d both won", winner, i)
				case err == nil:
					winner = i
				case !errors.Is(err, fault.ErrConflict):
					t.Errorf("ActivateCipherKey (racer %d): got error %v, want nil or %v", i, err, fault.ErrConflict)
				}
			}
			if winner < 0 {
				t.Fatal("ActivateCipherKey: no racer won")
			}
			active, err := s.ActiveCipherKey(ctx, tenant)
			if err != nil {
				t.Fatalf("ActiveCipherKey: %v", err)
			}
			if active.ID != nexts[winner].ID {
				t.Errorf("ActiveCipherKey: got %s, want the winner's %s", active.ID, nexts[winner].ID)
			}
			if prev != nil {
				k0, err := s.CipherKey(ctx, tenant, *prev)
				if err != nil || k0.Active {
					t.Errorf("previous key: got active=%v, %v; want retired", k0.Active, err)
				}
			}
			for i, k := range nexts {
				if i == winner {
					continue
				}
				_, err := s.CipherKey(ctx, tenant, k.ID)
				checkErr(t, fmt.Sprintf("CipherKey(loser %d)", i), err, fault.ErrNotFound)
			}
			counts, err := s.CountCipherKeys(ctx, tenant)
			if err != nil {
				t.Fatalf("CountCipherKeys: %v", err)
			}
			if got, want := sum(counts), keys+1; got != want {
				t.Errorf("stored cipherkeys: got %d, want %d", got, want)
			}
		})
	}
}

// testConcurrentRotations: goroutines that each read the active key and rotate
// it, retrying on ErrConflict, lose no rotation and never leave two active
// keys.
func testConcurrentRotations(t *testing.T, s Store) {
	const (
		workers   = 8
		rotations = 6 // per worker
	)
	ctx := t.Context()
	createTenant(t, s, "acme")
	k0 := newEncryptionKey(t, "acme")
	activate(t, s, k0)

	type rotation struct{ prev, next envelope.KeyID }
	var (
		mu   sync.Mutex
		done []rotation
	)
	race(workers, func(int) {
		for range rotations {
			for attempt := 0; ; attempt++ {
				if attempt > 100*workers {
					t.Errorf("no rotation after %d attempts", attempt)
					return
				}
				cur, err := s.ActiveCipherKey(ctx, "acme")
				if err != nil {
					t.Errorf("ActiveCipherKey: %v", err)
					return
				}
				if !cur.Active {
					t.Errorf("ActiveCipherKey: got %s with Active false", cur.ID)
				}
				next, err := envelope.NewKeyID()
				if err != nil {
					t.Error(err)
					return
				}
				k := newEncryptionKeyWithID("acme", next)
				err = s.ActivateCipherKey(ctx, "acme", &cur.ID, k)
				if errors.Is(err, fault.ErrConflict) {
					continue
				}
				if err != nil {
					t.Errorf("ActivateCipherKey: %v", err)
					return
				}
				mu.Lock()
				done = append(done, rotation{cur.ID, next})
				mu.Unlock()
				break
			}
		}
	})
	if t.Failed() {
		return
	}

	if got, want := len(done), workers*rotations; got != want {
		t.Fatalf("successful rotations: got %d, want %d", got, want)
	}
	// Each successful rotation retired a different key: two from the same
	// prev would be a lost write.
	retiredBy := map[envelope.KeyID]int{}
	for _, r := range done {
		retiredBy[r.prev]++
	}
	for id, n := range retiredBy {
		if n != 1 {
			t.Errorf("key %s retired by %d successful rotations, want 1", id, n)
		}
	}
	counts, err := s.CountCipherKeys(ctx, "acme")
	if err != nil {
		t.Fatalf("CountCipherKeys: %v", err)
	}
	if got, want := sum(counts), len(done)+1; got != want {
		t.Errorf("stored cipherkeys: got %d, want %d (rotations + the first key)", got, want)
	}
	ids := []envelope.KeyID{k0.ID}
	for _, r := range done {
		ids = append(ids, r.next)
	}
	var actives []envelope.KeyID
	for _, id := range ids {
		k, err := s.CipherKey(ctx, "acme", id)
		if err != nil {
			t.Fatalf("CipherKey(%s): %v", id, err)
		}
		if k.Active {
			actives = append(actives, id)
		}
	}
	if len(actives) != 1 {
		t.Fatalf("active keys: got %d (%v), want 1", len(actives), actives)
	}
	if retiredBy[actives[0]] != 0 {
		t.Errorf("the active key %s was also retired", actives[0])
	}
	active, err := s.ActiveCipherKey(ctx, "acme")
	if err != nil || active.ID != actives[0] {
		t.Errorf("ActiveCipherKey: got %s, %v; want %s", active.ID, err, actives[0])
	}
}

func newEncryptionKeyWithID(tenantID string, id envelope.KeyID) keyring.CipherKey {
	return keyring.CipherKey{
		TenantID:   tenantID,
		ID:         id,
		Purpose:    keyring.PurposeEncryption,
		Provider:   kms.InternalRef(),
		KeyVersion: "1",
		Wrapped:    append([]byte("wrapped:"), id[:]...),
		CreatedAt:  newTenant(tenantID).CreatedAt,
	}
}

// testConcurrentReserveUses: concurrent reservations never exceed max and
// add up exactly.
func testConcurrentReserveUses(t *testing.T, s Store) {
	const (
		n   = 7
		max = 500
	)
	ctx := t.Context()
	createTenant(t, s, "acme")
	k := newEncryptionKey(t, "acme")
	k.UsesReserved = 0
	activate(t, s, k)

	var (
		mu     sync.Mutex
		totals = map[int64]bool{}
	)
	race(racers, func(int) {
		for {
			total, err := s.ReserveUses(ctx, "acme", k.ID, n, max)
			if errors.Is(err, keyring.ErrExhausted) {
				return
			}
			if err != nil {
				t.Errorf("ReserveUses: %v", err)
				return
			}
			mu.Lock()
			if totals[total] {
				t.Errorf("ReserveUses: total %d returned twice", total)
			}
			totals[total] = true
			mu.Unlock()
			if total > max {
				t.Errorf("ReserveUses: got total %d, above max %d", total, max)
			}
		}
	})
	stored, err := s.CipherKey(ctx, "acme", k.ID)
	if err != nil {
		t.Fatalf("CipherKey: %v", err)
	}
	if got, want := stored.UsesReserved, int64(len(totals))*n; got != want {
		t.Errorf("UsesReserved: got %d, want %d (%d reservations of %d)", got, want, len(totals), n)
	}
	if got, want := stored.UsesReserved, int64(max/n*n); got != want {
		t.Errorf("UsesReserved after exhaustion: got %d, want %d", got, want)
	}
}

// testConcurrentInsertKEK: racing inserts of one KEK version; one wins.
func testConcurrentInsertKEK(t *testing.T, s Store) {
	ctx := t.Context()
	errs := make([]error, racers)
	race(racers, func(i int) {
		k := newKEK("acme", 1, 1)
		k.Wrapped = fmt.Appendf(nil, "racer %d", i)
		errs[i] = s.InsertKEK(ctx, k)
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("InsertKEK: racers %d and %d both won", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, internalkms.ErrKEKExists):
			t.Errorf("InsertKEK (racer %d): got error %v, want nil or %v", i, err, internalkms.ErrKEKExists)
		}
	}
	if winner < 0 {
		t.Fatal("InsertKEK: no racer won")
	}
	got, err := s.KEKs(ctx, "acme")
	if err != nil {
		t.Fatalf("KEKs: %v", err)
	}
	want := newKEK("acme", 1, 1)
	want.Wrapped = fmt.Appendf(nil, "racer %d", winner)
	checkKEKs(t, "KEKs", got, []internalkms.KEK{want})
}

func sum(counts map[kms.Ref]int) int {
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}

// testConcurrentInsertKeyProvider: racing registrations of one fingerprint;
// one wins, the rest get ErrExists.
func testConcurrentInsertKeyProvider(t *testing.T, s Store) {
	ctx := t.Context()
	createTenant(t, s, "acme")
	errs := make([]error, racers)
	race(racers, func(i int) {
		p := newKeyProvider("acme", fingerprint(1))
		p.Name = fmt.Sprintf("racer %d", i)
		errs[i] = s.InsertKeyProvider(ctx, p)
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("InsertKeyProvider: racers %d and %d both won", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, fault.ErrExists):
			t.Errorf("InsertKeyProvider (racer %d): got error %v, want nil or %v", i, err, fault.ErrExists)
		}
	}
	if winner < 0 {
		t.Fatal("InsertKeyProvider: no racer won")
	}
	want := newKeyProvider("acme", fingerprint(1))
	want.Name = fmt.Sprintf("racer %d", winner)
	got, err := s.ListKeyProviders(ctx, "acme")
	if err != nil {
		t.Fatalf("ListKeyProviders: %v", err)
	}
	checkKeyProviders(t, "ListKeyProviders", got, []keyprovider.Provider{want})
}

// testConcurrentKeyProviderDeleteTenant: registrations racing the tenant's
// deletion either land before it, and go with the tenant, or fail with
// ErrNotFound; none outlives the tenant.
func testConcurrentKeyProviderDeleteTenant(t *testing.T, s Store) {
	ctx := t.Context()
	createTenant(t, s, "acme")
	insertKeyProvider(t, s, newKeyProvider("acme", fingerprint(0)))
	errs := make([]error, racers)
	race(racers, func(i int) {
		if i == racers/2 {
			errs[i] = s.DeleteTenant(ctx, "acme")
			return
		}
		errs[i] = s.InsertKeyProvider(ctx, newKeyProvider("acme", fingerprint(i+1)))
	})
	for i, err := range errs {
		if i == racers/2 {
			checkErr(t, "DeleteTenant", err, nil)
			continue
		}
		if err != nil && !errors.Is(err, fault.ErrNotFound) {
			t.Errorf("InsertKeyProvider (racer %d): got error %v, want nil or %v", i, err, fault.ErrNotFound)
		}
	}
	// None of the providers outlived the tenant.
	for i := range racers + 1 {
		_, err := s.KeyProvider(ctx, "acme", fingerprint(i))
		checkErr(t, fmt.Sprintf("KeyProvider(%s)", fingerprint(i)), err, fault.ErrNotFound)
	}
	got, err := s.ListKeyProviders(ctx, "acme")
	if err != nil {
		t.Fatalf("ListKeyProviders: %v", err)
	}
	checkKeyProviders(t, "ListKeyProviders after the deletion", got, nil)
}
