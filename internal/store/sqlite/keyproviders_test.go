package sqlite_test

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/store/sqlite"
)

// TestUpgradeFromVersion1: a database that a tenantcrypt without key
// providers created gains them on Open, keeps its rows, and ends up with the
// schema of a new database.
func TestUpgradeFromVersion1(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	path := filepath.Join(dir, "old.db")
	if err := sqlite.MigrateTo(ctx, path, 1); err != nil {
		t.Fatalf("MigrateTo(1): %v", err)
	}
	if got, want := migrationVersions(t, path), []int{1}; !slices.Equal(got, want) {
		t.Fatalf("schema_migrations before the upgrade: got %v, want %v", got, want)
	}
	db := rawDB(t, path)
	created := time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC)
	for _, id := range []string{"acme", "other"} {
		if _, err := db.Exec(`INSERT INTO tenants (id, name, edition, hipaa, state, provider, created_at, updated_at)
			VALUES (?, ?, 'enterprise', 1, 'active', 'internal', ?, ?)`, id, "Tenant "+id, created.UnixMicro(), created.UnixMicro()); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name = 'key_providers'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("key_providers before the upgrade: got %d tables, %v; want 0", n, err)
	}
	db.Close()

	s := openAt(t, path)
	if got, want := migrationVersions(t, path), latestVersions(t); !slices.Equal(got, want) {
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

	fresh := filepath.Join(dir, "new.db")
	openAt(t, fresh)
	if got, want := schemaOf(t, path), schemaOf(t, fresh); !slices.Equal(got, want) {
		t.Errorf("schema of the upgraded database:\ngot  %q\nwant %q", got, want)
	}
}

// TestKeyProviderForeignKey: the database itself ties key providers to
// their tenant, on every connection of both pools (foreign_keys is a
// per-connection pragma).
func TestKeyProviderForeignKey(t *testing.T) {
	ctx := t.Context()
	s := openAt(t, filepath.Join(t.TempDir(), "tenantcrypt.db"))
	if got, want := sqlite.ForeignKeys(t, s), []bool{true, true, true}; !slices.Equal(got, want) {
		t.Errorf("foreign_keys of the writer and two readers: got %v, want %v", got, want)
	}
	if err := s.CreateTenant(ctx, tenant("acme")); err != nil {
		t.Fatal(err)
	}
	err := s.InsertKeyProvider(ctx, keyprovider.Provider{TenantID: "missing", Fingerprint: "f"})
	if !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("InsertKeyProvider(no tenant): got %v, want %v", err, fault.ErrNotFound)
	}
	if err := s.InsertKeyProvider(ctx, keyprovider.Provider{TenantID: "acme", Fingerprint: "f"}); err != nil {
		t.Fatal(err)
	}
	// ON DELETE CASCADE alone, without DeleteTenant's explicit deletes.
	if got, want := sqlite.DeleteTenantRowOnly(t, s, "acme"), 0; got != want {
		t.Errorf("key providers after deleting the tenant row: got %d, want %d", got, want)
	}
}

// schemaOf lists the database's tables and indexes as created.
func schemaOf(t *testing.T, path string) []string {
	t.Helper()
	db := rawDB(t, path)
	defer db.Close()
	rows, err := db.Query(`SELECT type || ' ' || name || ': ' || coalesce(sql, '') FROM sqlite_master ORDER BY type, name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var s []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		s = append(s, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return s
}
