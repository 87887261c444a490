package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/internal/store/internal/schema"
)

// MigrateTo creates or migrates the database file at path as a tenantcrypt
// that knew only the first version migrations would: the starting point of
// an upgrade test.
func MigrateTo(ctx context.Context, path string, version int) error {
	ms, err := schema.Load(migrations, "migrations")
	if err != nil {
		return err
	}
	if version < 1 || version > len(ms) {
		return fmt.Errorf("MigrateTo: no migration version %d", version)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	db, err := openDB(ctx, dsn(abs, false))
	if err != nil {
		return err
	}
	defer db.Close()
	return apply(ctx, db, ms[:version])
}

// ForeignKeys reports the foreign_keys pragma of the writer connection and
// of two reader connections held at once.
func ForeignKeys(t *testing.T, s *Store) []bool {
	t.Helper()
	var on []bool
	read := func(c *sql.Conn) {
		t.Helper()
		var v bool
		if err := c.QueryRowContext(t.Context(), `PRAGMA foreign_keys`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		on = append(on, v)
	}
	for _, db := range []*sql.DB{s.w, s.r, s.r} {
		c, err := db.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		read(c)
	}
	return on
}

// DeleteTenantRowOnly deletes the tenant's row and nothing else, and returns
// how many key providers of the tenant are left.
func DeleteTenantRowOnly(t *testing.T, s *Store, id string) int {
	t.Helper()
	if _, err := s.w.ExecContext(t.Context(), `DELETE FROM tenants WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.r.QueryRowContext(t.Context(), `SELECT count(*) FROM key_providers WHERE tenant_id = ?`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// CountRows returns how many rows of the tenant the table holds.
func CountRows(t *testing.T, s *Store, table, tenantID string) int {
	t.Helper()
	var n int
	if err := s.r.QueryRowContext(t.Context(), `SELECT count(*) FROM `+table+` WHERE tenant_id = ?`, tenantID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
