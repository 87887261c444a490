package sqlite_test

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/migration"
	"github.com/tenantcrypt/tenantcrypt/internal/store/sqlite"
)

// TestUpgradeFromVersion2: a database that a tenantcrypt without key
// provider migrations created gains them on Open, keeps its rows, and ends
// up with the schema of a new database.
func TestUpgradeFromVersion2(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	path := filepath.Join(dir, "old.db")
	if err := sqlite.MigrateTo(ctx, path, 2); err != nil {
		t.Fatalf("MigrateTo(2): %v", err)
	}
	if got, want := migrationVersions(t, path), []int{1, 2}; !slices.Equal(got, want) {
		t.Fatalf("schema_migrations before the upgrade: got %v, want %v", got, want)
	}
	db := rawDB(t, path)
	created := time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC)
	keyID := envelope.KeyID{0x80, 1}
	for _, id := range []string{"acme", "other"} {
		if _, err := db.Exec(`INSERT INTO tenants (id, name, edition, hipaa, state, provider, created_at, updated_at)
			VALUES (?, ?, 'enterprise', 1, 'active', 'internal', ?, ?)`, id, "Tenant "+id, created.UnixMicro(), created.UnixMicro()); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO cipherkeys (tenant_id, id, purpose, active, provider, key_version, wrapped, context_digest, created_at, uses_reserved)
			VALUES (?, ?, 'encryption', 1, 'internal', '1', X'0102', X'', ?, 7)`, id, keyID[:], created.UnixMicro()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`INSERT INTO key_providers (tenant_id, fingerprint, arn, name, description, multi_region, replicas,
			dr_compliant, compliance_code, compliance_region, compliance_message, created_at)
		VALUES ('acme', 'f1', 'arn', 'name', '', 0, '[]', 1, '', '', '', ?)`, created.UnixMicro()); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name = 'migrations'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("migrations before the upgrade: got %d tables, %v; want 0", n, err)
	}
	db.Close()

	s := openAt(t, path)
	if got, want := migrationVersions(t, path), latestVersions(t); !slices.Equal(got, want) || len(got) < 3 {
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

	fresh := filepath.Join(dir, "new.db")
	openAt(t, fresh)
	if got, want := schemaOf(t, path), schemaOf(t, fresh); !slices.Equal(got, want) {
		t.Errorf("schema of the upgraded database:\ngot  %q\nwant %q", got, want)
	}
}

// TestMigrationForeignKey: the database itself ties migrations to their
// tenant: ON DELETE CASCADE alone removes them.
func TestMigrationForeignKey(t *testing.T) {
	ctx := t.Context()
	s := openAt(t, filepath.Join(t.TempDir(), "tenantcrypt.db"))
	if err := s.CreateTenant(ctx, tenant("acme")); err != nil {
		t.Fatal(err)
	}
	for _, m := range []migration.Migration{
		{ID: "done", TenantID: "acme", From: kms.InternalRef(), To: kms.MustCMKRef("f1"), State: migration.StateCompleted},
		{ID: "running", TenantID: "acme", From: kms.MustCMKRef("f1"), To: kms.InternalRef(), State: migration.StateInProgress},
	} {
		if err := s.InsertMigration(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if got := sqlite.CountRows(t, s, "migrations", "acme"); got != 2 {
		t.Fatalf("migrations before deleting the tenant row: got %d, want 2", got)
	}
	sqlite.DeleteTenantRowOnly(t, s, "acme")
	if got := sqlite.CountRows(t, s, "migrations", "acme"); got != 0 {
		t.Errorf("migrations after deleting the tenant row: got %d, want 0", got)
	}
}

// latestVersions returns the schema versions of a new database: every
// migration this binary knows.
func latestVersions(t *testing.T) []int {
	t.Helper()
	path := filepath.Join(t.TempDir(), "latest.db")
	openAt(t, path)
	return migrationVersions(t, path)
}
