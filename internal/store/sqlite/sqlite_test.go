package sqlite_test

import (
	"bytes"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
	"github.com/tenantcrypt/tenantcrypt/internal/store/sqlite"
	"github.com/tenantcrypt/tenantcrypt/internal/store/storetest"
)

func openAt(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		return openAt(t, filepath.Join(t.TempDir(), "tenantcrypt.db"))
	})
}

// TestStoreTwoOpens runs the suite against two Stores on one file, used in
// turn: each has its own connections and locks, as two processes would.
func TestStoreTwoOpens(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		path := filepath.Join(t.TempDir(), "tenantcrypt.db")
		return storetest.RoundRobin(openAt(t, path), openAt(t, path))
	})
}

func TestFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenantcrypt.db")
	s := openAt(t, path)
	if err := s.CreateTenant(t.Context(), tenant("acme")); err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("Stat: %v", err)
		}
		if got, want := fi.Mode().Perm(), os.FileMode(0o600); got != want {
			t.Errorf("mode of %s: got %v, want %v", filepath.Base(p), got, want)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		path string
	}{
		{"missing-directory", filepath.Join(dir, "missing", "tenantcrypt.db")},
		{"directory", dir},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := sqlite.Open(t.Context(), tc.path)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%s): got no error, want one", tc.path)
			}
		})
	}
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenantcrypt.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.CreateTenant(t.Context(), tenant("acme")); err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	versions := migrationVersions(t, path)

	s = openAt(t, path)
	if _, err := s.Tenant(t.Context(), "acme"); err != nil {
		t.Errorf("Tenant after reopening: %v", err)
	}
	if got := migrationVersions(t, path); len(got) != len(versions) || len(got) == 0 {
		t.Errorf("schema_migrations after reopening: got versions %v, want %v", got, versions)
	}
}

// TestConcurrentOpen: processes starting together on a new file migrate it
// once.
func TestConcurrentOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenantcrypt.db")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			s, err := sqlite.Open(t.Context(), path)
			if err != nil {
				t.Errorf("Open: %v", err)
				return
			}
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	wg.Wait()
	got := migrationVersions(t, path)
	for i, v := range got {
		if v != i+1 {
			t.Fatalf("schema_migrations: got versions %v, want 1…n once each", got)
		}
	}
}

func TestFutureSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenantcrypt.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	s.Close()
	db := rawDB(t, path)
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err = sqlite.Open(t.Context(), path)
	if err == nil {
		s.Close()
		t.Fatal("Open of a newer schema: got no error")
	}
	if !errors.Is(err, sqlite.ErrSchemaTooNew) {
		t.Errorf("Open of a newer schema: got %v, want %v", err, sqlite.ErrSchemaTooNew)
	}
}

// TestDeleteTenantShreds: after DeleteTenant, the wrapped keys are in neither
// the database file nor its WAL (secure_delete and the checkpoint).
func TestDeleteTenantShreds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenantcrypt.db")
	s := openAt(t, path)
	ctx := t.Context()
	marker := bytes.Repeat([]byte("SHRED-ME-"), 8)

	for _, id := range []string{"gone", "kept"} {
		if err := s.CreateTenant(ctx, tenant(id)); err != nil {
			t.Fatalf("CreateTenant: %v", err)
		}
	}
	k := keyring.CipherKey{
		TenantID: "gone", Purpose: keyring.PurposeEncryption, Provider: kms.InternalRef(),
		Wrapped: append([]byte("key:"), marker...), CreatedAt: time.Now(),
	}
	k.ID[0] = 1
	if err := s.ActivateCipherKey(ctx, "gone", nil, k); err != nil {
		t.Fatalf("ActivateCipherKey: %v", err)
	}
	if err := s.InsertKEK(ctx, internalkms.KEK{TenantID: "gone", Version: 1, RootVersion: 1, Wrapped: append([]byte("kek:"), marker...)}); err != nil {
		t.Fatalf("InsertKEK: %v", err)
	}
	if err := s.InsertKEK(ctx, internalkms.KEK{TenantID: "kept", Version: 1, RootVersion: 1, Wrapped: []byte("kept")}); err != nil {
		t.Fatalf("InsertKEK: %v", err)
	}
	if !filesContain(t, path, marker) {
		t.Fatal("the marker is not in the files before deletion; the test proves nothing")
	}
	if err := s.DeleteTenant(ctx, "gone"); err != nil {
		t.Fatalf("DeleteTenant: %v", err)
	}
	if filesContain(t, path, marker) {
		t.Error("a deleted tenant's wrapped key is still in the database files")
	}
}

