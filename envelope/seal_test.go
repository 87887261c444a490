package envelope

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/fips140"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestNewAEAD(t *testing.T) {
	for _, n := range []int{0, 16, 24, KeySize - 1, KeySize, KeySize + 1, 64} {
		key := bytes.Repeat([]byte{0x5c}, n)
		aead, err := NewAEAD(key)
		if got, want := err == nil, n == KeySize; got != want {
			t.Fatalf("%d-byte key: got ok %v, want %v (err %v)", n, got, want, err)
		}
		if err != nil {
			// The whole message is fixed text and a length: no key bytes.
			if got, want := err.Error(), fmt.Sprintf("envelope: data key is %d bytes, want 32", n); got != want {
				t.Errorf("got error %q, want %q", got, want)
			}
			continue
		}
		// In FIPS 140-3 mode, the random-nonce construction: it
		// draws the nonce and writes it before the sealed bytes.
		wantNonce, wantOverhead := NonceSize, TagSize
		if fips140.Enabled() {
			wantNonce, wantOverhead = 0, NonceSize+TagSize
		}
		if got, want := aead.NonceSize(), wantNonce; got != want {
			t.Errorf("NonceSize = %d, want %d", got, want)
		}
		if got, want := aead.Overhead(), wantOverhead; got != want {
			t.Errorf("Overhead = %d, want %d", got, want)
		}
	}
}

// TestConstructionsInterop: what either construction of NewAEAD seals,
// the other opens, so FIPS 140-3 mode needs no new format version, and a
// fixed-nonce seal is refused by the random-nonce construction.
func TestConstructionsInterop(t *testing.T) {
	aeads := bothAEADs(t, testKey)
	ctx := Context{"purpose": "secret"}
	for sealer, sa := range aeads {
		for opener, oa := range aeads {
			c, err := Seal(sa, "acme", testKeyID, ctx, []byte("hello"))
			if err != nil {
				t.Fatalf("Seal with %s: %v", sealer, err)
			}
			if got, want := len(c.Sealed), len("hello")+TagSize; got != want {
				t.Fatalf("%s: len(Sealed) = %d, want %d", sealer, got, want)
			}
			pt, err := Open(oa, "acme", c, ctx)
			if err != nil || string(pt) != "hello" {
				t.Errorf("sealed with %s, opened with %s: %q, %v", sealer, opener, pt, err)
			}
			c.Sealed[0] ^= 1
			if _, err := Open(oa, "acme", c, ctx); err != ErrDecrypt {
				t.Errorf("sealed with %s, altered, opened with %s: got %v, want ErrDecrypt", sealer, opener, err)
			}
		}
	}
	if _, err := sealWithNonce(aeads["GCMWithRandomNonce"], "acme", testKeyID, nil, testNonce, nil); err != errFixedNonce {
		t.Errorf("sealWithNonce with the random-nonce construction: got %v, want errFixedNonce", err)
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	for name, aead := range bothAEADs(t, testKey) {
		t.Run(name, func(t *testing.T) { testSealOpenRoundTrip(t, aead) })
	}
}

func testSealOpenRoundTrip(t *testing.T, aead cipher.AEAD) {
	tests := []struct {
		name      string
		tenant    string
		ctx       Context
		plaintext []byte
	}{
		{"empty plaintext, nil context", "acme", nil, nil},
		{"empty context", "acme", Context{}, []byte("x")},
		{"context", "acme", Context{"purpose": "secret", "record": "42"}, []byte("hello, world")},
		{"largest context", "acme", ctxOfSize(MaxContextPairs), []byte("hello, world")},
		{"longest tenant", strings.Repeat("t", MaxTenantIDSize), nil, bytes.Repeat([]byte{7}, 1000)},
		{"largest plaintext", "acme", Context{"k": "v"}, make([]byte, MaxPlaintextSize)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Seal(aead, tt.tenant, testKeyID, tt.ctx, tt.plaintext)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if got, want := len(c.Sealed), len(tt.plaintext)+TagSize; got != want {
				t.Fatalf("len(Sealed) = %d, want %d", got, want)
			}
			b, err := c.MarshalBinary()
			if err != nil {
				t.Fatalf("MarshalBinary: %v", err)
			}
			parsed, err := ParseCiphertext(b)
			if err != nil {
				t.Fatalf("ParseCiphertext: %v", err)
			}
			if parsed.KeyID != testKeyID {
				t.Errorf("KeyID = %v, want %v", parsed.KeyID, testKeyID)
			}
			orig := bytes.Clone(b)
			got, err := Open(aead, tt.tenant, parsed, tt.ctx)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, tt.plaintext) {
				t.Error("Open(Seal(p)) != p")
			}
			if !bytes.Equal(b, orig) {
				t.Error("Open modified the parsed ciphertext's bytes")
			}
		})
	}
}

