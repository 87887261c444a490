package internalkms

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

func TestRotateTenantKEK(t *testing.T) {
	store := newMemStore()
	s := New(testRoots(t), store)
	old1, w1 := wrapOne(t, s, "t1")
	other, wOther := wrapOne(t, s, "t2")

	v, err := s.RotateTenantKEK(t.Context(), "t1")
	if err != nil || v != 2 {
		t.Fatalf("RotateTenantKEK = %d, %v; want 2, nil", v, err)
	}
	new2, w2 := wrapOne(t, s, "t1")
	if w2.KeyVersion != "2" {
		t.Errorf("after rotation, new blobs use KEK v%s, want v2", w2.KeyVersion)
	}
	mustUnwrap(t, s, "t1", w1, old1)
	mustUnwrap(t, s, "t1", w2, new2)
	mustUnwrap(t, s, "t2", wOther, other)
	if _, w := wrapOne(t, s, "t2"); w.KeyVersion != "1" {
		t.Errorf("rotating t1 moved t2 to KEK v%s", w.KeyVersion)
	}

	// A fresh process sees both versions too.
	fresh := New(s.root.keys, store)
	mustUnwrap(t, fresh, "t1", w1, old1)
	mustUnwrap(t, fresh, "t1", w2, new2)

	// A tenant never used starts at version 1.
	if v, err := s.RotateTenantKEK(t.Context(), "t3"); err != nil || v != 1 {
		t.Errorf("RotateTenantKEK of an unused tenant = %d, %v; want 1, nil", v, err)
	}
}

func TestRotationSeenByOtherReplica(t *testing.T) {
	clock := newFakeClock()
	roots, store := testRoots(t), newMemStore()
	a := New(roots, store)
	b := New(roots, store, WithKEKCacheTTL(DefaultKEKCacheTTL))
	b.cache.now = clock.now
	_, _ = wrapOne(t, b, "t1") // b caches KEK v1

	if _, err := a.RotateTenantKEK(t.Context(), "t1"); err != nil {
		t.Fatal(err)
	}
	want, w := wrapOne(t, a, "t1")
	// b has never seen v2, yet unwraps a's new blob: the version beyond its
	// newest makes it reload.
	mustUnwrap(t, b, "t1", w, want)

	c := New(roots, store, WithKEKCacheTTL(DefaultKEKCacheTTL))
	c.cache.now = clock.now
	_, _ = wrapOne(t, c, "t1")
	if _, err := a.RotateTenantKEK(t.Context(), "t1"); err != nil {
		t.Fatal(err)
	}
	if _, w := wrapOne(t, c, "t1"); w.KeyVersion != "2" {
		t.Errorf("within the TTL another replica wraps with v%s, want its cached v2", w.KeyVersion)
	}
	clock.advance(DefaultKEKCacheTTL)
	if _, w := wrapOne(t, c, "t1"); w.KeyVersion != "3" {
		t.Errorf("after the TTL another replica wraps with v%s, want v3", w.KeyVersion)
	}
}

// racingStore lets another writer act just before each InsertKEK.
type racingStore struct {
	*memStore
	before func()
}

func (r *racingStore) InsertKEK(ctx context.Context, k KEK) error {
	if f := r.before; f != nil {
		r.before = nil
		f()
	}
	return r.memStore.InsertKEK(ctx, k)
}

func TestConcurrentRotationsAddOneVersion(t *testing.T) {
	roots, mem := testRoots(t), newMemStore()
	_, _ = wrapOne(t, New(roots, mem), "t1")
	other := New(roots, mem)
	store := &racingStore{memStore: mem}
	store.before = func() {
		if _, err := other.RotateTenantKEK(t.Context(), "t1"); err != nil {
			t.Error(err)
		}
	}
	v, err := New(roots, store).RotateTenantKEK(t.Context(), "t1")
	if err != nil || v != 2 {
		t.Fatalf("RotateTenantKEK racing another = %d, %v; want the winner's 2, nil", v, err)
	}
	if n := len(mem.all()); n != 2 {
		t.Errorf("two racing rotations left %d KEK versions, want 2", n)
	}
}

