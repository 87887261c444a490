package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/store/internal/rowcodec"
)

// CreateTenant inserts t. Errors: fault.ErrExists, keyring.ErrRetired
// (the id was a deleted tenant's: the trigger tenant_ids_retired refuses it).
func (s *Store) CreateTenant(ctx context.Context, t keyring.Tenant) error {
	args, err := codec.TenantArgs(t)
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO tenants (`+tenantColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...)
	switch {
	case isPrimaryKeyViolation(err):
		return fmt.Errorf("sqlite: tenant %q: %w", t.ID, fault.ErrExists)
	case isTriggerAbort(err):
		return fmt.Errorf("sqlite: tenant %q: %w", t.ID, keyring.ErrRetired)
	case err != nil:
		return fmt.Errorf("sqlite: creating tenant %q: %w", t.ID, err)
	}
	return nil
}

// Tenant returns one tenant. Errors: fault.ErrNotFound.
func (s *Store) Tenant(ctx context.Context, id string) (keyring.Tenant, error) {
	t, err := codec.ScanTenant(s.r.QueryRowContext(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = ?`, id))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return keyring.Tenant{}, fmt.Errorf("sqlite: tenant %q: %w", id, fault.ErrNotFound)
	case err != nil:
		return keyring.Tenant{}, fmt.Errorf("sqlite: reading tenant %q: %w", id, err)
	}
	return t, nil
}

// UpdateTenant replaces the Name, Edition, HIPAA, Quota and UpdatedAt of the
// stored tenant t.ID; the other fields it neither writes nor checks.
// Errors: fault.ErrNotFound.
func (s *Store) UpdateTenant(ctx context.Context, t keyring.Tenant) error {
	edition, err := codec.Edition(t)
	if err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, `UPDATE tenants
		SET name = ?, edition = ?, hipaa = ?, updated_at = ?, quota_rate = ?, quota_burst = ?
		WHERE id = ?`,
		t.Name, edition, t.HIPAA, micros(t.UpdatedAt), t.Quota.Rate, t.Quota.Burst, t.ID)
	if err != nil {
		return fmt.Errorf("sqlite: updating tenant %q: %w", t.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: updating tenant %q: %w", t.ID, err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: tenant %q: %w", t.ID, fault.ErrNotFound)
	}
	return nil
}

// SwitchTenantProvider makes to the tenant's provider, provided it is
// still from, in one UPDATE. Errors: fault.ErrNotFound,
// fault.ErrConflict.
func (s *Store) SwitchTenantProvider(ctx context.Context, id string, from, to kms.Ref, at time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE tenants SET provider = ?, updated_at = ? WHERE id = ? AND provider = ?`, rowcodec.Ref(to), micros(at), id, rowcodec.Ref(from))
	if err != nil {
		return fmt.Errorf("sqlite: switching the provider of tenant %q: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: switching the provider of tenant %q: %w", id, err)
	} else if n == 1 {
		return nil
	}
	provider, err := codec.ScanRef(fmt.Sprintf("tenant %q", id), s.r.QueryRowContext(ctx, `SELECT provider FROM tenants WHERE id = ?`, id))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlite: tenant %q: %w", id, fault.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: switching the provider of tenant %q: %w", id, err)
	}
	return fmt.Errorf("sqlite: switching the provider of tenant %q from %q: it is %q: %w", id, from, provider, fault.ErrConflict)
}

// SetTenantState moves the tenant to state with reason, provided its
// provider is still provider and it is not destroyed, in one IMMEDIATE
// transaction: concurrent callers queue on the write lock, so that each
// compares with what its predecessor wrote. StateChangedAt becomes at when
// the state changes; UpdatedAt, the time of the last admin edit, stays. It
// returns the tenant as it was before, and whether anything was written.
// Errors: fault.ErrNotFound; fault.ErrConflict (another provider, or
// destroyed; nothing written).
func (s *Store) SetTenantState(ctx context.Context, id string, provider kms.Ref, state keyring.TenantState, reason string, at time.Time) (keyring.Tenant, bool, error) {
	encoded, err := codec.TenantState(id, state)
	if err != nil {
		return keyring.Tenant{}, false, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return keyring.Tenant{}, false, fmt.Errorf("sqlite: setting state of tenant %q: %w", id, err)
	}
	defer tx.Rollback()
	prev, err := codec.ScanTenant(tx.QueryRowContext(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = ?`, id))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return keyring.Tenant{}, false, fmt.Errorf("sqlite: tenant %q: %w", id, fault.ErrNotFound)
	case err != nil:
		return keyring.Tenant{}, false, fmt.Errorf("sqlite: setting state of tenant %q: %w", id, err)
	}
	switch {
	case prev.State == keyring.StateDestroyed:
		return prev, false, fmt.Errorf("sqlite: tenant %q is destroyed: %w", id, fault.ErrConflict)
	case prev.Provider != provider:
		return prev, false, fmt.Errorf("sqlite: tenant %q: provider is %q, not %q: %w", id, prev.Provider, provider, fault.ErrConflict)
	case prev.State == state && prev.StateReason == reason:
		return prev, false, nil
	}
	changedAt := prev.StateChangedAt
	if prev.State != state {
		changedAt = at
	}
	if _, err := tx.ExecContext(ctx, `UPDATE tenants SET state = ?, state_reason = ?, state_changed_at = ? WHERE id = ?`,
		encoded, reason, nullMicros(changedAt), id); err != nil {
		return keyring.Tenant{}, false, fmt.Errorf("sqlite: setting state of tenant %q: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return keyring.Tenant{}, false, fmt.Errorf("sqlite: setting state of tenant %q: %w", id, err)
	}
	return prev, true, nil
}

