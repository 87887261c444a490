package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/lifecycle"
	"github.com/tenantcrypt/tenantcrypt/internal/migration"
	"github.com/tenantcrypt/tenantcrypt/internal/store/internal/rowcodec"
)

// Leases (see the PostgreSQL store for why): SQLite serves one process, but
// keeps the same schedule and leases so that the key monitor and the
// migration workers run one code path on both stores. Writes are
// serialised, so each lease is checked and taken in one statement or one
// IMMEDIATE transaction. Times are this process's clock.

// ClaimMigration implements migration.Store.
func (s *Store) ClaimMigration(ctx context.Context, id, owner string, ttl time.Duration) (migration.Migration, error) {
	now := time.Now()
	m, err := codec.ScanMigration(s.w.QueryRowContext(ctx, `UPDATE migrations SET lease_owner = ?, lease_until = ?
		WHERE id = ? AND state <> 'Completed'
			AND (lease_owner = '' OR lease_owner = ? OR lease_until IS NULL OR lease_until <= ?)
		RETURNING `+migrationColumns, owner, micros(now.Add(ttl)), id, owner, micros(now)))
	if err == nil {
		return m, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return migration.Migration{}, fmt.Errorf("sqlite: claiming migration %q: %w", id, err)
	}
	return migration.Migration{}, s.leaseMiss(ctx, id, "claiming")
}

// leaseMiss explains why a lease condition did not match: the migration
// does not exist or is completed (fault.ErrNotFound when claiming), or
// another process holds it (migration.ErrLeased).
func (s *Store) leaseMiss(ctx context.Context, id, op string) error {
	var state, owner string
	err := s.r.QueryRowContext(ctx, `SELECT state, lease_owner FROM migrations WHERE id = ?`, id).Scan(&state, &owner)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlite: migration %q: %w", id, fault.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: %s migration %q: %w", op, id, err)
	case state == migration.StateCompleted.String() && op == "claiming":
		return fmt.Errorf("sqlite: migration %q is completed: %w", id, fault.ErrNotFound)
	}
	return fmt.Errorf("sqlite: %s migration %q: leased to %q: %w", op, id, owner, migration.ErrLeased)
}

// RenewMigrationLease implements migration.Store.
func (s *Store) RenewMigrationLease(ctx context.Context, id, owner string, ttl time.Duration) error {
	res, err := s.w.ExecContext(ctx, `UPDATE migrations SET lease_until = ?
		WHERE id = ? AND lease_owner = ? AND lease_until IS NOT NULL AND state <> 'Completed'`,
		micros(time.Now().Add(ttl)), id, owner)
	if err != nil {
		return fmt.Errorf("sqlite: renewing the lease of migration %q: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: renewing the lease of migration %q: %w", id, err)
	} else if n == 1 {
		return nil
	}
	return s.leaseMiss(ctx, id, "renewing the lease of")
}

// ReleaseMigrationLease implements migration.Store.
func (s *Store) ReleaseMigrationLease(ctx context.Context, id, owner string) error {
	if _, err := s.w.ExecContext(ctx, `UPDATE migrations SET lease_owner = '', lease_until = NULL
		WHERE id = ? AND lease_owner = ?`, id, owner); err != nil {
		return fmt.Errorf("sqlite: releasing the lease of migration %q: %w", id, err)
	}
	return nil
}

// UpdateLeasedMigration implements migration.Store.
func (s *Store) UpdateLeasedMigration(ctx context.Context, m migration.Migration, owner string) error {
	state, err := codec.MigrationState(m)
	if err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, `UPDATE migrations
		SET state = ?, done = ?, total = ?, completed_at = ?, last_error = ?, updated_at = ?,
			lease_until = CASE WHEN ? = 'Completed' THEN NULL ELSE lease_until END
		WHERE id = ? AND tenant_id = ? AND lease_owner = ? AND lease_until IS NOT NULL`,
		state, m.Done, m.Total, nullMicros(m.CompletedAt), m.LastError, micros(m.UpdatedAt), state, m.ID, m.TenantID, owner)
	switch {
	case isUniqueViolation(err):
		return fmt.Errorf("sqlite: migration %q of tenant %q: %w", m.ID, m.TenantID, migration.ErrRunning)
	case err != nil:
		return fmt.Errorf("sqlite: updating migration %q of tenant %q: %w", m.ID, m.TenantID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: updating migration %q of tenant %q: %w", m.ID, m.TenantID, err)
	} else if n == 1 {
		return nil
	}
	return s.leaseMiss(ctx, m.ID, "updating")
}

