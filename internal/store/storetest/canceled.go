package storetest

import (
	"context"
	"testing"
)

// testCanceledContext: every method gives up on a canceled context instead of
// waiting or writing.
func testCanceledContext(t *testing.T, s Store) {
	createTenant(t, s, "acme")
	k := newEncryptionKey(t, "acme")
	activate(t, s, k)
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
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); err == nil {
				t.Errorf("%s(canceled context): got no error, want one", c.name)
			}
		})
	}
	// Nothing was written.
	if _, err := s.Tenant(t.Context(), "acme"); err != nil {
		t.Errorf("Tenant(acme): %v", err)
	}
	got, err := s.ActiveCipherKey(t.Context(), "acme")
	if err != nil || got.ID != k.ID || got.UsesReserved != k.UsesReserved {
		t.Errorf("ActiveCipherKey: got %s with %d uses, %v; want %s with %d", got.ID, got.UsesReserved, err, k.ID, k.UsesReserved)
	}
	if keks, err := s.KEKs(t.Context(), "acme"); err != nil || len(keks) != 0 {
		t.Errorf("KEKs: got %d, %v; want none", len(keks), err)
	}
}
