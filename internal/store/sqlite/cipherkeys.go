package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/store/internal/rowcodec"
)

// InsertCipherKey stores an inactive cipherkey (k.Active is ignored),
// provided k.Provider is the tenant's provider, in one statement (writes are
// serialised, so UpdateTenant comes wholly before or after it).
// Errors: fault.ErrExists, fault.ErrNotFound (no such tenant),
// fault.ErrConflict (another provider).
func (s *Store) InsertCipherKey(ctx context.Context, k keyring.CipherKey) error {
	k.Active = false
	args, err := codec.CipherKeyArgs(k)
	if err != nil {
		return err
	}
	args = append(args, k.TenantID, rowcodec.Ref(k.Provider))
	res, err := s.w.ExecContext(ctx, `INSERT INTO cipherkeys (`+cipherKeyColumns+`)
		SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM tenants WHERE id = ? AND provider = ?)`, args...)
	if err := insertCipherKeyError(k, err); err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: inserting cipherkey %s of tenant %q: %w", k.ID, k.TenantID, err)
	} else if n == 1 {
		return nil
	}
	provider, err := codec.ScanRef(fmt.Sprintf("tenant %q", k.TenantID), s.r.QueryRowContext(ctx, `SELECT provider FROM tenants WHERE id = ?`, k.TenantID))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlite: tenant %q: %w", k.TenantID, fault.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: inserting cipherkey %s of tenant %q: %w", k.ID, k.TenantID, err)
	}
	return fmt.Errorf("sqlite: cipherkey %s of tenant %q is wrapped by %q, but the tenant's provider is %q: %w",
		k.ID, k.TenantID, k.Provider, provider, fault.ErrConflict)
}

func insertCipherKeyError(k keyring.CipherKey, err error) error {
	switch {
	case err == nil:
		return nil
	case isPrimaryKeyViolation(err):
		return fmt.Errorf("sqlite: cipherkey %s of tenant %q: %w", k.ID, k.TenantID, fault.ErrExists)
	case isForeignKeyViolation(err):
		return fmt.Errorf("sqlite: tenant %q: %w", k.TenantID, fault.ErrNotFound)
	case isUniqueViolation(err):
		// cipherkeys_one_active: another key became active first.
		return fmt.Errorf("sqlite: activating cipherkey %s of tenant %q: %w", k.ID, k.TenantID, fault.ErrConflict)
	}
	return fmt.Errorf("sqlite: inserting cipherkey %s of tenant %q: %w", k.ID, k.TenantID, err)
}

// CipherKey returns one cipherkey. Errors: fault.ErrNotFound.
func (s *Store) CipherKey(ctx context.Context, tenantID string, id envelope.KeyID) (keyring.CipherKey, error) {
	k, err := codec.ScanCipherKey(s.r.QueryRowContext(ctx,
		`SELECT `+cipherKeyColumns+` FROM cipherkeys WHERE tenant_id = ? AND id = ?`, tenantID, id[:]))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return keyring.CipherKey{}, fmt.Errorf("sqlite: cipherkey %s of tenant %q: %w", id, tenantID, fault.ErrNotFound)
	case err != nil:
		return keyring.CipherKey{}, fmt.Errorf("sqlite: reading cipherkey %s of tenant %q: %w", id, tenantID, err)
	}
	return k, nil
}

// ActiveCipherKey returns the tenant's active encryption key.
// Errors: fault.ErrNotFound when the tenant has none.
func (s *Store) ActiveCipherKey(ctx context.Context, tenantID string) (keyring.CipherKey, error) {
	k, err := codec.ScanCipherKey(s.r.QueryRowContext(ctx,
		`SELECT `+cipherKeyColumns+` FROM cipherkeys WHERE tenant_id = ? AND active = 1`, tenantID))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return keyring.CipherKey{}, fmt.Errorf("sqlite: active cipherkey of tenant %q: %w", tenantID, fault.ErrNotFound)
	case err != nil:
		return keyring.CipherKey{}, fmt.Errorf("sqlite: reading active cipherkey of tenant %q: %w", tenantID, err)
	}
	return k, nil
}

