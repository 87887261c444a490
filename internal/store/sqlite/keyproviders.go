package sqlite

import (
	"context"
	"database/sql"
	"errors"
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
	_, err = s.w.ExecContext(ctx, `INSERT INTO key_providers (`+keyProviderColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...)
	switch {
	case isPrimaryKeyViolation(err):
		return fmt.Errorf("sqlite: key provider %s of tenant %q: %w", p.Fingerprint, p.TenantID, fault.ErrExists)
	case isForeignKeyViolation(err):
		return fmt.Errorf("sqlite: tenant %q: %w", p.TenantID, fault.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: inserting key provider %s of tenant %q: %w", p.Fingerprint, p.TenantID, err)
	}
	return nil
}

// KeyProvider returns one provider. Errors: fault.ErrNotFound.
func (s *Store) KeyProvider(ctx context.Context, tenantID, fingerprint string) (keyprovider.Provider, error) {
	p, err := codec.ScanKeyProvider(s.r.QueryRowContext(ctx,
		`SELECT `+keyProviderColumns+` FROM key_providers WHERE tenant_id = ? AND fingerprint = ?`, tenantID, fingerprint))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return keyprovider.Provider{}, fmt.Errorf("sqlite: key provider %s of tenant %q: %w", fingerprint, tenantID, fault.ErrNotFound)
	case err != nil:
		return keyprovider.Provider{}, fmt.Errorf("sqlite: reading key provider %s of tenant %q: %w", fingerprint, tenantID, err)
	}
	return p, nil
}

// ListKeyProviders returns a tenant's providers, oldest first and then by
// fingerprint (byte order); an empty slice if it has none or there is no such
// tenant.
func (s *Store) ListKeyProviders(ctx context.Context, tenantID string) ([]keyprovider.Provider, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+keyProviderColumns+` FROM key_providers
		WHERE tenant_id = ? ORDER BY created_at, fingerprint`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: listing key providers of tenant %q: %w", tenantID, err)
	}
	defer rows.Close()
	ps := []keyprovider.Provider{}
	for rows.Next() {
		p, err := codec.ScanKeyProvider(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: listing key providers of tenant %q: %w", tenantID, err)
		}
		ps = append(ps, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: listing key providers of tenant %q: %w", tenantID, err)
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
	res, err := s.w.ExecContext(ctx, `UPDATE key_providers
		SET name = ?, description = ?, multi_region = ?, replicas = ?, dr_compliant = ?,
			compliance_code = ?, compliance_region = ?, compliance_message = ?,
			promoted_at = ?, demoted_at = ?, tested_at = ?, config = ?, wrapped_secret = ?
		WHERE tenant_id = ? AND fingerprint = ?`,
		args...)
	if err != nil {
		return fmt.Errorf("sqlite: updating key provider %s of tenant %q: %w", p.Fingerprint, p.TenantID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: updating key provider %s of tenant %q: %w", p.Fingerprint, p.TenantID, err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: key provider %s of tenant %q: %w", p.Fingerprint, p.TenantID, fault.ErrNotFound)
	}
	return nil
}

// SetKeyProviderCompliance records the outcome of a DR-compliance check:
// DRCompliant, Compliance and TestedAt, in one UPDATE of only those columns,
// so that a concurrent UpdateKeyProvider (a rename) is not undone. Errors:
// fault.ErrNotFound.
func (s *Store) SetKeyProviderCompliance(ctx context.Context, tenantID, fingerprint string, drCompliant bool, c keyprovider.ComplianceError, testedAt time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE key_providers
		SET dr_compliant = ?, compliance_code = ?, compliance_region = ?, compliance_message = ?, tested_at = ?
		WHERE tenant_id = ? AND fingerprint = ?`,
		drCompliant, c.Code, c.Region, c.Message, nullMicros(testedAt),
		tenantID, fingerprint)
	if err != nil {
		return fmt.Errorf("sqlite: setting compliance of key provider %s of tenant %q: %w", fingerprint, tenantID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: setting compliance of key provider %s of tenant %q: %w", fingerprint, tenantID, err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: key provider %s of tenant %q: %w", fingerprint, tenantID, fault.ErrNotFound)
	}
	return nil
}

// DeleteKeyProvider removes one provider. Errors: fault.ErrNotFound.
func (s *Store) DeleteKeyProvider(ctx context.Context, tenantID, fingerprint string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM key_providers WHERE tenant_id = ? AND fingerprint = ?`, tenantID, fingerprint)
	if err != nil {
		return fmt.Errorf("sqlite: deleting key provider %s of tenant %q: %w", fingerprint, tenantID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: deleting key provider %s of tenant %q: %w", fingerprint, tenantID, err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: key provider %s of tenant %q: %w", fingerprint, tenantID, fault.ErrNotFound)
	}
	return nil
}
