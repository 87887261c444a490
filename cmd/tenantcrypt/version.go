package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/tenantcrypt/tenantcrypt/internal/fips"
)

// version is the release, set by a release build:
//
//	go build -buildvcs=true -ldflags "-X main.version=v1.2.3" ./cmd/tenantcrypt
var version = "devel"

const versionUsage = `Usage:
  tenantcrypt version      (or tenantcrypt --version)
      print one line: tenantcrypt VERSION (REVISION) GOVERSION fips140=MODE
`

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if isHelp(args[0]) {
			fmt.Fprint(stdout, versionUsage)
			return exitOK
		}
		fmt.Fprintf(stderr, "version: unexpected argument %q\n\n%s", args[0], versionUsage)
		return exitUsage
	}
	fmt.Fprintln(stdout, versionLine(version, buildRevision(), runtime.Version(), fips.Mode()))
	return exitOK
}

// versionLine is `tenantcrypt VERSION (REVISION) GOVERSION fips140=MODE`.
func versionLine(version, revision, goVersion, fips string) string {
	if version == "" {
		version = "devel"
	}
	return fmt.Sprintf("tenantcrypt %s (%s) %s fips140=%s", version, revision, goVersion, fips)
}

// buildRevision is the VCS revision the binary was built from (with
// "+dirty" for a modified work tree), or "unknown" when the build did not
// record it (go build -buildvcs=false, or not in a git checkout).
func buildRevision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	return revisionOf(bi.Settings)
}

func revisionOf(settings []debug.BuildSetting) string {
	rev, dirty := "", false
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "unknown"
	}
	if dirty {
		rev += "+dirty"
	}
	return rev
}
