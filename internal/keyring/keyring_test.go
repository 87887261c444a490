package keyring_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
	"github.com/tenantcrypt/tenantcrypt/internal/providers"
	"github.com/tenantcrypt/tenantcrypt/internal/store/postgres/pgtest"
	"github.com/tenantcrypt/tenantcrypt/internal/store/sqlite"
)

// store is what both backends provide.
type store interface {
	keyring.Store
	internalkms.Store
}

// harness is a keyring on real parts: a SQLite store in a temporary
// directory and the internal KMS with a root key file beside it.
type harness struct {
	t        testing.TB
	dir      string
	store    store
	roots    *internalkms.RootKeys
	internal *internalkms.Service
	svc      *keyring.Service
}

func newHarness(t testing.TB, cfg keyring.Config) *harness {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "tenantcrypt.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newHarnessOn(t, dir, st, cfg)
}

func newHarnessOn(t testing.TB, dir string, st store, cfg keyring.Config) *harness {
	t.Helper()
	h := &harness{t: t, dir: dir, store: st}
	h.reopen(cfg)
	return h
}

// reopen starts a fresh keyring (cold caches, root keys read again) on the
// same store, as a restarted or second process would.
func (h *harness) reopen(cfg keyring.Config) *keyring.Service {
	h.t.Helper()
	roots, err := internalkms.LoadOrCreateRootKeyFile(filepath.Join(h.dir, "root-keys.json"))
	if err != nil {
		h.t.Fatal(err)
	}
	h.roots = roots
	h.internal = internalkms.New(roots, h.store)
	cfg.Store = h.store
	cfg.Providers = providers.New(h.internal)
	svc, err := keyring.New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(svc.Close)
	h.svc = svc
	return svc
}

func (h *harness) tenant(id string) keyring.Tenant {
	h.t.Helper()
	tn, err := h.svc.CreateTenant(context.Background(), keyring.TenantSpec{ID: id, Name: "Tenant " + id, Edition: keyring.EditionEnterprise})
	if err != nil {
		h.t.Fatal(err)
	}
	return tn
}

func (h *harness) encrypt(tenant string, ectx envelope.Context, pt []byte) string {
	h.t.Helper()
	ct, err := h.svc.Encrypt(context.Background(), tenant, ectx, pt)
	if err != nil {
		h.t.Fatalf("Encrypt: %v", err)
	}
	return ct
}

func keyIDOf(t *testing.T, text string) envelope.KeyID {
	t.Helper()
	_, bin, err := envelope.ParseText(text)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := envelope.ParseCiphertext(bin)
	if err != nil {
		t.Fatal(err)
	}
	return ct.KeyID
}

