package kmip

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseURI(t *testing.T) {
	good := []struct {
		in   string
		want KeyURI
	}{
		{"kmip://kms.example.com:5696/1", KeyURI{"kms.example.com:5696", "1"}},
		{"kmip://127.0.0.1:5696/6a8d1d2e-3c4b-4f6a-9e1f-0b2c3d4e5f60", KeyURI{"127.0.0.1:5696", "6a8d1d2e-3c4b-4f6a-9e1f-0b2c3d4e5f60"}},
		{"kmip://[::1]:5696/key:1", KeyURI{"[::1]:5696", "key:1"}},
	}
	for _, tt := range good {
		got, err := ParseURI(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseURI(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		if got.String() != tt.in {
			t.Errorf("ParseURI(%q).String() = %q", tt.in, got.String())
		}
	}
	bad := []string{
		"", "kmip://", "https://kms.example.com:5696/1", "kmip://kms.example.com/1",
		"kmip://kms.example.com:5696", "kmip://kms.example.com:5696/", "kmip://kms.example.com:0/1",
		"kmip://kms.example.com:65536/1", "kmip://kms.example.com:05696/1", "kmip://user@kms.example.com:5696/1",
		"kmip://kms.example.com:5696/1?x=y", "kmip://kms.example.com:5696/1#f", "kmip://kms.example.com:5696/a/b",
		"kmip://kms.example.com:5696/a b", "kmip://kms.example.com:5696/%41", "kmip://-kms.example.com:5696/1",
		"kmip://kms..example.com:5696/1", "kmip://::1:5696/1", "kmip://[::0001]:5696/1",
		"kmip://kms.example.com:5696/" + strings.Repeat("k", maxURILen),
	}
	for _, in := range bad {
		if got, err := ParseURI(in); !errors.Is(err, ErrMalformedURI) {
			t.Errorf("ParseURI(%q) = %+v, %v; want ErrMalformedURI", in, got, err)
		}
	}
}

// FuzzParseURI: ParseURI never panics, refuses with ErrMalformedURI, and
// what it accepts prints back byte for byte.
func FuzzParseURI(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/fuzz/FuzzParseURI/*")
	if len(seeds) < 5 {
		f.Fatalf("seed corpus missing: %d files in testdata/fuzz/FuzzParseURI, want at least 5", len(seeds))
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseURI(s)
		if err != nil {
			if !errors.Is(err, ErrMalformedURI) {
				t.Fatalf("ParseURI(%q) error %v does not wrap ErrMalformedURI", s, err)
			}
			return
		}
		if k.String() != s {
			t.Fatalf("ParseURI(%q).String() = %q", s, k.String())
		}
	})
}
