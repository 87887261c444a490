//go:build cgo

package main

import "github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms/pkcs11"

// openHSM opens the token and logs in with pin.
func openHSM(c hsmConfig, pin string) (hsmDevice, error) {
	h, err := pkcs11.Open(pkcs11.Config{Module: c.module, Token: c.token, PIN: pin, KeyLabel: c.keyLabel})
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return h, nil
}
