package keyring

import (
	"context"
	"errors"
	"time"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

// Store errors of the keyring's own. Implementations return them (possibly
// wrapped) so that the keyring can branch with errors.Is; besides them
// they return fault.ErrNotFound (no such tenant or cipherkey), fault.ErrExists
// (a tenant or cipherkey with that id exists already) and fault.ErrConflict
// (a compare-and-swap lost: nothing was written).
var (
	// ErrRetired: the tenant id belonged to a tenant that was deleted; ids
	// are never reused.
	ErrRetired = errors.New("tenant id retired")
	// ErrExhausted: a cipherkey has no uses left to reserve.
	ErrExhausted = errors.New("key uses exhausted")
)

// Store is the persistence the keyring needs. Implementations live in
// internal/store/...; all of them pass internal/store/storetest.
//
// Times are stored with at least microsecond precision and returned in UTC.
// Every method is safe for concurrent use, from several processes too.
type Store interface {
	// CreateTenant inserts t. Errors: fault.ErrExists.
	CreateTenant(ctx context.Context, t Tenant) error
	// Tenant returns one tenant. Errors: fault.ErrNotFound.
	Tenant(ctx context.Context, id string) (Tenant, error)
	// UpdateTenant replaces the Name, Edition, HIPAA and UpdatedAt of the
	// stored tenant t.ID: an admin's edit. It writes neither Provider,
	// which only SwitchTenantProvider changes, nor the lifecycle fields
	// (State, StateReason, StateChangedAt), which only SetTenantState
	// writes, so that an edit racing a provider switch or a revocation,
	// made by another replica too, cannot undo it. Errors: fault.ErrNotFound.
	UpdateTenant(ctx context.Context, t Tenant) error
	// SwitchTenantProvider makes to the tenant's provider, provided it is
	// still from, and sets UpdatedAt to at.
	// Errors: fault.ErrNotFound; fault.ErrConflict (the provider is not from; nothing
	// written).
	SwitchTenantProvider(ctx context.Context, id string, from, to kms.Ref, at time.Time) error
	// SetTenantState moves the tenant to state with reason, provided its
	// provider is still provider and it is not destroyed (a terminal
	// state). StateChangedAt becomes at when the state changes; a new
	// reason for the same state keeps it. It returns the tenant as it was
	// before, and whether anything was written.
	// Errors: fault.ErrNotFound; fault.ErrConflict when the provider is another or the
	// tenant is destroyed (nothing is written).
	SetTenantState(ctx context.Context, id string, provider kms.Ref, state TenantState, reason string, at time.Time) (prev Tenant, changed bool, err error)
	// ListTenants returns up to limit tenants with ids greater than after, in
	// id order.
	ListTenants(ctx context.Context, after string, limit int) ([]Tenant, error)
	// DeleteTenant removes the tenant, all of its cipherkeys and all of its
	// internal KMS key-encryption keys in one transaction. Errors: fault.ErrNotFound.
	DeleteTenant(ctx context.Context, id string) error
	// MarkKeysInUse records that this process holds, or will hold until
	// until, unwrapped data keys of the tenant, so that the key monitor
	// checks its key at the check interval rather than the idle one; a
	// tenant that was idle becomes due for a check at once. Marks only
	// move later. A tenant that does not exist is no error.
	MarkKeysInUse(ctx context.Context, tenantID string, until time.Time) error

	// InsertCipherKey stores an inactive cipherkey (k.Active is ignored and
	// stored false), provided k.Provider is still the tenant's provider:
	// a replica that has not yet seen a provider switch cannot add a key
	// wrapped by the provider the tenant left, which the migration that
	// switched it might already have counted out. It is ordered with
	// SwitchTenantProvider: once a switch has returned, no InsertCipherKey
	// under the old provider succeeds.
	// Errors: fault.ErrExists (same tenant and id), fault.ErrNotFound (no such tenant),
	// fault.ErrConflict (the tenant's provider is another; nothing written).
	InsertCipherKey(ctx context.Context, k CipherKey) error
	// CipherKey returns one cipherkey. Errors: fault.ErrNotFound.
	CipherKey(ctx context.Context, tenantID string, id envelope.KeyID) (CipherKey, error)
	// ActiveCipherKey returns the tenant's active encryption key.
	// Errors: fault.ErrNotFound when the tenant has none.
	ActiveCipherKey(ctx context.Context, tenantID string) (CipherKey, error)
	// ActivateCipherKey inserts next as the tenant's active encryption key and
	// retires prev, provided prev is still the active key (prev nil: provided
	// the tenant has no active key) and next.Provider is still the tenant's
	// provider (as for InsertCipherKey). Otherwise it returns fault.ErrConflict
	// and writes nothing. At no time does a tenant have two active keys.
	// Errors: fault.ErrConflict, fault.ErrExists, fault.ErrNotFound (no such tenant).
	ActivateCipherKey(ctx context.Context, tenantID string, prev *envelope.KeyID, next CipherKey) error
	// ReserveUses adds n to the key's UsesReserved if the sum stays at most
	// max, and returns the new sum. Errors: ErrExhausted, fault.ErrNotFound.
	ReserveUses(ctx context.Context, tenantID string, id envelope.KeyID, n, max int64) (int64, error)
	// CountCipherKeys returns how many of the tenant's cipherkeys each
	// provider (by Ref) wraps.
	CountCipherKeys(ctx context.Context, tenantID string) (map[kms.Ref]int, error)
}

// Tenant is one tenant of the platform as the keyring stores it.
type Tenant struct {
	ID      string
	Name    string
	Edition Edition
	HIPAA   bool
	State   TenantState
	// StateReason says why the tenant is in State, for its admins (empty
	// for a tenant that was always active); StateChangedAt is when it
	// entered State (zero if it never left active).
	StateReason    string
	StateChangedAt time.Time
	// Provider is the key provider that wraps new data keys.
	Provider  kms.Ref
	CreatedAt time.Time
	UpdatedAt time.Time
	// Quota is the tenant's own data-plane quota; the zero Quota means the
	// server's defaults.
	Quota Quota
}

// Quota limits a tenant's data-plane operations (a batch counts its
// items): Rate per second on average, Burst at once. The zero Quota
// stands for the server's defaults.
type Quota struct {
	Rate  float64
	Burst int
}

// Rewrap is a cipherkey's new wrapping, to apply only while the key is
// still wrapped as Old says (by a provider migration, or a rotation of the
// internal KMS's keys).
type Rewrap struct {
	Old        CipherKey
	Provider   kms.Ref
	KeyVersion string
	Wrapped    []byte
}

// CipherKey is a data key as stored: only in wrapped form.
type CipherKey struct {
	TenantID string
	ID       envelope.KeyID
	Purpose  Purpose
	// Active marks the one encryption key that new encryptions use.
	Active bool
	// Provider is the provider that wraps the key now, and
	// KeyVersion the provider's key version, so that reads work whatever the
	// tenant's current provider is.
	Provider   kms.Ref
	KeyVersion string
	Wrapped    []byte
	// ContextDigest is the SHA-256 of the canonical encryption context a data
	// key was issued for; empty for encryption keys, whose context binds each
	// ciphertext instead.
	ContextDigest []byte
	CreatedAt     time.Time
	// UsesReserved counts encryptions reserved by all replicas so far.
	UsesReserved int64
}

// Edition is a tenant's product edition.
type Edition int

// Editions. The zero value is invalid.
const (
	EditionUnknown Edition = iota
	// EditionEnterprise may bring a customer managed key.
	EditionEnterprise
	// EditionBusiness may not.
	EditionBusiness
)

func (e Edition) String() string {
	switch e {
	case EditionEnterprise:
		return "enterprise"
	case EditionBusiness:
		return "business"
	default:
		return "unknown"
	}
}

// ParseEdition parses the String form. Errors: ErrInvalidEdition.
func ParseEdition(s string) (Edition, error) {
	switch s {
	case "enterprise":
		return EditionEnterprise, nil
	case "business":
		return EditionBusiness, nil
	}
	return EditionUnknown, ErrInvalidEdition
}

// TenantState is where a tenant stands in the key lifecycle.
type TenantState int

// Tenant states. The zero value is invalid.
const (
	StateUnknown TenantState = iota
	// StateActive: the data plane works.
	StateActive
	// StateKeyUnavailable: the key is disabled or access is denied.
	StateKeyUnavailable
	// StateLocked: the key is pending deletion.
	StateLocked
	// StateDestroyed: the key or the tenant's keys are gone. Terminal.
	StateDestroyed
)

func (s TenantState) String() string {
	switch s {
	case StateActive:
		return "active"
	case StateKeyUnavailable:
		return "key-unavailable"
	case StateLocked:
		return "locked"
	case StateDestroyed:
		return "destroyed"
	default:
		return "unknown"
	}
}

// ParseTenantState parses the String form.
func ParseTenantState(s string) (TenantState, error) {
	for st := StateActive; st <= StateDestroyed; st++ {
		if st.String() == s {
			return st, nil
		}
	}
	return StateUnknown, errors.New("keyring: unknown tenant state " + s)
}

// Purpose says what a cipherkey is for.
type Purpose int

// Purposes. The zero value is invalid.
const (
	PurposeUnknown Purpose = iota
	// PurposeEncryption: a key the service itself encrypts payloads with.
	PurposeEncryption
	// PurposeDataKey: a key handed to a caller for local envelope encryption.
	PurposeDataKey
)

func (p Purpose) String() string {
	switch p {
	case PurposeEncryption:
		return "encryption"
	case PurposeDataKey:
		return "datakey"
	default:
		return "unknown"
	}
}

// ParsePurpose parses the String form.
func ParsePurpose(s string) (Purpose, error) {
	switch s {
	case "encryption":
		return PurposeEncryption, nil
	case "datakey":
		return PurposeDataKey, nil
	}
	return PurposeUnknown, errors.New("keyring: unknown purpose " + s)
}

// ErrInvalidEdition: an edition other than enterprise or business.
var ErrInvalidEdition = errors.New("edition must be enterprise or business")
