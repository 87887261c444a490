package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/migration"
	"github.com/tenantcrypt/tenantcrypt/internal/store/internal/rowcodec"
)

// InsertMigration records a new migration. The unique index
// migrations_one_running refuses a second migration of the tenant that is
// not Completed; of two racing inserts, the second waits for the first to
// commit and then fails. Errors: migration.ErrRunning, fault.ErrExists (same
// id; also when the tenant has an unfinished migration besides),
// fault.ErrNotFound (no such tenant).
func (s *Store) InsertMigration(ctx context.Context, m migration.Migration) error {
	args, err := codec.MigrationArgs(m)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO migrations (`+migrationColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`, args...)
	err = migrationError(m, "inserting", err)
	if errors.Is(err, migration.ErrRunning) {
		// Which of two violated unique indexes PostgreSQL reports depends on
		// the order it checks them in; report a taken id the same way
		// whatever the order.
		var one int
		switch err := s.pool.QueryRow(ctx, `SELECT 1 FROM migrations WHERE id = $1`, m.ID).Scan(&one); {
		case err == nil:
			return fmt.Errorf("postgres: migration %q: %w", m.ID, fault.ErrExists)
		case !isNoRows(err):
			return fmt.Errorf("postgres: inserting migration %q of tenant %q: %w", m.ID, m.TenantID, err)
		}
	}
	return err
}

// migrationError maps the constraint violations of an insert into or update
// of migrations to their sentinels.
func migrationError(m migration.Migration, op string, err error) error {
	if err == nil {
		return nil
	}
	switch code, constraint := violation(err); {
	case code == uniqueViolation && constraint == oneRunningIndex:
		return fmt.Errorf("postgres: migration %q of tenant %q: %w", m.ID, m.TenantID, migration.ErrRunning)
	case code == uniqueViolation:
		return fmt.Errorf("postgres: migration %q: %w", m.ID, fault.ErrExists)
	case code == foreignKeyViolation:
		return fmt.Errorf("postgres: tenant %q: %w", m.TenantID, fault.ErrNotFound)
	}
	return fmt.Errorf("postgres: %s migration %q of tenant %q: %w", op, m.ID, m.TenantID, err)
}

// LatestMigration returns the tenant's migration with the latest
// InitiatedAt (of equal ones, the greatest id in byte order). Errors:
// fault.ErrNotFound when it never had one.
func (s *Store) LatestMigration(ctx context.Context, tenantID string) (migration.Migration, error) {
	m, err := codec.ScanMigration(s.pool.QueryRow(ctx, `SELECT `+migrationColumns+` FROM migrations
		WHERE tenant_id = $1 ORDER BY initiated_at DESC, id DESC LIMIT 1`, tenantID))
	switch {
	case isNoRows(err):
		return migration.Migration{}, fmt.Errorf("postgres: migration of tenant %q: %w", tenantID, fault.ErrNotFound)
	case err != nil:
		return migration.Migration{}, fmt.Errorf("postgres: reading latest migration of tenant %q: %w", tenantID, err)
	}
	return m, nil
}

// ProviderSwitchTimes returns the CompletedAt of the tenant's latest
// Completed migration to ref and of its latest one from ref (zero if none).
func (s *Store) ProviderSwitchTimes(ctx context.Context, tenantID string, ref kms.Ref) (promoted, demoted time.Time, err error) {
	var to, from pgtype.Timestamptz
	err = s.pool.QueryRow(ctx, `SELECT MAX(completed_at) FILTER (WHERE to_ref = $2), MAX(completed_at) FILTER (WHERE from_ref = $2)
		FROM migrations WHERE tenant_id = $1 AND state = 'Completed'`, tenantID, rowcodec.Ref(ref)).Scan(&to, &from)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("postgres: reading the provider switches of tenant %q: %w", tenantID, err)
	}
	return fromNullTime(to), fromNullTime(from), nil
}

// UpdateMigration replaces the State, Done, Total, CompletedAt, LastError and
// UpdatedAt of the stored migration (m.TenantID, m.ID). Errors:
// fault.ErrNotFound, migration.ErrRunning (it would make a second
// migration of the tenant unfinished).
func (s *Store) UpdateMigration(ctx context.Context, m migration.Migration) error {
	state, err := codec.MigrationState(m)
	if err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `UPDATE migrations
		SET state = $1, done = $2, total = $3, completed_at = $4, last_error = $5, updated_at = $6
		WHERE id = $7 AND tenant_id = $8`,
		state, m.Done, m.Total, nullTime(m.CompletedAt), m.LastError, m.UpdatedAt, m.ID, m.TenantID)
	if err := migrationError(m, "updating", err); err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: migration %q of tenant %q: %w", m.ID, m.TenantID, fault.ErrNotFound)
	}
	return nil
}

