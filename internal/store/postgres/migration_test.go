package postgres_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/migration"
	"github.com/tenantcrypt/tenantcrypt/internal/store/postgres"
	"github.com/tenantcrypt/tenantcrypt/internal/store/postgres/pgtest"
)

// TestUpgradeFromVersion2: a schema that a tenantcrypt without key provider
// migrations created gains them on Open, keeps its rows, and ends up like a
// new schema.
func TestUpgradeFromVersion2(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.DSN(t)
	if err := postgres.MigrateTo(ctx, dsn, 2); err != nil {
		t.Fatalf("MigrateTo(2): %v", err)
	}
	if got, want := migrationVersions(t, dsn), []int{1, 2}; !slices.Equal(got, want) {
		t.Fatalf("schema_migrations before the upgrade: got %v, want %v", got, want)
	}
	if got := tables(t, dsn); slices.Contains(got, "migrations") {
		t.Fatalf("tables before the upgrade: got %q, want no migrations", got)
	}
	created := time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC)
	keyID := envelope.KeyID{0x80, 1}
	for _, id := range []string{"acme", "other"} {
		query(t, dsn, `INSERT INTO tenants (id, name, edition, hipaa, state, provider, created_at, updated_at)
			VALUES ('`+id+`', 'Tenant `+id+`', 'enterprise', true, 'active', 'internal',
			'2024-01-02 03:04:05.000006+00', '2024-01-02 03:04:05.000006+00')`, nil)
		query(t, dsn, `INSERT INTO cipherkeys (tenant_id, id, purpose, active, provider, key_version, wrapped, context_digest, created_at, uses_reserved)
			VALUES ('`+id+`', '\x80010000000000000000000000000000', 'encryption', true, 'internal', '1', '\x0102', '',
			'2024-01-02 03:04:05.000006+00', 7)`, nil)
	}
	query(t, dsn, `INSERT INTO key_providers (tenant_id, fingerprint, arn, name, description, multi_region, replicas,
			dr_compliant, compliance_code, compliance_region, compliance_message, created_at)
		VALUES ('acme', 'f1', 'arn', 'name', '', false, '[]', true, '', '', '', '2024-01-02 03:04:05.000006+00')`, nil)

	s := pgtest.OpenDSN(t, dsn)
	if got, want := migrationVersions(t, dsn), latestVersions(t); !slices.Equal(got, want) || len(got) < 3 {
		t.Errorf("schema_migrations after the upgrade: got %v, want %v", got, want)
	}
	if _, err := s.KeyProvider(ctx, "acme", "f1"); err != nil {
		t.Errorf("KeyProvider after the upgrade: %v", err)
	}
	_, err := s.LatestMigration(ctx, "acme")
	if !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("LatestMigration after the upgrade: got %v, want %v", err, fault.ErrNotFound)
	}
	ks, err := s.CipherKeysNotWrappedBy(ctx, "acme", kms.MustCMKRef("f1"), envelope.KeyID{}, 10)
	if err != nil || len(ks) != 1 || ks[0].ID != keyID || !ks[0].Active || ks[0].UsesReserved != 7 || !ks[0].CreatedAt.Equal(created) {
		t.Fatalf("CipherKeysNotWrappedBy after the upgrade: got %+v, %v; want the old key", ks, err)
	}
	if err := s.RewrapCipherKey(ctx, ks[0], kms.MustCMKRef("f1"), "v1", []byte("rewrapped")); err != nil {
		t.Errorf("RewrapCipherKey after the upgrade: %v", err)
	}

	for _, id := range []string{"acme", "other"} {
		m := migration.Migration{ID: "m-" + id, TenantID: id, From: kms.InternalRef(), To: kms.MustCMKRef("f1"), State: migration.StateNew, InitiatedAt: created, UpdatedAt: created}
		if err := s.InsertMigration(ctx, m); err != nil {
			t.Fatalf("InsertMigration(%q) after the upgrade: %v", id, err)
		}
	}
	err = s.InsertMigration(ctx, migration.Migration{ID: "second", TenantID: "acme", From: kms.InternalRef(), To: kms.MustCMKRef("f2"), State: migration.StateNew})
	if !errors.Is(err, migration.ErrRunning) {
		t.Errorf("InsertMigration(second) after the upgrade: got %v, want %v", err, migration.ErrRunning)
	}
	if err := s.DeleteTenant(ctx, "acme"); err != nil {
		t.Fatalf("DeleteTenant: %v", err)
	}
	if _, err := s.LatestMigration(ctx, "acme"); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("LatestMigration(acme) after DeleteTenant: got %v, want %v", err, fault.ErrNotFound)
	}
	ms, err := s.UnfinishedMigrations(ctx)
	if err != nil || len(ms) != 1 || ms[0].ID != "m-other" {
		t.Errorf("UnfinishedMigrations after DeleteTenant(acme): got %+v, %v; want m-other", ms, err)
	}

	fresh := pgtest.DSN(t)
	pgtest.OpenDSN(t, fresh)
	if got, want := schemaOf(t, dsn), schemaOf(t, fresh); !slices.Equal(got, want) {
		t.Errorf("schema of the upgraded database:\ngot  %q\nwant %q", got, want)
	}
}

// TestOneRunningIndex: the database itself refuses a second unfinished
// migration of a tenant, under the index name that the store maps to
// migration.ErrRunning (see TestMigrationError), and allows any number of
// completed ones.
func TestOneRunningIndex(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := pgtest.OpenDSN(t, dsn)
	ctx := t.Context()
	if err := s.CreateTenant(ctx, tenant("acme")); err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	insert := func(id, state string) error {
		_, err := conn.Exec(ctx, `INSERT INTO migrations (id, tenant_id, from_ref, to_ref, from_arn, to_arn, state, total, done,
				initiated_at, completed_at, updated_at, last_error)
			VALUES ($1, 'acme', '', '', '', '', $2, 0, 0, now(), NULL, now(), '')`, id, state)
		return err
	}
	for _, id := range []string{"c1", "c2"} {
		if err := insert(id, "Completed"); err != nil {
			t.Fatal(err)
		}
	}
	if err := insert("r1", "New"); err != nil {
		t.Fatal(err)
	}
	var pgErr *pgconn.PgError
	if err := insert("r2", "InProgress"); !errors.As(err, &pgErr) || pgErr.Code != "23505" || pgErr.ConstraintName != "migrations_one_running" {
		t.Errorf("inserting a second unfinished migration: got %v, want a unique violation of migrations_one_running", err)
	}
}

// latestVersions returns the schema versions of a new schema: every
// migration this binary knows.
func latestVersions(t *testing.T) []int {
	t.Helper()
	dsn := pgtest.DSN(t)
	pgtest.OpenDSN(t, dsn)
	return migrationVersions(t, dsn)
}
