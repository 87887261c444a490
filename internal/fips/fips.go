// Package fips reports the FIPS 140-3 mode the process runs in, for the
// version line, the status endpoint, the metric and the start log.
//
// The mode is Go's: a binary built with GOFIPS140=v1.0.0 (or any build run
// with GODEBUG=fips140=on) uses the Go Cryptographic Module in FIPS 140-3
// mode; GODEBUG=fips140=only additionally makes every non-approved
// algorithm fail. docs/fips.md says what tenantcrypt does in each mode.
package fips

import "crypto/fips140"

// The modes, as printed.
const (
	// Off: the Go Cryptographic Module is not in FIPS 140-3 mode.
	Off = "off"
	// On: FIPS 140-3 mode (GODEBUG=fips140=on, the default of a
	// GOFIPS140 build); non-approved algorithms still work.
	On = "on"
	// Only: FIPS 140-3 mode with strict enforcement
	// (GODEBUG=fips140=only); non-approved algorithms fail.
	Only = "only"
)

// Mode returns Off, On or Only. It cannot change while the process runs,
// except that inside crypto/fips140.WithoutEnforcement (which tenantcrypt
// never calls outside tests) Only reads as On.
func Mode() string {
	switch {
	case !fips140.Enabled():
		return Off
	case fips140.Enforced():
		return Only
	default:
		return On
	}
}

// Modes lists every mode, in order: for a metric that shows one of them
// at 1 and the others at 0.
func Modes() []string { return []string{Off, On, Only} }

// ModuleVersion returns the version of the Go Cryptographic Module the
// binary was built with: "v1.0.0" for GOFIPS140=v1.0.0 (the validated
// one), "latest" for a build without GOFIPS140 (Go's own copy, not a
// frozen, validated snapshot).
func ModuleVersion() string { return fips140.Version() }
