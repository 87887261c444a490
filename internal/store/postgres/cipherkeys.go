package postgres

import (
	"bytes"
	"context"
	"fmt"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/store/internal/rowcodec"
)

// InsertCipherKey stores an inactive cipherkey (k.Active is ignored),
// provided k.Provider is the tenant's provider, in one statement that reads
// the tenant row FOR SHARE: a concurrent UpdateTenant (FOR NO KEY UPDATE)
// either waits for this insert to commit, or commits first and this insert,
// re-checking the row as that left it, writes nothing.
// Errors: fault.ErrExists, fault.ErrNotFound (no such tenant),
// fault.ErrConflict (another provider).
func (s *Store) InsertCipherKey(ctx context.Context, k keyring.CipherKey) error {
	k.Active = false
	args, err := codec.CipherKeyArgs(k)
	if err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO cipherkeys (`+cipherKeyColumns+`)
		SELECT $1::text, $2::bytea, $3::text, $4::boolean, $5::text, $6::text, $7::bytea, $8::bytea, $9::timestamptz, $10::bigint
		FROM tenants WHERE id = $1 AND provider = $5 FOR SHARE`, args...)
	if err := insertCipherKeyError(k, err); err != nil {
		return err
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	return s.providerMismatch(ctx, k)
}

// providerMismatch explains why a cipherkey guarded by its tenant's
// provider was not written: no such tenant, or another provider.
func (s *Store) providerMismatch(ctx context.Context, k keyring.CipherKey) error {
	provider, err := codec.ScanRef(fmt.Sprintf("tenant %q", k.TenantID), s.pool.QueryRow(ctx, `SELECT provider FROM tenants WHERE id = $1`, k.TenantID))
	switch {
	case isNoRows(err):
		return fmt.Errorf("postgres: tenant %q: %w", k.TenantID, fault.ErrNotFound)
	case err != nil:
		return fmt.Errorf("postgres: inserting cipherkey %s of tenant %q: %w", k.ID, k.TenantID, err)
	}
	return fmt.Errorf("postgres: cipherkey %s of tenant %q is wrapped by %q, but the tenant's provider is %q: %w",
		k.ID, k.TenantID, k.Provider, provider, fault.ErrConflict)
}

func insertCipherKeyError(k keyring.CipherKey, err error) error {
	if err == nil {
		return nil
	}
	switch code, constraint := violation(err); {
	case code == uniqueViolation && constraint == oneActiveIndex:
		// Another key became active first.
		return fmt.Errorf("postgres: activating cipherkey %s of tenant %q: %w", k.ID, k.TenantID, fault.ErrConflict)
	case code == uniqueViolation:
		return fmt.Errorf("postgres: cipherkey %s of tenant %q: %w", k.ID, k.TenantID, fault.ErrExists)
	case code == foreignKeyViolation:
		return fmt.Errorf("postgres: tenant %q: %w", k.TenantID, fault.ErrNotFound)
	}
	return fmt.Errorf("postgres: inserting cipherkey %s of tenant %q: %w", k.ID, k.TenantID, err)
}

// CipherKey returns one cipherkey. Errors: fault.ErrNotFound.
func (s *Store) CipherKey(ctx context.Context, tenantID string, id envelope.KeyID) (keyring.CipherKey, error) {
	k, err := codec.ScanCipherKey(s.pool.QueryRow(ctx,
		`SELECT `+cipherKeyColumns+` FROM cipherkeys WHERE tenant_id = $1 AND id = $2`, tenantID, id[:]))
	switch {
	case isNoRows(err):
		return keyring.CipherKey{}, fmt.Errorf("postgres: cipherkey %s of tenant %q: %w", id, tenantID, fault.ErrNotFound)
	case err != nil:
		return keyring.CipherKey{}, fmt.Errorf("postgres: reading cipherkey %s of tenant %q: %w", id, tenantID, err)
	}
	return k, nil
}

// ActiveCipherKey returns the tenant's active encryption key.
// Errors: fault.ErrNotFound when the tenant has none.
func (s *Store) ActiveCipherKey(ctx context.Context, tenantID string) (keyring.CipherKey, error) {
	k, err := codec.ScanCipherKey(s.pool.QueryRow(ctx,
		`SELECT `+cipherKeyColumns+` FROM cipherkeys WHERE tenant_id = $1 AND active`, tenantID))
	switch {
	case isNoRows(err):
		return keyring.CipherKey{}, fmt.Errorf("postgres: active cipherkey of tenant %q: %w", tenantID, fault.ErrNotFound)
	case err != nil:
		return keyring.CipherKey{}, fmt.Errorf("postgres: reading active cipherkey of tenant %q: %w", tenantID, err)
	}
	return k, nil
}

// ActivateCipherKey inserts next as the tenant's active encryption key and
// retires prev, provided prev is still the active key (prev nil: provided the
// tenant has no active key), in one transaction that first locks the tenant
// row: concurrent activations of one tenant, from any replica, run one after
// the other, and each sees the key its predecessor activated; a key wrapped
// by another provider than the tenant's is refused. next.TenantID
// must be tenantID and next.Purpose keyring.PurposeEncryption.
// Errors: fault.ErrConflict, fault.ErrExists, fault.ErrNotFound (no such
// tenant); on any error nothing is written.
func (s *Store) ActivateCipherKey(ctx context.Context, tenantID string, prev *envelope.KeyID, next keyring.CipherKey) error {
	if next.TenantID != tenantID {
		return fmt.Errorf("postgres: activating cipherkey %s: it belongs to tenant %q, not %q", next.ID, next.TenantID, tenantID)
	}
	if next.Purpose != keyring.PurposeEncryption {
		return fmt.Errorf("postgres: activating cipherkey %s: purpose %v, only encryption keys can be active", next.ID, next.Purpose)
	}
	next.Active = true
	args, err := codec.CipherKeyArgs(next)
	if err != nil {
		return err
	}

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: activating cipherkey %s of tenant %q: %w", next.ID, tenantID, err)
	}
	defer tx.Rollback(ctx)

	// FOR NO KEY UPDATE, not FOR UPDATE: activations of the tenant conflict
	// with each other and with a switch of its provider (UpdateTenant), but
	// inserts of other cipherkeys, whose foreign key check takes FOR KEY
	// SHARE on this row, go on.
	provider, err := codec.ScanRef(fmt.Sprintf("tenant %q", tenantID), tx.QueryRow(ctx, `SELECT provider FROM tenants WHERE id = $1 FOR NO KEY UPDATE`, tenantID))
	switch {
	case isNoRows(err):
		return fmt.Errorf("postgres: tenant %q: %w", tenantID, fault.ErrNotFound)
	case err != nil:
		return fmt.Errorf("postgres: activating cipherkey %s of tenant %q: %w", next.ID, tenantID, err)
	}
	if provider != next.Provider {
		return fmt.Errorf("postgres: activating cipherkey %s of tenant %q: wrapped by %q, but the tenant's provider is %q: %w",
			next.ID, tenantID, next.Provider, provider, fault.ErrConflict)
	}

	// Read committed: this statement's snapshot is taken after the lock, so
	// it sees what the previous holder committed.
	var current []byte
	err = tx.QueryRow(ctx, `SELECT id FROM cipherkeys WHERE tenant_id = $1 AND active`, tenantID).Scan(&current)
	switch {
	case isNoRows(err):
		current = nil
	case err != nil:
		return fmt.Errorf("postgres: activating cipherkey %s of tenant %q: %w", next.ID, tenantID, err)
	}
	if (prev == nil) != (current == nil) || (prev != nil && !bytes.Equal(prev[:], current)) {
		return fmt.Errorf("postgres: activating cipherkey %s of tenant %q: %w", next.ID, tenantID, fault.ErrConflict)
	}

	if prev != nil {
		if _, err := tx.Exec(ctx, `UPDATE cipherkeys SET active = false WHERE tenant_id = $1 AND id = $2`, tenantID, prev[:]); err != nil {
			return fmt.Errorf("postgres: retiring cipherkey %s of tenant %q: %w", *prev, tenantID, err)
		}
	}
	_, err = tx.Exec(ctx, `INSERT INTO cipherkeys (`+cipherKeyColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, args...)
	if err := insertCipherKeyError(next, err); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: activating cipherkey %s of tenant %q: %w", next.ID, tenantID, err)
	}
	return nil
}

// ReserveUses adds n to the key's UsesReserved if the sum stays at most max,
// and returns the new sum, in one UPDATE: the row lock serialises concurrent
// reservations and each re-checks the bound on the latest value. n must not
// be negative. Errors: keyring.ErrExhausted, fault.ErrNotFound.
func (s *Store) ReserveUses(ctx context.Context, tenantID string, id envelope.KeyID, n, max int64) (int64, error) {
	if n < 0 {
		return 0, fmt.Errorf("postgres: reserving %d uses of cipherkey %s: negative", n, id)
	}
	if max >= n {
		// uses_reserved <= max - n is uses_reserved + n <= max without the
		// bigint overflow.
		var total int64
		err := s.pool.QueryRow(ctx, `UPDATE cipherkeys SET uses_reserved = uses_reserved + $1
			WHERE tenant_id = $2 AND id = $3 AND uses_reserved <= $4
			RETURNING uses_reserved`, n, tenantID, id[:], max-n).Scan(&total)
		if err == nil {
			return total, nil
		}
		if !isNoRows(err) {
			return 0, fmt.Errorf("postgres: reserving uses of cipherkey %s of tenant %q: %w", id, tenantID, err)
		}
	}
	var one int
	err := s.pool.QueryRow(ctx, `SELECT 1 FROM cipherkeys WHERE tenant_id = $1 AND id = $2`, tenantID, id[:]).Scan(&one)
	switch {
	case isNoRows(err):
		return 0, fmt.Errorf("postgres: cipherkey %s of tenant %q: %w", id, tenantID, fault.ErrNotFound)
	case err != nil:
		return 0, fmt.Errorf("postgres: reserving uses of cipherkey %s of tenant %q: %w", id, tenantID, err)
	}
	return 0, fmt.Errorf("postgres: cipherkey %s of tenant %q: %w", id, tenantID, keyring.ErrExhausted)
}

// CountCipherKeys returns how many of the tenant's cipherkeys each provider
// (by Ref) wraps; an empty map for a tenant without keys or no tenant.
func (s *Store) CountCipherKeys(ctx context.Context, tenantID string) (map[kms.Ref]int, error) {
	counts, err := queryRows(ctx, s.pool, rowcodec.ScanRefCount, `SELECT provider, COUNT(*) FROM cipherkeys WHERE tenant_id = $1 GROUP BY provider`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("postgres: counting cipherkeys of tenant %q: %w", tenantID, err)
	}
	return rowcodec.CountMap(counts), nil
}