// ClaimKeyChecks implements lifecycle.Store, in one IMMEDIATE transaction:
// the due tenants are read and their schedule written under the write lock.
func (s *Store) ClaimKeyChecks(ctx context.Context, owner string, every, idle, spread, lease time.Duration, limit int) ([]lifecycle.Due, error) {
	ds := []lifecycle.Due{}
	if limit <= 0 {
		return ds, nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlite: claiming key checks: %w", err)
	}
	defer tx.Rollback()
	now := micros(time.Now())
	// An idle tenant (see the PostgreSQL store's idleSQL) is due only once
	// its last claim is idle old; its lateness counts from then.
	idleMicros := max(idle, 0).Microseconds()
	const isIdle = `(:idle > 0 AND t.state = 'active' AND l.claimed_at IS NOT NULL AND (l.hot_until IS NULL OR l.hot_until <= :now))`
	rows, err := tx.QueryContext(ctx, `SELECT `+qualified("t", tenantColumns)+`,
			COALESCE(:now - (CASE WHEN `+isIdle+` THEN MAX(l.due_at, l.claimed_at + :idle) ELSE l.due_at END), 0)
		FROM tenants t LEFT JOIN key_check_leases l ON l.tenant_id = t.id
		WHERE t.provider <> `+rowcodec.InternalRefLiteral+` AND t.state <> 'destroyed'
			AND (l.tenant_id IS NULL
				OR (l.owner = '' AND l.due_at <= :now)
				OR (l.owner <> '' AND l.lease_until <= :now))
			AND (l.tenant_id IS NULL OR NOT `+isIdle+` OR l.claimed_at <= :now - :idle)
		ORDER BY l.due_at NULLS FIRST, t.id
		LIMIT :limit`, sql.Named("now", now), sql.Named("idle", idleMicros), sql.Named("limit", limit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: claiming key checks: %w", err)
	}
	for rows.Next() {
		var late int64
		t, err := codec.ScanTenant(withLate{rows, &late})
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlite: claiming key checks: %w", err)
		}
		ds = append(ds, lifecycle.Due{Tenant: t, Late: max(time.Duration(late)*time.Microsecond, 0)})
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("sqlite: claiming key checks: %w", err)
	}
	for _, d := range ds {
		if _, err := tx.ExecContext(ctx, `INSERT INTO key_check_leases (tenant_id, due_at, owner, lease_until, claimed_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (tenant_id) DO UPDATE SET due_at = excluded.due_at, owner = excluded.owner, lease_until = excluded.lease_until,
				claimed_at = excluded.claimed_at`,
			d.Tenant.ID, now+every.Microseconds()-rand.Int64N(max(spread.Microseconds(), 0)+1), owner, now+lease.Microseconds(), now); err != nil {
			return nil, fmt.Errorf("sqlite: claiming key checks: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("sqlite: claiming key checks: %w", err)
	}
	// The most overdue first, as the PostgreSQL store returns them.
	sortDue(ds)
	return ds, nil
}

// withLate scans a tenant row followed by one more column.
type withLate struct {
	sc   scanner
	late *int64
}

func (w withLate) Scan(dest ...any) error { return w.sc.Scan(append(dest, w.late)...) }

// sortDue orders by lateness, most overdue first, then by tenant id.
func sortDue(ds []lifecycle.Due) {
	slices.SortFunc(ds, func(a, b lifecycle.Due) int {
		return cmp.Or(cmp.Compare(b.Late, a.Late), strings.Compare(a.Tenant.ID, b.Tenant.ID))
	})
}

// MarkKeysInUse implements keyring.Store: it moves the tenant's hot_until
// to until unless it is later already; a tenant that was idle becomes due
// at once. A tenant that does not exist (any more) is left alone.
func (s *Store) MarkKeysInUse(ctx context.Context, tenantID string, until time.Time) error {
	now := micros(time.Now())
	if _, err := s.w.ExecContext(ctx, `INSERT INTO key_check_leases (tenant_id, due_at, owner, hot_until)
		SELECT id, :now, '', :until FROM tenants WHERE id = :id
		ON CONFLICT (tenant_id) DO UPDATE SET
			due_at = CASE WHEN hot_until IS NULL OR hot_until <= :now THEN :now ELSE due_at END,
			hot_until = MAX(COALESCE(hot_until, excluded.hot_until), excluded.hot_until)`,
		sql.Named("id", tenantID), sql.Named("now", now), sql.Named("until", micros(until))); err != nil {
		return fmt.Errorf("sqlite: marking the keys of tenant %q in use: %w", tenantID, err)
	}
	return nil
}

// FinishKeyCheck implements lifecycle.Store.
func (s *Store) FinishKeyCheck(ctx context.Context, tenantID, owner string) error {
	if _, err := s.w.ExecContext(ctx, `UPDATE key_check_leases SET owner = '', lease_until = NULL
		WHERE tenant_id = ? AND owner = ?`, tenantID, owner); err != nil {
		return fmt.Errorf("sqlite: finishing the key check of tenant %q: %w", tenantID, err)
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
