package storetest

import (
	"context"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

func (r *roundRobin) CountKEKsByRootVersion(ctx context.Context) (map[uint32]int, error) {
	return r.next().CountKEKsByRootVersion(ctx)
}

func (r *roundRobin) CipherKeysWrappedByOtherVersion(ctx context.Context, tenantID string, ref kms.Ref, keyVersion string, after envelope.KeyID, limit int) ([]keyring.CipherKey, error) {
	return r.next().CipherKeysWrappedByOtherVersion(ctx, tenantID, ref, keyVersion, after, limit)
}
