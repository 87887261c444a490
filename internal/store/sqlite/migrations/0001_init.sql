-- Times are INTEGER unix microseconds, UTC. Booleans are INTEGER 0/1.
-- STRICT makes SQLite enforce the declared column types.

CREATE TABLE tenants (
    id         TEXT    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    edition    TEXT    NOT NULL,
    hipaa      INTEGER NOT NULL CHECK (hipaa IN (0, 1)),
    state      TEXT    NOT NULL,
    provider   TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE cipherkeys (
    tenant_id      TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id             BLOB    NOT NULL CHECK (length(id) = 16),
    purpose        TEXT    NOT NULL,
    active         INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1)),
    provider       TEXT    NOT NULL,
    key_version    TEXT    NOT NULL,
    wrapped        BLOB    NOT NULL,
    context_digest BLOB    NOT NULL,
    created_at     INTEGER NOT NULL,
    uses_reserved  INTEGER NOT NULL DEFAULT 0 CHECK (uses_reserved >= 0),
    PRIMARY KEY (tenant_id, id),
    -- Only an encryption key can be the one new encryptions use.
    CHECK (active = 0 OR purpose = 'encryption')
) STRICT, WITHOUT ROWID;

-- The database itself forbids a second active key per tenant. Queries say
-- "active = 1" exactly as here so that the planner can use the index.
CREATE UNIQUE INDEX cipherkeys_one_active ON cipherkeys (tenant_id) WHERE active = 1;

-- CountCipherKeys and provider migration.
CREATE INDEX cipherkeys_tenant_provider ON cipherkeys (tenant_id, provider);

-- No foreign key to tenants: the internal KMS owns these rows and may hold a
-- KEK before or without a tenant row; DeleteTenant removes them explicitly.
CREATE TABLE internal_keks (
    tenant_id    TEXT    NOT NULL,
    version      INTEGER NOT NULL CHECK (version BETWEEN 0 AND 4294967295),
    root_version INTEGER NOT NULL CHECK (root_version BETWEEN 0 AND 4294967295),
    wrapped      BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, version)
) STRICT, WITHOUT ROWID;

-- Root key rotation finds the KEKs still wrapped by an old root version.
CREATE INDEX internal_keks_root_version ON internal_keks (root_version);
