package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
)

var _ internalkms.RootRecordStore = (*Store)(nil)

const rootRecordQuery = `SELECT ` + rootRecordColumns + ` FROM internal_root WHERE id = 1`

// scanRootRecord reads the record, the zero RootRecord if there is none.
func scanRootRecord(row pgx.Row) (internalkms.RootRecord, error) {
	rec, err := codec.ScanRootRecord(row)
	if isNoRows(err) {
		return internalkms.RootRecord{}, nil
	}
	return rec, err
}

// RootRecord returns the record of where the root key is; the zero
// RootRecord if there is none.
func (s *Store) RootRecord(ctx context.Context) (internalkms.RootRecord, error) {
	rec, err := scanRootRecord(s.pool.QueryRow(ctx, rootRecordQuery))
	if err != nil {
		return internalkms.RootRecord{}, fmt.Errorf("postgres: reading the root key record: %w", err)
	}
	return rec, nil
}

// UpdateRootRecord runs fn on the record inside a transaction that holds
// an advisory lock of this schema, so that replicas starting together or
// rotating at once run one after another (the row may not exist yet, so a
// row lock would not do).
func (s *Store) UpdateRootRecord(ctx context.Context, fn func(internalkms.RootRecord) (internalkms.RootRecord, error)) (internalkms.RootRecord, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return internalkms.RootRecord{}, fmt.Errorf("postgres: updating the root key record: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('tenantcrypt.internal_root'), hashtext(coalesce(current_schema(), '')))`); err != nil {
		return internalkms.RootRecord{}, fmt.Errorf("postgres: locking the root key record: %w", err)
	}
	old, err := scanRootRecord(tx.QueryRow(ctx, rootRecordQuery))
	if err != nil {
		return internalkms.RootRecord{}, fmt.Errorf("postgres: reading the root key record: %w", err)
	}
	rec, err := fn(old)
	if err != nil {
		return internalkms.RootRecord{}, err
	}
	if rec == old {
		return old, nil
	}
	if rec.UpdatedAt.IsZero() || rec.UpdatedAt.Equal(old.UpdatedAt) {
		rec.UpdatedAt = time.Now().UTC()
	}
	rec.UpdatedAt = rec.UpdatedAt.Truncate(time.Microsecond)
	_, err = tx.Exec(ctx, `INSERT INTO internal_root (id, `+rootRecordColumns+`)
		VALUES (1, $1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET source = excluded.source, current = excluded.current,
			token = excluded.token, key_label = excluded.key_label, updated_at = excluded.updated_at`,
		codec.RootRecordArgs(rec)...)
	if err != nil {
		return internalkms.RootRecord{}, fmt.Errorf("postgres: writing the root key record: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return internalkms.RootRecord{}, fmt.Errorf("postgres: writing the root key record: %w", err)
	}
	return rec, nil
}
