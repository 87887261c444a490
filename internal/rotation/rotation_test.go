package rotation

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
	"github.com/tenantcrypt/tenantcrypt/internal/providers"
	"github.com/tenantcrypt/tenantcrypt/internal/store/sqlite"
)

// env is one process's worth of real parts on a SQLite store: the internal
// KMS with a root key file, the keyring, and a rotation Service.
type env struct {
	t        *testing.T
	dir      string
	keyFile  string
	store    *sqlite.Store
	internal *internalkms.Service
	ring     *keyring.Service
	rot      *Service
}

func newEnv(t *testing.T, fromFile bool) *env {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, "tenantcrypt.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, dir: dir, keyFile: filepath.Join(dir, "root-keys.json"), store: st}
	e.start(fromFile)
	return e
}

// start starts the process's parts afresh on the same store and key file,
// as a restart would: nothing cached.
func (e *env) start(fromFile bool) {
	e.t.Helper()
	roots, err := internalkms.LoadOrCreateRootKeyFile(e.keyFile)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(roots.Destroy)
	e.internal = internalkms.New(roots, e.store)
	e.t.Cleanup(e.internal.Close)
	// A small cache of unwrapped data keys, so that the data plane keeps
	// unwrapping (through the KEKs being rotated) while tests run.
	e.ring, err = keyring.New(keyring.Config{Store: e.store, Providers: providers.New(e.internal),
		Cache: keyring.CacheConfig{MaxEntries: 4}})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(e.ring.Close)
	cfg := Config{KMS: e.internal, Store: e.store, Tenants: e.ring, BatchSize: 7}
	if fromFile {
		cfg.RootKeyFile = e.keyFile
	}
	if e.rot, err = New(cfg); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(e.rot.Close)
}

func (e *env) wait() Status {
	e.t.Helper()
	return waitStatus(e.t, e.rot.Job())
}

// data is what a tenant encrypted: ciphertexts and data-key handles, each
// with its context and plaintext.
type data struct {
	tenant  string
	cts     []sample
	handles []sample
}

type sample struct {
	text string // ciphertext or handle
	ectx envelope.Context
	want []byte
}

func (e *env) makeData(tenant string, n int) *data {
	e.t.Helper()
	ctx := e.t.Context()
	if _, err := e.ring.CreateTenant(ctx, keyring.TenantSpec{ID: tenant, Name: tenant, Edition: keyring.EditionEnterprise}); err != nil {
		e.t.Fatal(err)
	}
	d := &data{tenant: tenant}
	for i := range n {
		ectx := envelope.Context{"i": fmt.Sprint(i)}
		pt := []byte(fmt.Sprintf("%s secret %d", tenant, i))
		ct, err := e.ring.Encrypt(ctx, tenant, ectx, pt)
		if err != nil {
			e.t.Fatal(err)
		}
		d.cts = append(d.cts, sample{ct, ectx, pt})
		dk, err := e.ring.IssuePlaintextDataKey(ctx, tenant, ectx)
		if err != nil {
			e.t.Fatal(err)
		}
		d.handles = append(d.handles, sample{dk.Handle, ectx, append([]byte(nil), dk.Plaintext.Reveal()...)})
		dk.Plaintext.Destroy()
	}
	return d
}

// check decrypts every ciphertext and resolves every handle of d.
func (e *env) check(d *data) error {
	ctx := context.Background()
	for _, c := range d.cts {
		got, err := e.ring.Decrypt(ctx, d.tenant, c.ectx, c.text)
		if err != nil {
			return fmt.Errorf("Decrypt(%s): %w", d.tenant, err)
		}
		if string(got) != string(c.want) {
			return fmt.Errorf("Decrypt(%s) = %q, want %q", d.tenant, got, c.want)
		}
	}
	for _, h := range d.handles {
		k, err := e.ring.ResolvePlaintextDataKey(ctx, d.tenant, h.ectx, h.text)
		if err != nil {
			return fmt.Errorf("ResolvePlaintextDataKey(%s): %w", d.tenant, err)
		}
		same := string(k.Reveal()) == string(h.want)
		k.Destroy()
		if !same {
			return fmt.Errorf("a handle of tenant %s resolves to another data key", d.tenant)
		}
	}
	return nil
}

// internalVersions counts the tenant's cipherkeys that the internal KMS
// wraps, by KEK version, straight from the store.
func (e *env) internalVersions(tenant string) map[string]int {
	e.t.Helper()
	ks, err := e.store.CipherKeysWrappedByOtherVersion(e.t.Context(), tenant, kms.InternalRef(), "none", envelope.KeyID{}, 100_000)
	if err != nil {
		e.t.Fatal(err)
	}
	counts := map[string]int{}
	for _, k := range ks {
		counts[k.KeyVersion]++
	}
	return counts
}

