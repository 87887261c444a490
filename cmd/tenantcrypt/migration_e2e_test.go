package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	tckms "github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/testkms"
)

// cmkBackends are the databases the CMK tests run on: SQLite, and
// PostgreSQL when TENANTCRYPT_TEST_POSTGRES is set.
func cmkBackends(t *testing.T, run func(t *testing.T, extra ...string)) {
	for name, extra := range backends(t) {
		t.Run(name, func(t *testing.T) { run(t, extra(t)...) })
	}
}

func (e *cmkEnv) migrateTo(t testing.TB, token, keyID string) (string, response) {
	t.Helper()
	arn := e.primary.ARN(keyID)
	fp := keyprovider.Fingerprint(arn)
	if r := e.do("GET", kp+"/"+fp, token, nil); r.status == 404 {
		if r := e.do("POST", kp, token, register(arn, keyID)); r.status != 201 {
			t.Fatalf("register %s: %d %s", keyID, r.status, r.body)
		}
	}
	return fp, e.do("POST", kp+"/"+fp+"/actions/migrate", token, nil)
}

func TestMigrationRefusals(t *testing.T) {
	cmkBackends(t, func(t *testing.T, extra ...string) {
		e := startCMKEnv(t, append(extra, "--migration-rate", "5")...)
		ta := e.tenant(t, "acme", "enterprise")
		svc := e.token(auth.RoleService, "acme")

		if r := e.do("POST", kp+"/"+strings.Repeat("0", 32)+"/actions/migrate", ta, nil); r.status != 404 || r.errorCode(t) != "Encryption-30" {
			t.Errorf("migrate to an unknown provider: %d %s", r.status, r.body)
		}
		// A key that fails its test (disabled since registration): 412.
		arn2 := e.primary.ARN(testkms.SecondMultiRegionKeyID)
		if r := e.do("POST", kp, ta, register(arn2, "second")); r.status != 201 {
			t.Fatalf("register: %d %s", r.status, r.body)
		}
		c := e.primary.Client(t)
		if _, err := c.DisableKey(context.Background(), &kms.DisableKeyInput{KeyId: aws.String(testkms.SecondMultiRegionKeyID)}); err != nil {
			t.Fatal(err)
		}
		if r := e.do("POST", kp+"/"+keyprovider.Fingerprint(arn2)+"/actions/migrate", ta, nil); r.status != 412 || !strings.Contains(string(r.body), "test") {
			t.Errorf("migrate to a disabled key: %d %s, want 412", r.status, r.body)
		}
		if _, err := c.EnableKey(context.Background(), &kms.EnableKeyInput{KeyId: aws.String(testkms.SecondMultiRegionKeyID)}); err != nil {
			t.Fatal(err)
		}

		// A slow migration (5 keys per second over 40 keys) to see 428/406.
		r := e.do("POST", "/api/v1/encryption/datakeys", svc, map[string]any{"items": make([]map[string]any, 40)})
		if r.status != 200 {
			t.Fatalf("datakeys: %d %s", r.status, r.body)
		}
		if _, r := e.migrateTo(t, ta, testkms.MultiRegionKeyID); r.status != 200 {
			t.Fatalf("migrate: %d %s", r.status, r.body)
		}
		if _, r := e.migrateTo(t, ta, testkms.SecondMultiRegionKeyID); r.status != 428 {
			t.Errorf("second migrate while one runs: %d %s, want 428", r.status, r.body)
		}
		if r := e.do("POST", kp+"/actions/reset-to-default-provider", ta, nil); r.status != 406 {
			t.Errorf("reset while a migration runs: %d %s, want 406", r.status, r.body)
		}
		m := e.do("GET", kp+"/migration/actions/details", ta, nil).json(t)
		if m["state"] == "Completed" {
			t.Errorf("the slow migration completed already; the test saw nothing")
		}
		// While it runs, the source is still the current provider.
		var all []api.KeyProvider
		_ = json.Unmarshal(e.do("GET", kp+"/actions/list", ta, nil).body, &all)
		if len(all) < 2 || !all[0].Current || all[1].Current && all[1].ARN == e.primary.ARN(testkms.MultiRegionKeyID) {
			t.Errorf("during the migration the default provider must still be current: %+v", all)
		}
		e.waitMigration(t, ta)

		// A hipaa tenant cannot go back to the internal KMS.
		if r := e.do("PATCH", "/api/v1/tenants/acme", e.admin, map[string]any{"hipaa": true}); r.status != 200 {
			t.Fatalf("flag hipaa on a CMK tenant: %d %s", r.status, r.body)
		}
		if r := e.do("POST", kp+"/actions/reset-to-default-provider", ta, nil); r.status != 412 || !strings.Contains(string(r.body), "hipaa") {
			t.Errorf("reset of a hipaa tenant: %d %s, want 412", r.status, r.body)
		}
		if r := e.do("PATCH", "/api/v1/tenants/acme", e.admin, map[string]any{"hipaa": false}); r.status != 200 {
			t.Fatalf("clear hipaa: %d %s", r.status, r.body)
		}
		// The current provider does not answer: the reset cannot be prepared.
		e.pProxy.Down()
		if r := e.do("POST", kp+"/actions/reset-to-default-provider", ta, nil); r.status != 424 {
			t.Errorf("reset with the current provider unreachable: %d %s, want 424", r.status, r.body)
		}
		e.pProxy.Up()
		// CMK → CMK.
		fp2, r2 := e.migrateTo(t, ta, testkms.SecondMultiRegionKeyID)
		if r2.status != 200 {
			t.Fatalf("CMK → CMK: %d %s", r2.status, r2.body)
		}
		done := e.waitMigration(t, ta)
		if done.MigratingFrom != e.primary.ARN(testkms.MultiRegionKeyID) || done.MigratingToFingerprint != fp2 {
			t.Errorf("CMK → CMK migration: %+v", done)
		}
		st := e.do("GET", "/api/v1/encryption/status", ta, nil).json(t)
		if counts, _ := st["cipherKeys"].(map[string]any); len(counts) != 1 || counts[tckms.MustCMKRef(fp2).String()] == nil {
			t.Errorf("after CMK → CMK the cipherkeys are wrapped by %v, want only %s", counts, tckms.MustCMKRef(fp2).String())
		}
	})
}

