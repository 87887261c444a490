// Package fault holds the errors that several of tenantcrypt's packages
// share: what a store answers (not found, exists, a lost compare-and-swap),
// a failed store, and a request field that is not acceptable.
//
// A package's own errors stay with it (the keyring's tenant states, the
// KMS's refusals, the key-provider and migration errors); only what more
// than one package returns or branches on lives here. It imports nothing
// but the standard library, so that every package may use it.
//
// The server turns these errors into statuses, in one table; nothing here
// knows about HTTP.
package fault

import (
	"errors"
	"fmt"
)

// Sentinels callers branch on with errors.Is. Stores return them (possibly
// wrapped); services pass them on or translate them into their own.
var (
	// ErrNotFound: no such record (tenant, cipherkey, migration, key
	// provider, audit event…).
	ErrNotFound = errors.New("not found")
	// ErrExists: a record with that id already exists.
	ErrExists = errors.New("already exists")
	// ErrConflict: a compare-and-swap lost, because another writer changed
	// the record first. Nothing was written.
	ErrConflict = errors.New("concurrent update")
	// ErrStoreUnavailable: the database failed; the operation may succeed
	// when it is back. Nothing is served from a possibly stale copy instead.
	// A *StoreError matches it.
	ErrStoreUnavailable = errors.New("storage unavailable")
)

// StoreError is a failure of the store (the database) during Op. It matches
// ErrStoreUnavailable and unwraps to the store's error, for logs; its text
// never reaches a client.
type StoreError struct {
	// Op says what was being done, e.g. "reading tenant".
	Op  string
	Err error
}

func (e *StoreError) Error() string { return "store: " + e.Op + ": " + e.Err.Error() }

// Is makes errors.Is(err, ErrStoreUnavailable) hold.
func (e *StoreError) Is(target error) bool { return target == ErrStoreUnavailable }

// Unwrap returns the store's error.
func (e *StoreError) Unwrap() error { return e.Err }

// InputError is a request field that is not acceptable. Its text is
// public: it tells the caller what to send instead.
type InputError struct {
	// Field is the field's name as the API spells it.
	Field string
	// Reason says what the field must be, e.g. "must be at most 64 bytes".
	Reason string
}

func (e *InputError) Error() string { return fmt.Sprintf("invalid %s: %s", e.Field, e.Reason) }
