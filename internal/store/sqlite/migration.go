package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/migration"
	"github.com/tenantcrypt/tenantcrypt/internal/store/internal/rowcodec"
)

// InsertMigration records a new migration. The unique index
// migrations_one_running refuses a second migration of the tenant that is
// not Completed. Errors: migration.ErrRunning, fault.ErrExists (same id;
// also when the tenant has an unfinished migration besides),
// fault.ErrNotFound (no such tenant).
func (s *Store) InsertMigration(ctx context.Context, m migration.Migration) error {
	args, err := codec.MigrationArgs(m)
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO migrations (`+migrationColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...)
	switch {
	case isPrimaryKeyViolation(err):
		return fmt.Errorf("sqlite: migration %q: %w", m.ID, fault.ErrExists)
	case isUniqueViolation(err):
		// migrations_one_running, the table's only other unique index.
		// SQLite may check it before the primary key; report a taken id the
		// same way whatever the order.
		var one int
		switch err := s.r.QueryRowContext(ctx, `SELECT 1 FROM migrations WHERE id = ?`, m.ID).Scan(&one); {
		case err == nil:
			return fmt.Errorf("sqlite: migration %q: %w", m.ID, fault.ErrExists)
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("sqlite: inserting migration %q of tenant %q: %w", m.ID, m.TenantID, err)
		}
		return fmt.Errorf("sqlite: migration %q of tenant %q: %w", m.ID, m.TenantID, migration.ErrRunning)
	case isForeignKeyViolation(err):
		return fmt.Errorf("sqlite: tenant %q: %w", m.TenantID, fault.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: inserting migration %q of tenant %q: %w", m.ID, m.TenantID, err)
	}
	return nil
}

// LatestMigration returns the tenant's migration with the latest
// InitiatedAt (of equal ones, the greatest id). Errors: fault.ErrNotFound
// when it never had one.
func (s *Store) LatestMigration(ctx context.Context, tenantID string) (migration.Migration, error) {
	m, err := codec.ScanMigration(s.r.QueryRowContext(ctx, `SELECT `+migrationColumns+` FROM migrations
		WHERE tenant_id = ? ORDER BY initiated_at DESC, id DESC LIMIT 1`, tenantID))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return migration.Migration{}, fmt.Errorf("sqlite: migration of tenant %q: %w", tenantID, fault.ErrNotFound)
	case err != nil:
		return migration.Migration{}, fmt.Errorf("sqlite: reading latest migration of tenant %q: %w", tenantID, err)
	}
	return m, nil
}

// ProviderSwitchTimes returns the CompletedAt of the tenant's latest
// Completed migration to ref and of its latest one from ref (zero if none).
func (s *Store) ProviderSwitchTimes(ctx context.Context, tenantID string, ref kms.Ref) (promoted, demoted time.Time, err error) {
	var to, from sql.NullInt64
	err = s.r.QueryRowContext(ctx, `SELECT MAX(CASE WHEN to_ref = ? THEN completed_at END), MAX(CASE WHEN from_ref = ? THEN completed_at END)
		FROM migrations WHERE tenant_id = ? AND state = 'Completed'`, rowcodec.Ref(ref), rowcodec.Ref(ref), tenantID).Scan(&to, &from)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("sqlite: reading the provider switches of tenant %q: %w", tenantID, err)
	}
	return fromNullMicros(to), fromNullMicros(from), nil
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
	res, err := s.w.ExecContext(ctx, `UPDATE migrations
		SET state = ?, done = ?, total = ?, completed_at = ?, last_error = ?, updated_at = ?
		WHERE id = ? AND tenant_id = ?`,
		state, m.Done, m.Total, nullMicros(m.CompletedAt), m.LastError, micros(m.UpdatedAt), m.ID, m.TenantID)
	switch {
	case isUniqueViolation(err):
		return fmt.Errorf("sqlite: migration %q of tenant %q: %w", m.ID, m.TenantID, migration.ErrRunning)
	case err != nil:
		return fmt.Errorf("sqlite: updating migration %q of tenant %q: %w", m.ID, m.TenantID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: updating migration %q of tenant %q: %w", m.ID, m.TenantID, err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: migration %q of tenant %q: %w", m.ID, m.TenantID, fault.ErrNotFound)
	}
	return nil
}

// UnfinishedMigrations returns every migration that is not Completed, of any
// tenant, oldest first (by InitiatedAt, then id); an empty slice if there is
// none.
func (s *Store) UnfinishedMigrations(ctx context.Context) ([]migration.Migration, error) {
	ms, err := queryRows(ctx, s.r, codec.ScanMigration, `SELECT `+migrationColumns+` FROM migrations
		WHERE state <> 'Completed' ORDER BY initiated_at, id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: listing unfinished migrations: %w", err)
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
	// The primary key (tenant_id, id) gives the order; BLOBs compare with
	// memcmp.
	ks, err := queryRows(ctx, s.r, codec.ScanCipherKey, `SELECT `+cipherKeyColumns+` FROM cipherkeys
		WHERE tenant_id = ? AND id > ? AND provider <> ? ORDER BY id LIMIT ?`, tenantID, after[:], rowcodec.Ref(ref), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: reading cipherkeys of tenant %q not wrapped by %q: %w", tenantID, ref, err)
	}
	return ks, nil
}

// RewrapCipherKey replaces the Provider, KeyVersion and Wrapped of the
// cipherkey (old.TenantID, old.ID), provided its Provider and Wrapped are
// still old's, in one UPDATE that leaves every other column (Active,
// UsesReserved) as it is then. Errors: fault.ErrConflict (it changed;
// nothing written), fault.ErrNotFound.
func (s *Store) RewrapCipherKey(ctx context.Context, old keyring.CipherKey, provider kms.Ref, keyVersion string, wrapped []byte) error {
	res, err := s.w.ExecContext(ctx, `UPDATE cipherkeys SET provider = ?, key_version = ?, wrapped = ?
		WHERE tenant_id = ? AND id = ? AND provider = ? AND wrapped = ?`,
		rowcodec.Ref(provider), keyVersion, rowcodec.NotNil(wrapped), old.TenantID, old.ID[:], rowcodec.Ref(old.Provider), rowcodec.NotNil(old.Wrapped))
	if err != nil {
		return fmt.Errorf("sqlite: rewrapping cipherkey %s of tenant %q: %w", old.ID, old.TenantID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: rewrapping cipherkey %s of tenant %q: %w", old.ID, old.TenantID, err)
	} else if n > 0 {
		return nil
	}
	var one int
	err = s.r.QueryRowContext(ctx, `SELECT 1 FROM cipherkeys WHERE tenant_id = ? AND id = ?`, old.TenantID, old.ID[:]).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlite: cipherkey %s of tenant %q: %w", old.ID, old.TenantID, fault.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: rewrapping cipherkey %s of tenant %q: %w", old.ID, old.TenantID, err)
	}
	return fmt.Errorf("sqlite: cipherkey %s of tenant %q is no longer wrapped by %q as read: %w", old.ID, old.TenantID, old.Provider, fault.ErrConflict)
}

