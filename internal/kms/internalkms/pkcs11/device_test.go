//go:build cgo

package pkcs11

import (
	"bytes"
	"errors"
	"maps"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
	"github.com/tenantcrypt/tenantcrypt/internal/store/sqlite"
)

// The HSM as the internal KMS's root, with a real store: first start,
// restart, rotation, several processes on one token, and the migrations
// between a root key file and the HSM.

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "tenantcrypt.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

type wrapped struct {
	tenant string
	dk     []byte
	w      kms.Wrapped
}

func binding(tenant string) kms.Binding {
	return kms.Binding{kms.BindingTenant: tenant, kms.BindingKeyID: "dk-1"}
}

func wrapFor(t *testing.T, s *internalkms.Service, tenant string) wrapped {
	t.Helper()
	dk, w, err := s.ForTenant(tenant).GenerateDataKey(t.Context(), binding(tenant))
	if err != nil {
		t.Fatalf("GenerateDataKey(%s): %v", tenant, err)
	}
	defer dk.Destroy()
	return wrapped{tenant: tenant, dk: bytes.Clone(dk.Reveal()), w: w}
}

func (w wrapped) check(t *testing.T, s *internalkms.Service, when string) {
	t.Helper()
	dk, err := s.ForTenant(w.tenant).Unwrap(t.Context(), w.w, binding(w.tenant))
	if err != nil {
		t.Fatalf("%s: Unwrap(%s): %v", when, w.tenant, err)
	}
	defer dk.Destroy()
	if !bytes.Equal(dk.Reveal(), w.dk) {
		t.Fatalf("%s: Unwrap(%s) returned another key", when, w.tenant)
	}
}

