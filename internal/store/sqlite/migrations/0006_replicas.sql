-- The leases that share work between replicas (on PostgreSQL). SQLite
-- serves one process, but the store keeps the same schedule and leases,
-- so that the key monitor and the migration workers run one code path on
-- both databases. Times are INTEGER unix microseconds.
-- compatible-with: 5

-- A migration is worked on by the process that holds its lease: lease_owner
-- names it ('' for nobody), lease_until is when the lease lapses unless
-- renewed (NULL: not leased).
ALTER TABLE migrations ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE migrations ADD COLUMN lease_until INTEGER;

-- The key monitor's schedule: due_at is when a tenant's next key check is
-- due; owner is the process checking it now ('' once that check finished)
-- and lease_until when its claim lapses if it does not finish.
CREATE TABLE key_check_leases (
    tenant_id   TEXT    NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    due_at      INTEGER NOT NULL,
    owner       TEXT    NOT NULL,
    lease_until INTEGER
) STRICT, WITHOUT ROWID;
