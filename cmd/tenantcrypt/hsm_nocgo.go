//go:build !cgo

package main

import "errors"

// errNoPKCS11: PKCS#11 libraries are C libraries, which a Go binary built
// without cgo cannot load.
var errNoPKCS11 = errors.New("this tenantcrypt binary was built without cgo (CGO_ENABLED=0), so it has no PKCS#11 support " +
	"and cannot use an HSM root key; use a binary built with cgo, or the root key file")

func openHSM(hsmConfig, string) (hsmDevice, error) { return nil, errNoPKCS11 }
