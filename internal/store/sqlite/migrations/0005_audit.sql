-- The audit log (package audit): one hash chain per tenant, and one for the
-- platform. No foreign key to tenants: the log outlives a deleted tenant,
-- whose deletion is itself audited, and DeleteTenant leaves these rows.
-- details is a JSON object of strings, '{}' for none.

CREATE TABLE audit_events (
    chain_id    TEXT    NOT NULL,
    seq         INTEGER NOT NULL CHECK (seq > 0),
    time        INTEGER NOT NULL,
    tenant_id   TEXT    NOT NULL,
    principal   TEXT    NOT NULL,
    token_id    TEXT    NOT NULL,
    source_addr TEXT    NOT NULL,
    request_id  TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    result      TEXT    NOT NULL,
    error_code  TEXT    NOT NULL,
    details     TEXT    NOT NULL CHECK (json_valid(details) AND json_type(details) = 'object'),
    prev_hash   BLOB    NOT NULL,
    hash        BLOB    NOT NULL,
    PRIMARY KEY (chain_id, seq)
) STRICT;

-- Events filters by time range and by action (exact, or a prefix as a
-- range), within one chain.
CREATE INDEX audit_events_chain_time ON audit_events (chain_id, time);
CREATE INDEX audit_events_chain_action ON audit_events (chain_id, action, seq);

-- Each chain's last event; seq 0 and the genesis hash before its first.
-- AppendEvents reads and moves it in the transaction that appends.
CREATE TABLE audit_heads (
    chain_id TEXT    NOT NULL PRIMARY KEY,
    seq      INTEGER NOT NULL CHECK (seq >= 0),
    hash     BLOB    NOT NULL
) STRICT, WITHOUT ROWID;

-- Signed statements that a chain's event seq has hash.
CREATE TABLE audit_checkpoints (
    chain_id  TEXT    NOT NULL,
    seq       INTEGER NOT NULL CHECK (seq > 0),
    hash      BLOB    NOT NULL,
    time      INTEGER NOT NULL,
    key_id    TEXT    NOT NULL,
    signature BLOB    NOT NULL,
    PRIMARY KEY (chain_id, seq)
) STRICT, WITHOUT ROWID;

-- Append-only. The triggers refuse to change an event, to replace one (INSERT
-- OR REPLACE deletes without firing delete triggers) and to delete one,
-- except for Prune: inside its transaction, and only there, the one row of
-- audit_prune_guard names the chain and the checkpoint's seq up to which
-- events may go. They stop accidents and casual edits, not someone with
-- write access to the file, who can drop them; the hash chain and the signed
-- checkpoints detect that.
CREATE TABLE audit_prune_guard (
    id       INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    chain_id TEXT    NOT NULL,
    seq      INTEGER NOT NULL
) STRICT;

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: events cannot be changed');
END;

CREATE TRIGGER audit_events_no_replace BEFORE INSERT ON audit_events
WHEN EXISTS (SELECT 1 FROM audit_events e WHERE e.chain_id = NEW.chain_id AND e.seq = NEW.seq)
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: events cannot be replaced');
END;

CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
WHEN NOT EXISTS (SELECT 1 FROM audit_prune_guard g WHERE g.chain_id = OLD.chain_id AND OLD.seq <= g.seq)
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: only pruning up to a checkpoint deletes events');
END;
