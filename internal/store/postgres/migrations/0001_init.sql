-- Tables live in the first schema of search_path. Tenant ids use the "C"
-- collation so that ListTenants pages in byte order, as on SQLite, whatever
-- the database's default collation.

CREATE TABLE tenants (
    id         text COLLATE "C" NOT NULL,
    name       text        NOT NULL,
    edition    text        NOT NULL,
    hipaa      boolean     NOT NULL,
    state      text        NOT NULL,
    provider   text        NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CONSTRAINT tenants_pkey PRIMARY KEY (id)
);

CREATE TABLE cipherkeys (
    tenant_id      text COLLATE "C" NOT NULL,
    id             bytea       NOT NULL,
    purpose        text        NOT NULL,
    active         boolean     NOT NULL DEFAULT false,
    provider       text        NOT NULL,
    key_version    text        NOT NULL,
    wrapped        bytea       NOT NULL,
    context_digest bytea       NOT NULL,
    created_at     timestamptz NOT NULL,
    uses_reserved  bigint      NOT NULL DEFAULT 0,
    CONSTRAINT cipherkeys_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT cipherkeys_tenant_fkey FOREIGN KEY (tenant_id)
        REFERENCES tenants (id) ON DELETE CASCADE,
    CONSTRAINT cipherkeys_id_size CHECK (octet_length(id) = 16),
    CONSTRAINT cipherkeys_uses_reserved_nonnegative CHECK (uses_reserved >= 0),
    -- Only an encryption key can be the one new encryptions use.
    CONSTRAINT cipherkeys_active_is_encryption CHECK (NOT active OR purpose = 'encryption')
);

-- The database itself forbids a second active key per tenant. The store maps
-- a violation of this index to keyring.ErrConflict by its name.
CREATE UNIQUE INDEX cipherkeys_one_active ON cipherkeys (tenant_id) WHERE active;

-- CountCipherKeys and provider migration.
CREATE INDEX cipherkeys_tenant_provider ON cipherkeys (tenant_id, provider);

-- No foreign key to tenants: the internal KMS owns these rows and may hold a
-- KEK before or without a tenant row; DeleteTenant removes them explicitly.
-- Versions are uint32, hence bigint.
CREATE TABLE internal_keks (
    tenant_id    text COLLATE "C" NOT NULL,
    version      bigint      NOT NULL,
    root_version bigint      NOT NULL,
    wrapped      bytea       NOT NULL,
    created_at   timestamptz NOT NULL,
    CONSTRAINT internal_keks_pkey PRIMARY KEY (tenant_id, version),
    CONSTRAINT internal_keks_version_uint32 CHECK (version BETWEEN 0 AND 4294967295),
    CONSTRAINT internal_keks_root_version_uint32 CHECK (root_version BETWEEN 0 AND 4294967295)
);

-- Root key rotation finds the KEKs still wrapped by an old root version.
CREATE INDEX internal_keks_root_version ON internal_keks (root_version);
