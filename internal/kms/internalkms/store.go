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
