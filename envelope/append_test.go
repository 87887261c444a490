package envelope

import (
	"bytes"
	"crypto/cipher"
	"errors"
	"strings"
	"testing"
)

// TestAppendSealAsSeal: AppendSeal writes, into a reused buffer, exactly
// the bytes Seal and MarshalBinary write with the same nonce, and what it
// writes opens with Open under either construction.
func TestAppendSealAsSeal(t *testing.T) {
	aeads := bothAEADs(t, testKey)
	fixed := mustFixedNonceAEAD(t, testKey)
	ctxs := []Context{nil, {"purpose": "secret"}, ctxOfSize(20)}
	for name, aead := range aeads {
		s, err := NewSealer(aead, "acme", testKeyID)
		if err != nil {
			t.Fatalf("NewSealer(%s): %v", name, err)
		}
		buf := []byte("keep")
		for i, ctx := range ctxs {
			pt := bytes.Repeat([]byte{byte(i)}, 100*i)
			out, err := s.AppendSeal(buf[:4], ctx, pt)
			if err != nil {
				t.Fatalf("%s: AppendSeal: %v", name, err)
			}
			if string(out[:4]) != "keep" {
				t.Fatalf("%s: AppendSeal changed dst's bytes", name)
			}
			buf = out
			c, err := ParseCiphertext(out[4:])
			if err != nil {
				t.Fatalf("%s: ParseCiphertext(AppendSeal): %v", name, err)
			}
			want, err := sealWithNonce(fixed, "acme", testKeyID, ctx, c.Nonce, pt)
			if err != nil {
				t.Fatal(err)
			}
			wantBin, _ := want.MarshalBinary()
			if !bytes.Equal(out[4:], wantBin) {
				t.Errorf("%s, context %d: AppendSeal = %x, want Seal's %x", name, i, out[4:], wantBin)
			}
			for other, oa := range aeads {
				got, err := Open(oa, "acme", c, ctx)
				if err != nil || !bytes.Equal(got, pt) {
					t.Errorf("sealed with %s by AppendSeal, opened with %s: %v", name, other, err)
				}
			}
		}
		if _, err := s.AppendSeal(nil, Context{"": "x"}, nil); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: AppendSeal with an empty context key: got %v, want ErrMalformed", name, err)
		}
		if _, err := s.AppendSeal(nil, nil, make([]byte, MaxPlaintextSize+1)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: AppendSeal of an oversized plaintext: got %v, want ErrMalformed", name, err)
		}
	}
	if _, err := NewSealer(aeads["GCMWithRandomNonce"], "", testKeyID); !errors.Is(err, ErrMalformed) {
		t.Errorf("NewSealer with no tenant: got %v, want ErrMalformed", err)
	}
	if _, err := NewSealer(foreign{aeads["GCMWithRandomNonce"]}, "acme", testKeyID); err != errForeignAEAD {
		t.Errorf("NewSealer with a foreign AEAD: got %v, want errForeignAEAD", err)
	}
}

// TestAppendOpenAsOpen: AppendOpen accepts and refuses what
// ParseCiphertext and Open do, with the same errors.
func TestAppendOpenAsOpen(t *testing.T) {
	aeads := bothAEADs(t, testKey)
	ctx := Context{"purpose": "secret"}
	for name, aead := range aeads {
		c, err := Seal(aead, "acme", testKeyID, ctx, []byte("hello, world"))
		if err != nil {
			t.Fatal(err)
		}
		bin, _ := c.MarshalBinary()
		for other, oa := range aeads {
			o, err := NewOpener(oa, "acme")
			if err != nil {
				t.Fatal(err)
			}
			pt, err := o.AppendOpen([]byte("x"), bin, ctx)
			if err != nil || string(pt) != "xhello, world" {
				t.Errorf("sealed with %s, AppendOpen with %s: %q, %v", name, other, pt, err)
			}
			cases := map[string]struct {
				bin    []byte
				tenant string
				ctx    Context
				want   error
			}{
				"other context":    {bin, "acme", Context{"purpose": "other"}, ErrDecrypt},
				"other tenant":     {bin, "beta", ctx, ErrDecrypt},
				"truncated":        {bin[:minCiphertextSize-1], "acme", ctx, ErrDecrypt},
				"not a ciphertext": {[]byte{1, typeHandle}, "acme", ctx, ErrDecrypt},
				"invalid context":  {bin, "acme", Context{"": "x"}, ErrMalformed},
			}
			for i := range bin {
				for bit := range 8 {
					b := bytes.Clone(bin)
					b[i] ^= 1 << bit
					cases["flip "+string(rune('0'+bit))+" at "+strings.Repeat("+", i)] = struct {
						bin    []byte
						tenant string
						ctx    Context
						want   error
					}{b, "acme", ctx, ErrDecrypt}
				}
			}
			for cname, tc := range cases {
				o, err := NewOpener(oa, tc.tenant)
				if err != nil {
					t.Fatal(err)
				}
				_, wantErr := Open(oa, tc.tenant, mustParseOrNil(tc.bin), tc.ctx)
				dst := make([]byte, 1, 64)
				got, err := o.AppendOpen(dst, tc.bin, tc.ctx)
				if !errors.Is(err, tc.want) || !errors.Is(wantErr, tc.want) {
					t.Errorf("%s/%s, %s: AppendOpen error %v, Open error %v, want %v", name, other, cname, err, wantErr, tc.want)
				}
				if len(got) != 1 || bytes.ContainsFunc(dst[1:cap(dst)], func(r rune) bool { return r != 0 }) {
					t.Errorf("%s/%s, %s: AppendOpen left bytes in dst on error", name, other, cname)
				}
			}
		}
	}
}

