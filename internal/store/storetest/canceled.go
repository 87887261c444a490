package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/audit"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/lifecycle"
	"github.com/tenantcrypt/tenantcrypt/internal/migration"
)

// testCanceledContext: every method gives up on a canceled context instead of
// waiting or writing.
func testCanceledContext(t *testing.T, s Store) {
	createTenant(t, s, "acme")
	k := newEncryptionKey(t, "acme")
	activate(t, s, k)
	p := insertKeyProvider(t, s, newKeyProvider("acme", fingerprint(1)))
	changed := p
	changed.Name, changed.Replicas, changed.PromotedAt = "changed", nil, time.Time{}
	mig := insertMigration(t, s, completed(newMigration("acme", "history")))
	reopened := mig
	reopened.State, reopened.CompletedAt, reopened.Done = migration.StateInProgress, time.Time{}, 0
	checks := []lifecycle.KeyCheck{newKeyCheck("acme", "eu-west-1")}
	replaceKeyChecks(t, s, "acme", checks)
	k.Active = true
	appended := appendEvents(t, s, newAuditEvent("acme", "x.1"))
	cp := newCheckpoint("acme", 1)
	cp.Hash = appended[0].Hash
	putCheckpoint(t, s, cp)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	calls := []struct {
		name string
		call func() error
	}{
		{"CreateTenant", func() error { return s.CreateTenant(ctx, newTenant("new")) }},
		{"Tenant", func() error { _, err := s.Tenant(ctx, "acme"); return err }},
		{"ListTenants", func() error { _, err := s.ListTenants(ctx, "", 10); return err }},
		{"DeleteTenant", func() error { return s.DeleteTenant(ctx, "acme") }},
		{"ActivateCipherKey", func() error { return s.ActivateCipherKey(ctx, "acme", &k.ID, newEncryptionKey(t, "acme")) }},
		{"ReserveUses", func() error { _, err := s.ReserveUses(ctx, "acme", k.ID, 1, 1000); return err }},
		{"InsertKEK", func() error { return s.InsertKEK(ctx, newKEK("acme", 1, 1)) }},
		{"InsertKeyProvider", func() error { return s.InsertKeyProvider(ctx, newKeyProvider("acme", fingerprint(2))) }},
		{"KeyProvider", func() error { _, err := s.KeyProvider(ctx, "acme", p.Fingerprint); return err }},
		{"ListKeyProviders", func() error { _, err := s.ListKeyProviders(ctx, "acme"); return err }},
		{"UpdateKeyProvider", func() error { return s.UpdateKeyProvider(ctx, changed) }},
		{"DeleteKeyProvider", func() error { return s.DeleteKeyProvider(ctx, "acme", p.Fingerprint) }},
		{"InsertMigration", func() error { return s.InsertMigration(ctx, newMigration("acme", "new")) }},
		{"LatestMigration", func() error { _, err := s.LatestMigration(ctx, "acme"); return err }},
		{"UpdateMigration", func() error { return s.UpdateMigration(ctx, reopened) }},
		{"UnfinishedMigrations", func() error { _, err := s.UnfinishedMigrations(ctx); return err }},
		{"CipherKeysNotWrappedBy", func() error {
			_, err := s.CipherKeysNotWrappedBy(ctx, "acme", kms.InternalRef(), envelope.KeyID{}, 10)
			return err
		}},
		{"RewrapCipherKey", func() error { return s.RewrapCipherKey(ctx, k, kms.InternalRef(), "1", []byte("rewrapped")) }},
		{"SetTenantState", func() error {
			_, _, err := s.SetTenantState(ctx, "acme", kms.InternalRef(), keyring.StateLocked, "canceled", time.Now())
			return err
		}},
		{"WatchedTenants", func() error { _, err := s.WatchedTenants(ctx, "", 10); return err }},
		{"ReplaceKeyChecks", func() error { return s.ReplaceKeyChecks(ctx, "acme", nil) }},
		{"KeyChecks", func() error { _, err := s.KeyChecks(ctx, "acme"); return err }},
		{"CountTenantsByState", func() error { _, err := s.CountTenantsByState(ctx); return err }},
		{"AppendEvents", func() error {
			_, err := s.AppendEvents(ctx, []audit.Event{newAuditEvent("acme", "x.2"), newAuditEvent("new", "x.1")}, audit.Seal)
			return err
		}},
		{"ChainHead", func() error { _, err := s.ChainHead(ctx, "acme"); return err }},
		{"Events", func() error { _, err := s.Events(ctx, "acme", audit.Filter{}, 10); return err }},
		{"PutCheckpoint", func() error { return s.PutCheckpoint(ctx, newCheckpoint("acme", 2)) }},
		{"Checkpoints", func() error { _, err := s.Checkpoints(ctx, "acme", 0, 10); return err }},
		{"Chains", func() error { _, err := s.Chains(ctx, "", 10); return err }},
		{"Prune", func() error { _, err := s.Prune(ctx, cp); return err }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); err == nil {
				t.Errorf("%s(canceled context): got no error, want one", c.name)
			}
		})
	}
	// Nothing was written.
	if tn, err := s.Tenant(t.Context(), "acme"); err != nil {
		t.Errorf("Tenant(acme): %v", err)
	} else {
		checkTenant(t, tn, newTenant("acme"))
	}
	checkKeyChecks(t, s, "acme", checks)
	got, err := s.ActiveCipherKey(t.Context(), "acme")
	if err != nil {
		t.Fatalf("ActiveCipherKey: %v", err)
	}
	checkCipherKey(t, got, k)
	if keks, err := s.KEKs(t.Context(), "acme"); err != nil || len(keks) != 0 {
		t.Errorf("KEKs: got %d, %v; want none", len(keks), err)
	}
	providers, err := s.ListKeyProviders(t.Context(), "acme")
	if err != nil {
		t.Fatalf("ListKeyProviders: %v", err)
	}
	checkKeyProviders(t, "ListKeyProviders", providers, []keyprovider.Provider{p})
	checkLatest(t, s, "acme", mig)
	checkUnfinished(t, s)
	verifyChain(t, s, "acme", 1, 1)
	verifyChain(t, s, "new", 1, 0)
	checkCheckpoints(t, "Checkpoints", checkpoints(t, s, "acme", 0, 10), []audit.Checkpoint{cp})
}