// rootKeyFileEntry reads one version's key from a root key file, as an
// operator would copy it into TENANTCRYPT_ROOT_KEYS.
func rootKeyFileEntry(t *testing.T, path string, version uint32) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Versions []struct {
			Version uint32
			Key     string
		}
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	for _, v := range f.Versions {
		if v.Version == version {
			return fmt.Sprintf("%d:%s", v.Version, v.Key)
		}
	}
	t.Fatalf("version %d not in %s", version, path)
	return ""
}

func TestRootRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "root-keys.json")
	roots1, err := LoadOrCreateRootKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	store := newMemStore()
	s1 := New(roots1, store)
	tenants := []string{"a", "b", "c", "d", "e"}
	want := map[string][]byte{}
	blobs := map[string]kms.Wrapped{}
	for _, tenant := range tenants {
		want[tenant], blobs[tenant] = wrapOne(t, s1, tenant)
	}
	if _, err := s1.RotateTenantKEK(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	wantA2, blobA2 := wrapOne(t, s1, "a")

	v, err := RotateRootKeyFile(path)
	if err != nil || v != 2 {
		t.Fatalf("RotateRootKeyFile = %d, %v; want 2, nil", v, err)
	}
	roots2, err := LoadOrCreateRootKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if roots2.Current() != 2 {
		t.Fatalf("after rotation Current() = %d, want 2", roots2.Current())
	}
	s2 := New(roots2, store, WithRewrapBatchSize(2))
	// New KEKs are sealed by v2 at once, before any rewrap.
	_, _ = wrapOne(t, s2, "f")

	n, err := s2.RewrapKEKs(t.Context())
	if err != nil {
		t.Fatalf("RewrapKEKs: %v", err)
	}
	if n != len(tenants)+1 {
		t.Errorf("RewrapKEKs rewrapped %d KEKs, want %d", n, len(tenants)+1)
	}
	for _, row := range store.all() {
		if row.RootVersion != 2 {
			t.Errorf("KEK v%d of %s still sealed by root v%d", row.Version, row.TenantID, row.RootVersion)
		}
	}
	if n, err := s2.RewrapKEKs(t.Context()); n != 0 || err != nil {
		t.Errorf("second RewrapKEKs = %d, %v; want 0, nil", n, err)
	}
	for _, tenant := range tenants {
		mustUnwrap(t, s2, tenant, blobs[tenant], want[tenant])
	}

	// Retire v1: a process holding only v2 still unwraps everything.
	onlyV2, err := ParseRootKeys(rootKeyFileEntry(t, path, 2))
	if err != nil {
		t.Fatal(err)
	}
	s3 := New(onlyV2, store)
	for _, tenant := range tenants {
		mustUnwrap(t, s3, tenant, blobs[tenant], want[tenant])
	}
	mustUnwrap(t, s3, "a", blobA2, wantA2)
	if err := s3.Check(t.Context()); err != nil {
		t.Errorf("Check with only v2: %v", err)
	}
}

func TestRootRotationWithoutRewrapNeedsOldVersion(t *testing.T) {
	roots := testRoots(t, 1)
	store := newMemStore()
	_, w := wrapOne(t, New(roots, store), "t1")
	// A process that lost v1 before RewrapKEKs ran must say so, not claim
	// the tenant's key is gone.
	got, err := New(testRoots(t, 2), store).ForTenant("t1").Unwrap(t.Context(), w, testBinding("t1"))
	if got != nil || !errors.Is(err, kms.ErrUnavailable) || !strings.Contains(err.Error(), "has not loaded") {
		t.Fatalf("Unwrap without the sealing root version = %v, want ErrUnavailable naming the missing version", err)
	}
	n, err := New(testRoots(t, 2), store).RewrapKEKs(t.Context())
	if n != 0 || !errors.Is(err, kms.ErrUnavailable) || !strings.Contains(err.Error(), "root key version 1") {
		t.Fatalf("RewrapKEKs without the old root version = %d, %v; want 0 and ErrUnavailable naming version 1", n, err)
	}
}

