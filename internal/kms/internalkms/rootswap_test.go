package internalkms

import (
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// rootFile creates a root key file in a temporary directory and returns
// its path and keys.
func rootFile(t *testing.T) (string, *RootKeys) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "root-keys.json")
	r, err := LoadOrCreateRootKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Destroy)
	return path, r
}

func mustLoad(t *testing.T, path string) *RootKeys {
	t.Helper()
	r, err := LoadRootKeyFile(path)
	if err != nil {
		t.Fatalf("LoadRootKeyFile: %v", err)
	}
	return r
}

// destroyed reports whether every key of r is zeroed.
func destroyed(r *RootKeys) bool {
	for _, v := range r.versions {
		if !v.key.Destroyed() {
			return false
		}
	}
	return true
}

func rootVersionsOf(store *memStore) map[uint32]int {
	counts := map[uint32]int{}
	for _, k := range store.all() {
		counts[k.RootVersion]++
	}
	return counts
}

func TestSetRootKeysAfterRotation(t *testing.T) {
	path, r1 := rootFile(t)
	store := newMemStore()
	s := New(r1, store)
	t.Cleanup(s.Close)
	dk1, w1 := wrapOne(t, s, "t1")
	dk2, w2 := wrapOne(t, s, "t2")

	if _, err := RotateRootKeyFile(path); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRootKeys(t.Context(), mustLoad(t, path)); err != nil {
		t.Fatalf("SetRootKeys(rotated file): %v", err)
	}
	if cur, loaded := s.RootKeyVersions(); cur != 2 || !slices.Equal(loaded, []uint32{1, 2}) {
		t.Errorf("RootKeyVersions = %d, %v; want 2, [1 2]", cur, loaded)
	}
	if destroyed(r1) {
		t.Error("SetRootKeys destroyed the keys given to New, which belong to their owner")
	}

	// KEKs sealed by version 1 still open (cache dropped, so the root keys
	// are used), and a new tenant's KEK is sealed by version 2.
	s.Forget("t1")
	s.Forget("t2")
	mustUnwrap(t, s, "t1", w1, dk1)
	mustUnwrap(t, s, "t2", w2, dk2)
	_, _ = wrapOne(t, s, "t3")
	if got, want := rootVersionsOf(store), map[uint32]int{1: 2, 2: 1}; !maps.Equal(got, want) {
		t.Errorf("KEKs by root version = %v, want %v", got, want)
	}
	counts, err := s.KEKsByRootVersion(t.Context())
	if err != nil || !maps.Equal(counts, map[uint32]int{1: 2, 2: 1}) {
		t.Errorf("KEKsByRootVersion = %v, %v; want map[1:2 2:1]", counts, err)
	}

	var reports []int
	n, err := s.RewrapKEKsReporting(t.Context(), func(done, lost int) { reports = append(reports, done, lost) })
	if err != nil || n != 2 {
		t.Fatalf("RewrapKEKsReporting = %d, %v; want 2, nil", n, err)
	}
	if !slices.Equal(reports, []int{2, 0}) {
		t.Errorf("progress reports (rewrapped, lost) = %v, want [2 0]", reports)
	}
	if got, want := rootVersionsOf(store), map[uint32]int{2: 3}; !maps.Equal(got, want) {
		t.Errorf("after RewrapKEKs, KEKs by root version = %v, want %v", got, want)
	}

	// Now version 1 seals nothing: a file without it is accepted, and the
	// keys still open through version 2.
	next := mustLoad(t, path)
	without := &RootKeys{current: 2, versions: []rootVersion{{version: 2, key: next.key(2).Clone()}}}
	next.Destroy()
	if err := s.SetRootKeys(t.Context(), without); err != nil {
		t.Fatalf("SetRootKeys(without the unused version 1): %v", err)
	}
	s.Forget("t1")
	mustUnwrap(t, s, "t1", w1, dk1)
}

