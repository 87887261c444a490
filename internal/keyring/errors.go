package keyring

import (
	"errors"
	"fmt"
	"time"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
)

// Errors the keyring's callers branch on. KMS failures arrive as the
// sentinels of package kms; store failures as *fault.StoreError, bad input
// as *fault.InputError (package fault holds what several packages share).
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
)

func storeError(op string, err error) error { return &fault.StoreError{Op: op, Err: err} }

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
