package postgres

import (
	"context"
	"fmt"

	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
	"github.com/tenantcrypt/tenantcrypt/internal/store/internal/rowcodec"
)

// KEKs returns all of a tenant's KEK versions in ascending order; an empty
// slice if it has none.
func (s *Store) KEKs(ctx context.Context, tenantID string) ([]internalkms.KEK, error) {
	ks, err := queryRows(ctx, s.pool, codec.ScanKEK, `SELECT `+kekColumns+` FROM internal_keks WHERE tenant_id = $1 ORDER BY version`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("postgres: reading KEKs of tenant %q: %w", tenantID, err)
	}
	return ks, nil
}

// InsertKEK stores a new KEK version. Errors: internalkms.ErrKEKExists.
func (s *Store) InsertKEK(ctx context.Context, k internalkms.KEK) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO internal_keks (`+kekColumns+`) VALUES ($1, $2, $3, $4, $5)`, codec.KEKArgs(k)...)
	if code, _ := violation(err); code == uniqueViolation {
		return fmt.Errorf("postgres: KEK version %d of tenant %q: %w", k.Version, k.TenantID, internalkms.ErrKEKExists)
	} else if err != nil {
		return fmt.Errorf("postgres: inserting KEK version %d of tenant %q: %w", k.Version, k.TenantID, err)
	}
	return nil
}

// RewrapKEK replaces the wrapping of (tenantID, version) provided it is still
// wrapped by root version oldRoot. Errors: internalkms.ErrKEKConflict, also
// when there is no such KEK.
func (s *Store) RewrapKEK(ctx context.Context, tenantID string, version, oldRoot, newRoot uint32, wrapped []byte) error {
	tag, err := s.pool.Exec(ctx, `UPDATE internal_keks SET root_version = $1, wrapped = $2
		WHERE tenant_id = $3 AND version = $4 AND root_version = $5`,
		int64(newRoot), rowcodec.NotNil(wrapped), tenantID, int64(version), int64(oldRoot))
	if err != nil {
		return fmt.Errorf("postgres: rewrapping KEK version %d of tenant %q: %w", version, tenantID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: KEK version %d of tenant %q under root version %d: %w", version, tenantID, oldRoot, internalkms.ErrKEKConflict)
	}
	return nil
}

// KEKsNotWrappedBy returns up to limit KEKs of any tenant whose root version
// is not rootVersion, ordered by tenant and version.
func (s *Store) KEKsNotWrappedBy(ctx context.Context, rootVersion uint32, limit int) ([]internalkms.KEK, error) {
	if limit <= 0 {
		return []internalkms.KEK{}, nil
	}
	ks, err := queryRows(ctx, s.pool, codec.ScanKEK, `SELECT `+kekColumns+` FROM internal_keks WHERE root_version <> $1
		ORDER BY tenant_id, version LIMIT $2`, int64(rootVersion), limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: reading KEKs not wrapped by root version %d: %w", rootVersion, err)
	}
	return ks, nil
}
