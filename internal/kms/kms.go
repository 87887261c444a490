// Package kms is the contract between tenantcrypt and the key management
// systems that protect tenants' data keys: the internal KMS and customer
// managed keys (in AWS KMS, or another key manager a tenant registers).
//
// A Provider is one master key as seen by one tenant. It generates data keys,
// wraps and unwraps them, and describes the state of the master key. Every
// failure a caller branches on is one of the sentinel errors below, reached
// with errors.Is; provider-specific detail travels in *Error.
package kms

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/tenantcrypt/tenantcrypt/internal/secret"
)

// DataKeySize is the length of every data key: AES-256.
const DataKeySize = 32

// Provider is a master key that wraps one tenant's data keys.
//
// Every method takes the binding (KMS "encryption context") that the wrapped
// key is tied to; Unwrap with another binding than the one given to Wrap or
// GenerateDataKey fails with ErrInvalidCiphertext. Bindings carry no secrets.
type Provider interface {
	// Ref names this provider; its text form is stored beside every key it
	// wraps, so that a later Unwrap can find the provider again. It never
	// changes and is never the zero Ref.
	Ref() Ref

	// GenerateDataKey returns a fresh DataKeySize-byte key, both in plaintext
	// (which the caller must Destroy) and wrapped.
	// Errors: any sentinel of this package.
	GenerateDataKey(ctx context.Context, b Binding) (*secret.Bytes, Wrapped, error)

	// Wrap encrypts an existing data key under the master key.
	// Errors: any sentinel of this package but ErrInvalidCiphertext.
	Wrap(ctx context.Context, plaintext *secret.Bytes, b Binding) (Wrapped, error)

	// Unwrap decrypts a wrapped data key; the caller must Destroy the result.
	// A blob that was not produced by this provider for this binding, or that
	// was altered, yields ErrInvalidCiphertext.
	Unwrap(ctx context.Context, w Wrapped, b Binding) (*secret.Bytes, error)

	// Describe reports the master key's state. A key that is disabled or
	// pending deletion is described without error; a key that no longer
	// exists yields ErrKeyNotFound.
	Describe(ctx context.Context) (KeyInfo, error)
}

// Wrapped is a data key encrypted under a master key.
type Wrapped struct {
	// KeyVersion names the master key version that wrapped Blob, as the
	// provider counts versions ("3" for an internal KEK version, the key ARN
	// for AWS, whose blobs name their backing key themselves).
	KeyVersion string
	// Blob is the provider's ciphertext.
	Blob []byte
}

// Binding is the non-secret context that a wrapped data key is bound to,
// passed to AWS KMS as its EncryptionContext.
type Binding map[string]string

// Binding keys used by tenantcrypt.
const (
	BindingTenant  = "tenantcrypt:tenant"
	BindingKeyID   = "tenantcrypt:key"
	BindingContext = "tenantcrypt:context"
)

// Canonical encodes b in an order-independent, unambiguous byte form
// (count, then each key and value length-prefixed, keys sorted), suitable as
// AEAD associated data.
func (b Binding) Canonical() []byte {
	keys := make([]string, 0, len(b))
	for k := range b {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var buf bytes.Buffer
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(keys)))
	buf.Write(n[:])
	for _, k := range keys {
		for _, s := range [2]string{k, b[k]} {
			binary.BigEndian.PutUint32(n[:], uint32(len(s)))
			buf.Write(n[:])
			buf.WriteString(s)
		}
	}
	return buf.Bytes()
}

// KeyInfo describes a master key.
type KeyInfo struct {
	State KeyState
	// Detail is a human-readable note from the provider, never secret.
	Detail string
}

// KeyState is the lifecycle state of a master key.
type KeyState int

// Key states. The zero value is invalid.
const (
	KeyStateUnknown KeyState = iota
	KeyEnabled
	KeyDisabled
	KeyPendingDeletion
	KeyDestroyed
)