// RewrapCipherKeys implements migration.Store: one transaction, one fsync,
// for a whole batch.
func (s *Store) RewrapCipherKeys(ctx context.Context, rs []migration.Rewrap) (int, error) {
	if len(rs) == 0 {
		return 0, nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("sqlite: rewrapping cipherkeys: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `UPDATE cipherkeys SET provider = ?, key_version = ?, wrapped = ?
		WHERE tenant_id = ? AND id = ? AND provider = ? AND wrapped = ?`)
	if err != nil {
		return 0, fmt.Errorf("sqlite: rewrapping cipherkeys: %w", err)
	}
	defer stmt.Close()
	applied := 0
	for _, r := range rs {
		res, err := stmt.ExecContext(ctx, rowcodec.Ref(r.Provider), r.KeyVersion, rowcodec.NotNil(r.Wrapped), r.Old.TenantID, r.Old.ID[:], rowcodec.Ref(r.Old.Provider), rowcodec.NotNil(r.Old.Wrapped))
		if err != nil {
			return 0, fmt.Errorf("sqlite: rewrapping cipherkey %s of tenant %q: %w", r.Old.ID, r.Old.TenantID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("sqlite: rewrapping cipherkeys: %w", err)
		}
		applied += int(n)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("sqlite: rewrapping cipherkeys: %w", err)
	}
	return applied, nil
}
