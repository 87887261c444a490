package internalkms

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/kmstest"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

func TestConformance(t *testing.T) {
	t.Run("one service", func(t *testing.T) {
		s := New(testRoots(t), newMemStore())
		kmstest.Run(t, func(t *testing.T, tenantID string) kms.Provider { return s.ForTenant(tenantID) })
	})
	t.Run("a service per replica", func(t *testing.T) {
		roots, store := testRoots(t), newMemStore()
		kmstest.Run(t, func(t *testing.T, tenantID string) kms.Provider {
			return New(roots, store).ForTenant(tenantID)
		})
	})
	t.Run("no cache", func(t *testing.T) {
		s := New(testRoots(t), newMemStore(), WithKEKCacheSize(0))
		kmstest.Run(t, func(t *testing.T, tenantID string) kms.Provider { return s.ForTenant(tenantID) })
	})
	t.Run("tiny cache", func(t *testing.T) {
		s := New(testRoots(t), newMemStore(), WithKEKCacheSize(1))
		kmstest.Run(t, func(t *testing.T, tenantID string) kms.Provider { return s.ForTenant(tenantID) })
	})
}

func TestFirstUseRaceCreatesOneKEK(t *testing.T) {
	roots, store := testRoots(t), newMemStore()
	const replicas = 12
	services := make([]*Service, replicas)
	for i := range services {
		services[i] = New(roots, store)
	}
	keys := make([][]byte, replicas)
	blobs := make([]kms.Wrapped, replicas)
	var wg sync.WaitGroup
	for i, s := range services {
		wg.Go(func() {
			dk, w, err := s.ForTenant("t1").GenerateDataKey(t.Context(), testBinding("t1"))
			if err != nil {
				t.Error(err)
				return
			}
			keys[i], blobs[i] = bytes.Clone(dk.Reveal()), w
			dk.Destroy()
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	rows := store.all()
	if len(rows) != 1 || rows[0].Version != 1 {
		t.Fatalf("store holds %d KEK rows after concurrent first use, want 1 (version 1)", len(rows))
	}
	for i := range services {
		// Each replica must use the winning KEK, so any other replica unwraps.
		mustUnwrap(t, services[(i+1)%replicas], "t1", blobs[i], keys[i])
	}
}

func TestWrappedNamesKEKVersion(t *testing.T) {
	s := New(testRoots(t), newMemStore())
	_, w := wrapOne(t, s, "t1")
	if w.KeyVersion != "1" {
		t.Errorf("KeyVersion = %q, want %q", w.KeyVersion, "1")
	}
	if len(w.Blob) != blobSize || w.Blob[0] != formatV1 {
		t.Errorf("blob is %d bytes starting %#x, want %d starting %#x", len(w.Blob), w.Blob[0], blobSize, formatV1)
	}
}

func TestUnwrapRefusesMismatchedKeyVersion(t *testing.T) {
	s := New(testRoots(t), newMemStore())
	want, w := wrapOne(t, s, "t1")
	for _, kv := range []string{"2", "01", "0", "internal", " 1"} {
		got, err := s.ForTenant("t1").Unwrap(t.Context(), kms.Wrapped{KeyVersion: kv, Blob: w.Blob}, testBinding("t1"))
		if !errors.Is(err, kms.ErrInvalidCiphertext) || got != nil {
			t.Errorf("Unwrap with KeyVersion %q = %v, want ErrInvalidCiphertext", kv, err)
		}
	}
	// An empty KeyVersion defers to the blob, for callers that keep only it.
	mustUnwrap(t, s, "t1", kms.Wrapped{Blob: w.Blob}, want)
}

func TestDeletedTenantIsKeyNotFound(t *testing.T) {
	store := newMemStore()
	s := New(testRoots(t), store)
	want, w := wrapOne(t, s, "t1")
	_, other := wrapOne(t, s, "t2")

	store.deleteTenant("t1")
	// Until told, this process still has the KEK cached: the keyring calls
	// Forget right after deleting, and the TTL bounds the other replicas.
	mustUnwrap(t, s, "t1", w, want)
	s.Forget("t1")
	got, err := s.ForTenant("t1").Unwrap(t.Context(), w, testBinding("t1"))
	if !errors.Is(err, kms.ErrKeyNotFound) || got != nil {
		t.Fatalf("Unwrap after deleting and forgetting the tenant = %v, want ErrKeyNotFound", err)
	}
	var ke *kms.Error
	if !errors.As(err, &ke) || ke.Op != "Unwrap" || ke.Provider != kms.InternalRef().String() {
		t.Errorf("error = %#v, want a *kms.Error for Op Unwrap, Provider %q", err, kms.InternalRef())
	}
	// A fresh process finds nothing either.
	got, err = New(s.root.keys, store).ForTenant("t1").Unwrap(t.Context(), w, testBinding("t1"))
	if !errors.Is(err, kms.ErrKeyNotFound) || got != nil {
		t.Fatalf("Unwrap in a fresh process after deletion = %v, want ErrKeyNotFound", err)
	}
	// Other tenants are untouched; Forget of an unknown tenant is harmless.
	s.Forget("nobody")
	if _, err := s.ForTenant("t2").Unwrap(t.Context(), other, testBinding("t2")); err != nil {
		t.Fatalf("other tenant after deletion: %v", err)
	}
}

func TestUnwrapForgedVersionIsInvalid(t *testing.T) {
	store := newMemStore()
	s := New(testRoots(t), store)
	_, w := wrapOne(t, s, "t1")
	for _, v := range []byte{2, 0xff} {
		blob := bytes.Clone(w.Blob)
		blob[4] = v
		readsBefore, _, _ := store.counts()
		got, err := s.ForTenant("t1").Unwrap(t.Context(), kms.Wrapped{Blob: blob}, testBinding("t1"))
		if !errors.Is(err, kms.ErrInvalidCiphertext) || got != nil {
			t.Errorf("Unwrap of a blob naming KEK v%d = %v, want ErrInvalidCiphertext", v, err)
		}
		if reads, _, _ := store.counts(); reads-readsBefore > 1 {
			t.Errorf("a forged version cost %d store reads, want at most 1", reads-readsBefore)
		}
	}
}

func TestKEKRowProblemsAreUnavailable(t *testing.T) {
	// A KEK row that will not open is the operator's problem: it must not
	// read as a bad ciphertext (corrupt data) or a missing key (a destroyed
	// tenant), and the message must say what to fix.
	tests := []struct {
		name    string
		mangle  func(store *memStore, rows []KEK)
		message string
	}{
		{"root version not loaded", func(store *memStore, rows []KEK) {
			rows[0].RootVersion = 7
			store.set(rows[0])
		}, "root key version 7, which this process has not loaded"},
		{"row altered", func(store *memStore, rows []KEK) {
			rows[0].Wrapped[20] ^= 1
			store.set(rows[0])
		}, "does not open under root key version 1"},
		{"row truncated", func(store *memStore, rows []KEK) {
			rows[0].Wrapped = rows[0].Wrapped[:10]
			store.set(rows[0])
		}, "does not open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			roots, store := testRoots(t), newMemStore()
			_, w := wrapOne(t, New(roots, store), "t1")
			rows, _ := store.KEKs(t.Context(), "t1")
			tt.mangle(store, rows)
			got, err := New(roots, store).ForTenant("t1").Unwrap(t.Context(), w, testBinding("t1"))
			if got != nil || !errors.Is(err, kms.ErrUnavailable) {
				t.Fatalf("Unwrap = %v, want ErrUnavailable", err)
			}
			if errors.Is(err, kms.ErrInvalidCiphertext) || errors.Is(err, kms.ErrKeyNotFound) {
				t.Fatalf("Unwrap = %v, must be neither ErrInvalidCiphertext nor ErrKeyNotFound", err)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q does not say %q", err, tt.message)
			}
		})
	}
}

func TestKEKRowMovedToAnotherTenantDoesNotOpen(t *testing.T) {
	roots, store := testRoots(t), newMemStore()
	s := New(roots, store)
	_, _ = wrapOne(t, s, "a")
	rows, _ := store.KEKs(t.Context(), "a")
	row := rows[0]
	row.TenantID = "b"
	if err := store.InsertKEK(t.Context(), row); err != nil {
		t.Fatal(err)
	}
	_, _, err := s.ForTenant("b").GenerateDataKey(t.Context(), testBinding("b"))
	if !errors.Is(err, kms.ErrUnavailable) {
		t.Fatalf("using a KEK row copied from another tenant = %v, want ErrUnavailable", err)
	}
}

func TestWrapRefusesWrongSize(t *testing.T) {
	s := New(testRoots(t), newMemStore())
	for _, n := range []int{0, 16, 31, 33, 64} {
		pt := secret.New(make([]byte, n))
		if _, err := s.ForTenant("t1").Wrap(t.Context(), pt, testBinding("t1")); err == nil {
			t.Errorf("Wrap of a %d-byte key succeeded, want an error", n)
		}
	}
	destroyed, _ := secret.Random(kms.DataKeySize)
	destroyed.Destroy()
	if _, err := s.ForTenant("t1").Wrap(t.Context(), destroyed, testBinding("t1")); err == nil {
		t.Error("Wrap of a destroyed key succeeded, want an error")
	}
}

func TestEmptyTenantIsRefused(t *testing.T) {
	store := newMemStore()
	p := New(testRoots(t), store).ForTenant("")
	if _, _, err := p.GenerateDataKey(t.Context(), nil); err == nil {
		t.Error("GenerateDataKey for an empty tenant id succeeded")
	}
	if _, err := p.Unwrap(t.Context(), kms.Wrapped{}, nil); err == nil {
		t.Error("Unwrap for an empty tenant id succeeded")
	}
	if _, err := p.Describe(t.Context()); err == nil {
		t.Error("Describe for an empty tenant id succeeded")
	}
	if rows := store.all(); len(rows) != 0 {
		t.Errorf("an empty tenant id created %d KEK rows", len(rows))
	}
}

func TestCheckAndDescribe(t *testing.T) {
	roots := testRoots(t)
	s := New(roots, newMemStore())
	if err := s.Check(t.Context()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	info, err := s.ForTenant("t1").Describe(t.Context())
	if err != nil || info.State != kms.KeyEnabled {
		t.Fatalf("Describe = %v, %v; want Enabled", info, err)
	}

	roots.Destroy()
	if err := s.Check(t.Context()); !errors.Is(err, kms.ErrUnavailable) {
		t.Errorf("Check with destroyed root keys = %v, want ErrUnavailable", err)
	}
	if _, err := s.ForTenant("t1").Describe(t.Context()); !errors.Is(err, kms.ErrUnavailable) {
		t.Errorf("Describe with destroyed root keys = %v, want ErrUnavailable", err)
	}
	if _, _, err := s.ForTenant("t1").GenerateDataKey(t.Context(), nil); !errors.Is(err, kms.ErrUnavailable) {
		t.Errorf("GenerateDataKey with destroyed root keys = %v, want ErrUnavailable", err)
	}
	if err := New(&RootKeys{}, newMemStore()).Check(t.Context()); !errors.Is(err, kms.ErrUnavailable) {
		t.Errorf("Check with no root keys = %v, want ErrUnavailable", err)
	}
}

func TestNewPanicsOnMissingDependencies(t *testing.T) {
	for name, f := range map[string]func(){
		"nil roots": func() { New(nil, newMemStore()) },
		"nil store": func() { New(testRoots(t), nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New with %s did not panic", name)
				}
			}()
			f()
		}()
	}
}