func TestRoundTrips(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, keyring.Config{})
	h.tenant("acme")
	tests := []struct {
		name string
		ectx envelope.Context
		pt   []byte
	}{
		{"empty", nil, []byte{}},
		{"small", nil, []byte("hunter2")},
		{"with context", envelope.Context{"app": "crm", "field": "password"}, []byte("s3cret")},
		{"1 MiB", envelope.Context{"k": "v"}, bytes.Repeat([]byte{0xa5}, 1<<20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct := h.encrypt("acme", tt.ectx, tt.pt)
			if got, want := ct[:len(envelope.InternalPrefix("acme"))], envelope.InternalPrefix("acme"); got != want {
				t.Errorf("prefix = %q, want %q", got, want)
			}
			got, err := h.svc.Decrypt(ctx, "acme", tt.ectx, ct)
			if err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if !bytes.Equal(got, tt.pt) {
				t.Errorf("Decrypt = %d bytes, want the %d bytes encrypted", len(got), len(tt.pt))
			}
			re, err := h.svc.Rewrap(ctx, "acme", tt.ectx, ct)
			if err != nil {
				t.Fatalf("Rewrap: %v", err)
			}
			if re == ct {
				t.Errorf("Rewrap returned the same ciphertext")
			}
			got, err = h.svc.Decrypt(ctx, "acme", tt.ectx, re)
			if err != nil || !bytes.Equal(got, tt.pt) {
				t.Errorf("Decrypt(Rewrap) = %v, want the plaintext", err)
			}
		})
	}
	t.Run("data key", func(t *testing.T) {
		ectx := envelope.Context{"object": "report.pdf"}
		dk, err := h.svc.IssuePlaintextDataKey(ctx, "acme", ectx)
		if err != nil {
			t.Fatal(err)
		}
		defer dk.Plaintext.Destroy()
		if got := dk.Plaintext.Len(); got != 32 {
			t.Fatalf("data key is %d bytes, want 32", got)
		}
		for _, cold := range []bool{false, true} {
			if cold {
				h.svc.PurgeTenantKeys("acme")
			}
			got, err := h.svc.ResolvePlaintextDataKey(ctx, "acme", ectx, dk.Handle)
			if err != nil {
				t.Fatalf("Resolve (cold=%v): %v", cold, err)
			}
			if !bytes.Equal(got.Reveal(), dk.Plaintext.Reveal()) {
				t.Errorf("Resolve (cold=%v) returned another key", cold)
			}
			got.Destroy()
		}
		dk2, err := h.svc.IssuePlaintextDataKey(ctx, "acme", ectx)
		if err != nil {
			t.Fatal(err)
		}
		defer dk2.Plaintext.Destroy()
		if bytes.Equal(dk.Plaintext.Reveal(), dk2.Plaintext.Reveal()) || dk.Handle == dk2.Handle {
			t.Errorf("two data keys are the same: each request must make a fresh key")
		}
	})
}

func TestIsolation(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, keyring.Config{})
	h.tenant("a")
	h.tenant("b")
	ectx := envelope.Context{"purpose": "test"}
	ct := h.encrypt("a", ectx, []byte("tenant a's secret"))
	dk, err := h.svc.IssuePlaintextDataKey(ctx, "a", ectx)
	if err != nil {
		t.Fatal(err)
	}
	dk.Plaintext.Destroy()
	for _, cold := range []bool{false, true} {
		if cold {
			h.svc.PurgeTenantKeys("a")
			h.svc.PurgeTenantKeys("b")
		}
		tests := []struct {
			name   string
			tenant string
			ectx   envelope.Context
		}{
			{"other tenant", "b", ectx},
			{"other context", "a", envelope.Context{"purpose": "other"}},
			{"context dropped", "a", nil},
			{"context added to", "a", envelope.Context{"purpose": "test", "x": "y"}},
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/cold=%v", tt.name, cold), func(t *testing.T) {
				if _, err := h.svc.Decrypt(ctx, tt.tenant, tt.ectx, ct); !errors.Is(err, keyring.ErrDecrypt) {
					t.Errorf("Decrypt: err = %v, want ErrDecrypt", err)
				}
				if _, err := h.svc.Rewrap(ctx, tt.tenant, tt.ectx, ct); !errors.Is(err, keyring.ErrDecrypt) {
					t.Errorf("Rewrap: err = %v, want ErrDecrypt", err)
				}
				if _, err := h.svc.ResolvePlaintextDataKey(ctx, tt.tenant, tt.ectx, dk.Handle); !errors.Is(err, keyring.ErrDecrypt) {
					t.Errorf("Resolve: err = %v, want ErrDecrypt", err)
				}
			})
		}
	}
	t.Run("handle is not a ciphertext key", func(t *testing.T) {
		// A data key handed out for local use cannot be used by the
		// service's own decrypt, nor an encryption key resolved as a data key.
		_, handleBin, _ := envelope.ParseText(dk.Handle)
		h2, _ := envelope.ParseHandle(handleBin)
		_, ctBin, _ := envelope.ParseText(ct)
		c, _ := envelope.ParseCiphertext(ctBin)
		c.KeyID = h2.KeyID
		forged, _ := c.MarshalBinary()
		text, _ := envelope.FormatText(envelope.InternalPrefix("a"), forged)
		if _, err := h.svc.Decrypt(ctx, "a", ectx, text); !errors.Is(err, keyring.ErrDecrypt) {
			t.Errorf("Decrypt with a data key's id: err = %v, want ErrDecrypt", err)
		}
		hb, _ := envelope.Handle{KeyID: keyIDOf(t, ct)}.MarshalBinary()
		htext, _ := envelope.FormatText(envelope.InternalPrefix("a"), hb)
		if _, err := h.svc.ResolvePlaintextDataKey(ctx, "a", ectx, htext); !errors.Is(err, keyring.ErrDecrypt) {
			t.Errorf("Resolve of an encryption key's id: err = %v, want ErrDecrypt", err)
		}
	})
}