func TestRewrapKEKsSkipsConflicts(t *testing.T) {
	old := testRoots(t, 1)
	store := newMemStore()
	s1 := New(old, store)
	want := map[string][]byte{}
	blobs := map[string]kms.Wrapped{}
	for _, tenant := range []string{"a", "b", "c", "d", "e"} {
		want[tenant], blobs[tenant] = wrapOne(t, s1, tenant)
	}
	roots := rootsWith(t, old, 2)
	s2 := New(roots, store, WithRewrapBatchSize(2))
	// Another replica rewraps "c" between our read and our write.
	store.beforeRewrap = func(tenantID string, version uint32) {
		if tenantID != "c" {
			return
		}
		store.beforeRewrap = nil
		if ok, err := New(roots, store).rewrapKEK(t.Context(), "test", mustRow(t, store, "c", 1), 2); !ok || err != nil {
			t.Errorf("the other replica's rewrap = %v, %v", ok, err)
		}
	}
	n, err := s2.RewrapKEKs(t.Context())
	if err != nil || n != 4 {
		t.Fatalf("RewrapKEKs = %d, %v; want 4 (one lost to the other replica), nil", n, err)
	}
	for _, row := range store.all() {
		if row.RootVersion != 2 {
			t.Errorf("KEK of %s still sealed by root v%d", row.TenantID, row.RootVersion)
		}
	}
	s3 := New(roots, store)
	for tenant, w := range blobs {
		mustUnwrap(t, s3, tenant, w, want[tenant])
	}
}

func TestRewrapKEKsStopsWhenProcessesDisagree(t *testing.T) {
	// Root versions 1 and 3 are both loaded and 2 is current; another
	// process keeps flipping the row between 1 and 3, as processes with
	// different current versions would. RewrapKEKs must give up, not spin.
	v1 := testRoots(t, 1)
	store := newMemStore()
	_, _ = wrapOne(t, New(v1, store), "t1")
	roots := rootsWith(t, rootsWith(t, v1, 3), 2)
	roots.current = 2
	flipper := New(roots, store)
	flipping := false // the flipper's own RewrapKEK runs this hook too
	store.beforeRewrap = func(tenantID string, version uint32) {
		if flipping {
			return
		}
		flipping = true
		defer func() { flipping = false }()
		row := mustRow(t, store, tenantID, version)
		to := uint32(3)
		if row.RootVersion == 3 {
			to = 1
		}
		if ok, err := flipper.rewrapKEK(t.Context(), "test", row, to); !ok || err != nil {
			t.Errorf("flip = %v, %v", ok, err)
		}
	}
	n, err := New(roots, store).RewrapKEKs(t.Context())
	if n != 0 || !errors.Is(err, kms.ErrUnavailable) || !strings.Contains(err.Error(), "same root keys") {
		t.Fatalf("RewrapKEKs against a disagreeing process = %d, %v; want 0 and an ErrUnavailable that says why", n, err)
	}
}

func TestRewrapKEKsHonoursContext(t *testing.T) {
	store := newMemStore()
	_, _ = wrapOne(t, New(testRoots(t, 1), store), "t1")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := New(testRoots(t, 2), store).RewrapKEKs(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("RewrapKEKs with a canceled context = %v, want context.Canceled", err)
	}
}

// rootsWith returns r plus a fresh version v, made current.
func rootsWith(t *testing.T, r *RootKeys, v uint32) *RootKeys {
	t.Helper()
	versions := append([]rootVersion(nil), r.versions...)
	for i := range versions {
		versions[i].key = versions[i].key.Clone()
	}
	raw, _ := base64.StdEncoding.DecodeString(randomKeyB64())
	fresh, err := ParseRootKeys(fmt.Sprintf("%d:%s", v, base64.StdEncoding.EncodeToString(raw)))
	if err != nil {
		t.Fatal(err)
	}
	versions = append(versions, fresh.versions...)
	out, err := newRootKeys(versions, v)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustRow(t *testing.T, store *memStore, tenantID string, version uint32) KEK {
	t.Helper()
	rows, _ := store.KEKs(context.Background(), tenantID)
	for _, r := range rows {
		if r.Version == version {
			return r
		}
	}
	t.Fatalf("no KEK v%d for %s", version, tenantID)
	return KEK{}
}
