package internalkms

import (
	"context"
	"errors"
	"time"
)

// Store errors.
var (
	// ErrKEKExists: a KEK with that tenant and version already exists.
	ErrKEKExists = errors.New("kek version already exists")
	// ErrKEKConflict: the KEK was rewrapped or removed by another writer.
	ErrKEKConflict = errors.New("kek changed concurrently")
)

// Store keeps tenants' key-encryption keys, each wrapped by a root key
// version. The root key itself is never stored. Implementations live in
// internal/store/... and pass internal/store/storetest.
type Store interface {
	// KEKs returns all of a tenant's KEK versions in ascending order; an
	// empty slice if it has none.
	KEKs(ctx context.Context, tenantID string) ([]KEK, error)
	// InsertKEK stores a new KEK version. Errors: ErrKEKExists.
	InsertKEK(ctx context.Context, k KEK) error
	// RewrapKEK replaces the wrapping of (tenantID, version) provided it is
	// still wrapped by root version oldRoot. Errors: ErrKEKConflict.
	RewrapKEK(ctx context.Context, tenantID string, version, oldRoot, newRoot uint32, wrapped []byte) error
	// KEKsNotWrappedBy returns up to limit KEKs of any tenant whose root
	// version is not rootVersion.
	KEKsNotWrappedBy(ctx context.Context, rootVersion uint32, limit int) ([]KEK, error)
	// CountKEKsByRootVersion counts the KEKs of every tenant by their root
	// version; versions that wrap none are absent.
	CountKEKsByRootVersion(ctx context.Context) (map[uint32]int, error)
}

// KEK is one version of a tenant's key-encryption key, sealed by a root key
// version with the tenant id and versions as associated data.
type KEK struct {
	TenantID    string
	Version     uint32
	RootVersion uint32
	Wrapped     []byte
	CreatedAt   time.Time
}

// RootRecord is what the database records about where the root key is, so
// that every process sharing the database agrees on it: which HSM key
// objects hold the root key versions and which version is current. The
// key itself is never recorded. The zero RootRecord (Source "") is a
// database that records nothing: its root keys are a key file or
// TENANTCRYPT_ROOT_KEYS.
type RootRecord struct {
	// Source is RootSourcePKCS11, RootSourceFile (after a migration back
	// from an HSM), or "" (nothing recorded).
	Source string
	// Current is the root key version that seals new KEKs.
	Current uint32
	// Token and KeyLabel name the PKCS#11 token and the label of the key
	// objects holding the versions (CKA_ID = the version number).
	Token, KeyLabel string
	UpdatedAt       time.Time
}

// Root key sources of a RootRecord.
const (
	RootSourceFile   = "file"
	RootSourcePKCS11 = "pkcs11"
)

// RootRecordStore keeps the RootRecord. Implementations live in
// internal/store/... and pass internal/store/storetest.
type RootRecordStore interface {
	// RootRecord returns the record; the zero RootRecord if there is none.
	RootRecord(ctx context.Context) (RootRecord, error)
	// UpdateRootRecord calls fn with the record (the zero RootRecord if
	// none) while holding the database's lock on it, so that concurrent
	// updaters, in this process or others, run one after another, and
	// stores what fn returns. If fn fails nothing is stored and its error
	// is returned as is; if it returns its argument unchanged nothing is
	// written either. It returns the record as stored.
	UpdateRootRecord(ctx context.Context, fn func(RootRecord) (RootRecord, error)) (RootRecord, error)
}
