// Package storetest is the conformance suite for tenantcrypt's stores. Every
// implementation in internal/store/... calls Run from its tests, so that the
// keyring and the internal KMS can rely on the same error contracts, the same
// round trip of every field and the same atomicity of the compare-and-swap
// methods, whatever database is underneath.
package storetest

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/audit"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
	"github.com/tenantcrypt/tenantcrypt/internal/lifecycle"
	"github.com/tenantcrypt/tenantcrypt/internal/migration"
	"github.com/tenantcrypt/tenantcrypt/internal/rotation"
)

// Store is what every store implementation provides: the keyring's tenants
// and cipherkeys, the tenants' key providers and migrations between them, the
// key monitor's checks, the internal KMS's key-encryption keys and the audit
// log in one database, so that DeleteTenant can remove all of a tenant's rows
// in one transaction (all but its audit events, which outlive it).
type Store interface {
	keyring.Store
	keyprovider.Store
	internalkms.Store
	internalkms.RootRecordStore
	migration.Store
	rotation.Store
	lifecycle.Store
	audit.Store
}

// Run runs the conformance suite against the stores that open returns. It
// calls open once per subtest, in parallel subtests; each call must return a
// new, empty store (a fresh file or database schema) that lives until the
// test given to open ends.
func Run(t *testing.T, open func(t *testing.T) Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s Store)
	}{
		{"Tenant/RoundTrip", testTenantRoundTrip},
		{"Tenant/CreateExists", testCreateTenantExists},
		{"Tenant/NotFound", testTenantNotFound},
		{"Tenant/Update", testUpdateTenant},
		{"Tenant/InvalidEnums", testTenantInvalidEnums},
		{"Tenant/List", testListTenants},
		{"Tenant/Delete", testDeleteTenant},
		{"CipherKey/Insert", testInsertCipherKey},
		{"CipherKey/InsertErrors", testInsertCipherKeyErrors},
		{"CipherKey/Activate", testActivateCipherKey},
		{"CipherKey/ActivateErrors", testActivateCipherKeyErrors},
		{"CipherKey/ReserveUses", testReserveUses},
		{"CipherKey/Count", testCountCipherKeys},
		{"CipherKey/NotWrappedBy", testCipherKeysNotWrappedBy},
		{"CipherKey/Rewrap", testRewrapCipherKey},
		{"CipherKey/RewrapBatch", testRewrapCipherKeys},
		{"KeyProvider/RoundTrip", testKeyProviderRoundTrip},
		{"KeyProvider/InsertErrors", testInsertKeyProviderErrors},
		{"KeyProvider/List", testListKeyProviders},
		{"KeyProvider/Update", testUpdateKeyProvider},
		{"KeyProvider/SetCompliance", testSetKeyProviderCompliance},
		{"KeyProvider/Delete", testDeleteKeyProvider},
		{"KEK/InsertAndList", testKEKs},
		{"KEK/Rewrap", testRewrapKEK},
		{"KEK/NotWrappedBy", testKEKsNotWrappedBy},
		{"KEK/CountByRootVersion", testCountKEKsByRootVersion},
		{"RootRecord/Update", testRootRecord},
		{"RootRecord/Serialised", testRootRecordSerialised},
		{"CipherKey/WrappedByOtherVersion", testCipherKeysWrappedByOtherVersion},
		{"Migration/RoundTrip", testMigrationRoundTrip},
		{"Migration/InsertErrors", testInsertMigrationErrors},
		{"Migration/Latest", testLatestMigration},
		{"Migration/ProviderSwitchTimes", testProviderSwitchTimes},
		{"Migration/Update", testUpdateMigration},
		{"Migration/OneRunning", testOneRunningMigration},
		{"Migration/Unfinished", testUnfinishedMigrations},
		{"Migration/DeleteTenant", testMigrationsDeleteTenant},
		{"Lifecycle/StateRoundTrip", testStateRoundTrip},
		{"Lifecycle/SetTenantState", testSetTenantState},
		{"Lifecycle/SetTenantStateErrors", testSetTenantStateErrors},
		{"Lifecycle/UpdateKeepsState", testUpdateTenantKeepsState},
		{"Lifecycle/Watched", testWatchedTenants},
		{"Lifecycle/KeyChecks", testKeyChecks},
		{"Lifecycle/ReplaceKeyChecksErrors", testReplaceKeyChecksErrors},
		{"Lifecycle/DeleteTenant", testKeyChecksDeleteTenant},
		{"Lifecycle/CountByState", testCountTenantsByState},
		{"Concurrent/Activate", testConcurrentActivate},
		{"Concurrent/Rotations", testConcurrentRotations},
		{"Concurrent/ReserveUses", testConcurrentReserveUses},
		{"Concurrent/InsertKEK", testConcurrentInsertKEK},
		{"Concurrent/InsertKeyProvider", testConcurrentInsertKeyProvider},
		{"Concurrent/KeyProviderVsDeleteTenant", testConcurrentKeyProviderDeleteTenant},
		{"Concurrent/InsertMigration", testConcurrentInsertMigration},
		{"Concurrent/UpdateMigration", testConcurrentUpdateMigration},
		{"Concurrent/Rewrap", testConcurrentRewrap},
		{"Concurrent/RewrapVsReserveAndActivate", testConcurrentRewrapAndWrites},
		{"Concurrent/SetTenantState", testConcurrentSetTenantState},
		{"Concurrent/ReplaceKeyChecks", testConcurrentReplaceKeyChecks},
		{"Replicas/ProviderFence", testProviderFence},
		{"Replicas/SwitchTenantProvider", testSwitchTenantProvider},
		{"Replicas/MigrationLeases", testMigrationLeases},
		{"Replicas/KeyCheckClaims", testKeyCheckClaims},
		{"Concurrent/ProviderSwitch", testConcurrentProviderSwitch},
		{"Concurrent/ClaimMigration", testConcurrentClaimMigration},
		{"Concurrent/ClaimKeyChecks", testConcurrentClaimKeyChecks},
		{"Audit/RoundTrip", testAuditRoundTrip},
		{"Audit/Chaining", testAuditChaining},
		{"Audit/ManyChains", testAuditManyChains},
		{"Audit/Filters", testAuditFilters},
		{"Audit/Checkpoints", testAuditCheckpoints},
		{"Audit/Chains", testAuditChains},
		{"Audit/Prune", testAuditPrune},
		{"Audit/AppendErrors", testAuditAppendErrors},
		{"Audit/DeleteTenant", testAuditDeleteTenant},
		{"Concurrent/AppendEvents", testAuditConcurrentAppend},
		{"CanceledContext", testCanceledContext},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, open(t))
		})
	}
}

