package migration_test

import (
	"context"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/migration"
)

// TestResumeFinishesAnInterruptedStart: recording a migration and switching
// the tenant's provider are two writes. After a crash between them, the
// resumed migration must switch the provider too, not complete on the old
// one (which would leave new data under the key the tenant left).
func TestResumeFinishesAnInterruptedStart(t *testing.T) {
	e := newBenchEnv(t)
	e.keys = 200
	ctx := context.Background()
	tenant := e.seed(t, e.keyA) // on key A, with its keys wrapped by it
	from := kms.MustCMKRef(keyprovider.Fingerprint(e.keyA))
	tn, err := e.ring.Tenant(ctx, tenant)
	if err != nil || tn.Provider != from {
		t.Fatalf("tenant on %q (%v), want %q", tn.Provider, err, from)
	}
	// The first write of a reset, as a crash right after it leaves it.
	now := time.Now().UTC().Truncate(time.Microsecond)
	m := migration.Migration{ID: "interrupted", TenantID: tenant, From: from, To: kms.InternalRef(),
		FromARN: e.keyA, ToARN: api.DefaultProviderARN, State: migration.StateNew, Total: 1, InitiatedAt: now, UpdatedAt: now}
	if err := e.store.InsertMigration(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := e.migrations.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	done := e.wait(t, tenant)
	if done.ID != "interrupted" {
		t.Fatalf("latest migration %s, want the interrupted one", done.ID)
	}
	tn, err = e.ring.Tenant(ctx, tenant)
	if err != nil || tn.Provider != kms.InternalRef() {
		t.Errorf("after the resumed reset the tenant is on %q (%v), want the internal KMS", tn.Provider, err)
	}
	counts, err := e.ring.CipherKeyCounts(ctx, tenant)
	if err != nil {
		t.Fatal(err)
	}
	for ref, n := range counts {
		if ref != kms.InternalRef() && n > 0 {
			t.Errorf("%d cipherkeys still wrapped by %s", n, ref)
		}
	}
}
