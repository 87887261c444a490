//go:build cgo

package pkcs11

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"

	p11 "github.com/miekg/pkcs11"

	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

func openHSM(t *testing.T, cfg Config) *HSM {
	t.Helper()
	h, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(h.Close)
	return h
}

func TestCreateVersionAttributes(t *testing.T) {
	t.Parallel()
	cfg := softHSM(t)
	h := openHSM(t, cfg)
	ctx := t.Context()
	if err := h.CreateVersion(ctx, 1); err != nil {
		t.Fatalf("CreateVersion(1): %v", err)
	}
	if err := h.CreateVersion(ctx, 1); !errors.Is(err, internalkms.ErrRootVersionExists) {
		t.Fatalf("CreateVersion(1) again = %v, want ErrRootVersionExists", err)
	}
	if err := h.CreateVersion(ctx, 7); err != nil {
		t.Fatalf("CreateVersion(7): %v", err)
	}
	a, err := h.KeyAttributes(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := Attributes{KeyType: p11.CKK_AES, Length: 32, Sensitive: true, Extractable: false, AlwaysSensitive: true, NeverExtractable: true}
	if a != want {
		t.Errorf("attributes of version 1 = %+v, want %+v", a, want)
	}
	vs, err := h.ListVersions(ctx)
	if err != nil || fmt.Sprint(vs) != "[1 7]" {
		t.Errorf("ListVersions = %v, %v; want [1 7]", vs, err)
	}

	// From outside, as an operator checks it: OpenSC's pkcs11-tool.
	tool, err := exec.LookPath("pkcs11-tool")
	if err != nil {
		t.Skip("pkcs11-tool is not installed (apt-get install opensc); checked the attributes through the API only")
	}
	out, err := exec.Command(tool, "--module", cfg.Module, "--token-label", cfg.Token, "--login", "--pin", cfg.PIN,
		"--list-objects", "--type", "secrkey", "--label", cfg.KeyLabel).CombinedOutput()
	if err != nil {
		t.Fatalf("pkcs11-tool --list-objects: %v\n%s", err, out)
	}
	// The token is shared with other tests: keep this test's objects.
	var blocks []string
	for _, b := range strings.Split(string(out), "Secret Key Object;")[1:] {
		if strings.Contains(b, "label:      "+cfg.KeyLabel+"\n") {
			blocks = append(blocks, b)
		}
	}
	if len(blocks) != 2 {
		t.Fatalf("pkcs11-tool lists %d objects labelled %s, want 2:\n%s", len(blocks), cfg.KeyLabel, out)
	}
	text := strings.Join(blocks, "")
	for _, want := range []string{" AES length 32", "ID:         00000001", "ID:         00000007",
		"Usage:      encrypt, decrypt", "sensitive", "always sensitive", "never extractable", "local"} {
		if !strings.Contains(text, want) {
			t.Errorf("pkcs11-tool does not show %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "Access:     extractable") || strings.Contains(text, ", extractable") {
		t.Errorf("pkcs11-tool shows an extractable key:\n%s", text)
	}
	// The key's value cannot be read out.
	out, err = exec.Command(tool, "--module", cfg.Module, "--token-label", cfg.Token, "--login", "--pin", cfg.PIN,
		"--read-object", "--type", "secrkey", "--label", cfg.KeyLabel, "--id", "00000001").CombinedOutput()
	if err == nil {
		t.Errorf("pkcs11-tool read the root key's value:\n%x", out)
	}
}

func TestSealOpen(t *testing.T) {
	t.Parallel()
	h := openHSM(t, softHSM(t))
	ctx := t.Context()
	for _, v := range []uint32{1, 2} {
		if err := h.CreateVersion(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.SetCurrent(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if h.Current() != 1 {
		t.Fatalf("Current = %d, want 1", h.Current())
	}
	kek := secret.New(bytes.Repeat([]byte{0x42}, 32))
	ad := []byte("tenant acme")
	sealed, err := h.Seal(ctx, 1, kek, ad)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	if len(sealed) != 12+32+16 {
		t.Fatalf("sealed is %d bytes, want 60 (IV, ciphertext, tag)", len(sealed))
	}
	if bytes.Contains(sealed, kek.Reveal()[:8]) {
		t.Fatalf("sealed contains the plaintext")
	}
	again, err := h.Seal(ctx, 1, kek, ad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(sealed[:12], again[:12]) {
		t.Errorf("two seals used the same IV")
	}
	got, err := h.Open(ctx, 1, sealed, ad)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !bytes.Equal(got.Reveal(), kek.Reveal()) {
		t.Fatalf("Open returned other bytes")
	}
	flipped := bytes.Clone(sealed)
	flipped[20] ^= 1
	for _, c := range []struct {
		name   string
		v      uint32
		sealed []byte
		ad     []byte
		want   error
	}{
		{"another tenant's associated data", 1, sealed, []byte("tenant evil"), internalkms.ErrSealedKEK},
		{"no associated data", 1, sealed, nil, internalkms.ErrSealedKEK},
		{"a flipped bit", 1, flipped, ad, internalkms.ErrSealedKEK},
		{"truncated", 1, sealed[:20], ad, internalkms.ErrSealedKEK},
		{"another version", 2, sealed, ad, internalkms.ErrSealedKEK},
		{"a missing version", 3, sealed, ad, internalkms.ErrRootVersionMissing},
	} {
		t.Run(c.name, func(t *testing.T) {
			pt, err := h.Open(ctx, c.v, c.sealed, c.ad)
			if !errors.Is(err, c.want) {
				t.Fatalf("Open = %v, %v; want %v", pt, err, c.want)
			}
		})
	}
	if _, err := h.Seal(ctx, 3, kek, ad); !errors.Is(err, internalkms.ErrRootVersionMissing) {
		t.Errorf("Seal(missing version) = %v, want ErrRootVersionMissing", err)
	}
	if err := h.SetCurrent(ctx, 3); !errors.Is(err, internalkms.ErrRootVersionMissing) {
		t.Errorf("SetCurrent(missing version) = %v, want ErrRootVersionMissing", err)
	}
	// Printing the HSM shows no PIN.
	if s := fmt.Sprintf("%v %+v %#v %s", h, h, h, h); strings.Contains(s, testPIN) {
		t.Errorf("printing the HSM shows the PIN: %s", s)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	// A token of its own: a login lasts for the whole process, so another
	// test logged in to the shared token would let a wrong PIN pass.
	cfg := softHSM(t)
	cfg.Token = pinTestToken
	wrong := cfg
	wrong.PIN = "9999"
	if _, err := Open(wrong); !errors.Is(err, ErrWrongPIN) || strings.Contains(err.Error(), "9999") {
		t.Errorf("Open(wrong PIN) = %v, want ErrWrongPIN without the PIN", err)
	}
	missing := cfg
	missing.Token = "no-such-token"
	if _, err := Open(missing); !errors.Is(err, ErrTokenNotFound) {
		t.Errorf("Open(unknown token) = %v, want ErrTokenNotFound", err)
	}
	bad := cfg
	bad.Module = "/nonexistent/libpkcs11.so"
	if _, err := Open(bad); !errors.Is(err, ErrModule) {
		t.Errorf("Open(missing module) = %v, want ErrModule", err)
	}
	// The right PIN still works after the refusals.
	openHSM(t, cfg)
}

// TestRefusesExtractableKey: an object with the key label that someone
// made extractable is never used as a root key.
func TestRefusesExtractableKey(t *testing.T) {
	t.Parallel()
	cfg := softHSM(t)
	h := openHSM(t, cfg)
	err := h.withSession(t.Context(), func(s p11.SessionHandle) error {
		h.mod.create.Lock() // as CreateVersion does
		defer h.mod.create.Unlock()
		_, err := h.mod.ctx.GenerateKey(s, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_KEY_GEN, nil)}, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
			p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_AES),
			p11.NewAttribute(p11.CKA_VALUE_LEN, 32),
			p11.NewAttribute(p11.CKA_TOKEN, true),
			p11.NewAttribute(p11.CKA_SENSITIVE, false),
			p11.NewAttribute(p11.CKA_EXTRACTABLE, true),
			p11.NewAttribute(p11.CKA_ENCRYPT, true),
			p11.NewAttribute(p11.CKA_DECRYPT, true),
			p11.NewAttribute(p11.CKA_LABEL, cfg.KeyLabel),
			p11.NewAttribute(p11.CKA_ID, idBytes(1)),
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.SetCurrent(t.Context(), 1); err == nil || !strings.Contains(err.Error(), "not a sensitive, non-extractable AES-256 key") {
		t.Fatalf("SetCurrent(extractable key) = %v, want a refusal", err)
	}
}

// TestConcurrent: more goroutines than sessions seal and open at once
// (run with -race); the pool hands each call a session of its own.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	cfg := softHSM(t)
	cfg.Sessions = 3
	h := openHSM(t, cfg)
	ctx := t.Context()
	if err := h.CreateVersion(ctx, 1); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 20 {
				kek, _ := secret.Random(32)
				ad := fmt.Appendf(nil, "tenant-%d-%d", g, i)
				sealed, err := h.Seal(ctx, 1, kek, ad)
				if err != nil {
					t.Errorf("Seal: %v", err)
					return
				}
				got, err := h.Open(ctx, 1, sealed, ad)
				if err != nil || !bytes.Equal(got.Reveal(), kek.Reveal()) {
					t.Errorf("Open: %v", err)
					return
				}
				if _, err := h.Open(ctx, 1, sealed, append(ad, 'x')); !errors.Is(err, internalkms.ErrSealedKEK) {
					t.Errorf("Open(wrong AD) = %v, want ErrSealedKEK", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := len(h.pool); n != 3 {
		t.Errorf("%d sessions back in the pool, want 3", n)
	}
}
