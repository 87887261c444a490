package storetest

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
	"github.com/tenantcrypt/tenantcrypt/internal/lifecycle"
	"github.com/tenantcrypt/tenantcrypt/internal/migration"
)

// RoundRobin returns a Store that sends each call to the next of stores in
// turn. Given stores opened separately on one database, Run checks that they
// share state and that the compare-and-swap methods hold across processes and
// replicas, not only within one Store.
func RoundRobin(stores ...Store) Store {
	if len(stores) == 0 {
		panic("storetest: RoundRobin of no stores")
	}
	return &roundRobin{stores: stores}
}

type roundRobin struct {
	stores []Store
	n      atomic.Uint64
}

func (r *roundRobin) next() Store {
	return r.stores[(r.n.Add(1)-1)%uint64(len(r.stores))]
}

func (r *roundRobin) CreateTenant(ctx context.Context, t keyring.Tenant) error {
	return r.next().CreateTenant(ctx, t)
}

func (r *roundRobin) Tenant(ctx context.Context, id string) (keyring.Tenant, error) {
	return r.next().Tenant(ctx, id)
}

func (r *roundRobin) UpdateTenant(ctx context.Context, t keyring.Tenant) error {
	return r.next().UpdateTenant(ctx, t)
}

func (r *roundRobin) SetTenantState(ctx context.Context, id string, provider kms.Ref, state keyring.TenantState, reason string, at time.Time) (keyring.Tenant, bool, error) {
	return r.next().SetTenantState(ctx, id, provider, state, reason, at)
}

func (r *roundRobin) ListTenants(ctx context.Context, after string, limit int) ([]keyring.Tenant, error) {
	return r.next().ListTenants(ctx, after, limit)
}

func (r *roundRobin) DeleteTenant(ctx context.Context, id string) error {
	return r.next().DeleteTenant(ctx, id)
}

func (r *roundRobin) InsertCipherKey(ctx context.Context, k keyring.CipherKey) error {
	return r.next().InsertCipherKey(ctx, k)
}

func (r *roundRobin) CipherKey(ctx context.Context, tenantID string, id envelope.KeyID) (keyring.CipherKey, error) {
	return r.next().CipherKey(ctx, tenantID, id)
}

func (r *roundRobin) ActiveCipherKey(ctx context.Context, tenantID string) (keyring.CipherKey, error) {
	return r.next().ActiveCipherKey(ctx, tenantID)
}

func (r *roundRobin) ActivateCipherKey(ctx context.Context, tenantID string, prev *envelope.KeyID, next keyring.CipherKey) error {
	return r.next().ActivateCipherKey(ctx, tenantID, prev, next)
}

func (r *roundRobin) ReserveUses(ctx context.Context, tenantID string, id envelope.KeyID, n, max int64) (int64, error) {
	return r.next().ReserveUses(ctx, tenantID, id, n, max)
}

func (r *roundRobin) CountCipherKeys(ctx context.Context, tenantID string) (map[kms.Ref]int, error) {
	return r.next().CountCipherKeys(ctx, tenantID)
}

func (r *roundRobin) InsertKeyProvider(ctx context.Context, p keyprovider.Provider) error {
	return r.next().InsertKeyProvider(ctx, p)
}

func (r *roundRobin) KeyProvider(ctx context.Context, tenantID, fingerprint string) (keyprovider.Provider, error) {
	return r.next().KeyProvider(ctx, tenantID, fingerprint)
}

func (r *roundRobin) ListKeyProviders(ctx context.Context, tenantID string) ([]keyprovider.Provider, error) {
	return r.next().ListKeyProviders(ctx, tenantID)
}

func (r *roundRobin) UpdateKeyProvider(ctx context.Context, p keyprovider.Provider) error {
	return r.next().UpdateKeyProvider(ctx, p)
}

func (r *roundRobin) SetKeyProviderCompliance(ctx context.Context, tenantID, fingerprint string, drCompliant bool, c keyprovider.ComplianceError, testedAt time.Time) error {
	return r.next().SetKeyProviderCompliance(ctx, tenantID, fingerprint, drCompliant, c, testedAt)
}

func (r *roundRobin) DeleteKeyProvider(ctx context.Context, tenantID, fingerprint string) error {
	return r.next().DeleteKeyProvider(ctx, tenantID, fingerprint)
}

func (r *roundRobin) KEKs(ctx context.Context, tenantID string) ([]internalkms.KEK, error) {
	return r.next().KEKs(ctx, tenantID)
}

func (r *roundRobin) InsertKEK(ctx context.Context, k internalkms.KEK) error {
	return r.next().InsertKEK(ctx, k)
}

func (r *roundRobin) RewrapKEK(ctx context.Context, tenantID string, version, oldRoot, newRoot uint32, wrapped []byte) error {
	return r.next().RewrapKEK(ctx, tenantID, version, oldRoot, newRoot, wrapped)
}

func (r *roundRobin) KEKsNotWrappedBy(ctx context.Context, rootVersion uint32, limit int) ([]internalkms.KEK, error) {
	return r.next().KEKsNotWrappedBy(ctx, rootVersion, limit)
}

func (r *roundRobin) InsertMigration(ctx context.Context, m migration.Migration) error {
	return r.next().InsertMigration(ctx, m)
}

func (r *roundRobin) LatestMigration(ctx context.Context, tenantID string) (migration.Migration, error) {
	return r.next().LatestMigration(ctx, tenantID)
}

func (r *roundRobin) ProviderSwitchTimes(ctx context.Context, tenantID string, ref kms.Ref) (time.Time, time.Time, error) {
	return r.next().ProviderSwitchTimes(ctx, tenantID, ref)
}

func (r *roundRobin) UpdateMigration(ctx context.Context, m migration.Migration) error {
	return r.next().UpdateMigration(ctx, m)
}

func (r *roundRobin) UnfinishedMigrations(ctx context.Context) ([]migration.Migration, error) {
	return r.next().UnfinishedMigrations(ctx)
}

func (r *roundRobin) CipherKeysNotWrappedBy(ctx context.Context, tenantID string, ref kms.Ref, after envelope.KeyID, limit int) ([]keyring.CipherKey, error) {
	return r.next().CipherKeysNotWrappedBy(ctx, tenantID, ref, after, limit)
}

func (r *roundRobin) RewrapCipherKey(ctx context.Context, old keyring.CipherKey, provider kms.Ref, keyVersion string, wrapped []byte) error {
	return r.next().RewrapCipherKey(ctx, old, provider, keyVersion, wrapped)
}

func (r *roundRobin) RewrapCipherKeys(ctx context.Context, rs []migration.Rewrap) (int, error) {
	return r.next().RewrapCipherKeys(ctx, rs)
}

func (r *roundRobin) WatchedTenants(ctx context.Context, after string, limit int) ([]keyring.Tenant, error) {
	return r.next().WatchedTenants(ctx, after, limit)
}

func (r *roundRobin) ReplaceKeyChecks(ctx context.Context, tenantID string, checks []lifecycle.KeyCheck) error {
	return r.next().ReplaceKeyChecks(ctx, tenantID, checks)
}

func (r *roundRobin) KeyChecks(ctx context.Context, tenantID string) ([]lifecycle.KeyCheck, error) {
	return r.next().KeyChecks(ctx, tenantID)
}

func (r *roundRobin) CountTenantsByState(ctx context.Context) (map[keyring.TenantState]int, error) {
	return r.next().CountTenantsByState(ctx)
}
