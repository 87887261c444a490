package envelope

import (
	"bytes"
	"crypto/cipher"
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
