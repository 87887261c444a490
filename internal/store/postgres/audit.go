package postgres

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/tenantcrypt/tenantcrypt/internal/audit"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/store/internal/rowcodec"
)

var _ audit.Store = (*Store)(nil)

// AppendEvents appends events to their chains in one transaction. It first
// creates the missing heads and locks every head of the batch (FOR UPDATE),
// in chain id order so that batches of several chains cannot deadlock: a
// chain's appends, from any replica, run one after the other, and each reads
// the head its predecessor moved. Before sealing, it sets Time to UTC at
// microsecond precision, as stored, and empty Details to nil, as Events
// returns them, so that the hashes verify against what Events reads.
// Errors: an event with an empty ChainID, or with a string that is not valid
// UTF-8 (text refuses it, JSON would not give it back) or, but in Details,
// holds a NUL (text refuses it), and a seal that sets no Hash; on any error
// nothing is stored.
func (s *Store) AppendEvents(ctx context.Context, events []audit.Event, seal func(*audit.Event)) ([]audit.Event, error) {
	for _, e := range events {
		if err := audit.CheckStorable(e); err != nil {
			return nil, fmt.Errorf("postgres: appending audit events: %w", err)
		}
	}
	stored := make([]audit.Event, 0, len(events))
	if len(events) == 0 {
		return stored, nil
	}
	var chains []string
	for _, e := range events {
		chains = append(chains, e.ChainID)
	}
	slices.Sort(chains)
	chains = slices.Compact(chains)

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: appending audit events: %w", err)
	}
	defer tx.Rollback(ctx)

	// One round trip: for each chain in order, create its head if missing
	// (a concurrent creator makes this wait for its commit), then lock it.
	lock := &pgx.Batch{}
	heads := make(map[string]audit.Head, len(chains))
	for _, id := range chains {
		lock.Queue(`INSERT INTO audit_heads (chain_id, seq, hash) VALUES ($1, 0, $2) ON CONFLICT (chain_id) DO NOTHING`,
			id, audit.GenesisHash(id))
		lock.Queue(`SELECT seq, hash FROM audit_heads WHERE chain_id = $1 FOR UPDATE`, id).QueryRow(func(row pgx.Row) error {
			h := audit.Head{ChainID: id}
			if err := row.Scan(&h.Seq, &h.Hash); err != nil {
				return err
			}
			heads[id] = h
			return nil
		})
	}
	if err := tx.SendBatch(ctx, lock).Close(); err != nil {
		return nil, fmt.Errorf("postgres: locking audit chain heads: %w", err)
	}

	insert := &pgx.Batch{}
	for _, e := range events {
		h := heads[e.ChainID]
		e, err := audit.Link(e, h, seal)
		if err != nil {
			return nil, fmt.Errorf("postgres: appending: %w", err)
		}
		args, err := codec.AuditEventArgs(e)
		if err != nil {
			return nil, err
		}
		insert.Queue(`INSERT INTO audit_events (`+auditEventColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`, args...)
		heads[e.ChainID] = audit.Head{ChainID: e.ChainID, Seq: e.Seq, Hash: e.Hash}
		stored = append(stored, e)
	}
	for _, id := range chains {
		h := heads[id]
		insert.Queue(`UPDATE audit_heads SET seq = $2, hash = $3 WHERE chain_id = $1`, h.ChainID, h.Seq, h.Hash)
	}
	if err := tx.SendBatch(ctx, insert).Close(); err != nil {
		return nil, fmt.Errorf("postgres: appending audit events: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("postgres: appending audit events: %w", err)
	}
	return stored, nil
}

// ChainHead returns a chain's head: Seq 0 and audit.GenesisHash for a chain
// with no events.
func (s *Store) ChainHead(ctx context.Context, chainID string) (audit.Head, error) {
	h := audit.Head{ChainID: chainID}
	err := s.pool.QueryRow(ctx, `SELECT seq, hash FROM audit_heads WHERE chain_id = $1`, chainID).Scan(&h.Seq, &h.Hash)
	switch {
	case isNoRows(err):
		return audit.Head{ChainID: chainID, Hash: audit.GenesisHash(chainID)}, nil
	case err != nil:
		return audit.Head{}, fmt.Errorf("postgres: reading the head of audit chain %q: %w", chainID, err)
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
	// No stored event has a string that text cannot hold, and PostgreSQL
	// would refuse it as a parameter: nothing matches, as on SQLite.
	for _, v := range []string{chainID, f.Action, f.Principal, f.Result} {
		if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
			return es, nil
		}
	}
	query, args := eventsQuery(chainID, f, limit)
	es, err := queryRows(ctx, s.pool, codec.ScanAuditEvent, query, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: reading audit events of chain %q: %w", chainID, err)
	}
	return es, nil
}

// eventsQuery is Events' query: only the conditions f sets, so that the
// planner sees which index fits.
func eventsQuery(chainID string, f audit.Filter, limit int) (string, []any) {
	var b strings.Builder
	b.WriteString(`SELECT ` + auditEventColumns + ` FROM audit_events WHERE chain_id = $1 AND seq > $2`)
	args := []any{chainID, f.AfterSeq}
	param := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if !f.From.IsZero() {
		b.WriteString(` AND time >= ` + param(f.From))
	}
	if !f.To.IsZero() {
		b.WriteString(` AND time < ` + param(f.To))
	}
	if lo, hi, ok := rowcodec.ActionRange(f.Action); ok {
		b.WriteString(` AND action >= ` + param(lo) + ` AND action < ` + param(hi))
	} else if f.Action != "" {
		b.WriteString(` AND action = ` + param(f.Action))
	}
	if f.Principal != "" {
		b.WriteString(` AND principal = ` + param(f.Principal))
	}
	if f.Result != "" {
		b.WriteString(` AND result = ` + param(f.Result))
	}
	b.WriteString(` ORDER BY seq LIMIT ` + param(limit))
	return b.String(), args
}

// PutCheckpoint stores a signed checkpoint. Errors: audit.ErrExists when the
// chain has a checkpoint at that Seq.
func (s *Store) PutCheckpoint(ctx context.Context, c audit.Checkpoint) error {
	if err := audit.CheckStorableCheckpoint(c); err != nil {
		return fmt.Errorf("postgres: storing audit checkpoint: %w", err)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO audit_checkpoints (`+checkpointColumns+`) VALUES ($1, $2, $3, $4, $5, $6)`, codec.CheckpointArgs(c)...)
	if code, _ := violation(err); code == uniqueViolation {
		return fmt.Errorf("postgres: audit checkpoint %d of chain %q: %w", c.Seq, c.ChainID, audit.ErrExists)
	} else if err != nil {
		return fmt.Errorf("postgres: storing audit checkpoint %d of chain %q: %w", c.Seq, c.ChainID, err)
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
	cs, err := queryRows(ctx, s.pool, codec.ScanCheckpoint, `SELECT `+checkpointColumns+` FROM audit_checkpoints
		WHERE chain_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, chainID, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: reading audit checkpoints of chain %q: %w", chainID, err)
	}
	return cs, nil
}

// Chains returns up to limit ids of chains with events, greater than after,
// in id (byte, collation "C") order; an empty slice if there are none. A
// pruned chain stays: its head does.
func (s *Store) Chains(ctx context.Context, after string, limit int) ([]string, error) {
	ids := []string{}
	if limit <= 0 {
		return ids, nil
	}
	ids, err := queryRows(ctx, s.pool, rowcodec.Value[string], `SELECT chain_id FROM audit_heads WHERE chain_id > $1 ORDER BY chain_id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: listing audit chains: %w", err)
	}
	return ids, nil
}

// Prune deletes the chain's events with Seq <= c.Seq and its checkpoints
// with Seq < c.Seq, in one transaction, provided the chain has a stored
// checkpoint at c.Seq with c.Hash; it returns how many events it deleted.
// The chain's head stays, so appends go on from it. The transaction sets
// the transaction-local settings that audit_events' trigger requires for a
// delete, naming the chain and the checkpoint's seq; they end with it.
// Errors: fault.ErrNotFound when there is no such checkpoint (or it has
// another hash), and then nothing is deleted.
func (s *Store) Prune(ctx context.Context, c audit.Checkpoint) (int, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("postgres: pruning audit chain %q: %w", c.ChainID, err)
	}
	defer tx.Rollback(ctx)
	var hash []byte
	err = tx.QueryRow(ctx, `SELECT hash FROM audit_checkpoints WHERE chain_id = $1 AND seq = $2`, c.ChainID, c.Seq).Scan(&hash)
	switch {
	case isNoRows(err):
		return 0, fmt.Errorf("postgres: audit checkpoint %d of chain %q: %w", c.Seq, c.ChainID, fault.ErrNotFound)
	case err != nil:
		return 0, fmt.Errorf("postgres: pruning audit chain %q: %w", c.ChainID, err)
	case !bytes.Equal(hash, c.Hash):
		return 0, fmt.Errorf("postgres: audit checkpoint %d of chain %q with that hash: %w", c.Seq, c.ChainID, fault.ErrNotFound)
	}
	if _, err := tx.Exec(ctx, `SELECT set_config('tenantcrypt.audit_prune_chain', $1, true),
		set_config('tenantcrypt.audit_prune_seq', $2, true)`, c.ChainID, strconv.FormatInt(c.Seq, 10)); err != nil {
		return 0, fmt.Errorf("postgres: pruning audit chain %q: %w", c.ChainID, err)
	}
	tag, err := tx.Exec(ctx, `DELETE FROM audit_events WHERE chain_id = $1 AND seq <= $2`, c.ChainID, c.Seq)
	if err != nil {
		return 0, fmt.Errorf("postgres: pruning audit chain %q: %w", c.ChainID, err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM audit_checkpoints WHERE chain_id = $1 AND seq < $2`, c.ChainID, c.Seq); err != nil {
		return 0, fmt.Errorf("postgres: pruning audit chain %q: %w", c.ChainID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("postgres: pruning audit chain %q: %w", c.ChainID, err)
	}
	return int(tag.RowsAffected()), nil
}
