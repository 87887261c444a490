package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
)

var _ internalkms.RootRecordStore = (*Store)(nil)

const rootRecordQuery = `SELECT ` + rootRecordColumns + ` FROM internal_root WHERE id = 1`

// scanRootRecord reads the record, the zero RootRecord if there is none.
func scanRootRecord(row scanner) (internalkms.RootRecord, error) {
	rec, err := codec.ScanRootRecord(row)
	if errors.Is(err, sql.ErrNoRows) {
		return internalkms.RootRecord{}, nil
	}
	return rec, err
}

// RootRecord returns the record of where the root key is; the zero
// RootRecord if there is none.
func (s *Store) RootRecord(ctx context.Context) (internalkms.RootRecord, error) {
	rec, err := scanRootRecord(s.r.QueryRowContext(ctx, rootRecordQuery))
	if err != nil {
		return internalkms.RootRecord{}, fmt.Errorf("sqlite: reading the root key record: %w", err)
	}
	return rec, nil
}

// UpdateRootRecord runs fn on the record inside an IMMEDIATE transaction,
// which holds the database's write lock, and stores what it returns. fn
// must not write to this Store (it holds its only write connection).
func (s *Store) UpdateRootRecord(ctx context.Context, fn func(internalkms.RootRecord) (internalkms.RootRecord, error)) (internalkms.RootRecord, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return internalkms.RootRecord{}, fmt.Errorf("sqlite: updating the root key record: %w", err)
	}
	defer tx.Rollback()
	old, err := scanRootRecord(tx.QueryRowContext(ctx, rootRecordQuery))
	if err != nil {
		return internalkms.RootRecord{}, fmt.Errorf("sqlite: reading the root key record: %w", err)
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
	_, err = tx.ExecContext(ctx, `INSERT INTO internal_root (id, `+rootRecordColumns+`)
		VALUES (1, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET source = excluded.source, current = excluded.current,
			token = excluded.token, key_label = excluded.key_label, updated_at = excluded.updated_at`,
		codec.RootRecordArgs(rec)...)
	if err != nil {
		return internalkms.RootRecord{}, fmt.Errorf("sqlite: writing the root key record: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return internalkms.RootRecord{}, fmt.Errorf("sqlite: writing the root key record: %w", err)
	}
	rec.UpdatedAt = fromMicros(micros(rec.UpdatedAt))
	return rec, nil
}