func TestSealFreshNonces(t *testing.T) {
	aead := mustAEAD(t, testKey)
	seen := map[[NonceSize]byte]bool{}
	for range 1000 {
		c, err := Seal(aead, "acme", testKeyID, nil, []byte("same"))
		if err != nil {
			t.Fatal(err)
		}
		if seen[c.Nonce] {
			t.Fatalf("nonce %x repeated", c.Nonce)
		}
		seen[c.Nonce] = true
	}
}

func TestOpenMismatch(t *testing.T) {
	aead := mustAEAD(t, testKey)
	ctx := Context{"purpose": "secret", "record": "42"}
	c, err := Seal(aead, "acme", testKeyID, ctx, []byte("hello, world"))
	if err != nil {
		t.Fatal(err)
	}
	otherID := testKeyID
	otherID[15] ^= 1
	tests := []struct {
		name   string
		aead   cipher.AEAD
		tenant string
		c      *Ciphertext
		ctx    Context
	}{
		{"other key", mustAEAD(t, bytes.Repeat([]byte{0x43}, KeySize)), "acme", c, ctx},
		{"other tenant", aead, "acmf", c, ctx},
		{"tenant prefix", aead, "acm", c, ctx},
		{"other key id", aead, "acme", &Ciphertext{KeyID: otherID, Nonce: c.Nonce, Sealed: c.Sealed}, ctx},
		{"other nonce", aead, "acme", &Ciphertext{KeyID: c.KeyID, Nonce: [NonceSize]byte{}, Sealed: c.Sealed}, ctx},
		{"no context", aead, "acme", c, nil},
		{"context value", aead, "acme", c, Context{"purpose": "secret", "record": "43"}},
		{"context key", aead, "acme", c, Context{"purpose": "secret", "Record": "42"}},
		{"extra pair", aead, "acme", c, Context{"purpose": "secret", "record": "42", "x": ""}},
		{"missing pair", aead, "acme", c, Context{"purpose": "secret"}},
		{"truncated tag", aead, "acme", &Ciphertext{KeyID: c.KeyID, Nonce: c.Nonce, Sealed: c.Sealed[:len(c.Sealed)-1]}, ctx},
		{"tag only", aead, "acme", &Ciphertext{KeyID: c.KeyID, Nonce: c.Nonce, Sealed: c.Sealed[len(c.Sealed)-TagSize:]}, ctx},
		{"shorter than tag", aead, "acme", &Ciphertext{KeyID: c.KeyID, Nonce: c.Nonce, Sealed: c.Sealed[:TagSize-1]}, ctx},
		{"nil sealed", aead, "acme", &Ciphertext{KeyID: c.KeyID, Nonce: c.Nonce}, ctx},
		{"nil ciphertext", aead, "acme", nil, ctx},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt, err := Open(tt.aead, tt.tenant, tt.c, tt.ctx)
			if err != ErrDecrypt { // identity, not errors.Is: nothing may be wrapped
				t.Fatalf("got error %v, want ErrDecrypt", err)
			}
			if pt != nil {
				t.Errorf("got plaintext %q with the error, want nil", pt)
			}
		})
	}
}

// TestFlipEveryBit is the format's central promise: no single-bit change
// to a stored ciphertext goes unnoticed.
func TestFlipEveryBit(t *testing.T) {
	for name, aead := range bothAEADs(t, testKey) {
		t.Run(name, func(t *testing.T) { testFlipEveryBit(t, aead) })
	}
}

func testFlipEveryBit(t *testing.T, aead cipher.AEAD) {
	ctx := Context{"a": "b"}
	c, err := Seal(aead, "acme", testKeyID, ctx, []byte("hi!"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var malformed, undecryptable int
	for i := range len(b) * 8 {
		flipped := bytes.Clone(b)
		flipped[i/8] ^= 1 << (i % 8)
		parsed, err := ParseCiphertext(flipped)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("bit %d: parse error %v does not wrap ErrMalformed", i, err)
			}
			malformed++
			continue
		}
		if _, err := Open(aead, "acme", parsed, ctx); err != ErrDecrypt {
			t.Fatalf("bit %d: Open: got %v, want ErrDecrypt", i, err)
		}
		undecryptable++
	}
	// Bits of the version and type bytes fail to parse; all others reach Open.
	if got, want := malformed, 16; got != want {
		t.Errorf("got %d parse failures, want %d", got, want)
	}
	if got, want := undecryptable, len(b)*8-16; got != want {
		t.Errorf("got %d decryption failures, want %d", got, want)
	}
}