func TestRotateRootKey(t *testing.T) {
	e := newEnv(t, true)
	acme, globex := e.makeData("acme", 3), e.makeData("globex", 2)
	if err := e.rot.Start(); err != nil {
		t.Fatal(err)
	}
	if st := e.wait(); st.State != StateCompleted || st.Trigger != "start" || st.Rewrapped != 0 {
		t.Errorf("start-up rewrap: %+v, want completed with nothing to do", st)
	}

	doc, err := e.rot.RotateRootKey(t.Context())
	if err != nil {
		t.Fatalf("RotateRootKey: %v", err)
	}
	if doc.Source != SourceFile || doc.Current != 2 || doc.Job.Kind != KindRewrapKEKs || doc.Job.Target != 2 || doc.Job.Trigger != "rotate-root-key" {
		t.Errorf("RotateRootKey = %+v, want file source, current 2, a rewrap-keks run toward 2", doc)
	}
	st := e.wait()
	if st.State != StateCompleted || st.Rewrapped != 2 {
		t.Errorf("rewrap after RotateRootKey: %+v, want completed with the 2 KEKs rewrapped", st)
	}
	doc, err = e.rot.Document(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []Version{{Version: 1, Loaded: true}, {Version: 2, Current: true, Loaded: true, KEKs: 2}}
	if !slices.Equal(doc.Versions, want) {
		t.Errorf("versions %+v, want %+v", doc.Versions, want)
	}
	if err := errors.Join(e.check(acme), e.check(globex)); err != nil {
		t.Errorf("after the rotation, in the same process: %v", err)
	}
	// A restarted process loads the rotated file and opens everything.
	e.start(true)
	if err := errors.Join(e.check(acme), e.check(globex)); err != nil {
		t.Errorf("after a restart: %v", err)
	}
}

func TestReloadRootKeys(t *testing.T) {
	e := newEnv(t, true)
	acme := e.makeData("acme", 2)

	// An operator rotates the file with the CLI; the process reloads it.
	if _, err := internalkms.RotateRootKeyFile(e.keyFile); err != nil {
		t.Fatal(err)
	}
	doc, err := e.rot.ReloadRootKeys(t.Context())
	if err != nil {
		t.Fatalf("ReloadRootKeys: %v", err)
	}
	if doc.Current != 2 || doc.Job.Trigger != "reload-root-keys" {
		t.Errorf("ReloadRootKeys = %+v, want current 2, a reload-root-keys run", doc)
	}
	if st := e.wait(); st.State != StateCompleted || st.Rewrapped != 1 {
		t.Errorf("rewrap after reload: %+v, want 1 KEK rewrapped", st)
	}
	if err := e.check(acme); err != nil {
		t.Error(err)
	}

	// A file with another key for a loaded version is refused, and the
	// process keeps its keys.
	saved, err := os.ReadFile(e.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(t.TempDir(), "other.json")
	if _, err := internalkms.LoadOrCreateRootKeyFile(foreign); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := internalkms.RotateRootKeyFile(foreign); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(foreign)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.keyFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	before := e.rot.Job().Status()
	_, err = e.rot.ReloadRootKeys(t.Context())
	if !errors.Is(err, ErrRootKeysRefused) || !strings.Contains(err.Error(), "differs from the loaded") {
		t.Errorf("ReloadRootKeys(foreign file) = %v, want ErrRootKeysRefused", err)
	}
	if st := e.rot.Job().Status(); st != before {
		t.Errorf("a refused reload changed the job: %+v", st)
	}
	// Rotating builds on the file as it is, so it is refused the same way,
	// and the file is left as it was.
	if _, err := e.rot.RotateRootKey(t.Context()); !errors.Is(err, ErrRootKeysRefused) {
		t.Errorf("RotateRootKey(foreign file) = %v, want ErrRootKeysRefused", err)
	}
	if now, _ := os.ReadFile(e.keyFile); string(now) != string(data) {
		t.Error("a refused RotateRootKey changed the key file")
	}
	if err := e.check(acme); err != nil {
		t.Errorf("after refused reloads: %v", err)
	}

	// A file that does not load (mode) is a KeyFileError.
	if err := os.WriteFile(e.keyFile, saved, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(e.keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	var kf *KeyFileError
	if _, err := e.rot.ReloadRootKeys(t.Context()); !errors.As(err, &kf) || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("ReloadRootKeys(readable by others) = %v, want a KeyFileError saying what to do", err)
	}
	if err := os.Chmod(e.keyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	// A lock left by another rotation.
	if err := os.WriteFile(e.keyFile+".lock", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rot.RotateRootKey(t.Context()); !errors.As(err, &kf) || !errors.Is(err, internalkms.ErrRootKeyFileLocked) {
		t.Errorf("RotateRootKey with a lock = %v, want a KeyFileError wrapping ErrRootKeyFileLocked", err)
	}
}

func TestRootKeysFromEnvironment(t *testing.T) {
	e := newEnv(t, false)
	if _, err := e.rot.RotateRootKey(t.Context()); !errors.Is(err, ErrRootKeysFromEnvironment) {
		t.Errorf("RotateRootKey = %v, want ErrRootKeysFromEnvironment", err)
	}
	if _, err := e.rot.ReloadRootKeys(t.Context()); !errors.Is(err, ErrRootKeysFromEnvironment) {
		t.Errorf("ReloadRootKeys = %v, want ErrRootKeysFromEnvironment", err)
	}
	if !strings.Contains(ErrRootKeysFromEnvironment.Error(), "TENANTCRYPT_ROOT_KEYS") || !strings.Contains(ErrRootKeysFromEnvironment.Error(), "restart") {
		t.Errorf("the refusal %q does not say what to do", ErrRootKeysFromEnvironment)
	}
	doc, err := e.rot.Document(t.Context())
	if err != nil || doc.Source != SourceEnvironment || doc.Job.State != StateIdle {
		t.Errorf("Document = %+v, %v; want the environment source, an idle job", doc, err)
	}
}

// TestRotateTenantKey rotates a tenant's KEK while the data plane works on
// it from several goroutines (run with -race), and checks that its
// cipherkeys all moved, the other tenant's did not, and everything decrypts,
// in this process and after a restart.
func TestRotateTenantKey(t *testing.T) {
	e := newEnv(t, true)
	acme, globex := e.makeData("acme", 20), e.makeData("globex", 3)
	if got := e.internalVersions("acme"); got["1"] != 21 || len(got) != 1 {
		t.Fatalf("fixture: acme's cipherkeys by KEK version %v, want 21 under 1", got)
	}

	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 4 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				if err := e.check(acme); err != nil {
					errs <- err
					return
				}
				// New data keys meanwhile: wrapped under whichever version
				// is current, all must open.
				if _, err := e.ring.IssuePlaintextDataKey(context.Background(), "acme", envelope.Context{"g": fmt.Sprint(g, i)}); err != nil {
					errs <- err
					return
				}
			}
		})
	}

	tr, err := e.rot.RotateTenantKey(t.Context(), "acme")
	if err != nil {
		t.Fatalf("RotateTenantKey: %v", err)
	}
	if tr.TenantID != "acme" || tr.KEKVersion != 2 || tr.Job.Kind != KindRewrapCipherKeys || tr.Job.Target != 2 || tr.Job.TenantID != "acme" {
		t.Errorf("RotateTenantKey = %+v, want KEK version 2 and a rewrap-cipherkeys run of acme", tr)
	}
	st := e.wait()
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("data plane during the rotation: %v", err)
	}
	if st.State != StateCompleted || st.Rewrapped < 21 || st.Failed != 0 {
		t.Errorf("rewrap: %+v, want completed with at least the 21 first cipherkeys rewrapped", st)
	}
	if got := e.internalVersions("acme"); len(got) != 1 || got["2"] == 0 {
		t.Errorf("acme's cipherkeys by KEK version %v, want all under 2", got)
	}
	if got := e.internalVersions("globex"); len(got) != 1 || got["1"] != 4 {
		t.Errorf("globex's cipherkeys by KEK version %v, want its 4 untouched under 1", got)
	}
	if err := errors.Join(e.check(acme), e.check(globex)); err != nil {
		t.Error(err)
	}
	e.start(true)
	if err := errors.Join(e.check(acme), e.check(globex)); err != nil {
		t.Errorf("after a restart: %v", err)
	}

	// A second rotation moves them again.
	if tr, err := e.rot.RotateTenantKey(t.Context(), "acme"); err != nil || tr.KEKVersion != 3 {
		t.Fatalf("second RotateTenantKey = %+v, %v; want KEK version 3", tr, err)
	}
	if st := e.wait(); st.State != StateCompleted {
		t.Errorf("second rewrap: %+v", st)
	}
	if got := e.internalVersions("acme"); len(got) != 1 || got["3"] == 0 {
		t.Errorf("acme's cipherkeys by KEK version %v, want all under 3", got)
	}
}

