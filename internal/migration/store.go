// Package migration moves a tenant's data keys from one key provider to
// another: it records the migration, makes the target wrap new keys at
// once, and rewraps every existing cipherkey in the background, resumably.
package migration

import (
	"context"
	"errors"
	"time"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

// Store is the persistence migrations need. Implementations live in
// internal/store/... and pass internal/store/storetest; they return
// fault.ErrNotFound, fault.ErrExists and fault.ErrConflict like the
// keyring's own store methods.
type Store interface {
	// InsertMigration records a new migration. Errors: ErrRunning (the
	// tenant has a migration that is not Completed), fault.ErrExists (same
	// id), fault.ErrNotFound (no such tenant).
	InsertMigration(ctx context.Context, m Migration) error
	// LatestMigration returns the tenant's most recent migration (by
	// InitiatedAt). Errors: fault.ErrNotFound when it never had one.
	LatestMigration(ctx context.Context, tenantID string) (Migration, error)
	// UpdateMigration replaces the stored migration's State, Done, Total,
	// CompletedAt, LastError and UpdatedAt. Errors: fault.ErrNotFound.
	UpdateMigration(ctx context.Context, m Migration) error
	// UnfinishedMigrations returns every migration, of any tenant, that is
	// not Completed (for a restarted process to resume them).
	UnfinishedMigrations(ctx context.Context) ([]Migration, error)
	// ProviderSwitchTimes returns when the tenant's provider ref last became
	// current (the CompletedAt of its latest Completed migration to ref) and
	// last stopped being current (of its latest Completed migration from
	// ref); the zero time for never. A tenant without migrations is no error.
	ProviderSwitchTimes(ctx context.Context, tenantID string, ref kms.Ref) (promoted, demoted time.Time, err error)

	// CipherKeysNotWrappedBy returns up to limit of the tenant's
	// cipherkeys whose Provider is not ref, with ids greater than after, in
	// id order (bytewise).
	CipherKeysNotWrappedBy(ctx context.Context, tenantID string, ref kms.Ref, after envelope.KeyID, limit int) ([]keyring.CipherKey, error)
	// RewrapCipherKey replaces the wrapping (Provider, KeyVersion, Wrapped)
	// of one cipherkey, provided it is still wrapped exactly as old says
	// (same Provider and Wrapped bytes). Errors: fault.ErrConflict (it
	// changed meanwhile; nothing written), fault.ErrNotFound.
	RewrapCipherKey(ctx context.Context, old keyring.CipherKey, provider kms.Ref, keyVersion string, wrapped []byte) error
	// RewrapCipherKeys applies many rewraps in one transaction, each under
	// the same condition as RewrapCipherKey; a cipherkey that changed or
	// vanished meanwhile is skipped. It returns how many were applied.
	RewrapCipherKeys(ctx context.Context, rs []Rewrap) (int, error)

	// Leases make one process (replica) at a time work on a migration.
	// A lease names its owner (an opaque replica id) and lapses ttl after
	// it was taken or last renewed, by the database's clock, so that the
	// replicas' own clocks do not matter.

	// ClaimMigration leases the unfinished migration id to owner for ttl,
	// provided nobody else holds an unlapsed lease on it (owner may claim
	// again what it holds), and returns it as stored.
	// Errors: ErrLeased (another owner's lease has not lapsed; nothing
	// written), fault.ErrNotFound (no such migration, or it is Completed).
	ClaimMigration(ctx context.Context, id, owner string, ttl time.Duration) (Migration, error)
	// RenewMigrationLease extends owner's lease on migration id to ttl from
	// now, provided owner still holds it (lapsed or not: nobody else has
	// claimed it since). Errors: ErrLeased (another owner claimed it, or it
	// was released or completed), fault.ErrNotFound.
	RenewMigrationLease(ctx context.Context, id, owner string, ttl time.Duration) error
	// ReleaseMigrationLease ends owner's lease on migration id, so that
	// another replica can claim it at once; a lease owner does not hold is
	// left alone (no error).
	ReleaseMigrationLease(ctx context.Context, id, owner string) error
	// UpdateLeasedMigration is UpdateMigration provided owner holds the
	// migration's lease, so that a worker that lost its lease cannot
	// overwrite the progress of the one that took over. Storing a
	// Completed m ends the lease. Errors: ErrLeased, fault.ErrNotFound.
	UpdateLeasedMigration(ctx context.Context, m Migration, owner string) error
}

// Rewrap is a cipherkey's new wrapping (keyring.Rewrap).
type Rewrap = keyring.Rewrap

// ErrRunning: the tenant has a migration that is not completed.
var ErrRunning = errors.New("a migration is already running")

// ErrLeased: another replica holds the migration's lease.
var ErrLeased = errors.New("the migration is leased to another replica")

// Migration is one change of a tenant's key provider.
type Migration struct {
	ID       string
	TenantID string
	// From and To are the providers the keys move from and to;
	// FromARN and ToARN what the key-provider API shows for them (an ARN,
	// or api.DefaultProviderARN), kept so that a deleted provider still
	// reads well in the migration's history.
	From, To       kms.Ref
	FromARN, ToARN string
	State          State
	// Total is how many cipherkeys had to be rewrapped when it started
	// (grown if more are found); Done how many are.
	Total, Done int64
	InitiatedAt time.Time
	CompletedAt time.Time // zero until Completed
	UpdatedAt   time.Time
	// LastError is the last failure of a batch ("" when the last batch
	// succeeded); the migration is retried.
	LastError string
}

// State is where a migration stands.
type State int

// States. The zero value is invalid.
const (
	StateUnknown State = iota
	StateNew
	StateInProgress
	StateCompleted
)

// String is the state as the key-provider API spells it.
func (s State) String() string {
	switch s {
	case StateNew:
		return "New"
	case StateInProgress:
		return "InProgress"
	case StateCompleted:
		return "Completed"
	}
	return "Unknown"
}

// ParseState parses the String form.
func ParseState(s string) (State, error) {
	for st := StateNew; st <= StateCompleted; st++ {
		if st.String() == s {
			return st, nil
		}
	}
	return StateUnknown, errors.New("migration: unknown state " + s)
}

// NotStartedError: the migration cannot start (412): the target is current
// already, fails its test, or the tenant may not leave its provider.
type NotStartedError struct{ Reason string }

func (e *NotStartedError) Error() string { return "migration not started: " + e.Reason }

// PrepareError: the migration could not be prepared (424), e.g. the source
// provider does not answer.
type PrepareError struct{ Err error }

func (e *PrepareError) Error() string { return "migration could not be prepared: " + e.Err.Error() }

// Unwrap returns the cause.
func (e *PrepareError) Unwrap() error { return e.Err }