// zone makes the fixtures' times non-UTC, so that the suite checks that
// stores return UTC; their nanoseconds check microsecond precision.
var zone = time.FixedZone("UTC+05:30", 5*3600+1800)

func newTenant(id string) keyring.Tenant {
	return keyring.Tenant{
		ID:        id,
		Name:      "Tenant " + id,
		Edition:   keyring.EditionEnterprise,
		HIPAA:     true,
		State:     keyring.StateActive,
		Provider:  kms.InternalRef(),
		CreatedAt: time.Date(2024, 2, 29, 23, 59, 58, 123456789, zone),
		UpdatedAt: time.Date(2025, 1, 2, 3, 4, 5, 987654321, zone),
	}
}

func createTenant(t *testing.T, s Store, id string) keyring.Tenant {
	t.Helper()
	tn := newTenant(id)
	if err := s.CreateTenant(t.Context(), tn); err != nil {
		t.Fatalf("CreateTenant(%q): %v", id, err)
	}
	return tn
}

func newKeyID(t *testing.T) envelope.KeyID {
	t.Helper()
	id, err := envelope.NewKeyID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// newEncryptionKey returns an encryption cipherkey of the tenant with every
// field set, wrapped by the fixtures' tenants' provider (see onProvider for
// another).
func newEncryptionKey(t *testing.T, tenantID string) keyring.CipherKey {
	t.Helper()
	id := newKeyID(t)
	return keyring.CipherKey{
		TenantID:     tenantID,
		ID:           id,
		Purpose:      keyring.PurposeEncryption,
		Provider:     kms.InternalRef(),
		KeyVersion:   "v7",
		Wrapped:      append([]byte("wrapped:"), id[:]...),
		CreatedAt:    time.Date(2025, 6, 7, 8, 9, 10, 111222333, zone),
		UsesReserved: 42,
	}
}

// newDataKey returns a data key (PurposeDataKey, with a context digest).
func newDataKey(t *testing.T, tenantID string) keyring.CipherKey {
	t.Helper()
	k := newEncryptionKey(t, tenantID)
	k.Purpose = keyring.PurposeDataKey
	k.Provider = kms.InternalRef()
	k.KeyVersion = "3"
	k.ContextDigest = bytes.Repeat([]byte{0xd1}, 32)
	k.UsesReserved = 0
	return k
}

// activate makes k the tenant's first active key.
func activate(t *testing.T, s Store, k keyring.CipherKey) {
	t.Helper()
	if err := s.ActivateCipherKey(t.Context(), k.TenantID, nil, k); err != nil {
		t.Fatalf("ActivateCipherKey(%q, nil, %s): %v", k.TenantID, k.ID, err)
	}
}

func insertKEK(t *testing.T, s Store, k internalkms.KEK) {
	t.Helper()
	if err := s.InsertKEK(t.Context(), k); err != nil {
		t.Fatalf("InsertKEK(%q, %d): %v", k.TenantID, k.Version, err)
	}
}

func newKEK(tenantID string, version, root uint32) internalkms.KEK {
	return internalkms.KEK{
		TenantID:    tenantID,
		Version:     version,
		RootVersion: root,
		Wrapped:     []byte{byte(version), byte(root), 0xee, 0xff},
		CreatedAt:   time.Date(2023, 3, 4, 5, 6, 7, 8009, zone),
	}
}

// checkErr fails unless errors.Is(err, want); want nil means no error.
func checkErr(t *testing.T, what string, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("%s: got error %v, want none", what, err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

// checkTime accepts a time stored at microsecond or finer precision, and
// wants it back in UTC.
func checkTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) && !got.Equal(want.Truncate(time.Microsecond)) {
		t.Errorf("%s: got %v, want %v (at least microsecond precision)", what, got, want)
	}
	if got.Location() != time.UTC {
		t.Errorf("%s: got location %v, want UTC", what, got.Location())
	}
}

func checkTenant(t *testing.T, got, want keyring.Tenant) {
	t.Helper()
	if got.ID != want.ID || got.Name != want.Name || got.Edition != want.Edition || got.HIPAA != want.HIPAA ||
		got.State != want.State || got.StateReason != want.StateReason || got.Provider != want.Provider || got.Quota != want.Quota {
		t.Errorf("tenant:\ngot  %+v\nwant %+v", got, want)
	}
	checkTime(t, "tenant "+want.ID+" CreatedAt", got.CreatedAt, want.CreatedAt)
	checkTime(t, "tenant "+want.ID+" UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	checkTime(t, "tenant "+want.ID+" StateChangedAt", got.StateChangedAt, want.StateChangedAt)
}

func checkCipherKey(t *testing.T, got, want keyring.CipherKey) {
	t.Helper()
	if got.TenantID != want.TenantID || got.ID != want.ID || got.Purpose != want.Purpose || got.Active != want.Active ||
		got.Provider != want.Provider || got.KeyVersion != want.KeyVersion || got.UsesReserved != want.UsesReserved ||
		!bytes.Equal(got.Wrapped, want.Wrapped) || !bytes.Equal(got.ContextDigest, want.ContextDigest) {
		t.Errorf("cipherkey:\ngot  %+v\nwant %+v", got, want)
	}
	checkTime(t, "cipherkey "+want.ID.String()+" CreatedAt", got.CreatedAt, want.CreatedAt)
}

func checkKEKs(t *testing.T, what string, got, want []internalkms.KEK) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d KEKs %+v, want %d %+v", what, len(got), got, len(want), want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.TenantID != w.TenantID || g.Version != w.Version || g.RootVersion != w.RootVersion || !bytes.Equal(g.Wrapped, w.Wrapped) {
			t.Errorf("%s[%d]:\ngot  %+v\nwant %+v", what, i, g, w)
		}
		checkTime(t, what+" CreatedAt", g.CreatedAt, w.CreatedAt)
	}
}
