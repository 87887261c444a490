-- Where the internal KMS's root key is, when the database must say it: an
-- HSM (PKCS#11) holds the root key versions as key objects, and the current
-- version is recorded here so that every process agrees on it. At most one
-- row (id = 1); no row: root key file or TENANTCRYPT_ROOT_KEYS. Never any
-- key material. Expand only: a new table.
-- compatible-with: 6

CREATE TABLE internal_root (
    id           INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    source       TEXT    NOT NULL,
    current      INTEGER NOT NULL CHECK (current BETWEEN 0 AND 4294967295),
    token        TEXT    NOT NULL,
    key_label    TEXT    NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;
