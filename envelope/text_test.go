package envelope

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

func TestPrefixes(t *testing.T) {
	if got, want := InternalPrefix("acme"), "#QLIKv1#:acme"; got != want {
		t.Errorf("InternalPrefix = %q, want %q", got, want)
	}
	fp := "0123456789abcdef0123456789abcdef"
	if got, want := CMKPrefix(fp), "#BYOKv1#:"+fp; got != want {
		t.Errorf("CMKPrefix = %q, want %q", got, want)
	}
	for _, p := range []string{InternalPrefix("acme"), InternalPrefix(strings.Repeat("t", 128)), CMKPrefix(fp)} {
		if err := checkPrefix(p); err != nil {
			t.Errorf("checkPrefix(%q): %v", p, err)
		}
	}
}

func TestCheckPrefix(t *testing.T) {
	longest := "#" + strings.Repeat("A", maxPrefixTagSize) + "v" + strings.Repeat("9", maxPrefixVersionSize) + "#:" + strings.Repeat("i", maxPrefixIDSize)
	tests := []struct {
		name   string
		prefix string
		ok     bool
	}{
		{"internal", "#QLIKv1#:acme", true},
		{"cmk", "#BYOKv1#:0123456789abcdef0123456789abcdef", true},
		{"id charset", "#Xv0#:Az09._-", true},
		{"longest is MaxPrefixSize", longest, len(longest) == MaxPrefixSize},
		{"one over MaxPrefixSize", longest + "i", false},
		{"tag at limit", "#ABCDEFGHv1#:x", true},
		{"tag over limit", "#ABCDEFGHIv1#:x", false},
		{"version at limit", "#Av1234#:x", true},
		{"version over limit", "#Av12345#:x", false},
		{"id at limit", "#Av1#:" + strings.Repeat("x", maxPrefixIDSize), true},
		{"id over limit", "#Av1#:" + strings.Repeat("x", maxPrefixIDSize+1), false},
		{"empty", "", false},
		{"no hash", "QLIKv1#:acme", false},
		{"empty tag", "#v1#:acme", false},
		{"lowercase tag", "#qlikv1#:acme", false},
		{"no v", "#QLIK1#:acme", false},
		{"capital V", "#QLIKV1#:acme", false},
		{"no version", "#QLIKv#:acme", false},
		{"no closing hash", "#QLIKv1:acme", false},
		{"no colon", "#QLIKv1#acme", false},
		{"empty id", "#QLIKv1#:", false},
		{"colon in id", "#QLIKv1#:a:b", false},
		{"space in id", "#QLIKv1#:a b", false},
		{"non-ascii id", "#QLIKv1#:café", false},
		{"slash in id", "#QLIKv1#:a/b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkPrefix(tt.prefix)
			if got, want := err == nil, tt.ok; got != want {
				t.Fatalf("got ok %v, want %v (err %v)", got, want, err)
			}
			if err != nil {
				checkMalformed(t, err, tt.prefix)
			}
		})
	}
}

func TestTextRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
		binary []byte
	}{
		{"handle", InternalPrefix("acme"), Handle{testKeyID}.mustMarshal()},
		{"short ciphertext", CMKPrefix("0123456789abcdef0123456789abcdef"), validCiphertext(0)},
		{"ciphertext", InternalPrefix("t-1.x_y"), validCiphertext(100)},
		{"largest ciphertext", InternalPrefix("acme"), validCiphertext(MaxPlaintextSize)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := FormatText(tt.prefix, tt.binary)
			if err != nil {
				t.Fatalf("FormatText: %v", err)
			}
			if want := tt.prefix + ":" + base64.RawURLEncoding.EncodeToString(tt.binary); s != want {
				t.Fatalf("FormatText differs from prefix:base64url (len %d, want %d)", len(s), len(want))
			}
			prefix, binary, err := ParseText(s)
			if err != nil {
				t.Fatalf("ParseText: %v", err)
			}
			if prefix != tt.prefix {
				t.Errorf("prefix = %q, want %q", prefix, tt.prefix)
			}
			if !bytes.Equal(binary, tt.binary) {
				t.Error("ParseText(FormatText(b)) != b")
			}
		})
	}
}

func TestParseText(t *testing.T) {
	good := base64.RawURLEncoding.EncodeToString(validCiphertext(1))
	// validCiphertext(1) is 47 bytes, so its last base64 character carries
	// 2 unused bits; setting one makes a non-canonical encoding.
	last := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", good[len(good)-1])
	nonCanonical := good[:len(good)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last|1])
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"valid", "#QLIKv1#:acme:" + good, true},
		{"empty", "", false},
		{"no colon", good, false},
		{"no prefix", ":" + good, false},
		{"bad prefix", "#qlikv1#:acme:" + good, false},
		{"prefix without id", "#QLIKv1#:" + good, false},
		{"empty payload", "#QLIKv1#:acme:", false},
		{"padded", "#QLIKv1#:acme:" + base64.URLEncoding.EncodeToString(validCiphertext(1)), false},
		{"standard alphabet", "#QLIKv1#:acme:" + base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0xff}, 30)), false},
		{"non-canonical last character", "#QLIKv1#:acme:" + nonCanonical, false},
		{"line feed", "#QLIKv1#:acme:" + good[:8] + "\n" + good[8:], false},
		{"carriage return", "#QLIKv1#:acme:" + good + "\r", false},
		{"space", "#QLIKv1#:acme:" + good + " ", false},
		{"not a tenantcrypt value", "#QLIKv1#:acme:" + base64.RawURLEncoding.EncodeToString([]byte("hello, world")), false},
		{"largest payload", "#QLIKv1#:acme:" + base64.RawURLEncoding.EncodeToString(validCiphertext(MaxPlaintextSize)), true},
		{"payload one over", "#QLIKv1#:acme:" + base64.RawURLEncoding.EncodeToString(validCiphertext(MaxPlaintextSize+1)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix, binary, err := ParseText(tt.in)
			if got, want := err == nil, tt.ok; got != want {
				t.Fatalf("got ok %v, want %v (err %v)", got, want, err)
			}
			if err != nil {
				checkMalformed(t, err, tt.in)
				return
			}
			s, err := FormatText(prefix, binary)
			if err != nil {
				t.Fatalf("FormatText: %v", err)
			}
			if s != tt.in {
				t.Error("FormatText(ParseText(s)) != s")
			}
		})
	}
}

func TestFormatTextRefuses(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
		binary []byte
	}{
		{"bad prefix", "acme", validCiphertext(0)},
		{"empty binary", "#QLIKv1#:acme", nil},
		{"not a tenantcrypt value", "#QLIKv1#:acme", []byte("hello, world, this is text")},
		{"truncated handle", "#QLIKv1#:acme", Handle{}.mustMarshal()[:10]},
		{"truncated ciphertext", "#QLIKv1#:acme", validCiphertext(0)[:40]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FormatText(tt.prefix, tt.binary)
			checkMalformed(t, err, string(tt.binary))
		})
	}
}
