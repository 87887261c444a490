package keyring

import (
	"errors"
	"fmt"
	"time"

	"github.com/tenantcrypt/tenantcrypt/envelope"
)

// Errors the keyring's callers branch on. KMS failures arrive as the
// sentinels of package kms.
var (
	// ErrTenantNotFound: no tenant with that id (or it was deleted).
	ErrTenantNotFound = errors.New("tenant not found")
	// ErrTenantExists: a tenant with that id exists already.
	ErrTenantExists = errors.New("tenant already exists")
	// ErrTenantRetired: the id belonged to a deleted tenant. Ids are never
	// reused, so that nothing of the old tenant (tokens, handles,
	// ciphertexts, audit events) can reach a new one.
	ErrTenantRetired = errors.New("tenant id retired")
	// ErrDecrypt is the single opaque answer for a ciphertext or handle that
	// does not open, whatever the reason, so that nothing leaks through it.
	ErrDecrypt = envelope.ErrDecrypt
	// ErrHIPAARequiresCMK: a HIPAA tenant must be on a customer managed key.
	ErrHIPAARequiresCMK = errors.New("a hipaa tenant must use a customer managed key: register and migrate to a CMK first")
	// ErrEditionForbidsCMK: the business edition may not use a customer
	// managed key.
	ErrEditionForbidsCMK = errors.New("the business edition cannot use a customer managed key")
	// ErrUnknownProvider: a cipherkey names a provider that is not configured.
	ErrUnknownProvider = errors.New("unknown key provider")
	// ErrStoreUnavailable: the database failed; the operation may succeed
	// when it is back. Nothing is served from a possibly stale copy instead.
	ErrStoreUnavailable = errors.New("storage unavailable")
)

// StoreError is a failure of the store (the database) during Op. It matches
// ErrStoreUnavailable and unwraps to the store's error, for logs.
type StoreError struct {
	Op  string
	Err error
}

func (e *StoreError) Error() string { return "keyring: " + e.Op + ": " + e.Err.Error() }

// Is makes errors.Is(err, ErrStoreUnavailable) hold.
func (e *StoreError) Is(target error) bool { return target == ErrStoreUnavailable }

// Unwrap returns the store's error.
func (e *StoreError) Unwrap() error { return e.Err }

func storeError(op string, err error) error { return &StoreError{Op: op, Err: err} }

// InputError is a request field that is not acceptable.
type InputError struct {
	Field  string
	Reason string
}

func (e *InputError) Error() string { return fmt.Sprintf("invalid %s: %s", e.Field, e.Reason) }

// TenantStateError refuses an operation because of the tenant's lifecycle
// state: the data plane of every state but active, and admin changes of a
// locked or destroyed tenant.
type TenantStateError struct {
	TenantID string
	State    TenantState
	// Reason says why the tenant is in State (what was found of its key,
	// where and when); Since is when it entered State. Both may be empty.
	Reason string
	Since  time.Time
}

func (e *TenantStateError) Error() string {
	msg := fmt.Sprintf("tenant %s is %s", e.TenantID, e.State)
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}

func stateError(t Tenant) *TenantStateError {
	return &TenantStateError{TenantID: t.ID, State: t.State, Reason: t.StateReason, Since: t.StateChangedAt}
}
