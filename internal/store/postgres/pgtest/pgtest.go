// Package pgtest gives tests their own PostgreSQL database schema, so that
// tests of any package can use internal/store/postgres against a real server
// without colliding with parallel packages or earlier runs.
//
// The server is named by the environment variable TENANTCRYPT_TEST_POSTGRES
// (for example postgres://postgres@127.0.0.1:5432/test?sslmode=disable);
// without it the tests skip. Each DSN or Open call creates a schema
// tc_test_<random> and drops it, with everything in it, when the test ends.
//
// It lives in its own package so that the production store does not import
// package testing.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantcrypt/tenantcrypt/internal/store/postgres"
)

// EnvDSN is the environment variable that names the test server.
const EnvDSN = "TENANTCRYPT_TEST_POSTGRES"

// DSN creates a new, empty schema and returns a DSN whose search_path selects
// it, for postgres.Open or for a tenantcrypt process started by the test. It
// skips the test when EnvDSN is unset.
func DSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvDSN)
	if base == "" {
		t.Skip("set " + EnvDSN + " to a PostgreSQL DSN to run these tests")
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	schema := "tc_test_" + hex.EncodeToString(b[:])

	exec(t, base, "CREATE SCHEMA "+schema)
	t.Cleanup(func() { exec(t, base, "DROP SCHEMA IF EXISTS "+schema+" CASCADE") })

	dsn, err := withParam(base, "search_path", schema)
	if err != nil {
		t.Fatalf("pgtest: %s: %v", EnvDSN, err)
	}
	return dsn
}

// Open returns a store in a new schema (see DSN), closed when the test ends.
func Open(t testing.TB) *postgres.Store {
	t.Helper()
	return OpenDSN(t, DSN(t))
}

// OpenDSN opens another store on dsn (from DSN), closed when the test ends:
// several stores on one schema stand in for several replicas.
func OpenDSN(t testing.TB, dsn string) *postgres.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(s.Close) // before the schema's cleanup: cleanups run last first
	return s
}

// exec runs one statement on its own connection. It does not use the test's
// context, which is already canceled when cleanups run.
func exec(t testing.TB, dsn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("pgtest: connecting to %s: %v", EnvDSN, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// withParam sets a connection parameter in a URL or keyword/value DSN.
func withParam(dsn, key, value string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", err
		}
		q := u.Query()
		q.Set(key, value)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	// Keyword/value form: a later keyword overrides an earlier one. The value
	// is a plain identifier and needs no quoting.
	return dsn + " " + key + "=" + value, nil
}
