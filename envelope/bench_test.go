package envelope

import (
	"crypto/rand"
	"testing"
)

// The Seal/Open benchmarks sit beside raw AES-256-GCM on the same key and
// payload so that the format's overhead (associated data, allocations,
// the Ciphertext) shows as the difference. The raw baseline draws a random
// nonce too, as any correct use must, and reuses its output buffer.

const benchSize = 1 << 10

var benchContext = Context{"purpose": "secret", "record": "42"}

func BenchmarkSeal1KiB(b *testing.B) {
	aead := mustAEAD(b, testKey)
	pt := make([]byte, benchSize)
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Seal(aead, "acme", testKeyID, benchContext, pt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSeal1KiBNoContext(b *testing.B) {
	aead := mustAEAD(b, testKey)
	pt := make([]byte, benchSize)
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Seal(aead, "acme", testKeyID, nil, pt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen1KiB(b *testing.B) {
	aead := mustAEAD(b, testKey)
	c, err := Seal(aead, "acme", testKeyID, benchContext, make([]byte, benchSize))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Open(aead, "acme", c, benchContext); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawGCMSeal1KiB(b *testing.B) {
	aead := mustFixedNonceAEAD(b, testKey)
	pt := make([]byte, benchSize)
	out := make([]byte, 0, benchSize+TagSize)
	var nonce [NonceSize]byte
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		rand.Read(nonce[:])
		out = aead.Seal(out[:0], nonce[:], pt, nil)
	}
}

func BenchmarkRawGCMOpen1KiB(b *testing.B) {
	aead := mustFixedNonceAEAD(b, testKey)
	var nonce [NonceSize]byte
	sealed := aead.Seal(nil, nonce[:], make([]byte, benchSize), nil)
	out := make([]byte, 0, benchSize)
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if out, err = aead.Open(out[:0], nonce[:], sealed, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseText(b *testing.B) {
	aead := mustAEAD(b, testKey)
	c, err := Seal(aead, "acme", testKeyID, nil, make([]byte, benchSize))
	if err != nil {
		b.Fatal(err)
	}
	bin, err := c.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	s, err := FormatText(InternalPrefix("acme"), bin)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(s)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseText(s); err != nil {
			b.Fatal(err)
		}
	}
}
