// Package postgres is the production store of tenantcrypt: the keyring's
// tenants and cipherkeys, the tenants' key providers and migrations between
// them, the key monitor's checks, the internal KMS's key-encryption keys and
// the audit log in PostgreSQL, through pgx. Use it to run several replicas
// behind a load balancer: they share all state through the database, and every
// compare-and-swap the keyring relies on (ActivateCipherKey, ReserveUses,
// RewrapKEK, RewrapCipherKey, SetTenantState) is atomic across replicas. A
// single replica can use the embedded internal/store/sqlite instead.
//
// The tables live in the first schema of the connection's search_path: put
// search_path in the DSN to choose one, or leave it out for the database's
// default. Open applies the embedded schema migrations in one transaction
// under an advisory lock, so replicas that start together migrate once.
//
// Deleted rows stay in PostgreSQL's dead tuples and WAL until vacuum and WAL
// recycling; shredding a tenant's wrapped keys there is the database
// operator's part (autovacuum, encrypted storage and backups).
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
	"github.com/tenantcrypt/tenantcrypt/internal/lifecycle"
	"github.com/tenantcrypt/tenantcrypt/internal/migration"
	"github.com/tenantcrypt/tenantcrypt/internal/store/internal/rowcodec"
	"github.com/tenantcrypt/tenantcrypt/internal/store/internal/schema"
)

//go:embed migrations/*.sql
var migrations embed.FS

// ErrSchemaTooNew is returned by Open for a database that a newer tenantcrypt
// has migrated beyond the schema versions this binary knows.
var ErrSchemaTooNew = schema.ErrTooNew

// Store is a keyring.Store, a keyprovider.Store, an internalkms.Store, a
// migration.Store, a lifecycle.Store and an audit.Store in a PostgreSQL
// schema. It is safe for concurrent use, also by several processes on the
// same database.
type Store struct {
	pool *pgxpool.Pool
}

var (
	_ keyring.Store     = (*Store)(nil)
	_ keyprovider.Store = (*Store)(nil)
	_ internalkms.Store = (*Store)(nil)
	_ migration.Store   = (*Store)(nil)
	_ lifecycle.Store   = (*Store)(nil)
)

// Open connects to the database named by dsn (a URL or keyword/value
// connection string, with pgxpool's pool_* settings if wanted) and migrates
// its schema to the newest version. Errors: ErrSchemaTooNew (wrapped) for a
// database migrated by a newer tenantcrypt.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err) // pgconn redacts the password
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "tenantcrypt"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connecting: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connecting: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return &Store{pool: pool}, nil
}

// Close closes every connection, waiting for those in use to be released.
func (s *Store) Close() { s.pool.Close() }

// migrate applies the pending embedded migrations.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	ms, err := schema.Load(migrations, "migrations")
	if err != nil {
		return err
	}
	return apply(ctx, pool, ms)
}

// apply applies those of ms that the database lacks in one transaction. ms
// are all the migrations the binary knows, in order.
func apply(ctx context.Context, pool *pgxpool.Pool, ms []schema.Migration) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrating schema: %w", err)
	}
	defer tx.Rollback(ctx)
	// Replicas that start together queue here until the first has committed;
	// the lock is per schema, so that tenantcrypt schemas side by side (tests)
	// do not wait for each other.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('tenantcrypt.schema_migrations'), hashtext(coalesce(current_schema(), '')))`); err != nil {
		return fmt.Errorf("postgres: migrating schema: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer     NOT NULL PRIMARY KEY,
		applied_at timestamptz NOT NULL
	)`); err != nil {
		return fmt.Errorf("postgres: migrating schema: %w", err)
	}
	// The oldest binary that may run on each version (schema's
	// "compatible-with"); NULL for versions applied before it was recorded,
	// which need a binary that knows them.
	if _, err := tx.Exec(ctx, `ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS compatible_with integer`); err != nil {
		return fmt.Errorf("postgres: migrating schema: %w", err)
	}
	var current, required int
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0), COALESCE(MAX(COALESCE(compatible_with, version)), 0)
		FROM schema_migrations`).Scan(&current, &required); err != nil {
		return fmt.Errorf("postgres: migrating schema: %w", err)
	}
	pending, err := schema.Pending(ms, current, required)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	for _, m := range pending {
		// Without arguments pgx uses the simple protocol, which runs a file
		// of several statements.
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return fmt.Errorf("postgres: applying migration %s: %w", m.Name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at, compatible_with) VALUES ($1, now(), $2)`, m.Version, m.CompatibleWith); err != nil {
			return fmt.Errorf("postgres: applying migration %s: %w", m.Name, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: migrating schema: %w", err)
	}
	return nil
}

// PostgreSQL error codes (SQLSTATE) and constraint names the store maps to
// sentinel errors.
const (
	uniqueViolation     = "23505"
	foreignKeyViolation = "23503"

	oneActiveIndex  = "cipherkeys_one_active"
	oneRunningIndex = "migrations_one_running"
)

// violation returns the SQLSTATE and constraint of a PostgreSQL error.
func violation(err error) (code, constraint string) {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.Code, e.ConstraintName
	}
	return "", ""
}

// isNoRows reports a QueryRow that found nothing.
func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }

// queryRows runs a query on db and collects every row it returns with scan
// (a codec method); an empty slice if there are none.
func queryRows[T any](ctx context.Context, db *pgxpool.Pool, scan func(rowcodec.Scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (T, error) { return scan(row) })
}
