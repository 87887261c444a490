package rowcodec

import (
	"strings"

	"github.com/tenantcrypt/tenantcrypt/internal/audit"
)

// The column lists of the audit tables, in the order of the Args and Scan
// methods.
const (
	AuditEventColumns = `chain_id, seq, time, tenant_id, principal, token_id, source_addr, request_id,
	action, target, result, error_code, details, prev_hash, hash`

	CheckpointColumns = `chain_id, seq, hash, time, key_id, signature`
)

// AuditEventArgs are e's AuditEventColumns, its details as JSON text.
// Errors: details that do not encode.
func (c Codec) AuditEventArgs(e audit.Event) ([]any, error) {
	details, err := audit.EncodeDetails(e.Details)
	if err != nil {
		return nil, c.errorf("audit event %d of chain %q: details: %w", e.Seq, e.ChainID, err)
	}
	return []any{e.ChainID, e.Seq, c.Times.Arg(e.Time), e.TenantID, e.Principal, e.TokenID, e.SourceAddr, e.RequestID,
		e.Action, e.Target, e.Result, e.ErrorCode, string(details), NotNil(e.PrevHash), NotNil(e.Hash)}, nil
}

// ScanAuditEvent reads a row of AuditEventColumns.
func (c Codec) ScanAuditEvent(sc Scanner) (audit.Event, error) {
	var e audit.Event
	var details string
	if err := sc.Scan(&e.ChainID, &e.Seq, c.Times.Dest(&e.Time), &e.TenantID, &e.Principal, &e.TokenID, &e.SourceAddr, &e.RequestID,
		&e.Action, &e.Target, &e.Result, &e.ErrorCode, &details, &e.PrevHash, &e.Hash); err != nil {
		return audit.Event{}, err
	}
	var err error
	if e.Details, err = audit.DecodeDetails([]byte(details)); err != nil {
		return audit.Event{}, c.errorf("audit event %d of chain %q: stored details: %w", e.Seq, e.ChainID, err)
	}
	e.PrevHash, e.Hash = NilIfEmpty(e.PrevHash), NilIfEmpty(e.Hash)
	return e, nil
}

// CheckpointArgs are cp's CheckpointColumns.
func (c Codec) CheckpointArgs(cp audit.Checkpoint) []any {
	return []any{cp.ChainID, cp.Seq, NotNil(cp.Hash), c.Times.Arg(cp.Time), cp.KeyID, NotNil(cp.Signature)}
}

// ScanCheckpoint reads a row of CheckpointColumns.
func (c Codec) ScanCheckpoint(sc Scanner) (audit.Checkpoint, error) {
	var cp audit.Checkpoint
	if err := sc.Scan(&cp.ChainID, &cp.Seq, &cp.Hash, c.Times.Dest(&cp.Time), &cp.KeyID, &cp.Signature); err != nil {
		return audit.Checkpoint{}, err
	}
	cp.Hash, cp.Signature = NilIfEmpty(cp.Hash), NilIfEmpty(cp.Signature)
	return cp, nil
}

// ActionRange turns a filter's action prefix ("keyprovider.") into the byte
// range of the actions it prefixes: [prefix, prefix with its final "."
// replaced by "/", the next byte). A range needs no escaping, unlike LIKE,
// and the index on (chain_id, action) serves it; the comparison is bytewise
// (SQLite compares TEXT with memcmp, the PostgreSQL column has collation
// "C").
func ActionRange(action string) (lo, hi string, ok bool) {
	p, found := strings.CutSuffix(action, ".")
	if !found {
		return "", "", false
	}
	return action, p + "/", true
}
