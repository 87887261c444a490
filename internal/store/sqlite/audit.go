package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/tenantcrypt/tenantcrypt/internal/audit"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/store/internal/rowcodec"
)

var _ audit.Store = (*Store)(nil)

// AppendEvents appends events to their chains in one IMMEDIATE transaction:
// the write lock serialises appends across connections and processes, so
// that each chain's head is read and moved by one append at a time. Before
// sealing, it sets Time to UTC at microsecond precision, as stored, and
// empty Details to nil, as Events returns them, so that the hashes verify
// against what Events reads. Errors: an event with an empty ChainID, or with
// a string that is not valid UTF-8 (JSON would not give it back) or, but in
// Details, holds a NUL (PostgreSQL's text cannot store it), and a seal that
// sets no Hash; on any error nothing is stored.
func (s *Store) AppendEvents(ctx context.Context, events []audit.Event, seal func(*audit.Event)) ([]audit.Event, error) {
	for _, e := range events {
		if err := audit.CheckStorable(e); err != nil {
			return nil, fmt.Errorf("sqlite: appending audit events: %w", err)
		}
	}
	stored := make([]audit.Event, 0, len(events))
	if len(events) == 0 {
		return stored, nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlite: appending audit events: %w", err)
	}
	defer tx.Rollback()
	heads := map[string]audit.Head{}
	for _, e := range events {
		h, ok := heads[e.ChainID]
		if !ok {
			if h, err = chainHead(ctx, tx, e.ChainID); err != nil {
				return nil, fmt.Errorf("sqlite: appending audit events to chain %q: %w", e.ChainID, err)
			}
		}
		e, err := audit.Link(e, h, seal)
		if err != nil {
			return nil, fmt.Errorf("sqlite: appending: %w", err)
		}
		args, err := codec.AuditEventArgs(e)
		if err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_events (`+auditEventColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...); err != nil {
			return nil, fmt.Errorf("sqlite: appending audit event %d of chain %q: %w", e.Seq, e.ChainID, err)
		}
		heads[e.ChainID] = audit.Head{ChainID: e.ChainID, Seq: e.Seq, Hash: e.Hash}
		stored = append(stored, e)
	}
	for _, h := range heads {
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_heads (chain_id, seq, hash) VALUES (?, ?, ?)
			ON CONFLICT (chain_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash`,
			h.ChainID, h.Seq, h.Hash); err != nil {
			return nil, fmt.Errorf("sqlite: moving the head of audit chain %q: %w", h.ChainID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("sqlite: appending audit events: %w", err)
	}
	return stored, nil
}

// ChainHead returns a chain's head: Seq 0 and audit.GenesisHash for a chain
// with no events.
func (s *Store) ChainHead(ctx context.Context, chainID string) (audit.Head, error) {
	h, err := chainHead(ctx, s.r, chainID)
	if err != nil {
		return audit.Head{}, fmt.Errorf("sqlite: reading the head of audit chain %q: %w", chainID, err)
	}
	return h, nil
}

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func chainHead(ctx context.Context, q querier, chainID string) (audit.Head, error) {
	h := audit.Head{ChainID: chainID}
	err := q.QueryRowContext(ctx, `SELECT seq, hash FROM audit_heads WHERE chain_id = ?`, chainID).Scan(&h.Seq, &h.Hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return audit.Head{ChainID: chainID, Hash: audit.GenesisHash(chainID)}, nil
	case err != nil:
		return audit.Head{}, err
	}
	return h, nil
}

// Events returns up to limit events of the chain matching f, in Seq order,
// with Seq greater than f.AfterSeq; an empty slice if there are none. An
// Action ending in "." selects the actions it prefixes, compared as a byte
// range so that no character of it is a wildcard. Details are nil for an
// event without details.
func (s *Store) Events(ctx context.Context, chainID string, f audit.Filter, limit int) ([]audit.Event, error) {
	es := []audit.Event{}
	if limit <= 0 {
		return es, nil
	}
	query, args := eventsQuery(chainID, f, limit)
	es, err := queryRows(ctx, s.r, codec.ScanAuditEvent, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: reading audit events of chain %q: %w", chainID, err)
	}
	return es, nil
}

// eventsQuery is Events' query: only the conditions f sets, so that the
// planner sees which index fits.
func eventsQuery(chainID string, f audit.Filter, limit int) (string, []any) {
	var b strings.Builder
	b.WriteString(`SELECT ` + auditEventColumns + ` FROM audit_events WHERE chain_id = ? AND seq > ?`)
	args := []any{chainID, f.AfterSeq}
	cond := func(c string, arg ...any) {
		b.WriteString(" AND " + c)
		args = append(args, arg...)
	}
	if !f.From.IsZero() {
		cond(`time >= ?`, micros(f.From))
	}
	if !f.To.IsZero() {
		cond(`time < ?`, micros(f.To))
	}
	if lo, hi, ok := rowcodec.ActionRange(f.Action); ok {
		cond(`action >= ? AND action < ?`, lo, hi)
	} else if f.Action != "" {
		cond(`action = ?`, f.Action)
	}
	if f.Principal != "" {
		cond(`principal = ?`, f.Principal)
	}
	if f.Result != "" {
		cond(`result = ?`, f.Result)
	}
	b.WriteString(` ORDER BY seq LIMIT ?`)
	return b.String(), append(args, limit)
}

// PutCheckpoint stores a signed checkpoint. Errors: audit.ErrExists when the
// chain has a checkpoint at that Seq.
func (s *Store) PutCheckpoint(ctx context.Context, c audit.Checkpoint) error {
	if err := audit.CheckStorableCheckpoint(c); err != nil {
		return fmt.Errorf("sqlite: storing audit checkpoint: %w", err)
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO audit_checkpoints (`+checkpointColumns+`) VALUES (?, ?, ?, ?, ?, ?)`, codec.CheckpointArgs(c)...)
	switch {
	case isPrimaryKeyViolation(err):
		return fmt.Errorf("sqlite: audit checkpoint %d of chain %q: %w", c.Seq, c.ChainID, audit.ErrExists)
	case err != nil:
		return fmt.Errorf("sqlite: storing audit checkpoint %d of chain %q: %w", c.Seq, c.ChainID, err)
	}
	return nil
}

// Checkpoints returns up to limit checkpoints of the chain with Seq greater
// than afterSeq, in Seq order; an empty slice if there are none.
func (s *Store) Checkpoints(ctx context.Context, chainID string, afterSeq int64, limit int) ([]audit.Checkpoint, error) {
	cs := []audit.Checkpoint{}
	if limit <= 0 {
		return cs, nil
	}
	cs, err := queryRows(ctx, s.r, codec.ScanCheckpoint, `SELECT `+checkpointColumns+` FROM audit_checkpoints
		WHERE chain_id = ? AND seq > ? ORDER BY seq LIMIT ?`, chainID, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: reading audit checkpoints of chain %q: %w", chainID, err)
	}
	return cs, nil
}

// Chains returns up to limit ids of chains with events, greater than after,
// in id (byte) order; an empty slice if there are none. A pruned chain
// stays: its head does.
func (s *Store) Chains(ctx context.Context, after string, limit int) ([]string, error) {
	ids := []string{}
	if limit <= 0 {
		return ids, nil
	}
	ids, err := queryRows(ctx, s.r, rowcodec.Value[string], `SELECT chain_id FROM audit_heads WHERE chain_id > ? ORDER BY chain_id LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: listing audit chains: %w", err)
	}
	return ids, nil
}

// Prune deletes the chain's events with Seq <= c.Seq and its checkpoints
// with Seq < c.Seq, in one IMMEDIATE transaction, provided the chain has a
// stored checkpoint at c.Seq with c.Hash; it returns how many events it
// deleted. The chain's head stays, so appends go on from it. The
// transaction holds the one row of audit_prune_guard, which the delete
// trigger of audit_events requires, and removes it before it commits.
// Errors: fault.ErrNotFound when there is no such checkpoint (or it has
// another hash), and then nothing is deleted.
func (s *Store) Prune(ctx context.Context, c audit.Checkpoint) (int, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("sqlite: pruning audit chain %q: %w", c.ChainID, err)
	}
	defer tx.Rollback()
	var hash []byte
	err = tx.QueryRowContext(ctx, `SELECT hash FROM audit_checkpoints WHERE chain_id = ? AND seq = ?`, c.ChainID, c.Seq).Scan(&hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, fmt.Errorf("sqlite: audit checkpoint %d of chain %q: %w", c.Seq, c.ChainID, fault.ErrNotFound)
	case err != nil:
		return 0, fmt.Errorf("sqlite: pruning audit chain %q: %w", c.ChainID, err)
	case !bytes.Equal(hash, c.Hash):
		return 0, fmt.Errorf("sqlite: audit checkpoint %d of chain %q with that hash: %w", c.Seq, c.ChainID, fault.ErrNotFound)
	}
	if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO audit_prune_guard (id, chain_id, seq) VALUES (1, ?, ?)`, c.ChainID, c.Seq); err != nil {
		return 0, fmt.Errorf("sqlite: pruning audit chain %q: %w", c.ChainID, err)
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM audit_events WHERE chain_id = ? AND seq <= ?`, c.ChainID, c.Seq)
	if err != nil {
		return 0, fmt.Errorf("sqlite: pruning audit chain %q: %w", c.ChainID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: pruning audit chain %q: %w", c.ChainID, err)
	}
	for _, q := range []string{
		`DELETE FROM audit_checkpoints WHERE chain_id = ? AND seq < ?`,
		`DELETE FROM audit_prune_guard WHERE chain_id = ? AND seq = ?`,
	} {
		if _, err := tx.ExecContext(ctx, q, c.ChainID, c.Seq); err != nil {
			return 0, fmt.Errorf("sqlite: pruning audit chain %q: %w", c.ChainID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("sqlite: pruning audit chain %q: %w", c.ChainID, err)
	}
	return int(n), nil
}
