package postgres

import (
	"context"
	"fmt"

	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
)

// CreateTenant inserts t. Errors: keyring.ErrExists.
func (s *Store) CreateTenant(ctx context.Context, t keyring.Tenant) error {
	r, err := newTenantRow(t)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO tenants (`+tenantColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		r.ID, r.Name, r.Edition, r.HIPAA, r.State, r.Provider, r.CreatedAt, r.UpdatedAt)
	if code, _ := violation(err); code == uniqueViolation {
		return fmt.Errorf("postgres: tenant %q: %w", t.ID, keyring.ErrExists)
	} else if err != nil {
		return fmt.Errorf("postgres: creating tenant %q: %w", t.ID, err)
	}
	return nil
}

// Tenant returns one tenant. Errors: keyring.ErrNotFound.
func (s *Store) Tenant(ctx context.Context, id string) (keyring.Tenant, error) {
	t, err := scanTenant(s.pool.QueryRow(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = $1`, id))
	switch {
	case isNoRows(err):
		return keyring.Tenant{}, fmt.Errorf("postgres: tenant %q: %w", id, keyring.ErrNotFound)
	case err != nil:
		return keyring.Tenant{}, fmt.Errorf("postgres: reading tenant %q: %w", id, err)
	}
	return t, nil
}

// UpdateTenant replaces every field of the stored tenant t.ID but ID and
// CreatedAt. Errors: keyring.ErrNotFound.
func (s *Store) UpdateTenant(ctx context.Context, t keyring.Tenant) error {
	r, err := newTenantRow(t)
	if err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `UPDATE tenants
		SET name = $1, edition = $2, hipaa = $3, state = $4, provider = $5, updated_at = $6
		WHERE id = $7`,
		r.Name, r.Edition, r.HIPAA, r.State, r.Provider, r.UpdatedAt, r.ID)
	if err != nil {
		return fmt.Errorf("postgres: updating tenant %q: %w", t.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: tenant %q: %w", t.ID, keyring.ErrNotFound)
	}
	return nil
}

// ListTenants returns up to limit tenants with ids greater than after, in id
// (byte, collation "C") order.
func (s *Store) ListTenants(ctx context.Context, after string, limit int) ([]keyring.Tenant, error) {
	ts := []keyring.Tenant{}
	if limit <= 0 {
		return ts, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: listing tenants: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		t, err := scanTenant(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: listing tenants: %w", err)
		}
		ts = append(ts, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: listing tenants: %w", err)
	}
	return ts, nil
}

// DeleteTenant removes the tenant, its cipherkeys, its key providers, its
// migrations and its internal KMS key-encryption keys in one transaction. Errors:
// keyring.ErrNotFound, and then nothing is deleted.
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
		return fmt.Errorf("postgres: tenant %q: %w", id, keyring.ErrNotFound)
	}
	// ON DELETE CASCADE has removed the cipherkeys, key providers and
	// migrations already; the KEKs have no foreign key.
	if _, err := tx.Exec(ctx, `DELETE FROM internal_keks WHERE tenant_id = $1`, id); err != nil {
		return fmt.Errorf("postgres: deleting tenant %q: %w", id, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: deleting tenant %q: %w", id, err)
	}
	return nil
}
