//go:build cgo

package pkcs11

import (
	"testing"

	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// BenchmarkOpenKEK is the cost of one KEK unwrap, the only root key
// operation on a data-plane request (on a KEK cache miss: after a start,
// a cache expiry, or for a tenant not used for a while), with the key in
// memory and in SoftHSM2:
//
//	go test -run '^$' -bench OpenKEK ./internal/kms/internalkms/pkcs11
func BenchmarkOpenKEK(b *testing.B) {
	ad := []byte("tenant bench")
	kek, _ := secret.Random(32)
	bench := func(b *testing.B, r internalkms.Root) {
		sealed, err := r.Seal(b.Context(), 1, kek, ad)
		if err != nil {
			b.Fatal(err)
		}
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				k, err := r.Open(b.Context(), 1, sealed, ad)
				if err != nil {
					b.Error(err)
					return
				}
				k.Destroy()
			}
		})
	}
	b.Run("root=file", func(b *testing.B) {
		r, err := internalkms.ParseRootKeys("1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
		if err != nil {
			b.Fatal(err)
		}
		defer r.Destroy()
		bench(b, r)
	})
	cfg := softHSM(b)
	h, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	if err := h.CreateVersion(b.Context(), 1); err != nil {
		b.Fatal(err)
	}
	b.Run("root=hsm", func(b *testing.B) { bench(b, h) })
}