// ActivateCipherKey inserts next as the tenant's active encryption key and
// retires prev, provided prev is still the active key (prev nil: provided the
// tenant has no active key) and next.Provider is the tenant's provider, in
// one IMMEDIATE transaction: concurrent callers queue on the write lock, so
// the checks and the swap see the same state.
// next.TenantID must be tenantID and next.Purpose keyring.PurposeEncryption.
// Errors: fault.ErrConflict, fault.ErrExists, fault.ErrNotFound (no such
// tenant); on any error nothing is written.
func (s *Store) ActivateCipherKey(ctx context.Context, tenantID string, prev *envelope.KeyID, next keyring.CipherKey) error {
	if next.TenantID != tenantID {
		return fmt.Errorf("sqlite: activating cipherkey %s: it belongs to tenant %q, not %q", next.ID, next.TenantID, tenantID)
	}
	if next.Purpose != keyring.PurposeEncryption {
		return fmt.Errorf("sqlite: activating cipherkey %s: purpose %v, only encryption keys can be active", next.ID, next.Purpose)
	}
	next.Active = true
	args, err := codec.CipherKeyArgs(next)
	if err != nil {
		return err
	}

	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: activating cipherkey %s of tenant %q: %w", next.ID, tenantID, err)
	}
	defer tx.Rollback()

	provider, err := codec.ScanRef(fmt.Sprintf("tenant %q", tenantID), tx.QueryRowContext(ctx, `SELECT provider FROM tenants WHERE id = ?`, tenantID))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlite: tenant %q: %w", tenantID, fault.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: activating cipherkey %s of tenant %q: %w", next.ID, tenantID, err)
	}
	if provider != next.Provider {
		return fmt.Errorf("sqlite: activating cipherkey %s of tenant %q: wrapped by %q, but the tenant's provider is %q: %w",
			next.ID, tenantID, next.Provider, provider, fault.ErrConflict)
	}

	var current []byte
	err = tx.QueryRowContext(ctx, `SELECT id FROM cipherkeys WHERE tenant_id = ? AND active = 1`, tenantID).Scan(&current)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		current = nil
	case err != nil:
		return fmt.Errorf("sqlite: activating cipherkey %s of tenant %q: %w", next.ID, tenantID, err)
	}
	if (prev == nil) != (current == nil) || (prev != nil && !bytes.Equal(prev[:], current)) {
		return fmt.Errorf("sqlite: activating cipherkey %s of tenant %q: %w", next.ID, tenantID, fault.ErrConflict)
	}

	if prev != nil {
		if _, err := tx.ExecContext(ctx, `UPDATE cipherkeys SET active = 0 WHERE tenant_id = ? AND id = ?`, tenantID, prev[:]); err != nil {
			return fmt.Errorf("sqlite: retiring cipherkey %s of tenant %q: %w", *prev, tenantID, err)
		}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO cipherkeys (`+cipherKeyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...)
	if err := insertCipherKeyError(next, err); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: activating cipherkey %s of tenant %q: %w", next.ID, tenantID, err)
	}
	return nil
}

// ReserveUses adds n to the key's UsesReserved if the sum stays at most max,
// and returns the new sum, in one UPDATE. n must not be negative.
// Errors: keyring.ErrExhausted, fault.ErrNotFound.
func (s *Store) ReserveUses(ctx context.Context, tenantID string, id envelope.KeyID, n, max int64) (int64, error) {
	if n < 0 {
		return 0, fmt.Errorf("sqlite: reserving %d uses of cipherkey %s: negative", n, id)
	}
	if max >= n {
		// uses_reserved <= max - n is uses_reserved + n <= max without the
		// overflow (SQLite would turn an overflowing sum into a REAL).
		var total int64
		err := s.w.QueryRowContext(ctx, `UPDATE cipherkeys SET uses_reserved = uses_reserved + ?
			WHERE tenant_id = ? AND id = ? AND uses_reserved <= ?
			RETURNING uses_reserved`, n, tenantID, id[:], max-n).Scan(&total)
		if err == nil {
			return total, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return 0, fmt.Errorf("sqlite: reserving uses of cipherkey %s of tenant %q: %w", id, tenantID, err)
		}
	}
	var one int
	err := s.r.QueryRowContext(ctx, `SELECT 1 FROM cipherkeys WHERE tenant_id = ? AND id = ?`, tenantID, id[:]).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, fmt.Errorf("sqlite: cipherkey %s of tenant %q: %w", id, tenantID, fault.ErrNotFound)
	case err != nil:
		return 0, fmt.Errorf("sqlite: reserving uses of cipherkey %s of tenant %q: %w", id, tenantID, err)
	}
	return 0, fmt.Errorf("sqlite: cipherkey %s of tenant %q: %w", id, tenantID, keyring.ErrExhausted)
}

// CountCipherKeys returns how many of the tenant's cipherkeys each provider
// (by Ref) wraps; an empty map for a tenant without keys or no tenant.
func (s *Store) CountCipherKeys(ctx context.Context, tenantID string) (map[kms.Ref]int, error) {
	counts, err := queryRows(ctx, s.r, rowcodec.ScanRefCount, `SELECT provider, COUNT(*) FROM cipherkeys WHERE tenant_id = ? GROUP BY provider`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: counting cipherkeys of tenant %q: %w", tenantID, err)
	}
	return rowcodec.CountMap(counts), nil
}
