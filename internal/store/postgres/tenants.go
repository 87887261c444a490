package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/store/internal/rowcodec"
)

// CreateTenant inserts t. Errors: fault.ErrExists, keyring.ErrRetired
// (the id was a deleted tenant's: the trigger tenant_ids_claim refuses it).
func (s *Store) CreateTenant(ctx context.Context, t keyring.Tenant) error {
	args, err := codec.TenantArgs(t)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO tenants (`+tenantColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`, args...)
	if code, constraint := violation(err); code == uniqueViolation && constraint == "tenant_ids_retired" {
		return fmt.Errorf("postgres: tenant %q: %w", t.ID, keyring.ErrRetired)
	} else if code == uniqueViolation {
		return fmt.Errorf("postgres: tenant %q: %w", t.ID, fault.ErrExists)
	} else if err != nil {
		return fmt.Errorf("postgres: creating tenant %q: %w", t.ID, err)
	}
	return nil
}

// Tenant returns one tenant. Errors: fault.ErrNotFound.
func (s *Store) Tenant(ctx context.Context, id string) (keyring.Tenant, error) {
	t, err := codec.ScanTenant(s.pool.QueryRow(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = $1`, id))
	switch {
	case isNoRows(err):
		return keyring.Tenant{}, fmt.Errorf("postgres: tenant %q: %w", id, fault.ErrNotFound)
	case err != nil:
		return keyring.Tenant{}, fmt.Errorf("postgres: reading tenant %q: %w", id, err)
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
	tag, err := s.pool.Exec(ctx, `UPDATE tenants
		SET name = $1, edition = $2, hipaa = $3, updated_at = $4, quota_rate = $5, quota_burst = $6
		WHERE id = $7`,
		t.Name, edition, t.HIPAA, t.UpdatedAt, t.Quota.Rate, t.Quota.Burst, t.ID)
	if err != nil {
		return fmt.Errorf("postgres: updating tenant %q: %w", t.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: tenant %q: %w", t.ID, fault.ErrNotFound)
	}
	return nil
}

// SwitchTenantProvider makes to the tenant's provider, provided it is
// still from, in one UPDATE: its row lock (FOR NO KEY UPDATE) orders it
// with InsertCipherKey's FOR SHARE, and a concurrent switch re-checks the
// condition on the row as this one left it.
// Errors: fault.ErrNotFound, fault.ErrConflict.
func (s *Store) SwitchTenantProvider(ctx context.Context, id string, from, to kms.Ref, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE tenants SET provider = $3, updated_at = $4 WHERE id = $1 AND provider = $2`, id, rowcodec.Ref(from), rowcodec.Ref(to), at)
	if err != nil {
		return fmt.Errorf("postgres: switching the provider of tenant %q: %w", id, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	provider, err := codec.ScanRef(fmt.Sprintf("tenant %q", id), s.pool.QueryRow(ctx, `SELECT provider FROM tenants WHERE id = $1`, id))
	switch {
	case isNoRows(err):
		return fmt.Errorf("postgres: tenant %q: %w", id, fault.ErrNotFound)
	case err != nil:
		return fmt.Errorf("postgres: switching the provider of tenant %q: %w", id, err)
	}
	return fmt.Errorf("postgres: switching the provider of tenant %q from %q: it is %q: %w", id, from, provider, fault.ErrConflict)
}

// SetTenantState moves the tenant to state with reason, provided its
// provider is still provider and it is not destroyed, in one transaction
// that first locks the tenant row: concurrent calls for the tenant, from any
// replica, run one after the other, and each compares with what its
// predecessor wrote. StateChangedAt becomes at when the state changes;
// UpdatedAt, the time of the last admin edit, stays. It returns the tenant as
// it was before, and whether anything was written.
// Errors: fault.ErrNotFound; fault.ErrConflict (another provider, or
// destroyed; nothing written).
func (s *Store) SetTenantState(ctx context.Context, id string, provider kms.Ref, state keyring.TenantState, reason string, at time.Time) (keyring.Tenant, bool, error) {
	encoded, err := codec.TenantState(id, state)
	if err != nil {
		return keyring.Tenant{}, false, err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return keyring.Tenant{}, false, fmt.Errorf("postgres: setting state of tenant %q: %w", id, err)
	}
	defer tx.Rollback(ctx)
	// FOR NO KEY UPDATE, as the UPDATE below would take: it orders this
	// call after every other writer of the row, and read committed reads the
	// row as the previous holder left it. Inserts of the tenant's other rows,
	// whose foreign key check takes FOR KEY SHARE, go on.
	prev, err := codec.ScanTenant(tx.QueryRow(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = $1 FOR NO KEY UPDATE`, id))
	switch {
	case isNoRows(err):
		return keyring.Tenant{}, false, fmt.Errorf("postgres: tenant %q: %w", id, fault.ErrNotFound)
	case err != nil:
		return keyring.Tenant{}, false, fmt.Errorf("postgres: setting state of tenant %q: %w", id, err)
	}
	switch {
	case prev.State == keyring.StateDestroyed:
		return prev, false, fmt.Errorf("postgres: tenant %q is destroyed: %w", id, fault.ErrConflict)
	case prev.Provider != provider:
		return prev, false, fmt.Errorf("postgres: tenant %q: provider is %q, not %q: %w", id, prev.Provider, provider, fault.ErrConflict)
	case prev.State == state && prev.StateReason == reason:
		return prev, false, nil
	}
	changedAt := prev.StateChangedAt
	if prev.State != state {
		changedAt = at
	}
	if _, err := tx.Exec(ctx, `UPDATE tenants SET state = $1, state_reason = $2, state_changed_at = $3 WHERE id = $4`,
		encoded, reason, nullTime(changedAt), id); err != nil {
		return keyring.Tenant{}, false, fmt.Errorf("postgres: setting state of tenant %q: %w", id, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return keyring.Tenant{}, false, fmt.Errorf("postgres: setting state of tenant %q: %w", id, err)
	}
	return prev, true, nil
}

// ListTenants returns up to limit tenants with ids greater than after, in id
// (byte, collation "C") order.
func (s *Store) ListTenants(ctx context.Context, after string, limit int) ([]keyring.Tenant, error) {
	ts := []keyring.Tenant{}
	if limit <= 0 {
		return ts, nil
	}
	ts, err := queryRows(ctx, s.pool, codec.ScanTenant, `SELECT `+tenantColumns+` FROM tenants WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: listing tenants: %w", err)
	}
	return ts, nil
}

// DeleteTenant removes the tenant, its cipherkeys, its key providers, its
// migrations, its key checks and its internal KMS key-encryption keys in one
// transaction, and retires its id (trigger tenant_ids_retire). The tenant's
// audit chain stays: the log outlives the tenant.
// Errors: fault.ErrNotFound, and then nothing is deleted.
func (s *Store) DeleteTenant(ctx context.Context, id string) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: deleting tenant %q: %w", id, err)
	}
	defer tx.Rollback(ctx)
	tag, err := tx.Exec(ctx, `DELETE FROM tenants WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("postgres: deleting tenant %q: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: tenant %q: %w", id, fault.ErrNotFound)
	}
	// ON DELETE CASCADE has removed the cipherkeys, key providers,
	// migrations and key checks already (PostgreSQL always enforces foreign
	// keys); the KEKs have no foreign key.
	if _, err := tx.Exec(ctx, `DELETE FROM internal_keks WHERE tenant_id = $1`, id); err != nil {
		return fmt.Errorf("postgres: deleting tenant %q: %w", id, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: deleting tenant %q: %w", id, err)
	}
	return nil
}
