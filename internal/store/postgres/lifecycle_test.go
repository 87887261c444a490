package postgres_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/lifecycle"
	"github.com/tenantcrypt/tenantcrypt/internal/store/postgres"
	"github.com/tenantcrypt/tenantcrypt/internal/store/postgres/pgtest"
)

// TestUpgradeFromVersion3: a schema that a tenantcrypt without the key
// lifecycle created gains it on Open: its tenants read back with an empty
// StateReason and a zero StateChangedAt, and it ends up like a new schema.
func TestUpgradeFromVersion3(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.DSN(t)
	if err := postgres.MigrateTo(ctx, dsn, 3); err != nil {
		t.Fatalf("MigrateTo(3): %v", err)
	}
	created := time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC)
	query(t, dsn, `INSERT INTO tenants (id, name, edition, hipaa, state, provider, created_at, updated_at) VALUES
		('acme', 'Tenant acme', 'enterprise', true, 'key-unavailable', 'cmk:f1', '2024-01-02 03:04:05.000006+00', '2024-01-02 03:04:05.000006+00'),
		('other', 'Tenant other', 'enterprise', true, 'active', 'internal', '2024-01-02 03:04:05.000006+00', '2024-01-02 03:04:05.000006+00')`, nil)

	s := pgtest.OpenDSN(t, dsn)
	if got, want := migrationVersions(t, dsn), latestVersions(t); !slices.Equal(got, want) || len(got) < 4 {
		t.Errorf("schema_migrations after the upgrade: got %v, want %v", got, want)
	}
	acme, err := s.Tenant(ctx, "acme")
	if err != nil {
		t.Fatalf("Tenant after the upgrade: %v", err)
	}
	if acme.State != keyring.StateKeyUnavailable || acme.StateReason != "" || !acme.StateChangedAt.IsZero() || !acme.UpdatedAt.Equal(created) {
		t.Errorf("Tenant after the upgrade: got %+v; want key-unavailable, no reason, zero StateChangedAt", acme)
	}
	watched, err := s.WatchedTenants(ctx, "", 10)
	if err != nil || len(watched) != 1 || watched[0].ID != "acme" {
		t.Errorf("WatchedTenants after the upgrade: got %+v, %v; want acme", watched, err)
	}
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	prev, changed, err := s.SetTenantState(ctx, "acme", kms.MustCMKRef("f1"), keyring.StateLocked, "pending deletion", at)
	if err != nil || !changed || prev.State != keyring.StateKeyUnavailable {
		t.Errorf("SetTenantState after the upgrade: got %+v, %v, %v", prev, changed, err)
	}
	if err := s.ReplaceKeyChecks(ctx, "acme", []lifecycle.KeyCheck{{TenantID: "acme", Provider: kms.MustCMKRef("f1"), Region: "eu-west-1", CheckedAt: at}}); err != nil {
		t.Errorf("ReplaceKeyChecks after the upgrade: %v", err)
	}
	counts, err := s.CountTenantsByState(ctx)
	if want := map[keyring.TenantState]int{keyring.StateLocked: 1, keyring.StateActive: 1}; err != nil || !maps.Equal(counts, want) {
		t.Errorf("CountTenantsByState after the upgrade: got %v, %v; want %v", counts, err, want)
	}
	if err := s.DeleteTenant(ctx, "acme"); err != nil {
		t.Fatalf("DeleteTenant: %v", err)
	}
	if cs, err := s.KeyChecks(ctx, "acme"); err != nil || len(cs) != 0 {
		t.Errorf("KeyChecks after DeleteTenant: got %+v, %v; want none", cs, err)
	}

	fresh := pgtest.DSN(t)
	pgtest.OpenDSN(t, fresh)
	if got, want := schemaOf(t, dsn), schemaOf(t, fresh); !slices.Equal(got, want) {
		t.Errorf("schema of the upgraded database:\ngot  %q\nwant %q", got, want)
	}
}

// TestWatchedTenantsIndex: WatchedTenants spells its condition as the
// partial index tenants_watched does, so that the planner can use it and a
// page costs its size, not the number of internal tenants in between.
func TestWatchedTenantsIndex(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.DSN(t)
	pgtest.OpenDSN(t, dsn)
	query(t, dsn, `INSERT INTO tenants (id, name, edition, hipaa, state, provider, created_at, updated_at)
		SELECT 't' || i, '', 'business', false, 'active', CASE WHEN i % 100 = 0 THEN 'cmk:f1' ELSE 'internal' END, now(), now()
		FROM generate_series(1, 2000) AS i`, nil)
	query(t, dsn, `ANALYZE tenants`, nil)

	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `EXPLAIN `+postgres.WatchedQuery, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(plan, func(l string) bool { return strings.Contains(l, "tenants_watched") }) {
		t.Errorf("plan of WatchedTenants:\n%s\nwant a scan of tenants_watched", strings.Join(plan, "\n"))
	}
}