func TestSealBounds(t *testing.T) {
	aead := mustAEAD(t, testKey)
	tests := []struct {
		name      string
		tenant    string
		plaintext []byte
		ok        bool
	}{
		{"plaintext at limit", "acme", make([]byte, MaxPlaintextSize), true},
		{"plaintext over limit", "acme", make([]byte, MaxPlaintextSize+1), false},
		{"tenant at limit", strings.Repeat("t", MaxTenantIDSize), nil, true},
		{"tenant over limit", strings.Repeat("t", MaxTenantIDSize+1), nil, false},
		{"one-byte tenant", "t", nil, true},
		{"empty tenant", "", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Seal(aead, tt.tenant, testKeyID, nil, tt.plaintext)
			if got, want := err == nil, tt.ok; got != want {
				t.Fatalf("Seal: got ok %v, want %v (err %v)", got, want, err)
			}
			if err != nil {
				checkMalformed(t, err, tt.tenant)
			}
		})
	}
}

// TestOpenRefusesInvalidArguments: a caller's own out-of-bounds tenant or
// context is reported as such, not as ErrDecrypt, whatever the ciphertext.
func TestOpenRefusesInvalidArguments(t *testing.T) {
	aead := mustAEAD(t, testKey)
	c, err := Seal(aead, "acme", testKeyID, nil, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		tenant string
		ctx    Context
	}{
		{"empty tenant", "", nil},
		{"tenant over limit", strings.Repeat("t", MaxTenantIDSize+1), nil},
		{"context over limit", "acme", ctxOfSize(MaxContextPairs + 1)},
		{"context not utf-8", "acme", Context{"k": "\xff"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(aead, tt.tenant, c, tt.ctx)
			checkMalformed(t, err, tt.tenant)
		})
	}
}

// TestForeignAEAD: valid AEADs whose output the format cannot carry are
// refused rather than sealed into something no parser accepts.
func TestForeignAEAD(t *testing.T) {
	block, err := aes.NewCipher(testKey)
	if err != nil {
		t.Fatal(err)
	}
	for name, mk := range map[string]func(cipher.Block) (cipher.AEAD, error){
		"16-byte nonce": func(b cipher.Block) (cipher.AEAD, error) { return cipher.NewGCMWithNonceSize(b, 16) },
		"12-byte tag":   func(b cipher.Block) (cipher.AEAD, error) { return cipher.NewGCMWithTagSize(b, 12) },
	} {
		t.Run(name, func(t *testing.T) {
			// Under GODEBUG=fips140=only the module refuses these
			// outright; build them anyway to check the format's guard.
			var aead cipher.AEAD
			var err error
			fips140.WithoutEnforcement(func() { aead, err = mk(block) })
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Seal(aead, "acme", testKeyID, nil, []byte("x")); err == nil {
				t.Error("Seal accepted a foreign AEAD")
			}
			c := &Ciphertext{Sealed: make([]byte, TagSize)}
			if _, err := Open(aead, "acme", c, nil); err == nil || err == ErrDecrypt {
				t.Errorf("Open: got %v, want an error naming the AEAD", err)
			}
		})
	}
}

func TestAssociatedData(t *testing.T) {
	ctx := Context{"a": "bc"}
	got, err := AssociatedData("acme", testKeyID, ctx)
	if err != nil {
		t.Fatal(err)
	}
	canon, _ := ctx.Canonical()
	want := []byte("tenantcrypt/envelope/v1\x00")
	want = append(want, Version1, typeCiphertext)
	want = append(want, testKeyID[:]...)
	want = append(want, 0, 0, 0, 4)
	want = append(want, "acme"...)
	want = append(want, canon...)
	if !bytes.Equal(got, want) {
		t.Errorf("AssociatedData = %x, want %x", got, want)
	}
	if got, want := cap(got), len(got); got != want {
		t.Errorf("cap = %d, want %d: the buffer should be allocated at its exact size", got, want)
	}
	// The tenant is length-prefixed, so it cannot run into the context.
	a, _ := AssociatedData("ab", testKeyID, nil)
	b, _ := AssociatedData("a", testKeyID, Context{"b": ""})
	if bytes.Equal(a, b) {
		t.Error("tenant and context boundaries are ambiguous")
	}
}

func TestSealOpenAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector adds allocations of its own")
	}
	aead := mustAEAD(t, testKey)
	pt := make([]byte, 1024)
	for name, ctx := range map[string]Context{"no context": nil, "small context": {"purpose": "secret", "record": "42"}} {
		t.Run(name, func(t *testing.T) {
			var c *Ciphertext
			// Seal: associated data, Sealed and the Ciphertext.
			if got, want := testing.AllocsPerRun(100, func() { c, _ = Seal(aead, "acme", testKeyID, ctx, pt) }), 3.0; got > want {
				t.Errorf("Seal: got %v allocations, want at most %v", got, want)
			}
			// Open: associated data and the plaintext.
			if got, want := testing.AllocsPerRun(100, func() { _, _ = Open(aead, "acme", c, ctx) }), 2.0; got > want {
				t.Errorf("Open: got %v allocations, want at most %v", got, want)
			}
		})
	}
}