// ListTenants returns up to limit tenants with ids greater than after, in id
// (byte) order.
func (s *Store) ListTenants(ctx context.Context, after string, limit int) ([]keyring.Tenant, error) {
	ts := []keyring.Tenant{}
	if limit <= 0 {
		return ts, nil
	}
	ts, err := queryRows(ctx, s.r, codec.ScanTenant, `SELECT `+tenantColumns+` FROM tenants WHERE id > ? ORDER BY id LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: listing tenants: %w", err)
	}
	return ts, nil
}

// DeleteTenant removes the tenant, its cipherkeys, its key providers, its
// migrations, its key checks and its internal KMS key-encryption keys in one
// transaction, and retires its id (trigger tenant_ids_retire), then
// checkpoints the
// WAL so that the deleted rows leave the files too (secure_delete has zeroed
// them in the pages). The tenant's audit chain stays: the log outlives the
// tenant. Errors: fault.ErrNotFound, and then nothing is deleted.
func (s *Store) DeleteTenant(ctx context.Context, id string) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: deleting tenant %q: %w", id, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM tenants WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("sqlite: deleting tenant %q: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: deleting tenant %q: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: tenant %q: %w", id, fault.ErrNotFound)
	}
	// ON DELETE CASCADE has removed the cipherkeys, key providers,
	// migrations and key checks already; delete them explicitly too, so that
	// shredding does not depend on the foreign_keys pragma of the connection.
	for _, q := range []string{
		`DELETE FROM cipherkeys WHERE tenant_id = ?`,
		`DELETE FROM key_providers WHERE tenant_id = ?`,
		`DELETE FROM migrations WHERE tenant_id = ?`,
		`DELETE FROM key_checks WHERE tenant_id = ?`,
		`DELETE FROM internal_keks WHERE tenant_id = ?`,
	} {
		if _, err := tx.ExecContext(ctx, q, id); err != nil {
			return fmt.Errorf("sqlite: deleting tenant %q: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: deleting tenant %q: %w", id, err)
	}
	// Best effort: the old page images with the wrapped keys stay in the WAL
	// until a checkpoint copies the zeroed pages into the database and
	// TRUNCATE empties the WAL. A long reader makes it wait up to
	// busy_timeout and then give up until a later checkpoint; the deletion
	// itself has committed either way, so its outcome is not an error.
	_, _ = s.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	return nil
}