// UnfinishedMigrations returns every migration that is not Completed, of any
// tenant, oldest first (by InitiatedAt, then id); an empty slice if there is
// none.
func (s *Store) UnfinishedMigrations(ctx context.Context) ([]migration.Migration, error) {
	ms, err := queryRows(ctx, s.pool, codec.ScanMigration, `SELECT `+migrationColumns+` FROM migrations
		WHERE state <> 'Completed' ORDER BY initiated_at, id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: listing unfinished migrations: %w", err)
	}
	return ms, nil
}

// CipherKeysNotWrappedBy returns up to limit of the tenant's cipherkeys whose
// Provider is not ref, with ids greater than after, in id (byte) order; an
// empty slice if there is none.
func (s *Store) CipherKeysNotWrappedBy(ctx context.Context, tenantID string, ref kms.Ref, after envelope.KeyID, limit int) ([]keyring.CipherKey, error) {
	ks := []keyring.CipherKey{}
	if limit <= 0 {
		return ks, nil
	}
	// The primary key (tenant_id, id) gives the order; bytea compares
	// bytewise.
	ks, err := queryRows(ctx, s.pool, codec.ScanCipherKey, `SELECT `+cipherKeyColumns+` FROM cipherkeys
		WHERE tenant_id = $1 AND id > $2 AND provider <> $3 ORDER BY id LIMIT $4`, tenantID, after[:], rowcodec.Ref(ref), limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: reading cipherkeys of tenant %q not wrapped by %q: %w", tenantID, ref, err)
	}
	return ks, nil
}

// RewrapCipherKey replaces the Provider, KeyVersion and Wrapped of the
// cipherkey (old.TenantID, old.ID), provided its Provider and Wrapped are
// still old's, in one UPDATE: the row lock orders it with concurrent writers
// of the row, it re-checks its condition on the latest version, and it sets
// only its own columns, so that a concurrent ReserveUses or
// ActivateCipherKey is kept. Errors: fault.ErrConflict (it changed; nothing
// written), fault.ErrNotFound.
func (s *Store) RewrapCipherKey(ctx context.Context, old keyring.CipherKey, provider kms.Ref, keyVersion string, wrapped []byte) error {
	tag, err := s.pool.Exec(ctx, `UPDATE cipherkeys SET provider = $1, key_version = $2, wrapped = $3
		WHERE tenant_id = $4 AND id = $5 AND provider = $6 AND wrapped = $7`,
		rowcodec.Ref(provider), keyVersion, rowcodec.NotNil(wrapped), old.TenantID, old.ID[:], rowcodec.Ref(old.Provider), rowcodec.NotNil(old.Wrapped))
	if err != nil {
		return fmt.Errorf("postgres: rewrapping cipherkey %s of tenant %q: %w", old.ID, old.TenantID, err)
	}
	if tag.RowsAffected() > 0 {
		return nil
	}
	var one int
	err = s.pool.QueryRow(ctx, `SELECT 1 FROM cipherkeys WHERE tenant_id = $1 AND id = $2`, old.TenantID, old.ID[:]).Scan(&one)
	switch {
	case isNoRows(err):
		return fmt.Errorf("postgres: cipherkey %s of tenant %q: %w", old.ID, old.TenantID, fault.ErrNotFound)
	case err != nil:
		return fmt.Errorf("postgres: rewrapping cipherkey %s of tenant %q: %w", old.ID, old.TenantID, err)
	}
	return fmt.Errorf("postgres: cipherkey %s of tenant %q is no longer wrapped by %q as read: %w", old.ID, old.TenantID, old.Provider, fault.ErrConflict)
}

// RewrapCipherKeys implements migration.Store: one transaction and one
// round trip (a pgx batch) for a whole batch.
func (s *Store) RewrapCipherKeys(ctx context.Context, rs []migration.Rewrap) (int, error) {
	if len(rs) == 0 {
		return 0, nil
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("postgres: rewrapping cipherkeys: %w", err)
	}
	defer tx.Rollback(ctx)
	var b pgx.Batch
	for _, r := range rs {
		b.Queue(`UPDATE cipherkeys SET provider = $1, key_version = $2, wrapped = $3
			WHERE tenant_id = $4 AND id = $5 AND provider = $6 AND wrapped = $7`,
			rowcodec.Ref(r.Provider), r.KeyVersion, rowcodec.NotNil(r.Wrapped), r.Old.TenantID, r.Old.ID[:], rowcodec.Ref(r.Old.Provider), rowcodec.NotNil(r.Old.Wrapped))
	}
	results := tx.SendBatch(ctx, &b)
	applied := 0
	for range rs {
		tag, err := results.Exec()
		if err != nil {
			results.Close()
			return 0, fmt.Errorf("postgres: rewrapping cipherkeys: %w", err)
		}
		applied += int(tag.RowsAffected())
	}
	if err := results.Close(); err != nil {
		return 0, fmt.Errorf("postgres: rewrapping cipherkeys: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("postgres: rewrapping cipherkeys: %w", err)
	}
	return applied, nil
}