func counts(t *testing.T, st *sqlite.Store) map[uint32]int {
	t.Helper()
	c, err := st.CountKEKsByRootVersion(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDeviceLifecycle(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cfg := softHSM(t)
	st := openStore(t)

	h := openHSM(t, cfg)
	rec, err := internalkms.OpenDevice(ctx, h, st)
	if err != nil {
		t.Fatalf("OpenDevice(first start): %v", err)
	}
	if rec.Source != internalkms.RootSourcePKCS11 || rec.Current != 1 || rec.Token != cfg.Token || rec.KeyLabel != cfg.KeyLabel {
		t.Fatalf("record after the first start = %+v", rec)
	}
	svc := internalkms.New(h, st)
	if err := svc.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	a, b := wrapFor(t, svc, "acme"), wrapFor(t, svc, "globex")
	if got := counts(t, st); !maps.Equal(got, map[uint32]int{1: 2}) {
		t.Fatalf("KEKs by root version = %v, want 2 under version 1", got)
	}
	// A file start on this database is refused, before it creates anything.
	if err := internalkms.CheckFileRoot(ctx, st); !errors.Is(err, internalkms.ErrRootInDevice) {
		t.Fatalf("CheckFileRoot = %v, want ErrRootInDevice", err)
	}

	// A second process on the same token and database (a replica, or a
	// restart) opens the same version and every KEK.
	h2 := openHSM(t, cfg)
	if rec2, err := internalkms.OpenDevice(ctx, h2, st); err != nil || rec2.Current != 1 {
		t.Fatalf("OpenDevice(second process) = %+v, %v", rec2, err)
	}
	svc2 := internalkms.New(h2, st)
	a.check(t, svc2, "second process")

	// Rotation: a new HSM object, recorded; rewrap moves every KEK; the
	// other process opens them all even before it reloads.
	v, err := internalkms.RotateDevice(ctx, h, st)
	if err != nil || v != 2 {
		t.Fatalf("RotateDevice = %d, %v; want 2", v, err)
	}
	if n, err := svc.RewrapKEKs(ctx); err != nil || n != 2 {
		t.Fatalf("RewrapKEKs = %d, %v; want 2", n, err)
	}
	if got := counts(t, st); !maps.Equal(got, map[uint32]int{2: 2}) {
		t.Fatalf("KEKs by root version after the rewrap = %v, want 2 under version 2", got)
	}
	svc2.Forget("acme")
	svc2.Forget("globex")
	a.check(t, svc2, "other process, after the rotation")
	if _, err := internalkms.ReloadDevice(ctx, h2, st); err != nil || h2.Current() != 2 {
		t.Fatalf("ReloadDevice: current %d, %v; want 2", h2.Current(), err)
	}
	b.check(t, svc2, "other process, reloaded")
	if vs, err := h.ListVersions(ctx); err != nil || len(vs) != 2 {
		t.Fatalf("versions on the token = %v, %v; want 2", vs, err)
	}

	// The wrong key label is refused, and changes nothing.
	wrongLabel := cfg
	wrongLabel.KeyLabel += "-other"
	h3 := openHSM(t, wrongLabel)
	if _, err := internalkms.OpenDevice(ctx, h3, st); err == nil {
		t.Fatal("OpenDevice with another key label succeeded")
	}
	if rec, _ := st.RootRecord(ctx); rec.Current != 2 || rec.KeyLabel != cfg.KeyLabel {
		t.Fatalf("a refused start changed the record: %+v", rec)
	}
}

// TestDeviceFirstStartRace: replicas starting together create version 1
// once, under the database's lock.
func TestDeviceFirstStartRace(t *testing.T) {
	t.Parallel()
	cfg := softHSM(t)
	st := openStore(t)
	var wg sync.WaitGroup
	for range 4 {
		h := openHSM(t, cfg)
		wg.Go(func() {
			if _, err := internalkms.OpenDevice(t.Context(), h, st); err != nil {
				t.Errorf("OpenDevice: %v", err)
			}
		})
	}
	wg.Wait()
	vs, err := openHSM(t, cfg).ListVersions(t.Context())
	if err != nil || len(vs) != 1 || vs[0] != 1 {
		t.Fatalf("root key objects on the token = %v, %v; want exactly version 1", vs, err)
	}
}

func TestMigrateFileToDeviceAndBack(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cfg := softHSM(t)
	st := openStore(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "root-keys.json")
	file, err := internalkms.LoadOrCreateRootKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fileSvc := internalkms.New(file, st)
	var all []wrapped
	for _, tenant := range []string{"a", "b", "c"} {
		all = append(all, wrapFor(t, fileSvc, tenant))
	}
	fileSvc.Close()

	// The HSM refuses a database whose KEKs the file seals.
	h := openHSM(t, cfg)
	if _, err := internalkms.OpenDevice(ctx, h, st); !errors.Is(err, internalkms.ErrRootNotInDevice) {
		t.Fatalf("OpenDevice(file database) = %v, want ErrRootNotInDevice", err)
	}
	v, n, err := internalkms.MigrateToDevice(ctx, file, h, st)
	if err != nil || v != 2 || n != 3 {
		t.Fatalf("MigrateToDevice = %d, %d, %v; want version 2, 3 KEKs", v, n, err)
	}
	file.Destroy()
	if got := counts(t, st); !maps.Equal(got, map[uint32]int{2: 3}) {
		t.Fatalf("KEKs by root version = %v, want 3 under HSM version 2", got)
	}
	// Without the file now: a fresh process with only the HSM.
	h2 := openHSM(t, cfg)
	if _, err := internalkms.OpenDevice(ctx, h2, st); err != nil {
		t.Fatalf("OpenDevice after the migration: %v", err)
	}
	hsmSvc := internalkms.New(h2, st)
	for _, w := range all {
		w.check(t, hsmSvc, "HSM, after the migration")
	}
	all = append(all, wrapFor(t, hsmSvc, "d"))
	hsmSvc.Close()

	// And back to a new file, whose version is above the HSM's.
	back := filepath.Join(dir, "back.json")
	if _, err := internalkms.CreateRootKeyFile(back, 3); err != nil {
		t.Fatal(err)
	}
	file2, err := internalkms.LoadRootKeyFile(back)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(file2.Destroy)
	if n, err := internalkms.MigrateToFile(ctx, h2, file2, st); err != nil || n != 4 {
		t.Fatalf("MigrateToFile = %d, %v; want 4", n, err)
	}
	if err := internalkms.CheckFileRoot(ctx, st); err != nil {
		t.Fatalf("CheckFileRoot after moving back: %v", err)
	}
	if _, err := internalkms.OpenDevice(ctx, openHSM(t, cfg), st); !errors.Is(err, internalkms.ErrRootNotInDevice) {
		t.Fatalf("OpenDevice after moving back = %v, want ErrRootNotInDevice", err)
	}
	fileSvc2 := internalkms.New(file2, st)
	t.Cleanup(fileSvc2.Close)
	for _, w := range all {
		w.check(t, fileSvc2, "file, after moving back")
	}
}

// TestHSMOnlyOnKEKCacheMiss: with the KEK cached, unwrapping data keys does
// not call the HSM; without a cache every unwrap does, concurrently, through
// the session pool (run with -race).
func TestHSMOnlyOnKEKCacheMiss(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cfg := softHSM(t)
	cfg.Sessions = 2
	st := openStore(t)
	h := openHSM(t, cfg)
	if _, err := internalkms.OpenDevice(ctx, h, st); err != nil {
		t.Fatal(err)
	}
	cached := internalkms.New(h, st)
	t.Cleanup(cached.Close)
	var ws []wrapped
	for _, tenant := range []string{"t1", "t2", "t3", "t4"} {
		ws = append(ws, wrapFor(t, cached, tenant))
	}
	before := h.Operations()
	for range 25 {
		for _, w := range ws {
			w.check(t, cached, "cached")
		}
	}
	if got := h.Operations() - before; got != 0 {
		t.Errorf("100 unwraps with the KEKs cached called the HSM %d times, want 0", got)
	}

	uncached := internalkms.New(h, st, internalkms.WithKEKCacheSize(0))
	t.Cleanup(uncached.Close)
	before = h.Operations()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for _, w := range ws {
				dk, err := uncached.ForTenant(w.tenant).Unwrap(ctx, w.w, binding(w.tenant))
				if err != nil {
					t.Errorf("Unwrap(%s) without a KEK cache: %v", w.tenant, err)
					return
				}
				if !bytes.Equal(dk.Reveal(), w.dk) {
					t.Errorf("Unwrap(%s) returned another key", w.tenant)
				}
				dk.Destroy()
			}
		})
	}
	wg.Wait()
	if got := h.Operations() - before; got < 32 {
		t.Errorf("32 unwraps without a KEK cache called the HSM %d times, want at least 32", got)
	}
}

