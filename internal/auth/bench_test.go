package auth

import (
	"context"
	"testing"
	"time"
)

// newBenchVerifier uses the real clock, as the server does.
func newBenchVerifier(b *testing.B, keys KeySource, cacheSize int) *Verifier {
	v, err := NewVerifier(VerifierConfig{Issuer: testIssuer, Keys: keys, CacheSize: cacheSize})
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// BenchmarkVerifyCached is the hot path: a token seen before.
func BenchmarkVerifyCached(b *testing.B) {
	es := testKeys()["es256"]
	v := newBenchVerifier(b, mustStatic(b, es.public()), DefaultCacheSize)
	token := sign(b, es, claimsAt(time.Now()), nil)
	ctx := context.Background()
	if _, err := v.Verify(ctx, token); err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ctx, token); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := v.Verify(ctx, token); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkVerifyUncached is a full check: parse, key lookup, signature,
// claims.
func BenchmarkVerifyUncached(b *testing.B) {
	for _, name := range []string{"es256", "eddsa", "rs256"} {
		b.Run(name, func(b *testing.B) {
			key := testKeys()[name]
			v := newBenchVerifier(b, mustStatic(b, key.public()), -1)
			token := sign(b, key, claimsAt(time.Now()), nil)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, token); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
