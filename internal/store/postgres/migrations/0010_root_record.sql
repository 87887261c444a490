-- Where the internal KMS's root key is, when the database must say it: an
-- HSM (PKCS#11) holds the root key versions as key objects, and the current
-- version is recorded here so that every replica agrees on it. At most one
-- row (id = 1); no row: root key file or TENANTCRYPT_ROOT_KEYS. Never any
-- key material. Expand only: a new table.
-- compatible-with: 6

CREATE TABLE internal_root (
    id          integer     NOT NULL PRIMARY KEY CHECK (id = 1),
    source      text        NOT NULL,
    current     bigint      NOT NULL CHECK (current BETWEEN 0 AND 4294967295),
    token       text        NOT NULL,
    key_label   text        NOT NULL,
    updated_at  timestamptz NOT NULL
);
