package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/store/postgres"
	"github.com/tenantcrypt/tenantcrypt/internal/store/postgres/pgtest"
	"github.com/tenantcrypt/tenantcrypt/internal/store/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return pgtest.Open(t) })
}

// TestStoreReplicas runs the suite against two Stores on one schema, used in
// turn, as two replicas behind a load balancer would be.
func TestStoreReplicas(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		dsn := pgtest.DSN(t)
		return storetest.RoundRobin(pgtest.OpenDSN(t, dsn), pgtest.OpenDSN(t, dsn))
	})
}

// TestSearchPath: the tables are created in the DSN's schema, nowhere else.
func TestSearchPath(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := pgtest.OpenDSN(t, dsn)
	if err := s.CreateTenant(t.Context(), tenant("acme")); err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	var got []string
	query(t, dsn, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() ORDER BY table_name`, func(r pgx.Rows) error {
		var name string
		err := r.Scan(&name)
		got = append(got, name)
		return err
	})
	want := []string{"audit_checkpoints", "audit_events", "audit_heads", "cipherkeys", "internal_keks", "internal_root", "key_check_leases", "key_checks", "key_providers", "migrations", "schema_migrations", "tenant_ids", "tenants"}
	if !slices.Equal(got, want) {
		t.Errorf("tables in the DSN's schema: got %q, want %q", got, want)
	}
}

func TestReopen(t *testing.T) {
	dsn := pgtest.DSN(t)
	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.CreateTenant(t.Context(), tenant("acme")); err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	s.Close()
	before := migrationVersions(t, dsn)

	s = pgtest.OpenDSN(t, dsn)
	if _, err := s.Tenant(t.Context(), "acme"); err != nil {
		t.Errorf("Tenant after reopening: %v", err)
	}
	if got := migrationVersions(t, dsn); !slices.Equal(got, before) || len(got) == 0 {
		t.Errorf("schema_migrations after reopening: got %v, want %v", got, before)
	}
}

// TestConcurrentOpen: replicas starting together migrate the schema once.
func TestConcurrentOpen(t *testing.T) {
	dsn := pgtest.DSN(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			s, err := postgres.Open(t.Context(), dsn)
			if err != nil {
				t.Errorf("Open: %v", err)
				return
			}
			s.Close()
		})
	}
	wg.Wait()
	got := migrationVersions(t, dsn)
	for i, v := range got {
		if v != i+1 {
			t.Fatalf("schema_migrations: got versions %v, want 1…n once each", got)
		}
	}
}

func TestFutureSchemaRefused(t *testing.T) {
	dsn := pgtest.DSN(t)
	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	s.Close()
	query(t, dsn, `INSERT INTO schema_migrations (version, applied_at) VALUES (9999, now())`, nil)

	s, err = postgres.Open(t.Context(), dsn)
	if err == nil {
		s.Close()
		t.Fatal("Open of a newer schema: got no error")
	}
	if !errors.Is(err, postgres.ErrSchemaTooNew) {
		t.Errorf("Open of a newer schema: got %v, want %v", err, postgres.ErrSchemaTooNew)
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name string
		dsn  string
	}{
		{"malformed", "postgres://%zz"},
		{"unreachable", "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			s, err := postgres.Open(ctx, tc.dsn)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q): got no error, want one", tc.dsn)
			}
		})
	}
}

func tenant(id string) keyring.Tenant {
	now := time.Now()
	return keyring.Tenant{
		ID: id, Name: id, Edition: keyring.EditionBusiness, State: keyring.StateActive,
		Provider: kms.InternalRef(), CreatedAt: now, UpdatedAt: now,
	}
}

// query runs sql on its own connection to dsn and calls row for each row.
func query(t *testing.T, dsn, sql string, row func(pgx.Rows) error) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	for rows.Next() {
		if row != nil {
			if err := row(rows); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func migrationVersions(t *testing.T, dsn string) []int {
	t.Helper()
	var vs []int
	query(t, dsn, `SELECT version FROM schema_migrations ORDER BY version`, func(r pgx.Rows) error {
		var v int
		err := r.Scan(&v)
		vs = append(vs, v)
		return err
	})
	return vs
}

// TestOneActiveIndex: the database itself refuses a second active key, under
// the constraint name that the store maps to fault.ErrConflict (see
// TestInsertCipherKeyError).
func TestOneActiveIndex(t *testing.T) {
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
	for i := range 2 {
		_, err := conn.Exec(ctx, `INSERT INTO cipherkeys (tenant_id, id, purpose, active, provider, key_version, wrapped, context_digest, created_at)
			VALUES ('acme', $1, 'encryption', true, 'internal', '', '\x00', '', now())`, bytes.Repeat([]byte{byte(i)}, 16))
		if i == 0 && err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "23505" || pgErr.ConstraintName != "cipherkeys_one_active" {
				t.Errorf("inserting a second active key: got %v, want a unique violation of cipherkeys_one_active", err)
			}
		}
	}
}
