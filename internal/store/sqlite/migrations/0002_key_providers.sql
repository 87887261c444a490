-- Customer managed keys that tenant admins registered (package keyprovider).
-- Replicas is a JSON array of {"arn", "region"} objects. promoted_at,
-- demoted_at and tested_at are NULL for "never" (the zero time.Time);
-- created_at is always set.

CREATE TABLE key_providers (
    tenant_id          TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    fingerprint        TEXT    NOT NULL,
    arn                TEXT    NOT NULL,
    name               TEXT    NOT NULL,
    description        TEXT    NOT NULL,
    multi_region       INTEGER NOT NULL CHECK (multi_region IN (0, 1)),
    replicas           TEXT    NOT NULL CHECK (json_valid(replicas) AND json_type(replicas) = 'array'),
    dr_compliant       INTEGER NOT NULL CHECK (dr_compliant IN (0, 1)),
    compliance_code    TEXT    NOT NULL,
    compliance_region  TEXT    NOT NULL,
    compliance_message TEXT    NOT NULL,
    created_at         INTEGER NOT NULL,
    promoted_at        INTEGER,
    demoted_at         INTEGER,
    tested_at          INTEGER,
    PRIMARY KEY (tenant_id, fingerprint)
) STRICT, WITHOUT ROWID;
