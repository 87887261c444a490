-- Several replicas on one database. Expand only: every table and column
-- here is new or has a default, so that a replica still running the
-- previous version keeps working while the others are upgraded.
-- compatible-with: 5

-- Every committed change of a tenant row (its state, its provider, any
-- field) and every deletion is announced on the channel
-- tenantcrypt_tenants, so that the other replicas drop their copy of the
-- tenant at once instead of at their next poll. The payload names the
-- schema too: channels are database-wide, and tenantcrypt schemas side by
-- side must not act on each other's tenants. A trigger, not the store's
-- methods, so that a change made by any client (an operator's UPDATE as
-- much as a replica's) is announced, in the transaction that makes it.
CREATE FUNCTION tenantcrypt_tenant_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tenantcrypt_tenants',
        json_build_object('schema', TG_TABLE_SCHEMA, 'tenant', OLD.id)::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER tenants_changed AFTER UPDATE ON tenants
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION tenantcrypt_tenant_changed();

CREATE TRIGGER tenants_deleted AFTER DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION tenantcrypt_tenant_changed();

-- A migration is worked on by the replica that holds its lease: lease_owner
-- names the replica ('' for nobody), lease_until is when the lease lapses
-- unless renewed (NULL: not leased). Another replica takes over a lapsed
-- lease. Times are the database's clock, so that replicas' clocks do not
-- matter.
ALTER TABLE migrations
    ADD COLUMN lease_owner text NOT NULL DEFAULT '',
    ADD COLUMN lease_until timestamptz;

-- The key monitor's schedule, shared by the replicas: a row per tenant whose
-- key has been checked. due_at is when the next check is due; owner is the
-- replica checking it now ('' once that check finished) and lease_until
-- when its claim lapses if it does not finish (a replica that died
-- mid-check). Replicas claim due rows with one conditional upsert each, so
-- that every check is made by one replica.
CREATE TABLE key_check_leases (
    tenant_id   text COLLATE "C" NOT NULL,
    due_at      timestamptz NOT NULL,
    owner       text        NOT NULL,
    lease_until timestamptz,
    CONSTRAINT key_check_leases_pkey PRIMARY KEY (tenant_id),
    CONSTRAINT key_check_leases_tenant_fkey FOREIGN KEY (tenant_id)
        REFERENCES tenants (id) ON DELETE CASCADE
);