func TestEveryFlippedBitFails(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, keyring.Config{})
	h.tenant("acme")
	ct := h.encrypt("acme", envelope.Context{"k": "v"}, []byte("short secret"))
	prefix, bin, err := envelope.ParseText(ct)
	if err != nil {
		t.Fatal(err)
	}
	for i := range len(bin) * 8 {
		flipped := bytes.Clone(bin)
		flipped[i/8] ^= 1 << (i % 8)
		// Built by hand: FormatText itself refuses a malformed binary.
		text := prefix + ":" + base64.RawURLEncoding.EncodeToString(flipped)
		if _, err := h.svc.Decrypt(ctx, "acme", envelope.Context{"k": "v"}, text); !errors.Is(err, keyring.ErrDecrypt) {
			t.Fatalf("bit %d flipped: err = %v, want ErrDecrypt", i, err)
		}
	}
	for _, bad := range []string{"", "garbage", ct[:len(ct)-4], ct + "AA", "#QLIKv1#:acme:!!!"} {
		if _, err := h.svc.Decrypt(ctx, "acme", envelope.Context{"k": "v"}, bad); !errors.Is(err, keyring.ErrDecrypt) {
			t.Errorf("Decrypt(%q): err = %v, want ErrDecrypt", bad, err)
		}
	}
}

func TestRotationByCount(t *testing.T) {
	ctx := context.Background()
	const maxUses = 10
	h := newHarness(t, keyring.Config{MaxKeyUses: maxUses, UseBlock: 4})
	h.tenant("acme")
	uses := map[envelope.KeyID]int{}
	var cts []string
	for i := range 55 {
		ct := h.encrypt("acme", nil, fmt.Appendf(nil, "message %d", i))
		uses[keyIDOf(t, ct)]++
		cts = append(cts, ct)
	}
	// Blocks of 4 within a limit of 10: 8 uses per key, the rest wasted.
	if got, want := len(uses), 7; got != want {
		t.Errorf("distinct data keys = %d, want %d", got, want)
	}
	for id, n := range uses {
		if n > maxUses {
			t.Errorf("key %s encrypted %d messages, want <= %d", id, n, maxUses)
		}
	}
	for i, ct := range cts {
		got, err := h.svc.Decrypt(ctx, "acme", nil, ct)
		if err != nil || string(got) != fmt.Sprintf("message %d", i) {
			t.Fatalf("Decrypt(message %d) = %q, %v", i, got, err)
		}
	}
}

func TestRotationByAge(t *testing.T) {
	ctx := context.Background()
	clock := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	h := newHarness(t, keyring.Config{MaxKeyAge: 24 * time.Hour, Now: clock.Now})
	h.tenant("acme")
	first := h.encrypt("acme", nil, []byte("day 1"))
	clock.Advance(23 * time.Hour)
	if got, want := keyIDOf(t, h.encrypt("acme", nil, []byte("x"))), keyIDOf(t, first); got != want {
		t.Errorf("key rotated before its max age")
	}
	clock.Advance(2 * time.Hour)
	second := h.encrypt("acme", nil, []byte("day 2"))
	if keyIDOf(t, second) == keyIDOf(t, first) {
		t.Fatalf("key not rotated after its max age")
	}
	// A second process, starting cold, also sees the old key as too old.
	other := h.reopen(keyring.Config{MaxKeyAge: 24 * time.Hour, Now: clock.Now})
	ct, err := other.Encrypt(ctx, "acme", nil, []byte("other"))
	if err != nil {
		t.Fatal(err)
	}
	if keyIDOf(t, ct) != keyIDOf(t, second) {
		t.Errorf("second process did not use the current key")
	}
	for _, c := range []string{first, second} {
		if _, err := other.Decrypt(ctx, "acme", nil, c); err != nil {
			t.Errorf("Decrypt after rotation: %v", err)
		}
	}
}

