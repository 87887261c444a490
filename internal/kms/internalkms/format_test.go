package internalkms

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

// A known-answer vector for both sealed formats, computed independently of
// this package with crypto/cipher and fixed nonces (root key 01..20, KEK
// 40..5f, data key 80..9f, KEK nonce a0..ab, data key nonce b0..bb), with the
// associated data spelled out byte by byte as the format comment in
// format.go documents it. If this test breaks, stored KEKs and blobs no
// longer open: change the format version instead.
const (
	katTenant = "tenant-kat"
	katRoot   = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"
	katKEKRow = "01a0a1a2a3a4a5a6a7a8a9aaabf9907f25b9f01c433747e820bdc86ecb0786e24a0c3d36d37f028fa60e13866a3fdef68ca9a87b01a8d8a625463b2246"
	katBlob   = "0100000001b0b1b2b3b4b5b6b7b8b9babb8381020645cf6d1eb367ad73617bc2442e9916bbd08040086b5ffaa0152d6c0f545b57cbb045684a667cd0cf148dce9e"
	katDK     = "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
)

func katBinding() kms.Binding {
	return kms.Binding{kms.BindingTenant: katTenant, kms.BindingKeyID: "dk-1"}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// katService returns a Service whose store holds the vector's KEK row.
func katService(t testing.TB) *Service {
	t.Helper()
	roots, err := ParseRootKeys("1:" + base64.StdEncoding.EncodeToString(mustHex(t, katRoot)))
	if err != nil {
		t.Fatal(err)
	}
	store := newMemStore()
	if err := store.InsertKEK(t.Context(), KEK{TenantID: katTenant, Version: 1, RootVersion: 1, Wrapped: mustHex(t, katKEKRow)}); err != nil {
		t.Fatal(err)
	}
	return New(roots, store)
}

func TestKnownAnswer(t *testing.T) {
	s := katService(t)
	w := kms.Wrapped{KeyVersion: "1", Blob: mustHex(t, katBlob)}
	mustUnwrap(t, s, katTenant, w, mustHex(t, katDK))

	// And the other way: what this package seals, the vector's layout opens.
	_, w2 := wrapOne(t, s, katTenant)
	if len(w2.Blob) != len(w.Blob) || !bytes.Equal(w2.Blob[:blobHeaderSize], w.Blob[:blobHeaderSize]) {
		t.Errorf("new blob header %x, want %x and %d bytes", w2.Blob[:blobHeaderSize], w.Blob[:blobHeaderSize], len(w.Blob))
	}
}

// requireSeeds fails a fuzz test whose checked-in corpus went missing, which
// would otherwise silently reduce it to the f.Add seeds.
func requireSeeds(f *testing.F) {
	f.Helper()
	entries, err := os.ReadDir(filepath.Join("testdata", "fuzz", f.Name()))
	if err != nil || len(entries) == 0 {
		f.Fatalf("seed corpus testdata/fuzz/%s is missing or empty (%v)", f.Name(), err)
	}
}

func FuzzUnwrap(f *testing.F) {
	requireSeeds(f)
	s := katService(f)
	valid := mustHex(f, katBlob)
	want := mustHex(f, katDK)
	f.Add(valid)
	p := s.ForTenant(katTenant)
	f.Fuzz(func(t *testing.T, blob []byte) {
		got, err := p.Unwrap(t.Context(), kms.Wrapped{Blob: blob}, katBinding())
		if err == nil {
			defer got.Destroy()
			if !bytes.Equal(blob, valid) || !bytes.Equal(got.Reveal(), want) {
				t.Fatalf("Unwrap accepted a blob other than the vector's: %x", blob)
			}
			return
		}
		if got != nil {
			t.Fatal("Unwrap returned a key with an error")
		}
		if !errors.Is(err, kms.ErrInvalidCiphertext) {
			t.Fatalf("Unwrap(%x) = %v, want ErrInvalidCiphertext", blob, err)
		}
		if v, _, ok := parseBlob(blob); ok && (len(blob) != blobSize || v == 0) {
			t.Fatalf("parseBlob accepted %x", blob)
		}
	})
}

func FuzzParseRootKeys(f *testing.F) {
	requireSeeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRootKeys(s)
		if err != nil {
			if r != nil {
				t.Fatal("ParseRootKeys returned keys with an error")
			}
			// Errors name entries, never their keys: the same input with
			// every key's characters substituted fails with the same text.
			// (Looking for the key text in the error instead would flag a
			// key that happens to spell part of a version number.)
			// An all-zero key is the one refusal that rightly depends on
			// the key's content.
			if _, err2 := ParseRootKeys(substituteKeys(s)); !sameRefusal(err, err2) {
				t.Fatalf("error depends on key text: %q, and with keys substituted %v", err, err2)
			}
			return
		}
		defer r.Destroy()
		vs := r.Versions()
		if len(vs) == 0 || r.Current() != vs[len(vs)-1] {
			t.Fatalf("Current() = %d, want the highest of %v", r.Current(), vs)
		}
		for _, v := range vs {
			if v == 0 || r.key(v).Len() != keySize {
				t.Fatalf("version %d accepted with a %d-byte key", v, r.key(v).Len())
			}
		}
	})
}

func FuzzRootKeyFile(f *testing.F) {
	requireSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		kf, err := parseKeyFile(data)
		if err != nil {
			return
		}
		r, err := kf.rootKeys()
		if err != nil {
			return
		}
		defer r.Destroy()
		if r.key(r.Current()) == nil {
			t.Fatalf("current version %d accepted without a key", r.Current())
		}
	})
}

// substituteKeys rotates the base64 characters of every key in a root-keys
// value (the text after each entry's first colon) by one place in the
// alphabet. Lengths, offsets of invalid characters and decoded sizes are
// unchanged, so any difference in ParseRootKeys's error is the key's text.
func substituteKeys(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	entries := strings.Split(s, ",")
	for i, entry := range entries {
		version, key, ok := strings.Cut(entry, ":")
		if !ok {
			continue
		}
		rotated := []byte(key)
		for j, c := range rotated {
			if k := strings.IndexByte(alphabet, c); k >= 0 {
				rotated[j] = alphabet[(k+1)%len(alphabet)]
			}
		}
		entries[i] = version + ":" + string(rotated)
	}
	return strings.Join(entries, ",")
}

func sameRefusal(err, err2 error) bool {
	zeros := func(err error) bool { return err != nil && strings.Contains(err.Error(), "all zeros") }
	if zeros(err) || zeros(err2) {
		return true
	}
	return err2 != nil && err2.Error() == err.Error()
}
