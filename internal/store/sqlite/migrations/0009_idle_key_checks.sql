-- Idle tenants are checked slowly. hot_until is until when some replica
-- may hold an unwrapped data key of the tenant (set by every replica that
-- caches one, never lowered); claimed_at is when the tenant's check was
-- last claimed. An active tenant that no replica holds keys of is checked
-- every idle interval instead of every check interval: without a cached
-- key it cannot use a revoked key without asking the KMS, which refuses.
-- Expand only: a replica of the previous version checks every tenant at
-- the check interval, as before.
-- compatible-with: 6

ALTER TABLE key_check_leases ADD COLUMN hot_until INTEGER;
ALTER TABLE key_check_leases ADD COLUMN claimed_at INTEGER;
