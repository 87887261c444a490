package awskms

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

const fuzzSeedDir = "testdata/fuzz/FuzzParseARN"

// FuzzParseARN: ParseARN never panics, every refusal wraps
// ErrMalformedARN, and what it accepts prints back byte for byte and
// parses again to the same ARN.
func FuzzParseARN(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join(fuzzSeedDir, "*"))
	if len(seeds) < 10 {
		f.Fatalf("seed corpus missing: %d files in %s, want at least 10", len(seeds), fuzzSeedDir)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseARN(s)
		if err != nil {
			if !errors.Is(err, ErrMalformedARN) {
				t.Fatalf("ParseARN(%q) error %v does not wrap ErrMalformedARN", s, err)
			}
			if a != (ARN{}) {
				t.Fatalf("ParseARN(%q) returned %+v with its error", s, a)
			}
			if len(s) > maxARNLen && strings.Contains(err.Error(), s) {
				t.Fatalf("the error for a %d-byte input repeats it", len(s))
			}
			return
		}
		if got := a.String(); got != s {
			t.Fatalf("ParseARN(%q).String() = %q", s, got)
		}
		b, err := ParseARN(a.String())
		if err != nil || b != a {
			t.Fatalf("ParseARN(String()) = %+v, %v; want %+v", b, err, a)
		}
		if r := a.InRegion("eu-west-3"); a.MultiRegion() {
			if !r.sameKey(a) || !a.sameKey(r) || r.Region != "eu-west-3" {
				t.Fatalf("%s.InRegion(eu-west-3) = %s, not a replica of it", a, r)
			}
		} else if r != a {
			t.Fatalf("single-region %s.InRegion(eu-west-3) = %s, want it unchanged", a, r)
		}
	})
}
