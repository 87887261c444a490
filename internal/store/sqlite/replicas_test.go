package sqlite_test

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/store/sqlite"
)

// TestUpgradeFromVersion5: a database of a tenantcrypt without leases
// gains them on Open; its unfinished migration is free to claim and its
// tenant on a customer managed key is due for a check.
func TestUpgradeFromVersion5(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "old.db")
	if err := sqlite.MigrateTo(ctx, path, 5); err != nil {
		t.Fatalf("MigrateTo(5): %v", err)
	}
	db := rawDB(t, path)
	for _, q := range []string{
		`INSERT INTO tenants (id, name, edition, hipaa, state, provider, created_at, updated_at) VALUES ('acme', 'Acme', 'enterprise', 0, 'active', 'cmk:f1', 1, 1)`,
		`INSERT INTO migrations (id, tenant_id, from_ref, to_ref, from_arn, to_arn, state, total, done, initiated_at, updated_at, last_error)
			VALUES ('m1', 'acme', 'internal', 'cmk:f1', 'tenantcrypt:internal', 'arn', 'InProgress', 10, 5, 1, 1, '')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s := openAt(t, path)
	if got, want := migrationVersions(t, path), latestVersions(t); !slices.Equal(got, want) {
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
}

// TestNewerExpandAccepted: a database that a newer tenantcrypt migrated
// with expands only (each declaring the versions it stays compatible with)
// is used as it is, so that an older replica can restart during a rolling
// upgrade, and the upgrade be rolled back; one that a migration made
// incompatible is refused.
func TestNewerExpandAccepted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenantcrypt.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	latest := slices.Max(migrationVersions(t, path))
	db := rawDB(t, path)
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, applied_at, compatible_with) VALUES (?, 0, ?), (?, 0, ?)`,
		latest+1, latest, latest+2, latest-1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err = sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open of a schema newer by expands: %v", err)
	}
	s.Close()

	db = rawDB(t, path)
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, applied_at, compatible_with) VALUES (?, 0, ?)`, latest+3, latest+1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err = sqlite.Open(t.Context(), path)
	if !errors.Is(err, sqlite.ErrSchemaTooNew) {
		if err == nil {
			s.Close()
		}
		t.Errorf("Open of a schema that needs version %d: got %v, want %v", latest+1, err, sqlite.ErrSchemaTooNew)
	}
}
