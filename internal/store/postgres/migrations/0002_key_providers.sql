-- Customer managed keys that tenant admins registered (package keyprovider).
-- Replicas is a JSON array of {"arn", "region"} objects. promoted_at,
-- demoted_at and tested_at are NULL for "never" (the zero time.Time);
-- created_at is always set. Fingerprints use the "C" collation so that
-- ListKeyProviders breaks ties in byte order, as on SQLite.

CREATE TABLE key_providers (
    tenant_id          text COLLATE "C" NOT NULL,
    fingerprint        text COLLATE "C" NOT NULL,
    arn                text        NOT NULL,
    name               text        NOT NULL,
    description        text        NOT NULL,
    multi_region       boolean     NOT NULL,
    replicas           jsonb       NOT NULL,
    dr_compliant       boolean     NOT NULL,
    compliance_code    text        NOT NULL,
    compliance_region  text        NOT NULL,
    compliance_message text        NOT NULL,
    created_at         timestamptz NOT NULL,
    promoted_at        timestamptz,
    demoted_at         timestamptz,
    tested_at          timestamptz,
    CONSTRAINT key_providers_pkey PRIMARY KEY (tenant_id, fingerprint),
    CONSTRAINT key_providers_tenant_fkey FOREIGN KEY (tenant_id)
        REFERENCES tenants (id) ON DELETE CASCADE,
    CONSTRAINT key_providers_replicas_array CHECK (jsonb_typeof(replicas) = 'array')
);
