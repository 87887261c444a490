-- The audit log (package audit): one hash chain per tenant, and one for the
-- platform. No foreign key to tenants: the log outlives a deleted tenant,
-- whose deletion is itself audited, and DeleteTenant leaves these rows.
-- details is a JSON object of strings, '{}' for none; json, not jsonb, keeps
-- the text as written. Chain ids and actions use the "C" collation so that
-- Chains pages and action prefixes compare in byte order, as on SQLite.

CREATE TABLE audit_events (
    chain_id    text COLLATE "C" NOT NULL,
    seq         bigint      NOT NULL,
    time        timestamptz NOT NULL,
    tenant_id   text        NOT NULL,
    principal   text        NOT NULL,
    token_id    text        NOT NULL,
    source_addr text        NOT NULL,
    request_id  text        NOT NULL,
    action      text COLLATE "C" NOT NULL,
    target      text        NOT NULL,
    result      text        NOT NULL,
    error_code  text        NOT NULL,
    details     json        NOT NULL,
    prev_hash   bytea       NOT NULL,
    hash        bytea       NOT NULL,
    CONSTRAINT audit_events_pkey PRIMARY KEY (chain_id, seq),
    CONSTRAINT audit_events_seq_positive CHECK (seq > 0),
    CONSTRAINT audit_events_details_object CHECK (json_typeof(details) = 'object')
);

-- Events filters by time range and by action (exact, or a prefix as a
-- range), within one chain.
CREATE INDEX audit_events_chain_time ON audit_events (chain_id, time);
CREATE INDEX audit_events_chain_action ON audit_events (chain_id, action, seq);

-- Each chain's last event; seq 0 and the genesis hash before its first.
-- AppendEvents locks the row (FOR UPDATE) to serialise the chain's appends
-- across replicas.
CREATE TABLE audit_heads (
    chain_id text COLLATE "C" NOT NULL,
    seq      bigint NOT NULL,
    hash     bytea  NOT NULL,
    CONSTRAINT audit_heads_pkey PRIMARY KEY (chain_id),
    CONSTRAINT audit_heads_seq_nonnegative CHECK (seq >= 0)
);

-- Signed statements that a chain's event seq has hash.
CREATE TABLE audit_checkpoints (
    chain_id  text COLLATE "C" NOT NULL,
    seq       bigint      NOT NULL,
    hash      bytea       NOT NULL,
    time      timestamptz NOT NULL,
    key_id    text        NOT NULL,
    signature bytea       NOT NULL,
    CONSTRAINT audit_checkpoints_pkey PRIMARY KEY (chain_id, seq),
    CONSTRAINT audit_checkpoints_seq_positive CHECK (seq > 0)
);

-- Append-only. The triggers refuse to change, delete or truncate events,
-- except for Prune: its transaction, and only it, sets the transaction-local
-- settings tenantcrypt.audit_prune_chain and tenantcrypt.audit_prune_seq to
-- the chain and the checkpoint's seq up to which events may go. They stop
-- accidents and casual edits, not a database administrator or the table's
-- owner, who can disable or drop them; the hash chain and the signed
-- checkpoints detect that.
CREATE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.chain_id = current_setting('tenantcrypt.audit_prune_chain', true)
            AND OLD.seq <= NULLIF(current_setting('tenantcrypt.audit_prune_seq', true), '')::bigint THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
        USING HINT = 'Only pruning up to a stored checkpoint deletes audit events.';
END
$$;

CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
