package main

import (
	"runtime/debug"
	"testing"
)

func TestVersionLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		version, revision, goVersion, fips string
		want                               string
	}{
		{"", "unknown", "go1.26.0", "off", "tenantcrypt devel (unknown) go1.26.0 fips140=off"},
		{"devel", "0123abc+dirty", "go1.26.0", "on", "tenantcrypt devel (0123abc+dirty) go1.26.0 fips140=on"},
		{"v1.2.3", "0123abc", "go1.26.1", "only", "tenantcrypt v1.2.3 (0123abc) go1.26.1 fips140=only"},
	}
	for _, tt := range tests {
		if got := versionLine(tt.version, tt.revision, tt.goVersion, tt.fips); got != tt.want {
			t.Errorf("versionLine(%q, %q, %q, %q) = %q, want %q", tt.version, tt.revision, tt.goVersion, tt.fips, got, tt.want)
		}
	}
}

func TestRevisionOf(t *testing.T) {
	t.Parallel()
	rev := "dba5a17f2a8595fa8218e9fc03d3750f2e352145"
	tests := []struct {
		name     string
		settings []debug.BuildSetting
		want     string
	}{
		{"no vcs info (-buildvcs=false)", []debug.BuildSetting{{Key: "GOOS", Value: "linux"}}, "unknown"},
		{"clean", []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "false"}}, rev},
		{"modified", []debug.BuildSetting{{Key: "vcs.modified", Value: "true"}, {Key: "vcs.revision", Value: rev}}, rev + "+dirty"},
		{"modified without revision", []debug.BuildSetting{{Key: "vcs.modified", Value: "true"}}, "unknown"},
	}
	for _, tt := range tests {
		if got := revisionOf(tt.settings); got != tt.want {
			t.Errorf("%s: revisionOf = %q, want %q", tt.name, got, tt.want)
		}
	}
}