// mustParseOrNil is ParseCiphertext, with nil (which Open refuses with
// ErrDecrypt) for what does not parse.
func mustParseOrNil(b []byte) *Ciphertext {
	c, err := ParseCiphertext(b)
	if err != nil {
		return nil
	}
	return c
}

// TestAppendText: AppendText writes what FormatText returns, and
// AppendParseText reads what ParseText reads, with the same errors.
func TestAppendText(t *testing.T) {
	c, err := Seal(mustAEAD(t, testKey), "acme", testKeyID, nil, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	bin, _ := c.MarshalBinary()
	handle, _ := Handle{KeyID: testKeyID}.MarshalBinary()
	for _, tc := range []struct {
		prefix string
		bin    []byte
	}{
		{InternalPrefix("acme"), bin},
		{CMKPrefix(strings.Repeat("9f", 16)), handle},
		{"bad", bin},
		{InternalPrefix("acme"), bin[:10]},
	} {
		want, wantErr := FormatText(tc.prefix, tc.bin)
		got, err := AppendText([]byte("x"), tc.prefix, tc.bin)
		if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
			t.Errorf("AppendText(%q): error %v, FormatText's %v", tc.prefix, err, wantErr)
		}
		if err == nil && string(got) != "x"+want {
			t.Errorf("AppendText(%q) = %q, want %q", tc.prefix, got, "x"+want)
		}
	}
	text, _ := FormatText(InternalPrefix("acme"), bin)
	for _, s := range []string{
		text, text + "A", text[:len(text)-1], strings.Replace(text, ":", ";", 1),
		text[:20] + "\n" + text[20:], "#QLIKv1#:acme:", "", ":",
		strings.Repeat("#", MaxPrefixSize+5) + ":AAAA",
	} {
		_, wantBin, wantErr := ParseText(s)
		got, err := AppendParseText([]byte("x"), []byte(s))
		if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
			t.Errorf("AppendParseText(%q): error %v, ParseText's %v", s, err, wantErr)
			continue
		}
		if err == nil && string(got) != "x"+string(wantBin) {
			t.Errorf("AppendParseText(%q) = %x, want %x", s, got, wantBin)
		}
		if err != nil && string(got) != "x" {
			t.Errorf("AppendParseText(%q) changed dst on error", s)
		}
	}
}

// TestAppendAllocations: with buffers that have room, the append forms do
// not allocate (a small context stays on the stack).
func TestAppendAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector adds allocations of its own")
	}
	aead := mustAEAD(t, testKey)
	s, _ := NewSealer(aead, "acme", testKeyID)
	o, _ := NewOpener(aead, "acme")
	ctx := Context{"purpose": "secret", "record": "42"}
	pt := make([]byte, 1024)
	prefix := InternalPrefix("acme")
	bin, text, out := make([]byte, 0, 2048), make([]byte, 0, 4096), make([]byte, 0, 2048)
	bin, _ = s.AppendSeal(bin, ctx, pt)
	text, _ = AppendText(text, prefix, bin)
	for name, f := range map[string]func(){
		"AppendSeal":      func() { _, _ = s.AppendSeal(bin[:0], ctx, pt) },
		"AppendText":      func() { _, _ = AppendText(text[:0], prefix, bin) },
		"AppendParseText": func() { _, _ = AppendParseText(out[:0], text) },
		"AppendOpen":      func() { _, _ = o.AppendOpen(out[:0], bin, ctx) },
	} {
		if got := testing.AllocsPerRun(100, f); got != 0 {
			t.Errorf("%s: got %v allocations, want none", name, got)
		}
	}
}

// foreign is an AEAD that claims another nonce size.
type foreign struct{ cipher.AEAD }

func (foreign) NonceSize() int { return 16 }
