-- Tenant ids are never reused: every id ever created stays in tenant_ids,
-- and a deleted tenant's id is retired (retired_at set), so that no token,
-- handle, ciphertext or audit event of the old tenant can reach a new one.
-- Triggers, not the store's methods, keep it, so that every writer (a
-- replica still running the previous version, an operator's SQL) obeys it.
-- compatible-with: 6

CREATE TABLE tenant_ids (
    id         text COLLATE "C" NOT NULL,
    retired_at timestamptz,
    CONSTRAINT tenant_ids_pkey PRIMARY KEY (id)
);

-- The ids of today's tenants, and of the tenants deleted before this
-- migration, which live on as audit chains: a new tenant must not inherit
-- an old tenant's events.
INSERT INTO tenant_ids (id) SELECT id FROM tenants;
INSERT INTO tenant_ids (id, retired_at)
    SELECT DISTINCT chain_id, now() FROM audit_events e
    WHERE chain_id <> '_platform' AND NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = e.chain_id);

-- A creation locks the id's row first: a deletion of the same id that is
-- under way holds that lock until it commits, and the creation then sees
-- the id retired (READ COMMITTED re-reads the locked row).
CREATE FUNCTION tenantcrypt_tenant_id_claim() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    retired timestamptz;
BEGIN
    SELECT retired_at INTO retired FROM tenant_ids WHERE id = NEW.id FOR UPDATE;
    IF retired IS NOT NULL THEN
        RAISE EXCEPTION 'tenant id % is retired', NEW.id
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'tenant_ids_retired';
    END IF;
    INSERT INTO tenant_ids (id) VALUES (NEW.id) ON CONFLICT (id) DO NOTHING;
    RETURN NEW;
END
$$;

CREATE TRIGGER tenant_ids_claim BEFORE INSERT ON tenants
    FOR EACH ROW EXECUTE FUNCTION tenantcrypt_tenant_id_claim();

CREATE FUNCTION tenantcrypt_tenant_id_retire() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tenant_ids (id, retired_at) VALUES (OLD.id, now())
        ON CONFLICT (id) DO UPDATE SET retired_at = excluded.retired_at;
    RETURN NULL;
END
$$;

CREATE TRIGGER tenant_ids_retire AFTER DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION tenantcrypt_tenant_id_retire();
