package postgres_test

import (
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/store/postgres"
	"github.com/tenantcrypt/tenantcrypt/internal/store/postgres/pgtest"
)

// TestUpgradeFromVersion1: a schema that a tenantcrypt without key providers
// created gains them on Open, keeps its rows, and ends up like a new schema.
func TestUpgradeFromVersion1(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.DSN(t)
	if err := postgres.MigrateTo(ctx, dsn, 1); err != nil {
		t.Fatalf("MigrateTo(1): %v", err)
	}
	if got, want := migrationVersions(t, dsn), []int{1}; !slices.Equal(got, want) {
		t.Fatalf("schema_migrations before the upgrade: got %v, want %v", got, want)
	}
	if got := tables(t, dsn); slices.Contains(got, "key_providers") {
		t.Fatalf("tables before the upgrade: got %q, want no key_providers", got)
	}
	created := time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC)
	for _, id := range []string{"acme", "other"} {
		query(t, dsn, `INSERT INTO tenants (id, name, edition, hipaa, state, provider, created_at, updated_at)
			VALUES ('`+id+`', 'Tenant `+id+`', 'enterprise', true, 'active', 'internal',
			'2024-01-02 03:04:05.000006+00', '2024-01-02 03:04:05.000006+00')`, nil)
	}

	s := pgtest.OpenDSN(t, dsn)
	if got, want := migrationVersions(t, dsn), latestVersions(t); !slices.Equal(got, want) {
		t.Errorf("schema_migrations after the upgrade: got %v, want %v", got, want)
	}
	tn, err := s.Tenant(ctx, "acme")
	if err != nil {
		t.Fatalf("Tenant(acme) after the upgrade: %v", err)
	}
	if got, want := tn.Name, "Tenant acme"; got != want || !tn.CreatedAt.Equal(created) || tn.Edition != keyring.EditionEnterprise {
		t.Errorf("Tenant(acme) after the upgrade: got %+v, want name %q created %v", tn, want, created)
	}
	for _, id := range []string{"acme", "other"} {
		p := keyprovider.Provider{TenantID: id, Fingerprint: "00000000000000000000000000000001", ARN: "arn", CreatedAt: created}
		if err := s.InsertKeyProvider(ctx, p); err != nil {
			t.Fatalf("InsertKeyProvider(%q) after the upgrade: %v", id, err)
		}
	}
	if err := s.DeleteTenant(ctx, "acme"); err != nil {
		t.Fatalf("DeleteTenant: %v", err)
	}
	for _, tc := range []struct {
		tenant string
		want   int
	}{{"acme", 0}, {"other", 1}} {
		ps, err := s.ListKeyProviders(ctx, tc.tenant)
		if err != nil || len(ps) != tc.want {
			t.Errorf("ListKeyProviders(%q) after DeleteTenant(acme): got %d, %v; want %d", tc.tenant, len(ps), err, tc.want)
		}
	}

	fresh := pgtest.DSN(t)
	pgtest.OpenDSN(t, fresh)
	if got, want := schemaOf(t, dsn), schemaOf(t, fresh); !slices.Equal(got, want) {
		t.Errorf("schema of the upgraded database:\ngot  %q\nwant %q", got, want)
	}
}

func tables(t *testing.T, dsn string) []string {
	t.Helper()
	var got []string
	query(t, dsn, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() ORDER BY table_name`, func(r pgx.Rows) error {
		var name string
		err := r.Scan(&name)
		got = append(got, name)
		return err
	})
	return got
}

// schemaOf describes the columns, constraints and indexes of the DSN's
// schema, without the schema's name.
func schemaOf(t *testing.T, dsn string) []string {
	t.Helper()
	var s []string
	line := func(r pgx.Rows) error {
		var l string
		err := r.Scan(&l)
		s = append(s, l)
		return err
	}
	query(t, dsn, `SELECT concat_ws(' ', table_name, column_name, data_type, is_nullable, column_default, collation_name)
		FROM information_schema.columns WHERE table_schema = current_schema()
		ORDER BY table_name, ordinal_position`, line)
	query(t, dsn, `SELECT c.conrelid::regclass::text || ' ' || c.conname || ' ' || pg_get_constraintdef(c.oid)
		FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
		WHERE n.nspname = current_schema() ORDER BY 1`, line)
	query(t, dsn, `SELECT replace(indexdef, current_schema() || '.', '')
		FROM pg_indexes WHERE schemaname = current_schema() ORDER BY indexname`, line)
	return s
}
