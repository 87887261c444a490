//go:build !cgo

// Package pkcs11 keeps the internal KMS's root key in an HSM through its
// PKCS#11 library. It needs cgo: in a build without it (CGO_ENABLED=0) the
// package is empty, and `tenantcrypt serve` says that PKCS#11 is missing
// when it is given the --pkcs11-* flags.
package pkcs11
