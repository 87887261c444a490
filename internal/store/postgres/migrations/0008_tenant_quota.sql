-- A tenant's own data-plane quota (operations per second and burst),
-- overriding the server's --tenant-rate and --tenant-burst; 0 and 0 for
-- the server's defaults. Expand only: a replica of the previous version
-- neither reads nor writes them.
-- compatible-with: 6

ALTER TABLE tenants
    ADD COLUMN quota_rate double precision NOT NULL DEFAULT 0,
    ADD COLUMN quota_burst integer NOT NULL DEFAULT 0;
