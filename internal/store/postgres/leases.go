package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/lifecycle"
	"github.com/tenantcrypt/tenantcrypt/internal/migration"
	"github.com/tenantcrypt/tenantcrypt/internal/store/internal/rowcodec"
)

// Leases share work between replicas: a migration is worked on by the
// replica that holds its lease, and each tenant's key check is claimed by
// one replica. Every lease is taken and checked by one conditional UPDATE
// (or upsert) whose row lock orders it with its rivals: of two replicas
// racing for a row, the second re-checks the condition on the row as the
// first left it and gets nothing. Lease times are the database's clock
// (now(), the transaction's start), so that the replicas' clocks do not
// matter.

// ClaimMigration implements migration.Store.
func (s *Store) ClaimMigration(ctx context.Context, id, owner string, ttl time.Duration) (migration.Migration, error) {
	m, err := codec.ScanMigration(s.pool.QueryRow(ctx, `UPDATE migrations
		SET lease_owner = $2, lease_until = now() + $3 * interval '1 microsecond'
		WHERE id = $1 AND state <> 'Completed'
			AND (lease_owner = '' OR lease_owner = $2 OR lease_until IS NULL OR lease_until <= now())
		RETURNING `+migrationColumns, id, owner, ttl.Microseconds()))
	if err == nil {
		return m, nil
	}
	if !isNoRows(err) {
		return migration.Migration{}, fmt.Errorf("postgres: claiming migration %q: %w", id, err)
	}
	return migration.Migration{}, s.leaseMiss(ctx, id, "claiming")
}

// leaseMiss explains why a lease condition did not match: the migration
// does not exist or is completed (fault.ErrNotFound when claiming), or
// another replica holds it (migration.ErrLeased).
func (s *Store) leaseMiss(ctx context.Context, id, op string) error {
	var state, owner string
	err := s.pool.QueryRow(ctx, `SELECT state, lease_owner FROM migrations WHERE id = $1`, id).Scan(&state, &owner)
	switch {
	case isNoRows(err):
		return fmt.Errorf("postgres: migration %q: %w", id, fault.ErrNotFound)
	case err != nil:
		return fmt.Errorf("postgres: %s migration %q: %w", op, id, err)
	case state == migration.StateCompleted.String() && op == "claiming":
		return fmt.Errorf("postgres: migration %q is completed: %w", id, fault.ErrNotFound)
	}
	return fmt.Errorf("postgres: %s migration %q: leased to %q: %w", op, id, owner, migration.ErrLeased)
}

