package envelope

import (
	"bytes"
	"crypto/cipher"
	"crypto/fips140"
	"encoding/hex"
	"errors"
	"flag"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json and the fuzz seed corpora")

// testKey is a fixed data key: tests must be reproducible, and none of
// them relies on the key being secret.
var testKey = bytes.Repeat([]byte{0x42}, KeySize)

var testKeyID = KeyID{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}

var testNonce = [NonceSize]byte{0: 0xa0, 5: 0x5a, 11: 0x0b}

func mustAEAD(t testing.TB, key []byte) cipher.AEAD {
	t.Helper()
	aead, err := NewAEAD(key)
	if err != nil {
		t.Fatalf("NewAEAD: %v", err)
	}
	return aead
}

// mustFixedNonceAEAD is plain GCM, which takes the caller's nonce: only
// for known-answer vectors, which need a fixed one. Under
// GODEBUG=fips140=only it is built without enforcement, as the module
// refuses it otherwise.
func mustFixedNonceAEAD(t testing.TB, key []byte) cipher.AEAD {
	t.Helper()
	var aead cipher.AEAD
	var err error
	fips140.WithoutEnforcement(func() { aead, err = newAEAD(key, false) })
	if err != nil {
		t.Fatalf("newAEAD: %v", err)
	}
	return aead
}

// bothAEADs are NewAEAD's two constructions for key, by name: plain GCM
// (the default) and the random-nonce one (FIPS 140-3 mode). Under
// GODEBUG=fips140=only only the random-nonce one is returned, since the
// module refuses the other.
func bothAEADs(t testing.TB, key []byte) map[string]cipher.AEAD {
	t.Helper()
	m := map[string]cipher.AEAD{}
	for name, random := range map[string]bool{"GCM": false, "GCMWithRandomNonce": true} {
		aead, err := newAEAD(key, random)
		if err != nil {
			if !random && fips140.Enforced() {
				continue
			}
			t.Fatalf("newAEAD(%s): %v", name, err)
		}
		m[name] = aead
	}
	return m
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("hex %q: %v", s, err)
	}
	return b
}

// checkMalformed fails unless err wraps ErrMalformed and, when input is
// long enough to tell, does not repeat it.
func checkMalformed(t testing.TB, err error, input string) {
	t.Helper()
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("got error %v, want one wrapping ErrMalformed", err)
	}
	if len(input) >= 16 && strings.Contains(err.Error(), input) {
		t.Fatalf("error %q repeats the input", err)
	}
}

// ctxOfSize returns a valid context of n pairs.
func ctxOfSize(n int) Context {
	c := make(Context, n)
	for i := range n {
		c[string(rune('a'+i%26))+strings.Repeat("k", i/26+1)+string(rune('0'+i%10))] = "v"
	}
	return c
}
