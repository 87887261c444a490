package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
)

// InsertKeyProvider stores a new provider. Errors: fault.ErrExists (the
// tenant has one with that fingerprint), fault.ErrNotFound (no such tenant).
func (s *Store) InsertKeyProvider(ctx context.Context, p keyprovider.Provider) error {
	args, err := codec.KeyProviderArgs(p)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO key_providers (`+keyProviderColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`, args...)
	switch code, _ := violation(err); {
	case code == uniqueViolation:
		return fmt.Errorf("postgres: key provider %s of tenant %q: %w", p.Fingerprint, p.TenantID, fault.ErrExists)
	case code == foreignKeyViolation:
		return fmt.Errorf("postgres: tenant %q: %w", p.TenantID, fault.ErrNotFound)
	case err != nil:
		return fmt.Errorf("postgres: inserting key provider %s of tenant %q: %w", p.Fingerprint, p.TenantID, err)
	}
	return nil
}

// KeyProvider returns one provider. Errors: fault.ErrNotFound.
func (s *Store) KeyProvider(ctx context.Context, tenantID, fingerprint string) (keyprovider.Provider, error) {
	p, err := codec.ScanKeyProvider(s.pool.QueryRow(ctx,
		`SELECT `+keyProviderColumns+` FROM key_providers WHERE tenant_id = $1 AND fingerprint = $2`, tenantID, fingerprint))
	switch {
	case isNoRows(err):
		return keyprovider.Provider{}, fmt.Errorf("postgres: key provider %s of tenant %q: %w", fingerprint, tenantID, fault.ErrNotFound)
	case err != nil:
		return keyprovider.Provider{}, fmt.Errorf("postgres: reading key provider %s of tenant %q: %w", fingerprint, tenantID, err)
	}
	return p, nil
}

// ListKeyProviders returns a tenant's providers, oldest first and then by
// fingerprint (byte order, collation "C"); an empty slice if it has none or
// there is no such tenant.
func (s *Store) ListKeyProviders(ctx context.Context, tenantID string) ([]keyprovider.Provider, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+keyProviderColumns+` FROM key_providers
		WHERE tenant_id = $1 ORDER BY created_at, fingerprint`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("postgres: listing key providers of tenant %q: %w", tenantID, err)
	}
	defer rows.Close()
	ps := []keyprovider.Provider{}
	for rows.Next() {
		p, err := codec.ScanKeyProvider(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: listing key providers of tenant %q: %w", tenantID, err)
		}
		ps = append(ps, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: listing key providers of tenant %q: %w", tenantID, err)
	}
	return ps, nil
}

// UpdateKeyProvider replaces every field of the stored provider (TenantID,
// Fingerprint) but ARN and CreatedAt. Errors: fault.ErrNotFound.
func (s *Store) UpdateKeyProvider(ctx context.Context, p keyprovider.Provider) error {
	args, err := codec.KeyProviderUpdateArgs(p)
	if err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `UPDATE key_providers
		SET name = $1, description = $2, multi_region = $3, replicas = $4, dr_compliant = $5,
			compliance_code = $6, compliance_region = $7, compliance_message = $8,
			promoted_at = $9, demoted_at = $10, tested_at = $11, config = $12, wrapped_secret = $13
		WHERE tenant_id = $14 AND fingerprint = $15`,
		args...)
	if err != nil {
		return fmt.Errorf("postgres: updating key provider %s of tenant %q: %w", p.Fingerprint, p.TenantID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: key provider %s of tenant %q: %w", p.Fingerprint, p.TenantID, fault.ErrNotFound)
	}
	return nil
}

// SetKeyProviderCompliance records the outcome of a DR-compliance check:
// DRCompliant, Compliance and TestedAt, in one UPDATE of only those columns,
// so that a concurrent UpdateKeyProvider (a rename) is not undone. Errors:
// fault.ErrNotFound.
func (s *Store) SetKeyProviderCompliance(ctx context.Context, tenantID, fingerprint string, drCompliant bool, c keyprovider.ComplianceError, testedAt time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE key_providers
		SET dr_compliant = $1, compliance_code = $2, compliance_region = $3, compliance_message = $4, tested_at = $5
		WHERE tenant_id = $6 AND fingerprint = $7`,
		drCompliant, c.Code, c.Region, c.Message, nullTime(testedAt),
		tenantID, fingerprint)
	if err != nil {
		return fmt.Errorf("postgres: setting compliance of key provider %s of tenant %q: %w", fingerprint, tenantID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: key provider %s of tenant %q: %w", fingerprint, tenantID, fault.ErrNotFound)
	}
	return nil
}

// DeleteKeyProvider removes one provider. Errors: fault.ErrNotFound.
func (s *Store) DeleteKeyProvider(ctx context.Context, tenantID, fingerprint string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM key_providers WHERE tenant_id = $1 AND fingerprint = $2`, tenantID, fingerprint)
	if err != nil {
		return fmt.Errorf("postgres: deleting key provider %s of tenant %q: %w", fingerprint, tenantID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: key provider %s of tenant %q: %w", fingerprint, tenantID, fault.ErrNotFound)
	}
	return nil
}