// String is the state's name as AWS KMS spells it.
func (s KeyState) String() string {
	switch s {
	case KeyEnabled:
		return "Enabled"
	case KeyDisabled:
		return "Disabled"
	case KeyPendingDeletion:
		return "PendingDeletion"
	case KeyDestroyed:
		return "Destroyed"
	default:
		return "Unknown"
	}
}

// Sentinel errors. Providers return them wrapped in *Error.
var (
	// ErrKeyDisabled: the master key exists but is disabled.
	ErrKeyDisabled = errors.New("master key is disabled")
	// ErrKeyPendingDeletion: the master key is scheduled for deletion.
	ErrKeyPendingDeletion = errors.New("master key is pending deletion")
	// ErrKeyNotFound: the master key does not exist (or no longer does).
	ErrKeyNotFound = errors.New("master key not found")
	// ErrAccessDenied: the key's policy or the credentials refuse the call.
	ErrAccessDenied = errors.New("access to master key denied")
	// ErrThrottled: the KMS refused the call for its request rate. Retryable.
	ErrThrottled = errors.New("kms throttled the request")
	// ErrUnavailable: the KMS did not answer (timeout, outage, 5xx). Retryable.
	ErrUnavailable = errors.New("kms unavailable")
	// ErrInvalidCiphertext: the wrapped key is not one this provider made
	// for this binding, or it was altered.
	ErrInvalidCiphertext = errors.New("invalid wrapped key")
	// ErrNotConfigured: the service has no credentials for the KMS (its
	// operator's configuration). Not a state of any key, and no retry
	// helps until the operator configures them.
	ErrNotConfigured = errors.New("kms credentials not configured")
)

// Retryable reports whether err is a transient KMS failure worth retrying:
// never a revocation or an invalid ciphertext.
func Retryable(err error) bool {
	return errors.Is(err, ErrThrottled) || errors.Is(err, ErrUnavailable)
}

// Error is a provider failure with its context. Kind is one of the sentinels.
type Error struct {
	Op        string // "GenerateDataKey", "Unwrap", ...
	Provider  string // for logs: the Ref's text form, or a key's ARN before it has a Ref
	Region    string // where the call went, if a region applies
	RequestID string // the KMS's request id, if any
	Kind      error  // a sentinel of this package
	Err       error  // the underlying cause, for logs; may be nil
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("kms %s", e.Op)
	if e.Region != "" {
		msg += " in " + e.Region
	}
	if e.Kind != nil {
		msg += ": " + e.Kind.Error()
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is matches the error's Kind, so errors.Is(err, kms.ErrKeyDisabled) works.
func (e *Error) Is(target error) bool { return e.Kind == target }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Outcome names the result of a provider call for metrics and logs: "ok",
// or the sentinel it failed with ("disabled", "throttled", ...), or "error".
func Outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrKeyDisabled):
		return "disabled"
	case errors.Is(err, ErrKeyPendingDeletion):
		return "pending_deletion"
	case errors.Is(err, ErrKeyNotFound):
		return "not_found"
	case errors.Is(err, ErrAccessDenied):
		return "access_denied"
	case errors.Is(err, ErrThrottled):
		return "throttled"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	case errors.Is(err, ErrInvalidCiphertext):
		return "invalid_ciphertext"
	case errors.Is(err, ErrNotConfigured):
		return "not_configured"
	}
	return "error"
}

type tenantKey struct{}

// WithTenant names the tenant a call is made for, for calls that carry no
// Binding (DescribeKey), so that whoever observes calls (the audit log)
// can attribute them.
func WithTenant(ctx context.Context, tenantID string) context.Context {
	return context.WithValue(ctx, tenantKey{}, tenantID)
}

// TenantOf returns the tenant the call is for: b's tenant, else the one
// WithTenant put in ctx, else "".
func TenantOf(ctx context.Context, b Binding) string {
	if t := b[BindingTenant]; t != "" {
		return t
	}
	t, _ := ctx.Value(tenantKey{}).(string)
	return t
}
