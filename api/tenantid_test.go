package api

import (
	"regexp"
	"strings"
	"testing"
)

func TestValidTenantID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"acme", true},
		{"a", true},
		{"0", true},
		{"Acme.Corp_eu-1", true},
		{strings.Repeat("a", 64), true},
		{"", false},
		{strings.Repeat("a", 65), false},
		{"_platform", false},
		{".hidden", false},
		{"-x", false},
		{"a b", false},
		{"a/b", false},
		{"ünï", false},
		{"a\x00", false},
	}
	for _, tc := range tests {
		if got := ValidTenantID(tc.id); got != tc.want {
			t.Errorf("ValidTenantID(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

// FuzzValidTenantID: the hand-written check is the documented pattern.
func FuzzValidTenantID(f *testing.F) {
	for _, s := range []string{"acme", "_platform", "a.b-c_d", "", "é"} {
		f.Add(s)
	}
	pattern := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	f.Fuzz(func(t *testing.T, id string) {
		if got, want := ValidTenantID(id), pattern.MatchString(id); got != want {
			t.Errorf("ValidTenantID(%q) = %v, the pattern says %v", id, got, want)
		}
	})
}
