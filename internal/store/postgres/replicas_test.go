package postgres_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantcrypt/tenantcrypt/internal/store/postgres"
	"github.com/tenantcrypt/tenantcrypt/internal/store/postgres/pgtest"
)

// TestUpgradeFromVersion5: a database of a tenantcrypt without leases and
// notifications gains them on Open: its unfinished migration is free to
// claim, its tenant on a customer managed key is due for a check, and a
// change of a tenant is announced.
func TestUpgradeFromVersion5(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.DSN(t)
	if err := postgres.MigrateTo(ctx, dsn, 5); err != nil {
		t.Fatalf("MigrateTo(5): %v", err)
	}
	for _, q := range []string{
		`INSERT INTO tenants (id, name, edition, hipaa, state, provider, created_at, updated_at) VALUES ('acme', 'Acme', 'enterprise', false, 'active', 'cmk:f1', now(), now())`,
		`INSERT INTO migrations (id, tenant_id, from_ref, to_ref, from_arn, to_arn, state, total, done, initiated_at, updated_at, last_error)
			VALUES ('m1', 'acme', 'internal', 'cmk:f1', 'tenantcrypt:internal', 'arn', 'InProgress', 10, 5, now(), now(), '')`,
	} {
		query(t, dsn, q, nil)
	}
	s := pgtest.OpenDSN(t, dsn)
	if got, want := migrationVersions(t, dsn), latestVersions(t); !slices.Equal(got, want) {
		t.Errorf("schema_migrations after the upgrade: got %v, want %v", got, want)
	}
	m, err := s.ClaimMigration(ctx, "m1", "replica", time.Minute)
	if err != nil || m.Done != 5 {
		t.Errorf("ClaimMigration after the upgrade: %+v, %v", m, err)
	}
	ds, err := s.ClaimKeyChecks(ctx, "replica", time.Minute, 0, 0, time.Minute, 10)
	if err != nil || len(ds) != 1 || ds[0].Tenant.ID != "acme" {
		t.Errorf("ClaimKeyChecks after the upgrade: %+v, %v", ds, err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `LISTEN `+postgres.TenantsChannel); err != nil {
		t.Fatal(err)
	}
	query(t, dsn, `UPDATE tenants SET name = 'renamed' WHERE id = 'acme'`, nil)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	n, err := conn.WaitForNotification(wctx)
	if err != nil || n.Channel != postgres.TenantsChannel {
		t.Errorf("notification after the upgrade: %+v, %v", n, err)
	}
}

// TestNewerExpandAccepted: a schema that a newer tenantcrypt migrated with
// expands only is used as it is (an older replica can restart during a
// rolling upgrade); one that a migration made incompatible is refused.
func TestNewerExpandAccepted(t *testing.T) {
	dsn := pgtest.DSN(t)
	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	latest := slices.Max(migrationVersions(t, dsn))
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), `INSERT INTO schema_migrations (version, applied_at, compatible_with) VALUES ($1, now(), $2), ($3, now(), $4)`,
		latest+1, latest, latest+2, latest-1); err != nil {
		t.Fatal(err)
	}
	s, err = postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Open of a schema newer by expands: %v", err)
	}
	s.Close()
	if _, err := conn.Exec(t.Context(), `INSERT INTO schema_migrations (version, applied_at, compatible_with) VALUES ($1, now(), $2)`, latest+3, latest+1); err != nil {
		t.Fatal(err)
	}
	s, err = postgres.Open(t.Context(), dsn)
	if !errors.Is(err, postgres.ErrSchemaTooNew) {
		if err == nil {
			s.Close()
		}
		t.Errorf("Open of a schema that needs version %d: got %v, want %v", latest+1, err, postgres.ErrSchemaTooNew)
	}
}
