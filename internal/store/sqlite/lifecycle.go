package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/lifecycle"
	"github.com/tenantcrypt/tenantcrypt/internal/store/internal/rowcodec"
)

// watchedQuery is WatchedTenants' query. Its condition is the partial index
// tenants_watched's, spelled as in the migration (a literal, not a
// parameter, so that the planner can use the index); the literal is the
// internal KMS's Ref as rowcodec writes every stored ref.
var watchedQuery = `SELECT ` + tenantColumns + ` FROM tenants
	WHERE provider <> ` + rowcodec.InternalRefLiteral + ` AND state <> 'destroyed' AND id > ?
	ORDER BY id LIMIT ?`

// WatchedTenants returns up to limit tenants with ids greater than after, in
// id (byte) order, whose provider is not the internal KMS and whose
// state is not destroyed; an empty slice if there is none.
func (s *Store) WatchedTenants(ctx context.Context, after string, limit int) ([]keyring.Tenant, error) {
	ts := []keyring.Tenant{}
	if limit <= 0 {
		return ts, nil
	}
	ts, err := queryRows(ctx, s.r, codec.ScanTenant, watchedQuery, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: listing watched tenants: %w", err)
	}
	return ts, nil
}

// ReplaceKeyChecks replaces every stored check of the tenant by checks, in
// one IMMEDIATE transaction. Every check's TenantID must be tenantID, and
// their regions must differ. Errors: fault.ErrNotFound (no such tenant);
// on any error nothing is written.
func (s *Store) ReplaceKeyChecks(ctx context.Context, tenantID string, checks []lifecycle.KeyCheck) error {
	for _, c := range checks {
		if c.TenantID != tenantID {
			return fmt.Errorf("sqlite: replacing key checks of tenant %q: a check of region %q belongs to tenant %q", tenantID, c.Region, c.TenantID)
		}
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: replacing key checks of tenant %q: %w", tenantID, err)
	}
	defer tx.Rollback()
	var one int
	err = tx.QueryRowContext(ctx, `SELECT 1 FROM tenants WHERE id = ?`, tenantID).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlite: tenant %q: %w", tenantID, fault.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: replacing key checks of tenant %q: %w", tenantID, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM key_checks WHERE tenant_id = ?`, tenantID); err != nil {
		return fmt.Errorf("sqlite: replacing key checks of tenant %q: %w", tenantID, err)
	}
	for _, c := range checks {
		args, err := codec.KeyCheckArgs(c)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO key_checks (`+keyCheckColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, args...)
		switch {
		case isPrimaryKeyViolation(err):
			return fmt.Errorf("sqlite: replacing key checks of tenant %q: two checks of region %q", tenantID, c.Region)
		case err != nil:
			return fmt.Errorf("sqlite: replacing key checks of tenant %q: %w", tenantID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: replacing key checks of tenant %q: %w", tenantID, err)
	}
	return nil
}

// KeyChecks returns the tenant's stored checks in region (byte) order; an
// empty slice if there are none or there is no such tenant.
func (s *Store) KeyChecks(ctx context.Context, tenantID string) ([]lifecycle.KeyCheck, error) {
	cs, err := queryRows(ctx, s.r, codec.ScanKeyCheck, `SELECT `+keyCheckColumns+` FROM key_checks WHERE tenant_id = ? ORDER BY region`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: reading key checks of tenant %q: %w", tenantID, err)
	}
	return cs, nil
}

// CountTenantsByState counts every tenant by state; a state without tenants
// has no entry.
func (s *Store) CountTenantsByState(ctx context.Context) (map[keyring.TenantState]int, error) {
	counts, err := queryRows(ctx, s.r, rowcodec.ScanTenantStateCount, `SELECT state, COUNT(*) FROM tenants GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: counting tenants by state: %w", err)
	}
	return rowcodec.CountMap(counts), nil
}
