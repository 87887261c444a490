-- Key provider migrations (package migration): one row per change of a
-- tenant's key provider, kept after it completes as the tenant's history.
-- state is the String form of migration.State ('New', 'InProgress',
-- 'Completed'); completed_at is NULL until the migration completes (the zero
-- time.Time). from_arn and to_arn keep what the API showed for the providers,
-- so that a deleted provider still reads well in the history. Ids use the
-- "C" collation so that ties in LatestMigration and UnfinishedMigrations
-- break in byte order, as on SQLite.

CREATE TABLE migrations (
    id           text COLLATE "C" NOT NULL,
    tenant_id    text COLLATE "C" NOT NULL,
    from_ref     text        NOT NULL,
    to_ref       text        NOT NULL,
    from_arn     text        NOT NULL,
    to_arn       text        NOT NULL,
    state        text        NOT NULL,
    total        bigint      NOT NULL,
    done         bigint      NOT NULL,
    initiated_at timestamptz NOT NULL,
    completed_at timestamptz,
    updated_at   timestamptz NOT NULL,
    last_error   text        NOT NULL,
    CONSTRAINT migrations_pkey PRIMARY KEY (id),
    CONSTRAINT migrations_tenant_fkey FOREIGN KEY (tenant_id)
        REFERENCES tenants (id) ON DELETE CASCADE
);

-- The database itself allows one unfinished migration per tenant. The store
-- maps a violation of this index to migration.ErrRunning by its name.
CREATE UNIQUE INDEX migrations_one_running ON migrations (tenant_id) WHERE state <> 'Completed';

-- LatestMigration; also serves the foreign key's cascade.
CREATE INDEX migrations_tenant_initiated ON migrations (tenant_id, initiated_at);
