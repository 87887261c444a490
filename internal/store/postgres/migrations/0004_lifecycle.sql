-- The key lifecycle (package lifecycle). A tenant's state_reason says why it
-- is in its state, for its admins; state_changed_at is when it entered it,
-- NULL for a tenant that never left active (the zero time.Time). Only
-- SetTenantState writes the three columns.

ALTER TABLE tenants
    ADD COLUMN state_reason     text        NOT NULL DEFAULT '',
    ADD COLUMN state_changed_at timestamptz;

-- The tenants whose customer managed key the monitor checks, in id order.
-- WatchedTenants says "provider <> 'internal' AND state <> 'destroyed'"
-- exactly as here so that the planner can use the index.
CREATE INDEX tenants_watched ON tenants (id) WHERE provider <> 'internal' AND state <> 'destroyed';

-- The monitor's latest check of a tenant's key, one row per region.
-- result is one of lifecycle's Result* constants; key_state is the key's
-- state as AWS spells it, empty when KMS did not describe it. Regions use
-- the "C" collation so that KeyChecks orders them in byte order, as on
-- SQLite.
CREATE TABLE key_checks (
    tenant_id  text COLLATE "C" NOT NULL,
    provider   text        NOT NULL,
    region     text COLLATE "C" NOT NULL,
    key_arn    text        NOT NULL,
    checked_at timestamptz NOT NULL,
    result     text        NOT NULL,
    key_state  text        NOT NULL,
    detail     text        NOT NULL,
    CONSTRAINT key_checks_pkey PRIMARY KEY (tenant_id, region),
    CONSTRAINT key_checks_tenant_fkey FOREIGN KEY (tenant_id)
        REFERENCES tenants (id) ON DELETE CASCADE
);