// TestMigrateToDeviceResumes: a migration that stopped half way (some KEKs
// under the HSM version, some still under the file's) is finished by
// running it again, with the HSM version it had made.
func TestMigrateToDeviceResumes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cfg := softHSM(t)
	st := openStore(t)
	file, err := internalkms.LoadOrCreateRootKeyFile(filepath.Join(t.TempDir(), "root-keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(file.Destroy)
	fileSvc := internalkms.New(file, st)
	a, b := wrapFor(t, fileSvc, "a"), wrapFor(t, fileSvc, "b")
	fileSvc.Close()

	// The state a stopped run leaves: HSM version 2 made, one KEK under it.
	h := openHSM(t, cfg)
	if err := h.CreateVersion(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := h.SetCurrent(ctx, 2); err != nil {
		t.Fatal(err)
	}
	both, err := internalkms.NewCombinedRoot(file, h)
	if err != nil {
		t.Fatal(err)
	}
	half := internalkms.New(both, st)
	if _, err := half.RotateTenantKEK(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	half.Close()
	if got := counts(t, st); !maps.Equal(got, map[uint32]int{1: 2, 2: 1}) {
		t.Fatalf("fixture: KEKs by root version = %v", got)
	}

	v, n, err := internalkms.MigrateToDevice(ctx, file, openHSM(t, cfg), st)
	if err != nil || v != 2 || n != 2 {
		t.Fatalf("MigrateToDevice (again) = version %d, %d resealed, %v; want version 2, 2", v, n, err)
	}
	if got := counts(t, st); !maps.Equal(got, map[uint32]int{2: 3}) {
		t.Fatalf("KEKs by root version = %v, want all 3 under version 2", got)
	}
	if vs, _ := h.ListVersions(ctx); len(vs) != 1 {
		t.Fatalf("HSM versions = %v, want only version 2 (the stopped run's)", vs)
	}
	h2 := openHSM(t, cfg)
	if _, err := internalkms.OpenDevice(ctx, h2, st); err != nil {
		t.Fatal(err)
	}
	svc := internalkms.New(h2, st)
	t.Cleanup(svc.Close)
	a.check(t, svc, "after the resumed migration")
	b.check(t, svc, "after the resumed migration")
}
