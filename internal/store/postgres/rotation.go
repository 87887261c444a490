package postgres

import (
	"context"
	"fmt"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/store/internal/rowcodec"
)

// This file holds what the internal KMS's rotations need beyond the KEK
// methods of keks.go (package rotation and internalkms.Service's status).

// CountKEKsByRootVersion counts the KEKs of every tenant by their root
// version (using internal_keks_root_version); versions that wrap none are
// absent.
func (s *Store) CountKEKsByRootVersion(ctx context.Context) (map[uint32]int, error) {
	counts, err := queryRows(ctx, s.pool, rowcodec.ScanRootVersionCount, `SELECT root_version, count(*) FROM internal_keks GROUP BY root_version`)
	if err != nil {
		return nil, fmt.Errorf("postgres: counting KEKs by root version: %w", err)
	}
	return rowcodec.CountMap(counts), nil
}

// CipherKeysWrappedByOtherVersion returns up to limit of the tenant's
// cipherkeys whose Provider is ref and whose KeyVersion is not keyVersion,
// with ids greater than after, in id (byte) order; an empty slice if there
// is none. bytea compares bytewise, as the primary key orders.
func (s *Store) CipherKeysWrappedByOtherVersion(ctx context.Context, tenantID string, ref kms.Ref, keyVersion string, after envelope.KeyID, limit int) ([]keyring.CipherKey, error) {
	ks := []keyring.CipherKey{}
	if limit <= 0 {
		return ks, nil
	}
	ks, err := queryRows(ctx, s.pool, codec.ScanCipherKey, `SELECT `+cipherKeyColumns+` FROM cipherkeys
		WHERE tenant_id = $1 AND id > $2 AND provider = $3 AND key_version <> $4 ORDER BY id LIMIT $5`,
		tenantID, after[:], rowcodec.Ref(ref), keyVersion, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: reading cipherkeys of tenant %q wrapped by %q at another version than %q: %w", tenantID, ref, keyVersion, err)
	}
	return ks, nil
}
