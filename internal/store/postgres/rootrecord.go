package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
)

var _ internalkms.RootRecordStore = (*Store)(nil)

const rootRecordQuery = `SELECT source, current, token, key_label, updated_at FROM internal_root WHERE id = 1`

func scanRootRecord(row pgx.Row) (internalkms.RootRecord, error) {
	var rec internalkms.RootRecord
	var current int64
	err := row.Scan(&rec.Source, &current, &rec.Token, &rec.KeyLabel, &rec.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return internalkms.RootRecord{}, nil
	}
	if err != nil {
		return internalkms.RootRecord{}, err
	}
	if current < 0 || current > 1<<32-1 {
		return internalkms.RootRecord{}, fmt.Errorf("root key version %d out of range", current)
	}
	rec.Current, rec.UpdatedAt = uint32(current), rec.UpdatedAt.UTC()
	return rec, nil
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
	_, err = tx.Exec(ctx, `INSERT INTO internal_root (id, source, current, token, key_label, updated_at)
		VALUES (1, $1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET source = excluded.source, current = excluded.current,
			token = excluded.token, key_label = excluded.key_label, updated_at = excluded.updated_at`,
		rec.Source, int64(rec.Current), rec.Token, rec.KeyLabel, rec.UpdatedAt)
	if err != nil {
		return internalkms.RootRecord{}, fmt.Errorf("postgres: writing the root key record: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return internalkms.RootRecord{}, fmt.Errorf("postgres: writing the root key record: %w", err)
	}
	return rec, nil
}