func TestRotateTenantKeyLeavesDamagedKeys(t *testing.T) {
	e := newEnv(t, true)
	acme := e.makeData("acme", 5)
	ks, err := e.store.CipherKeysWrappedByOtherVersion(t.Context(), "acme", kms.InternalRef(), "none", envelope.KeyID{}, 100)
	if err != nil || len(ks) < 2 {
		t.Fatalf("cipherkeys: %d, %v", len(ks), err)
	}
	// Damage one data key's wrapping (not the active encryption key's).
	var damaged keyring.CipherKey
	for _, k := range ks {
		if k.Purpose == keyring.PurposeDataKey {
			damaged = k
			break
		}
	}
	blob := append([]byte(nil), damaged.Wrapped...)
	blob[len(blob)-1] ^= 1
	if err := e.store.RewrapCipherKey(t.Context(), damaged, damaged.Provider, damaged.KeyVersion, blob); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rot.RotateTenantKey(t.Context(), "acme"); err != nil {
		t.Fatal(err)
	}
	st := e.wait()
	if st.State != StateFailed || st.Failed != 1 || st.Rewrapped != int64(len(ks)-1) || !strings.Contains(st.Error, "1 cipherkey(s)") {
		t.Errorf("rewrap with a damaged key: %+v, want failed with 1 failed and the %d others rewrapped", st, len(ks)-1)
	}
	if got := e.internalVersions("acme"); got["1"] != 1 || got["2"] != len(ks)-1 {
		t.Errorf("acme's cipherkeys by KEK version %v, want the damaged one left under 1", got)
	}
	// Everything else still opens.
	acme.handles = slices.DeleteFunc(acme.handles, func(h sample) bool { return handleID(t, h.text) == damaged.ID })
	if err := e.check(acme); err != nil {
		t.Error(err)
	}
}