func filesContain(t *testing.T, path string, marker []byte) bool {
	t.Helper()
	found := false
	for _, p := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		found = found || bytes.Contains(b, marker)
	}
	return found
}

func tenant(id string) keyring.Tenant {
	now := time.Now()
	return keyring.Tenant{
		ID: id, Name: id, Edition: keyring.EditionBusiness, State: keyring.StateActive,
		Provider: kms.InternalRef(), CreatedAt: now, UpdatedAt: now,
	}
}

func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func migrationVersions(t *testing.T, path string) []int {
	t.Helper()
	db := rawDB(t, path)
	defer db.Close()
	rows, err := db.Query(`SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatalf("reading schema_migrations: %v", err)
	}
	defer rows.Close()
	var vs []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return vs
}

// TestTenantIDsBackfilled: migration 0007 retires the ids of the tenants
// deleted before it, which live on as audit chains, so that no new tenant
// inherits their events; today's tenants keep theirs.
func TestTenantIDsBackfilled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenantcrypt.db")
	ctx := t.Context()
	// A database of schema 6, where "gone" was deleted by a binary that
	// knew no tombstones: its chain outlived it.
	if err := sqlite.MigrateTo(ctx, path, 6); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	for _, q := range []string{
		`INSERT INTO tenants (id, name, edition, hipaa, state, state_reason, provider, created_at, updated_at)
			VALUES ('live', 'live', 'enterprise', 0, 'active', '', 'internal', 0, 0),
			       ('gone', 'gone', 'enterprise', 0, 'active', '', 'internal', 0, 0)`,
		`INSERT INTO audit_events (chain_id, seq, time, tenant_id, principal, token_id, source_addr, request_id, action, target, result, error_code, details, prev_hash, hash)
			VALUES ('live', 1, 0, 'live', '', '', '', '', 'tenant.create', 'live', 'success', '', '{}', x'00', x'01'),
			       ('gone', 1, 0, 'gone', '', '', '', '', 'tenant.create', 'gone', 'success', '', '{}', x'00', x'01'),
			       ('_platform', 1, 0, '', '', '', '', '', 'kms.failover', 'eu-west-1', 'success', '', '{}', x'00', x'01')`,
		`DELETE FROM tenants WHERE id = 'gone'`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s := openAt(t, path) // migrates to the current schema
	newTenant := func(id string) keyring.Tenant {
		return keyring.Tenant{ID: id, Name: id, Edition: keyring.EditionEnterprise, State: keyring.StateActive,
			Provider: kms.InternalRef(), CreatedAt: time.Now(), UpdatedAt: time.Now()}
	}
	for _, tc := range []struct {
		id   string
		want error
	}{{"gone", keyring.ErrRetired}, {"live", fault.ErrExists}, {"fresh", nil}} {
		if err := s.CreateTenant(ctx, newTenant(tc.id)); !errors.Is(err, tc.want) {
			t.Errorf("CreateTenant(%s) after the migration: got %v, want %v", tc.id, err, tc.want)
		}
	}
	if err := s.DeleteTenant(ctx, "live"); err != nil {
		t.Fatalf("DeleteTenant(live): %v", err)
	}
	if err := s.CreateTenant(ctx, newTenant("live")); !errors.Is(err, keyring.ErrRetired) {
		t.Errorf("CreateTenant(live) after its deletion: got %v, want %v", err, keyring.ErrRetired)
	}
}