// RenewMigrationLease implements migration.Store.
func (s *Store) RenewMigrationLease(ctx context.Context, id, owner string, ttl time.Duration) error {
	tag, err := s.pool.Exec(ctx, `UPDATE migrations SET lease_until = now() + $3 * interval '1 microsecond'
		WHERE id = $1 AND lease_owner = $2 AND lease_until IS NOT NULL AND state <> 'Completed'`, id, owner, ttl.Microseconds())
	if err != nil {
		return fmt.Errorf("postgres: renewing the lease of migration %q: %w", id, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	return s.leaseMiss(ctx, id, "renewing the lease of")
}

// ReleaseMigrationLease implements migration.Store.
func (s *Store) ReleaseMigrationLease(ctx context.Context, id, owner string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE migrations SET lease_owner = '', lease_until = NULL
		WHERE id = $1 AND lease_owner = $2`, id, owner); err != nil {
		return fmt.Errorf("postgres: releasing the lease of migration %q: %w", id, err)
	}
	return nil
}

// UpdateLeasedMigration implements migration.Store.
func (s *Store) UpdateLeasedMigration(ctx context.Context, m migration.Migration, owner string) error {
	state, err := codec.MigrationState(m)
	if err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `UPDATE migrations
		SET state = $1, done = $2, total = $3, completed_at = $4, last_error = $5, updated_at = $6,
			lease_until = CASE WHEN $1 = 'Completed' THEN NULL ELSE lease_until END
		WHERE id = $7 AND tenant_id = $8 AND lease_owner = $9 AND lease_until IS NOT NULL`,
		state, m.Done, m.Total, nullTime(m.CompletedAt), m.LastError, m.UpdatedAt, m.ID, m.TenantID, owner)
	if err := migrationError(m, "updating", err); err != nil {
		return err
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	return s.leaseMiss(ctx, m.ID, "updating")
}

// claimKeyChecksQuery leases due checks: the watched tenants (the condition
// of the partial index tenants_watched) without a schedule yet, or whose
// schedule is due and not claimed, or whose claim lapsed unfinished; of
// them, an active tenant whose keys no replica holds (hot_until past) only
// once its last claim is $6 (the idle interval) old. The upsert re-checks
// the due condition on the row as a concurrent claim left it, so that a
// tenant another replica took meanwhile is skipped, not taken twice. $1
// owner, $2 every, $3 lease, $4 limit, $5 spread, $6 idle; durations in
// microseconds. Late is past the due time, or past the idle interval for
// an idle tenant.
var claimKeyChecksQuery = `WITH due AS (
		SELECT t.id, COALESCE(EXTRACT(EPOCH FROM now() - (CASE WHEN ` + idleSQL + `
				THEN GREATEST(l.due_at, l.claimed_at + $6::bigint * interval '1 microsecond') ELSE l.due_at END))::float8, 0) AS late
		FROM tenants t LEFT JOIN key_check_leases l ON l.tenant_id = t.id
		WHERE t.provider <> ` + rowcodec.InternalRefLiteral + ` AND t.state <> 'destroyed'
			AND (l.tenant_id IS NULL
				OR (l.owner = '' AND l.due_at <= now())
				OR (l.owner <> '' AND l.lease_until <= now()))
			AND (l.tenant_id IS NULL OR NOT (` + idleSQL + `) OR l.claimed_at <= now() - $6::bigint * interval '1 microsecond')
		ORDER BY l.due_at NULLS FIRST, t.id
		LIMIT $4
	), claimed AS (
		INSERT INTO key_check_leases AS l (tenant_id, due_at, owner, lease_until, claimed_at)
		SELECT id, now() + ($2 - floor(random() * ($5 + 1))::bigint) * interval '1 microsecond', $1, now() + $3 * interval '1 microsecond', now() FROM due
		ON CONFLICT (tenant_id) DO UPDATE
			SET due_at = EXCLUDED.due_at, owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until, claimed_at = EXCLUDED.claimed_at
			WHERE (l.owner = '' AND l.due_at <= now()) OR (l.owner <> '' AND l.lease_until <= now())
		RETURNING l.tenant_id
	)
	SELECT ` + qualified("t", tenantColumns) + `, d.late
	FROM claimed c JOIN tenants t ON t.id = c.tenant_id JOIN due d ON d.id = c.tenant_id
	ORDER BY d.late DESC, t.id`

// idleSQL holds for an idle tenant's schedule (l): an active tenant whose
// keys no replica holds, with an earlier claim (a tenant never claimed is
// due at once). $6 > 0 turns the idle schedule on.
const idleSQL = `$6::bigint > 0 AND t.state = 'active' AND l.claimed_at IS NOT NULL AND (l.hot_until IS NULL OR l.hot_until <= now())`

// ClaimKeyChecks implements lifecycle.Store.
func (s *Store) ClaimKeyChecks(ctx context.Context, owner string, every, idle, spread, lease time.Duration, limit int) ([]lifecycle.Due, error) {
	ds := []lifecycle.Due{}
	if limit <= 0 {
		return ds, nil
	}
	rows, err := s.pool.Query(ctx, claimKeyChecksQuery, owner, every.Microseconds(), lease.Microseconds(), limit, max(spread, 0).Microseconds(), max(idle, 0).Microseconds())
	if err != nil {
		return nil, fmt.Errorf("postgres: claiming key checks: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var late float64
		t, err := codec.ScanTenant(withLate{rows, &late})
		if err != nil {
			return nil, fmt.Errorf("postgres: claiming key checks: %w", err)
		}
		ds = append(ds, lifecycle.Due{Tenant: t, Late: max(time.Duration(late*float64(time.Second)), 0)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: claiming key checks: %w", err)
	}
	return ds, nil
}

// MarkKeysInUse implements keyring.Store: it moves the tenant's hot_until
// to until unless it is later already; a tenant that was idle becomes due
// at once. A tenant that does not exist (any more) is left alone.
func (s *Store) MarkKeysInUse(ctx context.Context, tenantID string, until time.Time) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO key_check_leases AS l (tenant_id, due_at, owner, hot_until)
		SELECT id, now(), '', $2 FROM tenants WHERE id = $1
		ON CONFLICT (tenant_id) DO UPDATE SET
			due_at = CASE WHEN l.hot_until IS NULL OR l.hot_until <= now() THEN now() ELSE l.due_at END,
			hot_until = GREATEST(COALESCE(l.hot_until, EXCLUDED.hot_until), EXCLUDED.hot_until)`, tenantID, until)
	if err != nil {
		return fmt.Errorf("postgres: marking the keys of tenant %q in use: %w", tenantID, err)
	}
	return nil
}

// withLate scans a tenant row followed by one more column.
type withLate struct {
	sc   scanner
	late *float64
}

func (w withLate) Scan(dest ...any) error { return w.sc.Scan(append(dest, w.late)...) }

// FinishKeyCheck implements lifecycle.Store.
func (s *Store) FinishKeyCheck(ctx context.Context, tenantID, owner string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE key_check_leases SET owner = '', lease_until = NULL
		WHERE tenant_id = $1 AND owner = $2`, tenantID, owner); err != nil {
		return fmt.Errorf("postgres: finishing the key check of tenant %q: %w", tenantID, err)
	}
	return nil
}

// qualified prefixes every column of a column list with a table alias.
func qualified(alias, columns string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = alias + "." + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}
