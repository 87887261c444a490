package fips

import (
	"crypto/fips140"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestMode checks Mode against the GODEBUG setting the test runs under:
// CI runs this package both without it and with GODEBUG=fips140=only.
func TestMode(t *testing.T) {
	t.Parallel()
	want := Off
	for _, kv := range strings.Split(os.Getenv("GODEBUG"), ",") {
		switch kv {
		case "fips140=on":
			want = On
		case "fips140=only":
			want = Only
		case "fips140=off":
			want = Off
		}
	}
	if want == Off && fips140.Enabled() {
		// A GOFIPS140 build defaults to fips140=on.
		want = On
	}
	if got := Mode(); got != want {
		t.Errorf("Mode() = %q, want %q (GODEBUG=%q)", got, want, os.Getenv("GODEBUG"))
	}
	if !slices.Contains(Modes(), Mode()) {
		t.Errorf("Modes() = %q does not list Mode() = %q", Modes(), Mode())
	}
	if ModuleVersion() == "" {
		t.Error("ModuleVersion() is empty")
	}
}

func TestModeWithoutEnforcement(t *testing.T) {
	t.Parallel()
	if Mode() != Only {
		t.Skip("only meaningful under GODEBUG=fips140=only")
	}
	fips140.WithoutEnforcement(func() {
		if got := Mode(); got != On {
			t.Errorf("inside WithoutEnforcement: Mode() = %q, want %q", got, On)
		}
	})
}