func TestSetRootKeysRefusals(t *testing.T) {
	path, _ := rootFile(t)
	if _, err := RotateRootKeyFile(path); err != nil {
		t.Fatal(err)
	}
	store := newMemStore()
	initial := mustLoad(t, path) // versions 1 and 2, current 2
	t.Cleanup(initial.Destroy)
	s := New(initial, store)
	t.Cleanup(s.Close)
	_, _ = wrapOne(t, s, "t1") // a KEK under version 2
	dk, w := wrapOne(t, s, "t2")
	// Reseal t2's KEK under version 1, as a rotation would have left it.
	for _, k := range store.all() {
		if k.TenantID != "t2" {
			continue
		}
		kek, err := openKEK(s.root.keys.(*RootKeys).key(2), k)
		if err != nil {
			t.Fatal(err)
		}
		sealed, err := sealKEK(s.root.keys.(*RootKeys).key(1), k.TenantID, k.Version, 1, kek)
		kek.Destroy()
		if err != nil {
			t.Fatal(err)
		}
		k.RootVersion, k.Wrapped = 1, sealed
		store.set(k)
	}
	if got := rootVersionsOf(store); !maps.Equal(got, map[uint32]int{1: 1, 2: 1}) {
		t.Fatalf("fixture: KEKs by root version = %v, want one under each", got)
	}

	loaded := mustLoad(t, path)
	defer loaded.Destroy()
	k1, k2 := loaded.key(1), loaded.key(2)
	other := testRoots(t, 1, 2, 3)
	defer other.Destroy()
	keysOf := func(entries ...rootVersion) *RootKeys {
		current := uint32(0)
		for i := range entries {
			entries[i].key = entries[i].key.Clone()
			current = max(current, entries[i].version)
		}
		return &RootKeys{current: current, versions: entries}
	}
	tests := []struct {
		name    string
		next    *RootKeys
		wantErr string
	}{
		{"nil", nil, "no root keys given"},
		{"older current", &RootKeys{current: 1, versions: []rootVersion{{version: 1, key: k1.Clone()}, {version: 2, key: k2.Clone()}}}, "older than the loaded current version 2"},
		{"without the loaded current", keysOf(rootVersion{version: 1, key: k1}, rootVersion{version: 3, key: other.key(3)}), "lack version 2, the loaded current version"},
		{"a version's key changed", keysOf(rootVersion{version: 1, key: other.key(1)}, rootVersion{version: 2, key: k2}), "root key version 1 differs"},
		{"without a version that seals KEKs", keysOf(rootVersion{version: 2, key: k2}, rootVersion{version: 3, key: other.key(3)}), "lack version 1, which still seals 1 tenant KEK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.SetRootKeys(t.Context(), tt.next)
			if !errors.Is(err, ErrRootKeysRefused) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("SetRootKeys = %v, want ErrRootKeysRefused saying %q", err, tt.wantErr)
			}
			for _, k := range [][]byte{k1.Reveal(), k2.Reveal(), other.key(1).Reveal(), other.key(3).Reveal()} {
				if strings.Contains(err.Error(), base64.StdEncoding.EncodeToString(k)) || strings.Contains(err.Error(), fmt.Sprintf("%x", k)) {
					t.Errorf("the refusal prints key material: %v", err)
				}
			}
			if tt.next != nil && destroyed(tt.next) {
				t.Error("a refused SetRootKeys destroyed the caller's keys")
			}
			tt.next.Destroy()
			if cur, versions := s.RootKeyVersions(); cur != 2 || !slices.Equal(versions, []uint32{1, 2}) {
				t.Errorf("after a refusal, RootKeyVersions = %d, %v; want the previous 2, [1 2]", cur, versions)
			}
			s.Forget("t2")
			mustUnwrap(t, s, "t2", w, dk)
		})
	}
}

