package sqlite_test

import (
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/lifecycle"
	"github.com/tenantcrypt/tenantcrypt/internal/store/sqlite"
)

// TestUpgradeFromVersion3: a database that a tenantcrypt without the key
// lifecycle created gains it on Open: its tenants read back with an empty
// StateReason and a zero StateChangedAt, and it ends up with the schema of a
// new database.
func TestUpgradeFromVersion3(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	path := filepath.Join(dir, "old.db")
	if err := sqlite.MigrateTo(ctx, path, 3); err != nil {
		t.Fatalf("MigrateTo(3): %v", err)
	}
	db := rawDB(t, path)
	created := time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC)
	for _, tn := range []struct{ id, provider, state string }{
		{"acme", "cmk:f1", "key-unavailable"},
		{"other", "internal", "active"},
	} {
		if _, err := db.Exec(`INSERT INTO tenants (id, name, edition, hipaa, state, provider, created_at, updated_at)
			VALUES (?, ?, 'enterprise', 1, ?, ?, ?, ?)`, tn.id, "Tenant "+tn.id, tn.state, tn.provider, created.UnixMicro(), created.UnixMicro()); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s := openAt(t, path)
	if got, want := migrationVersions(t, path), latestVersions(t); !slices.Equal(got, want) || len(got) < 4 {
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
	if got := sqlite.CountRows(t, s, "key_checks", "acme"); got != 0 {
		t.Errorf("key checks after DeleteTenant: got %d, want 0", got)
	}

	fresh := filepath.Join(dir, "new.db")
	openAt(t, fresh)
	if got, want := schemaOf(t, path), schemaOf(t, fresh); !slices.Equal(got, want) {
		t.Errorf("schema of the upgraded database:\ngot  %q\nwant %q", got, want)
	}
}

// TestKeyCheckForeignKey: the database itself ties key checks to their
// tenant: ON DELETE CASCADE alone removes them.
func TestKeyCheckForeignKey(t *testing.T) {
	ctx := t.Context()
	s := openAt(t, filepath.Join(t.TempDir(), "tenantcrypt.db"))
	if err := s.CreateTenant(ctx, tenant("acme")); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceKeyChecks(ctx, "acme", []lifecycle.KeyCheck{
		{TenantID: "acme", Provider: kms.MustCMKRef("f1"), Region: "eu-west-1"}, {TenantID: "acme", Provider: kms.MustCMKRef("f1"), Region: "us-east-1"},
	}); err != nil {
		t.Fatal(err)
	}
	if got := sqlite.CountRows(t, s, "key_checks", "acme"); got != 2 {
		t.Fatalf("key checks before deleting the tenant row: got %d, want 2", got)
	}
	sqlite.DeleteTenantRowOnly(t, s, "acme")
	if got := sqlite.CountRows(t, s, "key_checks", "acme"); got != 0 {
		t.Errorf("key checks after deleting the tenant row: got %d, want 0", got)
	}
}
