package main

import (
	"crypto/fips140"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
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
	fmt.Fprintln(stdout, versionLine(version, buildRevision(), runtime.Version(), fipsMode()))
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

// fipsMode is the FIPS 140-3 mode of this process: "off", "on", or "only"
// (GODEBUG=fips140=only: non-approved algorithms fail).
func fipsMode() string {
	godebug := os.Getenv("GODEBUG")
	if bi, ok := debug.ReadBuildInfo(); ok {
		// The binary's defaults (go.mod's godebug, GOFIPS140) come first;
		// the environment overrides them.
		for _, s := range bi.Settings {
			if s.Key == "DefaultGODEBUG" {
				godebug = s.Value + "," + godebug
			}
		}
	}
	return fipsModeOf(fips140.Enabled(), godebug)
}

func fipsModeOf(enabled bool, godebug string) string {
	if !enabled {
		return "off"
	}
	mode := "on"
	// The last fips140 setting in GODEBUG wins, as in the runtime.
	for _, kv := range strings.Split(godebug, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(kv), "fips140="); ok {
			mode = v
		}
	}
	if mode == "only" {
		return "only"
	}
	return "on"
}