func TestConcurrentRotationAcrossProcesses(t *testing.T) {
	// Three keyrings on one database stand in for three replicas; on
	// PostgreSQL each has its own connection pool.
	t.Run("sqlite", func(t *testing.T) {
		h := newHarness(t, keyring.Config{})
		testConcurrentRotation(t, h, func() store { return h.store })
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := pgtest.DSN(t)
		h := newHarnessOn(t, t.TempDir(), pgtest.OpenDSN(t, dsn), keyring.Config{})
		testConcurrentRotation(t, h, func() store { return pgtest.OpenDSN(t, dsn) })
	})
}

func testConcurrentRotation(t *testing.T, h *harness, another func() store) {
	ctx := context.Background()
	cfg := keyring.Config{MaxKeyUses: 20, UseBlock: 3}
	h.reopen(cfg)
	h.tenant("acme")
	var svcs []*keyring.Service
	for range 3 {
		h.store = another()
		svcs = append(svcs, h.reopen(cfg))
	}
	var mu sync.Mutex
	cts := map[string]int{}
	var wg sync.WaitGroup
	for g := range 12 {
		wg.Go(func() {
			svc := svcs[g%len(svcs)]
			for i := range 40 {
				ct, err := svc.Encrypt(ctx, "acme", nil, fmt.Appendf(nil, "%d/%d", g, i))
				if err != nil {
					t.Errorf("Encrypt: %v", err)
					return
				}
				mu.Lock()
				cts[ct] = g*1000 + i
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	uses := map[envelope.KeyID]int{}
	for ct, n := range cts {
		uses[keyIDOf(t, ct)]++
		got, err := svcs[n%3].Decrypt(ctx, "acme", nil, ct)
		if err != nil || string(got) != fmt.Sprintf("%d/%d", n/1000, n%1000) {
			t.Fatalf("Decrypt = %q, %v", got, err)
		}
	}
	for id, n := range uses {
		if int64(n) > cfg.MaxKeyUses {
			t.Errorf("key %s used %d times, want <= %d", id, n, cfg.MaxKeyUses)
		}
	}
	if got, want := len(cts), 12*40; got != want {
		t.Errorf("distinct ciphertexts = %d, want %d", got, want)
	}
	if _, err := h.store.ActiveCipherKey(ctx, "acme"); err != nil {
		t.Errorf("ActiveCipherKey after the race: %v", err)
	}
}

func TestInternalKMSRotation(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, keyring.Config{})
	h.tenant("acme")
	before := h.encrypt("acme", nil, []byte("before rotation"))
	dk, err := h.svc.IssuePlaintextDataKey(ctx, "acme", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dk.Plaintext.Destroy()

	// Root key rotation, then rewrap of every KEK under the new root.
	if _, err := internalkms.RotateRootKeyFile(filepath.Join(h.dir, "root-keys.json")); err != nil {
		t.Fatal(err)
	}
	h.reopen(keyring.Config{}) // a process that loads the rotated root keys
	n, err := h.internal.RewrapKEKs(ctx)
	if err != nil || n == 0 {
		t.Fatalf("RewrapKEKs = %d, %v; want > 0 rewrapped", n, err)
	}
	// Tenant KEK rotation.
	v, err := h.internal.RotateTenantKEK(ctx, "acme")
	if err != nil || v != 2 {
		t.Fatalf("RotateTenantKEK = %d, %v; want version 2", v, err)
	}
	svc := h.reopen(keyring.Config{}) // cold: every unwrap goes through the KMS
	if got, err := svc.Decrypt(ctx, "acme", nil, before); err != nil || string(got) != "before rotation" {
		t.Errorf("Decrypt after root and KEK rotation = %q, %v", got, err)
	}
	got, err := svc.ResolvePlaintextDataKey(ctx, "acme", nil, dk.Handle)
	if err != nil || !bytes.Equal(got.Reveal(), dk.Plaintext.Reveal()) {
		t.Errorf("Resolve after rotation: %v", err)
	}
	dk2, err := svc.IssuePlaintextDataKey(ctx, "acme", nil)
	if err != nil {
		t.Fatal(err)
	}
	dk2.Plaintext.Destroy()
	_, bin, _ := envelope.ParseText(dk2.Handle)
	hd, _ := envelope.ParseHandle(bin)
	ck, err := h.store.CipherKey(ctx, "acme", hd.KeyID)
	if err != nil {
		t.Fatal(err)
	}
	if ck.KeyVersion != "2" {
		t.Errorf("new data key wrapped by KEK version %q, want 2", ck.KeyVersion)
	}
}

func TestDeleteTenantShredsItsKeys(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, keyring.Config{})
	h.tenant("acme")
	h.tenant("other")
	ct := h.encrypt("acme", nil, []byte("to be shredded"))
	otherCT := h.encrypt("other", nil, []byte("stays"))
	dk, err := h.svc.IssuePlaintextDataKey(ctx, "acme", nil)
	if err != nil {
		t.Fatal(err)
	}
	dk.Plaintext.Destroy()

	if err := h.svc.DeleteTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.DeleteTenant(ctx, "acme"); !errors.Is(err, keyring.ErrTenantNotFound) {
		t.Errorf("second DeleteTenant: err = %v, want ErrTenantNotFound", err)
	}
	if _, err := h.svc.Decrypt(ctx, "acme", nil, ct); !errors.Is(err, keyring.ErrTenantNotFound) {
		t.Errorf("Decrypt for the deleted tenant: err = %v, want ErrTenantNotFound", err)
	}
	// A fresh process cannot read it either, and no new tenant can take the
	// id (and with it the ciphertexts' binding).
	svc := h.reopen(keyring.Config{})
	if _, err := svc.CreateTenant(ctx, keyring.TenantSpec{ID: "acme", Name: "Reborn", Edition: keyring.EditionEnterprise}); !errors.Is(err, keyring.ErrTenantRetired) {
		t.Errorf("CreateTenant of the deleted id: err = %v, want ErrTenantRetired", err)
	}
	if _, err := svc.Decrypt(ctx, "acme", nil, ct); !errors.Is(err, keyring.ErrTenantNotFound) {
		t.Errorf("Decrypt in a fresh process: err = %v, want ErrTenantNotFound", err)
	}
	if _, err := svc.ResolvePlaintextDataKey(ctx, "acme", nil, dk.Handle); !errors.Is(err, keyring.ErrTenantNotFound) {
		t.Errorf("Resolve in a fresh process: err = %v, want ErrTenantNotFound", err)
	}
	if counts, err := h.store.CountCipherKeys(ctx, "acme"); err != nil || len(counts) != 0 {
		t.Errorf("deleted tenant has cipherkeys %v (%v), want none", counts, err)
	}
	if keks, err := h.store.KEKs(ctx, "acme"); err != nil || len(keks) != 0 {
		t.Errorf("deleted tenant still has %d KEKs (%v)", len(keks), err)
	}
	if _, err := svc.Decrypt(ctx, "other", nil, otherCT); err != nil {
		t.Errorf("other tenant's data after deleting acme: %v", err)
	}
}

// TestTenantStateRefusesDataPlane: a state set by another process (through
// the store) refuses the data plane once this process's copy of the tenant
// is stale, purges its cached keys, and lifts when the tenant is active
// again; destroyed never lifts.
func TestTenantStateRefusesDataPlane(t *testing.T) {
	ctx := context.Background()
	clock := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	h := newHarness(t, keyring.Config{TenantRefresh: time.Second, Now: clock.Now})
	tn := h.tenant("acme")
	ct := h.encrypt("acme", nil, []byte("x"))
	set := func(state keyring.TenantState) {
		t.Helper()
		if _, _, err := h.store.SetTenantState(ctx, "acme", tn.Provider, state, "test: "+state.String(), clock.Now()); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second) // the process's copy goes stale
	}
	for _, state := range []keyring.TenantState{keyring.StateKeyUnavailable, keyring.StateLocked, keyring.StateDestroyed} {
		t.Run(state.String(), func(t *testing.T) {
			set(state)
			var se *keyring.TenantStateError
			if _, err := h.svc.Decrypt(ctx, "acme", nil, ct); !errors.As(err, &se) || se.State != state || se.Reason != "test: "+state.String() || se.Since.IsZero() {
				t.Errorf("Decrypt: err = %v, want TenantStateError %s with its reason and time", err, state)
			}
			if _, err := h.svc.Encrypt(ctx, "acme", nil, []byte("y")); !errors.As(err, &se) {
				t.Errorf("Encrypt: err = %v, want TenantStateError", err)
			}
			if got := h.svc.CacheStats().Entries; got != 0 {
				t.Errorf("cached keys after the tenant became %s: %d, want 0", state, got)
			}
			if state == keyring.StateDestroyed {
				if _, _, err := h.store.SetTenantState(ctx, "acme", tn.Provider, keyring.StateActive, "", clock.Now()); !errors.Is(err, keyring.ErrConflict) {
					t.Errorf("leaving destroyed: err = %v, want ErrConflict", err)
				}
				return
			}
			set(keyring.StateActive)
			if _, err := h.svc.Decrypt(ctx, "acme", nil, ct); err != nil {
				t.Errorf("Decrypt once active again: %v", err)
			}
		})
	}
}

func TestTenantRules(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, keyring.Config{})
	yes := true
	business := keyring.EditionBusiness
	empty := ""
	tests := []struct {
		name string
		do   func() error
		want error
	}{
		{"bad id", func() error {
			_, err := h.svc.CreateTenant(ctx, keyring.TenantSpec{ID: "no spaces", Name: "x", Edition: keyring.EditionBusiness})
			return err
		}, &keyring.InputError{}},
		{"no edition", func() error {
			_, err := h.svc.CreateTenant(ctx, keyring.TenantSpec{Name: "x"})
			return err
		}, &keyring.InputError{}},
		{"hipaa on internal kms", func() error {
			_, err := h.svc.CreateTenant(ctx, keyring.TenantSpec{Name: "x", Edition: keyring.EditionEnterprise, HIPAA: true})
			return err
		}, keyring.ErrHIPAARequiresCMK},
		{"duplicate", func() error {
			_, err := h.svc.CreateTenant(ctx, keyring.TenantSpec{ID: "dup", Name: "x", Edition: keyring.EditionBusiness})
			if err != nil {
				return err
			}
			_, err = h.svc.CreateTenant(ctx, keyring.TenantSpec{ID: "dup", Name: "x", Edition: keyring.EditionBusiness})
			return err
		}, keyring.ErrTenantExists},
		{"flag hipaa on internal kms", func() error {
			_, err := h.svc.UpdateTenant(ctx, "dup", keyring.TenantUpdate{HIPAA: &yes})
			return err
		}, keyring.ErrHIPAARequiresCMK},
		{"empty name", func() error {
			_, err := h.svc.UpdateTenant(ctx, "dup", keyring.TenantUpdate{Name: &empty})
			return err
		}, &keyring.InputError{}},
		{"unknown tenant", func() error {
			_, err := h.svc.UpdateTenant(ctx, "nope", keyring.TenantUpdate{Edition: &business})
			return err
		}, keyring.ErrTenantNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			if ie, ok := tt.want.(*keyring.InputError); ok {
				if !errors.As(err, &ie) {
					t.Errorf("err = %v, want an InputError", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
	tn, err := h.svc.CreateTenant(ctx, keyring.TenantSpec{Name: "generated id", Edition: keyring.EditionEnterprise})
	if err != nil || keyring.ValidateTenantID(tn.ID) != nil {
		t.Errorf("generated tenant id %q: %v", tn.ID, err)
	}
}

// countingStore counts every store call, to show the warm path makes none.
type countingStore struct {
	store
	mu    sync.Mutex
	calls int
}

func (c *countingStore) count() {
	c.mu.Lock()
	c.calls++
	c.mu.Unlock()
}

func (c *countingStore) Tenant(ctx context.Context, id string) (keyring.Tenant, error) {
	c.count()
	return c.store.Tenant(ctx, id)
}

func (c *countingStore) CipherKey(ctx context.Context, tenantID string, id envelope.KeyID) (keyring.CipherKey, error) {
	c.count()
	return c.store.CipherKey(ctx, tenantID, id)
}

func (c *countingStore) ActiveCipherKey(ctx context.Context, tenantID string) (keyring.CipherKey, error) {
	c.count()
	return c.store.ActiveCipherKey(ctx, tenantID)
}

func (c *countingStore) ReserveUses(ctx context.Context, tenantID string, id envelope.KeyID, n, max int64) (int64, error) {
	c.count()
	return c.store.ReserveUses(ctx, tenantID, id, n, max)
}

func (c *countingStore) KEKs(ctx context.Context, tenantID string) ([]internalkms.KEK, error) {
	c.count()
	return c.store.KEKs(ctx, tenantID)
}

func TestWarmPathMakesNoStoreCalls(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "tenantcrypt.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cs := &countingStore{store: st}
	h := newHarnessOn(t, dir, cs, keyring.Config{TenantRefresh: time.Hour})
	h.tenant("acme")
	ct := h.encrypt("acme", nil, []byte("warm up"))
	if _, err := h.svc.Decrypt(ctx, "acme", nil, ct); err != nil {
		t.Fatal(err)
	}
	cs.mu.Lock()
	cs.calls = 0
	cs.mu.Unlock()
	for range 1000 {
		ct := h.encrypt("acme", nil, []byte("hot"))
		if _, err := h.svc.Decrypt(ctx, "acme", nil, ct); err != nil {
			t.Fatal(err)
		}
	}
	if cs.calls != 0 {
		t.Errorf("store calls on the warm path = %d, want 0", cs.calls)
	}
}

func TestNoKeyMaterialInLogs(t *testing.T) {
	ctx := context.Background()
	var logs bytes.Buffer
	h := newHarness(t, keyring.Config{Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	h.tenant("acme")
	dk, err := h.svc.IssuePlaintextDataKey(ctx, "acme", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dk.Plaintext.Destroy()
	h.encrypt("acme", nil, []byte("x"))
	if err := h.svc.DeleteTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	key := dk.Plaintext.Reveal()
	for _, form := range []string{fmt.Sprintf("%x", key), fmt.Sprintf("%X", key), string(key)} {
		if bytes.Contains(logs.Bytes(), []byte(form)) {
			t.Fatalf("the logs contain a plaintext data key")
		}
	}
	if logs.Len() == 0 {
		t.Errorf("nothing was logged: the test would not see a leak")
	}
	for _, s := range []string{fmt.Sprint(dk), fmt.Sprintf("%+v", dk), fmt.Sprintf("%#v", dk)} {
		if bytes.Contains([]byte(s), []byte(fmt.Sprintf("%x", key))) || bytes.Contains([]byte(s), key) {
			t.Errorf("formatting an IssuedDataKey shows its key: %s", s)
		}
	}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
