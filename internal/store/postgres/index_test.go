package postgres

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/migration"
)

// TestInsertCipherKeyError maps each constraint to its sentinel; the
// conformance suite cannot reach a violation of cipherkeys_one_active, which
// the tenant row lock prevents.
func TestInsertCipherKeyError(t *testing.T) {
	k := keyring.CipherKey{TenantID: "acme"}
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"one-active", &pgconn.PgError{Code: uniqueViolation, ConstraintName: oneActiveIndex}, fault.ErrConflict},
		{"primary-key", &pgconn.PgError{Code: uniqueViolation, ConstraintName: "cipherkeys_pkey"}, fault.ErrExists},
		{"foreign-key", &pgconn.PgError{Code: foreignKeyViolation, ConstraintName: "cipherkeys_tenant_fkey"}, fault.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := insertCipherKeyError(k, tc.err); !errors.Is(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	if got := insertCipherKeyError(k, errors.New("boom")); got == nil || errors.Is(got, fault.ErrConflict) {
		t.Errorf("other error: got %v, want a plain error", got)
	}
}

// TestMigrationError maps each constraint of migrations to its sentinel.
func TestMigrationError(t *testing.T) {
	m := migration.Migration{ID: "m1", TenantID: "acme"}
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"one-running", &pgconn.PgError{Code: uniqueViolation, ConstraintName: oneRunningIndex}, migration.ErrRunning},
		{"primary-key", &pgconn.PgError{Code: uniqueViolation, ConstraintName: "migrations_pkey"}, fault.ErrExists},
		{"foreign-key", &pgconn.PgError{Code: foreignKeyViolation, ConstraintName: "migrations_tenant_fkey"}, fault.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := migrationError(m, "inserting", tc.err); !errors.Is(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	if got := migrationError(m, "inserting", nil); got != nil {
		t.Errorf("no error: got %v", got)
	}
	got := migrationError(m, "inserting", errors.New("boom"))
	if got == nil || errors.Is(got, migration.ErrRunning) || errors.Is(got, fault.ErrExists) || errors.Is(got, fault.ErrNotFound) {
		t.Errorf("other error: got %v, want a plain error", got)
	}
}