func TestSetRootKeysOwnership(t *testing.T) {
	path, initial := rootFile(t)
	s := New(initial, newMemStore())
	_, _ = wrapOne(t, s, "t1")
	a := mustLoad(t, path)
	if err := s.SetRootKeys(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	if destroyed(initial) {
		t.Error("replacing the keys given to New destroyed them")
	}
	if err := s.SetRootKeys(t.Context(), a); err != nil || destroyed(a) {
		t.Errorf("SetRootKeys(the same keys) = %v, destroyed %v; want nil, false", err, destroyed(a))
	}
	b := mustLoad(t, path)
	if err := s.SetRootKeys(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	if !destroyed(a) {
		t.Error("keys that SetRootKeys handed over were not zeroed when replaced")
	}
	s.Close()
	if !destroyed(b) {
		t.Error("Close did not zero the keys SetRootKeys handed over")
	}
	if len(cachedKeys(s, "t1")) != 0 {
		t.Error("Close left KEKs cached")
	}
	if err := s.Check(t.Context()); !errors.Is(err, kms.ErrUnavailable) {
		t.Errorf("Check after Close = %v, want kms.ErrUnavailable", err)
	}
}

// TestSetRootKeysUnderLoad swaps the root keys over and over while other
// goroutines create, open and reseal KEKs without a KEK cache, so that
// every operation uses a root key; run with -race. No operation may see a
// zeroed key.
func TestSetRootKeysUnderLoad(t *testing.T) {
	path, initial := rootFile(t)
	if _, err := RotateRootKeyFile(path); err != nil {
		t.Fatal(err)
	}
	store := newMemStore()
	s := New(initial, store, WithKEKCacheSize(0))
	t.Cleanup(s.Close)
	type wrapped struct {
		tenant string
		dk     []byte
		w      kms.Wrapped
	}
	var fixtures []wrapped
	for i := range 8 {
		tenant := fmt.Sprintf("t%d", i)
		dk, w := wrapOne(t, s, tenant)
		fixtures = append(fixtures, wrapped{tenant, dk, w})
	}

	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 64)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				f := fixtures[(g+i)%len(fixtures)]
				got, err := s.ForTenant(f.tenant).Unwrap(t.Context(), f.w, testBinding(f.tenant))
				if err != nil {
					report(fmt.Errorf("Unwrap(%s): %w", f.tenant, err))
					return
				}
				if string(got.Reveal()) != string(f.dk) {
					report(fmt.Errorf("Unwrap(%s) returned another key", f.tenant))
				}
				got.Destroy()
				if _, _, err := s.ForTenant(fmt.Sprintf("new-%d-%d", g, i)).GenerateDataKey(t.Context(), testBinding("x")); err != nil {
					report(fmt.Errorf("GenerateDataKey: %w", err))
					return
				}
				if err := s.Check(t.Context()); err != nil {
					report(fmt.Errorf("Check: %w", err))
					return
				}
			}
		})
	}
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.RewrapKEKs(t.Context()); err != nil {
				report(fmt.Errorf("RewrapKEKs: %w", err))
				return
			}
		}
	})
	for range 200 {
		if err := s.SetRootKeys(t.Context(), mustLoad(t, path)); err != nil {
			t.Errorf("SetRootKeys: %v", err)
			break
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestRewrapDataKey(t *testing.T) {
	roots, store := testRoots(t), newMemStore()
	s := New(roots, store)
	dk, w1 := wrapOne(t, s, "t1")
	v, err := s.RotateTenantKEK(t.Context(), "t1")
	if err != nil || v != 2 {
		t.Fatalf("RotateTenantKEK = %d, %v", v, err)
	}
	w2, err := s.RewrapDataKey(t.Context(), "t1", w1, testBinding("t1"), v)
	if err != nil {
		t.Fatalf("RewrapDataKey: %v", err)
	}
	if w2.KeyVersion != "2" {
		t.Errorf("RewrapDataKey made KEK version %s, want 2", w2.KeyVersion)
	}
	mustUnwrap(t, s, "t1", w2, dk)
	mustUnwrap(t, s, "t1", w1, dk) // the old wrapping keeps opening

	t.Run("stale view reloads", func(t *testing.T) {
		// Another replica rotates; this one still caches version 2.
		if _, err := New(roots, store).RotateTenantKEK(t.Context(), "t1"); err != nil {
			t.Fatal(err)
		}
		w3, err := s.RewrapDataKey(t.Context(), "t1", w1, testBinding("t1"), 3)
		if err != nil || w3.KeyVersion != "3" {
			t.Fatalf("RewrapDataKey(min 3) = %v, %v; want version 3", w3.KeyVersion, err)
		}
		mustUnwrap(t, s, "t1", w3, dk)
	})
	t.Run("refusals", func(t *testing.T) {
		tampered := kms.Wrapped{KeyVersion: w1.KeyVersion, Blob: append([]byte(nil), w1.Blob...)}
		tampered.Blob[len(tampered.Blob)-1] ^= 1
		_, wOther := wrapOne(t, s, "t2")
		tests := []struct {
			name     string
			tenant   string
			w        kms.Wrapped
			b        kms.Binding
			min      uint32
			wantKind error
		}{
			{"tampered", "t1", tampered, testBinding("t1"), 1, kms.ErrInvalidCiphertext},
			{"another tenant's blob", "t1", wOther, testBinding("t1"), 1, kms.ErrInvalidCiphertext},
			{"another binding", "t1", w1, testBinding("t9"), 1, kms.ErrInvalidCiphertext},
			{"mismatched key version", "t1", kms.Wrapped{KeyVersion: "2", Blob: w1.Blob}, testBinding("t1"), 1, kms.ErrInvalidCiphertext},
			{"no such KEK version", "t1", w1, testBinding("t1"), 9, kms.ErrUnavailable},
			{"tenant without KEKs", "gone", w1, testBinding("gone"), 1, kms.ErrKeyNotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if _, err := s.RewrapDataKey(t.Context(), tt.tenant, tt.w, tt.b, tt.min); !errors.Is(err, tt.wantKind) {
					t.Errorf("RewrapDataKey = %v, want %v", err, tt.wantKind)
				}
			})
		}
		if _, err := s.RewrapDataKey(t.Context(), "", w1, testBinding(""), 1); err == nil {
			t.Error("RewrapDataKey(empty tenant): got no error")
		}
	})
}

func TestStageAndPromoteRootKeyFile(t *testing.T) {
	path, r1 := rootFile(t)
	v, err := StageRootKeyFile(path)
	if err != nil || v != 2 {
		t.Fatalf("StageRootKeyFile = %d, %v; want 2, nil", v, err)
	}
	staged := mustLoad(t, path)
	defer staged.Destroy()
	if staged.Current() != 1 || !slices.Equal(staged.Versions(), []uint32{1, 2}) {
		t.Errorf("after staging: %v, want versions [1 2] with 1 current", staged)
	}
	if string(staged.key(1).Reveal()) != string(r1.key(1).Reveal()) {
		t.Error("staging changed version 1's key")
	}
	// A process with the staged file keeps sealing with version 1.
	store := newMemStore()
	s := New(r1, store)
	t.Cleanup(s.Close)
	_, _ = wrapOne(t, s, "t1")
	if err := s.SetRootKeys(t.Context(), mustLoad(t, path)); err != nil {
		t.Fatalf("SetRootKeys(staged): %v", err)
	}
	_, _ = wrapOne(t, s, "t2")
	if n, err := s.RewrapKEKs(t.Context()); n != 0 || err != nil {
		t.Errorf("RewrapKEKs with a staged version = %d, %v; want 0, nil", n, err)
	}
	if got := rootVersionsOf(store); !maps.Equal(got, map[uint32]int{1: 2}) {
		t.Errorf("with a staged version, KEKs by root version = %v, want all under 1", got)
	}

	tests := []struct {
		version uint32
		wantErr string
		current uint32
	}{
		{9, "no root key version 9", 1},
		{2, "", 2},
		{2, "", 2}, // again: nothing to do
		{1, "older than the current version 2", 2},
	}
	for _, tt := range tests {
		err := PromoteRootKeyVersion(path, tt.version)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("PromoteRootKeyVersion(%d) = %v, want error %q", tt.version, err, tt.wantErr)
		}
		r := mustLoad(t, path)
		if r.Current() != tt.current {
			t.Errorf("after PromoteRootKeyVersion(%d): current %d, want %d", tt.version, r.Current(), tt.current)
		}
		r.Destroy()
	}
	if err := s.SetRootKeys(t.Context(), mustLoad(t, path)); err != nil {
		t.Fatalf("SetRootKeys(promoted): %v", err)
	}
	if n, err := s.RewrapKEKs(t.Context()); n != 2 || err != nil {
		t.Errorf("RewrapKEKs after promotion = %d, %v; want 2, nil", n, err)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Errorf("file mode %#o after promotion, want 0600", info.Mode().Perm())
	}
	assertOnlyFile(t, path)

	if err := os.WriteFile(path+".lock", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"StageRootKeyFile":      func() error { _, err := StageRootKeyFile(path); return err }(),
		"PromoteRootKeyVersion": PromoteRootKeyVersion(path, 2),
		"RotateRootKeyFile":     func() error { _, err := RotateRootKeyFile(path); return err }(),
	} {
		if !errors.Is(err, ErrRootKeyFileLocked) || !strings.Contains(err.Error(), "another rotation") {
			t.Errorf("%s with a lock present = %v, want ErrRootKeyFileLocked naming the lock", name, err)
		}
	}
}