// TestMigrationUnderLoad migrates a tenant with 10,000 cipherkeys from the
// internal KMS to a customer managed key while clients encrypt, decrypt and
// resolve data keys without pause: no request fails because of the
// migration, and everything written before, during and after still opens.
func TestMigrationUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("a 10,000-key migration under load; skipped with -short")
	}
	cmkBackends(t, func(t *testing.T, extra ...string) {
		e := startCMKEnv(t, extra...)
		ta := e.tenant(t, "acme", "enterprise")
		svc := e.token(auth.RoleService, "acme")
		ectx := map[string]string{"app": "load"}

		const keys = 10_000
		type dataKey struct{ plaintext, handle string }
		var handles []dataKey
		items := make([]map[string]any, 1000)
		for i := range items {
			items[i] = map[string]any{"context": ectx}
		}
		start := time.Now()
		for len(handles) < keys {
			r := e.do("POST", "/api/v1/encryption/datakeys", svc, map[string]any{"items": items})
			var out api.BatchResponse[api.DataKeyResponse]
			if err := json.Unmarshal(r.body, &out); err != nil || r.status != 200 {
				t.Fatalf("datakeys: %d %.200s", r.status, r.body)
			}
			for _, it := range out.Items {
				if it.Error != nil {
					t.Fatalf("datakey: %+v", it.Error)
				}
				handles = append(handles, dataKey{it.Result.Plaintext, it.Result.Handle})
			}
		}
		t.Logf("%d cipherkeys made in %s", keys, time.Since(start).Round(time.Millisecond))

		var (
			mu       sync.Mutex
			written  = map[string]string{} // ciphertext → plaintext
			failures atomic.Int64
			requests atomic.Int64
			stop     = make(chan struct{})
			wg       sync.WaitGroup
		)
		load := func(g int) {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for i := 0; ; i++ {
				// Steady traffic, not a saturating load: the migration
				// shares the two cores with the clients and the server.
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				pt := b64(fmt.Sprintf("client %d message %d", g, i))
				r := e.do("POST", "/api/v1/encryption/encrypt", svc, map[string]any{"plaintext": pt, "context": ectx})
				requests.Add(1)
				if r.status != 200 {
					failures.Add(1)
					t.Errorf("encrypt during the migration: %d %s", r.status, r.body)
					continue
				}
				ct := r.json(t)["ciphertext"].(string)
				mu.Lock()
				written[ct] = pt
				mu.Unlock()
				r = e.do("POST", "/api/v1/encryption/decrypt", svc, map[string]any{"ciphertext": ct, "context": ectx})
				requests.Add(1)
				if r.status != 200 || r.json(t)["plaintext"] != pt {
					failures.Add(1)
					t.Errorf("decrypt during the migration: %d %s", r.status, r.body)
				}
				dk := handles[rng.IntN(len(handles))]
				r = e.do("POST", "/api/v1/encryption/datakeys/decrypt", svc, map[string]any{"handle": dk.handle, "context": ectx})
				requests.Add(1)
				if r.status != 200 || r.json(t)["plaintext"] != dk.plaintext {
					failures.Add(1)
					t.Errorf("datakeys/decrypt during the migration: %d %s", r.status, r.body)
				}
			}
		}
		for g := range 3 {
			wg.Go(func() { load(g) })
		}
		time.Sleep(300 * time.Millisecond) // traffic before the migration
		mstart := time.Now()
		if _, r := e.migrateTo(t, ta, testkms.MultiRegionKeyID); r.status != 200 {
			t.Fatalf("migrate: %d %s", r.status, r.body)
		}
		m := e.waitMigration(t, ta)
		elapsed := time.Since(mstart)
		time.Sleep(300 * time.Millisecond) // traffic after it
		close(stop)
		wg.Wait()
		t.Logf("migrated %d cipherkeys in %s (%.0f/s) under load; %d requests, %d failed",
			keys, elapsed.Round(time.Millisecond), float64(keys)/elapsed.Seconds(), requests.Load(), failures.Load())
		if m.Progress != 100 {
			t.Errorf("progress %v, want 100", m.Progress)
		}
		if failures.Load() > 0 {
			t.Fatalf("%d requests failed during the migration", failures.Load())
		}
		// Everything opens afterwards: every ciphertext, every data key.
		mu.Lock()
		defer mu.Unlock()
		for ct, pt := range written {
			if r := e.do("POST", "/api/v1/encryption/decrypt", svc, map[string]any{"ciphertext": ct, "context": ectx}); r.status != 200 || r.json(t)["plaintext"] != pt {
				t.Fatalf("decrypt after the migration: %d %s", r.status, r.body)
			}
		}
		for i := 0; i < len(handles); i += 1000 {
			var req api.BatchRequest[api.DataKeyDecryptRequest]
			for _, dk := range handles[i:min(i+1000, len(handles))] {
				req.Items = append(req.Items, api.DataKeyDecryptRequest{Handle: dk.handle, Context: ectx})
			}
			r := e.do("POST", "/api/v1/encryption/datakeys/decrypt", svc, req)
			var out api.BatchResponse[api.DataKeyDecryptResponse]
			if err := json.Unmarshal(r.body, &out); err != nil || r.status != 200 {
				t.Fatalf("datakeys/decrypt after: %d %.200s", r.status, r.body)
			}
			for j, it := range out.Items {
				if it.Error != nil || it.Result.Plaintext != handles[i+j].plaintext {
					t.Fatalf("data key %d after the migration: %+v", i+j, it.Error)
				}
			}
		}
		st := e.do("GET", "/api/v1/encryption/status", ta, nil).json(t)
		if counts, _ := st["cipherKeys"].(map[string]any); len(counts) != 1 {
			t.Errorf("cipherkeys by provider after the migration: %v, want only the CMK", counts)
		}
	})
}