func handleID(t *testing.T, text string) envelope.KeyID {
	t.Helper()
	_, bin, err := envelope.ParseText(text)
	if err != nil {
		t.Fatal(err)
	}
	h, err := envelope.ParseHandle(bin)
	if err != nil {
		t.Fatal(err)
	}
	return h.KeyID
}

func TestRotateTenantKeyRefusals(t *testing.T) {
	e := newEnv(t, true)
	e.makeData("acme", 1)
	e.makeData("cmk-tenant", 1)
	tn, err := e.store.Tenant(t.Context(), "cmk-tenant")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.SwitchTenantProvider(t.Context(), tn.ID, tn.Provider, kms.MustCMKRef("0123456789abcdef0123456789abcdef"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rot.RotateTenantKey(t.Context(), "missing"); !errors.Is(err, keyring.ErrTenantNotFound) {
		t.Errorf("RotateTenantKey(unknown) = %v, want keyring.ErrTenantNotFound", err)
	}
	if _, err := e.rot.RotateTenantKey(t.Context(), "cmk-tenant"); !errors.Is(err, ErrNotInternal) {
		t.Errorf("RotateTenantKey(tenant on a CMK) = %v, want ErrNotInternal", err)
	}

	// While a run is in progress, nothing else starts, and the refused
	// tenant rotation adds no KEK version.
	started, release := make(chan struct{}), make(chan struct{})
	if _, err := e.rot.Job().Start(t.Context(), blockingTask(KindRewrapKEKs, started, release)); err != nil {
		t.Fatal(err)
	}
	<-started
	for name, call := range map[string]func() error{
		"RotateTenantKey": func() error { _, err := e.rot.RotateTenantKey(t.Context(), "acme"); return err },
		"RotateRootKey":   func() error { _, err := e.rot.RotateRootKey(t.Context()); return err },
		"ReloadRootKeys":  func() error { _, err := e.rot.ReloadRootKeys(t.Context()); return err },
		"Start":           e.rot.Start,
	} {
		if err := call(); !errors.Is(err, ErrBusy) {
			t.Errorf("%s while a run is in progress = %v, want ErrBusy", name, err)
		}
	}
	close(release)
	e.wait()
	keks, err := e.store.KEKs(t.Context(), "acme")
	if err != nil || len(keks) != 1 {
		t.Errorf("acme's KEKs after a refused rotation: %d, %v; want 1", len(keks), err)
	}
	root, _ := e.internal.RootKeyVersions()
	if root != 1 {
		t.Errorf("root key version %d after refused rotations, want 1", root)
	}

	e.rot.Close()
	if _, err := e.rot.RotateTenantKey(t.Context(), "acme"); !errors.Is(err, ErrClosed) {
		t.Errorf("RotateTenantKey after Close = %v, want ErrClosed", err)
	}
}
