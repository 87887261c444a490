package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

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
	WHERE provider <> ` + rowcodec.InternalRefLiteral + ` AND state <> 'destroyed' AND id > $1
	ORDER BY id LIMIT $2`

// WatchedTenants returns up to limit tenants with ids greater than after, in
// id (byte, collation "C") order, whose provider is not
// the internal KMS and whose state is not destroyed; an empty slice if
// there is none.
func (s *Store) WatchedTenants(ctx context.Context, after string, limit int) ([]keyring.Tenant, error) {
	ts := []keyring.Tenant{}
	if limit <= 0 {
		return ts, nil
	}
	ts, err := queryRows(ctx, s.pool, codec.ScanTenant, watchedQuery, after, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: listing watched tenants: %w", err)
	}
	return ts, nil
}

// ReplaceKeyChecks replaces every stored check of the tenant by checks, in
// one transaction that first locks the tenant row, so that concurrent
// replacements run one after the other and the last one's checks are all
// that is left. Every check's TenantID must be tenantID, and their regions
// must differ. Errors: fault.ErrNotFound (no such tenant); on any error
// nothing is written.
func (s *Store) ReplaceKeyChecks(ctx context.Context, tenantID string, checks []lifecycle.KeyCheck) error {
	for _, c := range checks {
		if c.TenantID != tenantID {
			return fmt.Errorf("postgres: replacing key checks of tenant %q: a check of region %q belongs to tenant %q", tenantID, c.Region, c.TenantID)
		}
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: replacing key checks of tenant %q: %w", tenantID, err)
	}
	defer tx.Rollback(ctx)
	// FOR NO KEY UPDATE: replacements of the tenant's checks conflict with
	// each other (and keep DeleteTenant waiting), inserts of its other rows
	// go on.
	var one int
	err = tx.QueryRow(ctx, `SELECT 1 FROM tenants WHERE id = $1 FOR NO KEY UPDATE`, tenantID).Scan(&one)
	switch {
	case isNoRows(err):
		return fmt.Errorf("postgres: tenant %q: %w", tenantID, fault.ErrNotFound)
	case err != nil:
		return fmt.Errorf("postgres: replacing key checks of tenant %q: %w", tenantID, err)
	}
	b := &pgx.Batch{}
	b.Queue(`DELETE FROM key_checks WHERE tenant_id = $1`, tenantID)
	for _, c := range checks {
		args, err := codec.KeyCheckArgs(c)
		if err != nil {
			return err
		}
		b.Queue(`INSERT INTO key_checks (`+keyCheckColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, args...)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		if code, _ := violation(err); code == uniqueViolation {
			return fmt.Errorf("postgres: replacing key checks of tenant %q: two checks of one region", tenantID)
		}
		return fmt.Errorf("postgres: replacing key checks of tenant %q: %w", tenantID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: replacing key checks of tenant %q: %w", tenantID, err)
	}
	return nil
}

// KeyChecks returns the tenant's stored checks in region (byte, collation
// "C") order; an empty slice if there are none or there is no such tenant.
func (s *Store) KeyChecks(ctx context.Context, tenantID string) ([]lifecycle.KeyCheck, error) {
	cs, err := queryRows(ctx, s.pool, codec.ScanKeyCheck, `SELECT `+keyCheckColumns+` FROM key_checks WHERE tenant_id = $1 ORDER BY region`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("postgres: reading key checks of tenant %q: %w", tenantID, err)
	}
	return cs, nil
}

// CountTenantsByState counts every tenant by state; a state without tenants
// has no entry.
func (s *Store) CountTenantsByState(ctx context.Context) (map[keyring.TenantState]int, error) {
	counts, err := queryRows(ctx, s.pool, rowcodec.ScanTenantStateCount, `SELECT state, COUNT(*) FROM tenants GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("postgres: counting tenants by state: %w", err)
	}
	return rowcodec.CountMap(counts), nil
}
