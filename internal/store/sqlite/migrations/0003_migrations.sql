-- Key provider migrations (package migration): one row per change of a
-- tenant's key provider, kept after it completes as the tenant's history.
-- state is the String form of migration.State ('New', 'InProgress',
-- 'Completed'); completed_at is NULL until the migration completes (the zero
-- time.Time). from_arn and to_arn keep what the API showed for the providers,
-- so that a deleted provider still reads well in the history.

CREATE TABLE migrations (
    id           TEXT    NOT NULL PRIMARY KEY,
    tenant_id    TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    from_ref     TEXT    NOT NULL,
    to_ref       TEXT    NOT NULL,
    from_arn     TEXT    NOT NULL,
    to_arn       TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    total        INTEGER NOT NULL,
    done         INTEGER NOT NULL,
    initiated_at INTEGER NOT NULL,
    completed_at INTEGER,
    updated_at   INTEGER NOT NULL,
    last_error   TEXT    NOT NULL
) STRICT;

-- The database itself allows one unfinished migration per tenant; the store
-- maps a violation to migration.ErrRunning. Queries say
-- "state <> 'Completed'" exactly as here so that the planner can use it.
CREATE UNIQUE INDEX migrations_one_running ON migrations (tenant_id) WHERE state <> 'Completed';

-- LatestMigration.
CREATE INDEX migrations_tenant_initiated ON migrations (tenant_id, initiated_at);