// TestStaleLoadIsNotCached: a load that read the store before a rotation
// (or a deletion) forgot the tenant is used once, not cached for the TTL,
// so that the new KEK version wraps new data keys at once.
func TestStaleLoadIsNotCached(t *testing.T) {
	c := newKEKCache(10, DefaultKEKCacheTTL)
	k := secret.New([]byte("0123456789abcdef0123456789abcdef"))
	gen := c.generation()
	c.forget("t1") // RotateTenantKEK, between the load's read and its add
	set := c.addIfCurrent(&kekSet{tenantID: "t1", keys: map[uint32]*secret.Bytes{1: k}, current: 1}, gen)
	if got := c.acquire("t1"); got != nil {
		t.Fatal("a load older than a forget was cached")
	}
	if k.Destroyed() {
		t.Fatal("the stale set was zeroed while its loader still uses it")
	}
	c.release(set)
	if !k.Destroyed() {
		t.Error("the stale set was not zeroed after its one use")
	}

	fresh := secret.New([]byte("0123456789abcdef0123456789abcdef"))
	set = c.addIfCurrent(&kekSet{tenantID: "t1", keys: map[uint32]*secret.Bytes{2: fresh}, current: 2}, c.generation())
	c.release(set)
	if got := c.acquire("t1"); got == nil || got.current != 2 {
		t.Error("a current load was not cached")
	} else {
		c.release(got)
	}
}
