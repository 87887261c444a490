package sqlite

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
)

// TestOneActiveIndex: the database itself refuses a second active key, and
// the store reports that as ErrConflict, whatever path the insert takes.
func TestOneActiveIndex(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "tenantcrypt.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	now := time.Now()
	if err := s.CreateTenant(ctx, keyring.Tenant{ID: "acme", Edition: keyring.EditionBusiness, State: keyring.StateActive, Provider: kms.InternalRef(), CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	k1 := keyring.CipherKey{TenantID: "acme", Purpose: keyring.PurposeEncryption, Provider: kms.InternalRef(), Wrapped: []byte("1"), CreatedAt: now}
	k1.ID[0] = 1
	if err := s.ActivateCipherKey(ctx, "acme", nil, k1); err != nil {
		t.Fatalf("ActivateCipherKey: %v", err)
	}
	k2 := k1
	k2.ID[0], k2.Active = 2, true
	args, err := codec.CipherKeyArgs(k2)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO cipherkeys (`+cipherKeyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...)
	if err == nil {
		t.Fatal("inserting a second active key: got no error")
	}
	if err := insertCipherKeyError(k2, err); !errors.Is(err, fault.ErrConflict) {
		t.Errorf("inserting a second active key: got %v, want %v", err, fault.ErrConflict)
	}
}

// TestWatchedTenantsIndex: WatchedTenants spells its condition as the
// partial index tenants_watched does, so that the planner uses it and a
// page costs its size, not the number of internal tenants in between.
func TestWatchedTenantsIndex(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "tenantcrypt.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	rows, err := s.r.QueryContext(t.Context(), `EXPLAIN QUERY PLAN `+watchedQuery, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(plan, func(d string) bool { return strings.Contains(d, "USING INDEX tenants_watched") }) {
		t.Errorf("plan of WatchedTenants: got %q, want a search using tenants_watched", plan)
	}
}
