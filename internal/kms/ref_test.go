package kms_test

import (
	"errors"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

func TestRefTextForm(t *testing.T) {
	fp := "0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		text     string
		want     kms.Ref
		internal bool
		fp       string
	}{
		{"internal", kms.InternalRef(), true, ""},
		{"cmk:" + fp, kms.MustCMKRef(fp), false, fp},
		{"cmk:f1", kms.MustCMKRef("f1"), false, "f1"},
	} {
		got, err := kms.ParseRef(tc.text)
		if err != nil || got != tc.want {
			t.Errorf("ParseRef(%q) = %v, %v; want %v", tc.text, got, err, tc.want)
			continue
		}
		if s := got.String(); s != tc.text {
			t.Errorf("ParseRef(%q).String() = %q", tc.text, s)
		}
		if got.IsInternal() != tc.internal || got.IsZero() {
			t.Errorf("ParseRef(%q): IsInternal %v, IsZero %v", tc.text, got.IsInternal(), got.IsZero())
		}
		if f, ok := got.Fingerprint(); f != tc.fp || ok == tc.internal {
			t.Errorf("ParseRef(%q).Fingerprint() = %q, %v; want %q", tc.text, f, ok, tc.fp)
		}
		if v := got.LogValue(); v.Kind() != slog.KindString || v.String() != tc.text {
			t.Errorf("ParseRef(%q).LogValue() = %v", tc.text, v)
		}
	}
	for _, bad := range []string{"", "Internal", "internal ", "cmk:", "cmk:A1", "cmk:a:b", "cmk:a/b", "arn:aws:kms:eu-west-1:111122223333:key/x", "aws:f1"} {
		if r, err := kms.ParseRef(bad); !errors.Is(err, kms.ErrMalformedRef) || !r.IsZero() {
			t.Errorf("ParseRef(%q) = %v, %v; want the zero Ref and ErrMalformedRef", bad, r, err)
		}
	}
	var zero kms.Ref
	if zero.String() != "" || !zero.IsZero() || zero.IsInternal() {
		t.Errorf("zero Ref: String %q, IsZero %v, IsInternal %v", zero.String(), zero.IsZero(), zero.IsInternal())
	}
	if _, ok := zero.Fingerprint(); ok {
		t.Error("the zero Ref has a fingerprint")
	}
}

const refSeedDir = "testdata/fuzz/FuzzParseRef"

// FuzzParseRef: ParseRef never panics, every refusal wraps ErrMalformedRef
// and returns the zero Ref, and what it accepts prints back byte for byte
// and parses again to the same Ref.
func FuzzParseRef(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join(refSeedDir, "*"))
	if len(seeds) < 10 {
		f.Fatalf("seed corpus missing: %d files in %s, want at least 10", len(seeds), refSeedDir)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := kms.ParseRef(s)
		if err != nil {
			if !errors.Is(err, kms.ErrMalformedRef) || !r.IsZero() {
				t.Fatalf("ParseRef(%q) = %v, %v; want the zero Ref and ErrMalformedRef", s, r, err)
			}
			return
		}
		if r.IsZero() {
			t.Fatalf("ParseRef(%q) returned the zero Ref without an error", s)
		}
		if got := r.String(); got != s {
			t.Fatalf("ParseRef(%q).String() = %q", s, got)
		}
		again, err := kms.ParseRef(r.String())
		if err != nil || again != r {
			t.Fatalf("ParseRef(String()) = %v, %v; want %v", again, err, r)
		}
		if fp, ok := r.Fingerprint(); ok == r.IsInternal() || ok && kms.MustCMKRef(fp) != r {
			t.Fatalf("ParseRef(%q): Fingerprint %q, %v; IsInternal %v", s, fp, ok, r.IsInternal())
		}
	})
}
