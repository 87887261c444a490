package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantcrypt/tenantcrypt/internal/store/internal/schema"
)

// MigrateTo migrates the database named by dsn as a tenantcrypt that knew
// only the first version migrations would: the starting point of an upgrade
// test.
func MigrateTo(ctx context.Context, dsn string, version int) error {
	ms, err := schema.Load(migrations, "migrations")
	if err != nil {
		return err
	}
	if version < 1 || version > len(ms) {
		return fmt.Errorf("MigrateTo: no migration version %d", version)
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return err
	}
	defer pool.Close()
	return apply(ctx, pool, ms[:version])
}

// WatchedQuery is WatchedTenants' query.
var WatchedQuery = watchedQuery
