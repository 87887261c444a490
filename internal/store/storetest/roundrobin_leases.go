package storetest

import (
	"context"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/lifecycle"
	"github.com/tenantcrypt/tenantcrypt/internal/migration"
)

func (r *roundRobin) ClaimMigration(ctx context.Context, id, owner string, ttl time.Duration) (migration.Migration, error) {
	return r.next().ClaimMigration(ctx, id, owner, ttl)
}

func (r *roundRobin) RenewMigrationLease(ctx context.Context, id, owner string, ttl time.Duration) error {
	return r.next().RenewMigrationLease(ctx, id, owner, ttl)
}

func (r *roundRobin) ReleaseMigrationLease(ctx context.Context, id, owner string) error {
	return r.next().ReleaseMigrationLease(ctx, id, owner)
}

func (r *roundRobin) UpdateLeasedMigration(ctx context.Context, m migration.Migration, owner string) error {
	return r.next().UpdateLeasedMigration(ctx, m, owner)
}

func (r *roundRobin) ClaimKeyChecks(ctx context.Context, owner string, every, idle, spread, lease time.Duration, limit int) ([]lifecycle.Due, error) {
	return r.next().ClaimKeyChecks(ctx, owner, every, idle, spread, lease, limit)
}

func (r *roundRobin) MarkKeysInUse(ctx context.Context, tenantID string, until time.Time) error {
	return r.next().MarkKeysInUse(ctx, tenantID, until)
}

func (r *roundRobin) FinishKeyCheck(ctx context.Context, tenantID, owner string) error {
	return r.next().FinishKeyCheck(ctx, tenantID, owner)
}

func (r *roundRobin) SwitchTenantProvider(ctx context.Context, id string, from, to kms.Ref, at time.Time) error {
	return r.next().SwitchTenantProvider(ctx, id, from, to, at)
}
