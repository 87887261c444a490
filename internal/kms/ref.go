package kms

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Ref names the key provider that wraps a tenant's keys: the internal KMS,
// or a customer managed key the tenant registered, named by the
// registration's fingerprint. Its text form (String) is what the stores
// keep beside every tenant and cipherkey; ParseRef and String are the only
// code that reads or writes that form.
//
// The zero Ref is invalid: it names no provider.
type Ref struct {
	kind        refKind
	fingerprint string
}

type refKind uint8

const (
	refInvalid refKind = iota
	refInternal
	refCMK
)

// Text forms of a Ref, as stored. Changing them breaks every database.
const (
	internalText = "internal"
	cmkPrefix    = "cmk:"
)

// maxFingerprint bounds a fingerprint's length (registrations use 32 hex
// characters).
const maxFingerprint = 64

// ErrMalformedRef: a text is not the form of any Ref.
var ErrMalformedRef = errors.New("malformed key provider ref")

// InternalRef is the Ref of the internal KMS, every tenant's provider until
// it moves to a customer managed key.
func InternalRef() Ref { return Ref{kind: refInternal} }

// CMKRef is the Ref of the customer managed key registered under
// fingerprint. Errors: ErrMalformedRef for an empty fingerprint or one
// with other characters than [0-9a-z_-] or longer than 64 bytes.
func CMKRef(fingerprint string) (Ref, error) {
	if !validFingerprint(fingerprint) {
		return Ref{}, fmt.Errorf("%w: fingerprint %q", ErrMalformedRef, fingerprint)
	}
	return Ref{kind: refCMK, fingerprint: fingerprint}, nil
}

// MustCMKRef is CMKRef for a fingerprint known to be valid (one the
// key-provider service computed); it panics on a malformed one.
func MustCMKRef(fingerprint string) Ref {
	r, err := CMKRef(fingerprint)
	if err != nil {
		panic(err)
	}
	return r
}

func validFingerprint(fp string) bool {
	if fp == "" || len(fp) > maxFingerprint {
		return false
	}
	for i := 0; i < len(fp); i++ {
		c := fp[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// ParseRef reads a Ref's text form: "internal" or "cmk:<fingerprint>".
// Errors: ErrMalformedRef for anything else, the empty text included.
func ParseRef(s string) (Ref, error) {
	if s == internalText {
		return InternalRef(), nil
	}
	if fp, ok := strings.CutPrefix(s, cmkPrefix); ok {
		return CMKRef(fp)
	}
	return Ref{}, fmt.Errorf("%w: %q", ErrMalformedRef, s)
}

// String is the Ref's text form, which ParseRef reads back; "" for the
// zero Ref.
func (r Ref) String() string {
	switch r.kind {
	case refInternal:
		return internalText
	case refCMK:
		return cmkPrefix + r.fingerprint
	}
	return ""
}

// LogValue logs r as its text form.
func (r Ref) LogValue() slog.Value { return slog.StringValue(r.String()) }

// IsZero reports whether r is the zero (invalid) Ref.
func (r Ref) IsZero() bool { return r.kind == refInvalid }

// IsInternal reports whether r names the internal KMS.
func (r Ref) IsInternal() bool { return r.kind == refInternal }

// Fingerprint returns the fingerprint of the customer managed key r names,
// and false when r names none (the internal KMS, the zero Ref).
func (r Ref) Fingerprint() (string, bool) {
	return r.fingerprint, r.kind == refCMK
}
