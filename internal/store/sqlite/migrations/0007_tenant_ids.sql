-- Tenant ids are never reused: every id ever created stays in tenant_ids,
-- and a deleted tenant's id is retired (retired_at set), so that no token,
-- handle, ciphertext or audit event of the old tenant can reach a new one.
-- Triggers, not the store's methods, keep it, so that every writer (a
-- replica still running the previous version, an operator's SQL) obeys it.
-- compatible-with: 6

CREATE TABLE tenant_ids (
    id         TEXT    NOT NULL PRIMARY KEY,
    retired_at INTEGER
) STRICT, WITHOUT ROWID;

-- The ids of today's tenants, and of the tenants deleted before this
-- migration, which live on as audit chains: a new tenant must not inherit
-- an old tenant's events.
INSERT INTO tenant_ids (id) SELECT id FROM tenants;
INSERT INTO tenant_ids (id, retired_at)
    SELECT DISTINCT chain_id, CAST(unixepoch('subsec') * 1000000 AS INTEGER) FROM audit_events
    WHERE chain_id <> '_platform' AND chain_id NOT IN (SELECT id FROM tenants);

CREATE TRIGGER tenant_ids_retired BEFORE INSERT ON tenants
    WHEN EXISTS (SELECT 1 FROM tenant_ids WHERE id = NEW.id AND retired_at IS NOT NULL)
BEGIN
    SELECT RAISE(ABORT, 'tenant id retired');
END;

CREATE TRIGGER tenant_ids_claim AFTER INSERT ON tenants
BEGIN
    INSERT INTO tenant_ids (id) VALUES (NEW.id) ON CONFLICT (id) DO NOTHING;
END;

CREATE TRIGGER tenant_ids_retire AFTER DELETE ON tenants
BEGIN
    INSERT INTO tenant_ids (id, retired_at) VALUES (OLD.id, CAST(unixepoch('subsec') * 1000000 AS INTEGER))
        ON CONFLICT (id) DO UPDATE SET retired_at = excluded.retired_at;
END;