// TestDefaultProviderPromotionTimes: the default provider's
// promotedToCurrentAt and demotedFromCurrentAt are set like any provider's:
// demoted when a migration to a customer managed key completes, promoted
// when a reset back to it completes (Qlik's clients show them).
func TestDefaultProviderPromotionTimes(t *testing.T) {
	e := startCMKEnv(t)
	ta := e.tenant(t, "acme", "enterprise")
	svc := e.token(auth.RoleService, "acme")
	if r := e.do("POST", "/api/v1/encryption/datakeys", svc, map[string]any{"items": make([]map[string]any, 5)}); r.status != 200 {
		t.Fatalf("datakeys: %d %s", r.status, r.body)
	}
	get := func(fp string) api.KeyProvider {
		t.Helper()
		r := e.do("GET", kp+"/"+fp, ta, nil)
		var p api.KeyProvider
		if err := json.Unmarshal(r.body, &p); err != nil || r.status != 200 {
			t.Fatalf("GET %s: %d %s", fp, r.status, r.body)
		}
		return p
	}
	listed := func() api.KeyProvider {
		t.Helper()
		var all []api.KeyProvider
		if r := e.do("GET", kp+"/actions/list", ta, nil); r.status != 200 || json.Unmarshal(r.body, &all) != nil || len(all) == 0 {
			t.Fatalf("list: %d %s", r.status, r.body)
		}
		return all[0]
	}
	check := func(what string, p api.KeyProvider, promoted, demoted string) {
		t.Helper()
		if p.PromotedToCurrentAt != promoted || p.DemotedFromCurrentAt != demoted {
			t.Errorf("%s: promotedToCurrentAt %q, demotedFromCurrentAt %q; want %q, %q",
				what, p.PromotedToCurrentAt, p.DemotedFromCurrentAt, promoted, demoted)
		}
	}
	check("default provider of a new tenant", get("acme"), api.NeverTime, api.NeverTime)

	fp, r := e.migrateTo(t, ta, testkms.MultiRegionKeyID)
	if r.status != 200 {
		t.Fatalf("migrate: %d %s", r.status, r.body)
	}
	toCMK := e.waitMigration(t, ta)
	if toCMK.CompletedAt == api.NeverTime {
		t.Fatalf("completed migration without completedAt: %+v", toCMK)
	}
	check("default provider after the migration to a CMK", get("acme"), api.NeverTime, toCMK.CompletedAt)
	check("default provider in the list after the migration", listed(), api.NeverTime, toCMK.CompletedAt)
	check("the CMK after the migration to it", get(fp), toCMK.CompletedAt, api.NeverTime)

	if r := e.do("POST", kp+"/actions/reset-to-default-provider", ta, nil); r.status != 205 {
		t.Fatalf("reset: %d %s", r.status, r.body)
	}
	reset := e.waitMigration(t, ta)
	if reset.CompletedAt == api.NeverTime || reset.CompletedAt == toCMK.CompletedAt {
		t.Fatalf("reset migration completedAt %q (the first completed at %q)", reset.CompletedAt, toCMK.CompletedAt)
	}
	def := get("acme")
	if !def.Current {
		t.Errorf("after the reset the default provider is not current: %+v", def)
	}
	check("default provider after the reset", def, reset.CompletedAt, toCMK.CompletedAt)
	check("default provider in the list after the reset", listed(), reset.CompletedAt, toCMK.CompletedAt)
	check("the CMK after the reset", get(fp), toCMK.CompletedAt, reset.CompletedAt)
}
