-- The key lifecycle (package lifecycle). A tenant's state_reason says why it
-- is in its state, for its admins; state_changed_at is when it entered it,
-- NULL for a tenant that never left active (the zero time.Time). Only
-- SetTenantState writes the three columns.

ALTER TABLE tenants ADD COLUMN state_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE tenants ADD COLUMN state_changed_at INTEGER;

-- The tenants whose customer managed key the monitor checks, in id order.
-- WatchedTenants says "provider <> 'internal' AND state <> 'destroyed'"
-- exactly as here so that the planner can use the index.
CREATE INDEX tenants_watched ON tenants (id) WHERE provider <> 'internal' AND state <> 'destroyed';

-- The monitor's latest check of a tenant's key, one row per region.
-- result is one of lifecycle's Result* constants; key_state is the key's
-- state as AWS spells it, empty when KMS did not describe it.
CREATE TABLE key_checks (
    tenant_id  TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    provider   TEXT    NOT NULL,
    region     TEXT    NOT NULL,
    key_arn    TEXT    NOT NULL,
    checked_at INTEGER NOT NULL,
    result     TEXT    NOT NULL,
    key_state  TEXT    NOT NULL,
    detail     TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, region)
) STRICT, WITHOUT ROWID;
