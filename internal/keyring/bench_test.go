package keyring_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/fips140"
	"crypto/rand"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
)

// The keyring's warm path beside raw AES-256-GCM in the same run:
//
//	go test -run '^$' -bench . -benchmem ./internal/keyring
//
// The ratio of the two is what docs/PERFORMANCE.md records.

var sizes = []struct {
	name string
	n    int
}{{"1KiB", 1 << 10}, {"1MiB", 1 << 20}}

func BenchmarkRawGCMSeal(b *testing.B) {
	key := make([]byte, 32)
	rand.Read(key)
	block, _ := aes.NewCipher(key)
	var aead cipher.AEAD
	// The baseline is plain GCM, built without enforcement under
	// GODEBUG=fips140=only (where the keyring uses the random-nonce one).
	fips140.WithoutEnforcement(func() { aead, _ = cipher.NewGCM(block) })
	nonce := make([]byte, aead.NonceSize())
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) {
			pt := make([]byte, sz.n)
			out := make([]byte, 0, sz.n+aead.Overhead())
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				rand.Read(nonce)
				out = aead.Seal(out[:0], nonce, pt, nil)
			}
		})
	}
}

func BenchmarkRawGCMOpen(b *testing.B) {
	key := make([]byte, 32)
	rand.Read(key)
	block, _ := aes.NewCipher(key)
	var aead cipher.AEAD
	// The baseline is plain GCM, built without enforcement under
	// GODEBUG=fips140=only (where the keyring uses the random-nonce one).
	fips140.WithoutEnforcement(func() { aead, _ = cipher.NewGCM(block) })
	nonce := make([]byte, aead.NonceSize())
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) {
			ct := aead.Seal(nil, nonce, make([]byte, sz.n), nil)
			out := make([]byte, 0, sz.n)
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				var err error
				if out, err = aead.Open(out[:0], nonce, ct, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchHarness(b *testing.B) *keyring.Service {
	h := newHarness(b, keyring.Config{TenantRefresh: time.Hour})
	h.tenant("acme")
	return h.svc
}

func BenchmarkKeyringEncrypt(b *testing.B) {
	svc := benchHarness(b)
	ctx := context.Background()
	ectx := envelope.Context{"app": "bench"}
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) {
			pt := make([]byte, sz.n)
			if _, err := svc.Encrypt(ctx, "acme", ectx, pt); err != nil { // warm the cache
				b.Fatal(err)
			}
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				if _, err := svc.Encrypt(ctx, "acme", ectx, pt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkKeyringDecrypt(b *testing.B) {
	svc := benchHarness(b)
	ctx := context.Background()
	ectx := envelope.Context{"app": "bench"}
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) {
			ct, err := svc.Encrypt(ctx, "acme", ectx, make([]byte, sz.n))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := svc.Decrypt(ctx, "acme", ectx, ct); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				if _, err := svc.Decrypt(ctx, "acme", ectx, ct); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
