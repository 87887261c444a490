package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/testkms"
)

// The lifecycle tests drive the tenant's key the way its owner would: with
// the AWS SDK against their KMS (local-kms, reached directly, not through
// tenantcrypt's proxies), while services use the tenant over HTTPS.

// TestKeyDisabledRevokesWithinBound: the customer disables their key (only
// the primary of the multi-region key: the replica in the DR region stays
// enabled) and every request of the tenant is refused within the
// revocation bound, at the default settings; enabling it again brings the
// tenant back without any operator action.
func TestKeyDisabledRevokesWithinBound(t *testing.T) {
	t.Parallel()
	for name, db := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := startCMKEnv(t, db(t)...)
			const bound = 10 * time.Second // the default --revocation-bound
			admin, svc, ct := e.cmkTenant(t, "acme")

			latency := measureRevocation(t, e, svc, ct, bound)
			t.Logf("%s: revocation took %s (bound %s, default settings)", name, latency.Round(time.Millisecond), bound)
			if latency > bound {
				t.Errorf("revocation took %s, more than the bound %s", latency, bound)
			}
			for path, body := range map[string]any{
				"/api/v1/encryption/encrypt":  map[string]any{"plaintext": b64("x")},
				"/api/v1/encryption/datakeys": map[string]any{"context": map[string]string{"file": "a"}},
			} {
				r := e.do("POST", path, svc, body)
				if r.status != 403 || r.errorCode(t) != string(api.CodeKeyUnavailable) {
					t.Errorf("%s while the key is disabled: %d %s", path, r.status, r.body)
				}
				if !strings.Contains(string(r.body), "disabled") {
					t.Errorf("%s: the refusal does not say the key is disabled: %s", path, r.body)
				}
			}

			st := e.status(t, admin)
			if st.State != "key-unavailable" || !strings.Contains(st.StateReason, "disabled") || st.StateChangedAt == nil ||
				st.KeyState != "Disabled" || st.RevocationBound != "10s" || st.KeyCheckInterval != "5s" {
				t.Errorf("status while disabled: %+v", st)
			}
			if st.LastCheck == nil || st.LastCheck.Region != primaryRegion || st.LastCheck.Result != "disabled" {
				t.Fatalf("lastCheck while disabled: %+v", st.LastCheck)
			}
			regions := map[string]string{}
			for _, c := range st.LastCheck.Regions {
				regions[c.Region] = c.Result
			}
			if regions[primaryRegion] != "disabled" || regions[drRegion] != "ok" {
				t.Errorf("per-region checks = %v, want the primary disabled and the DR replica ok", regions)
			}
			metrics := string(e.do("GET", "/metrics", "", nil).body)
			for _, want := range []string{`tenantcrypt_tenants{state="key-unavailable"} 1`,
				`tenantcrypt_key_checks_total{region="eu-west-1",result="disabled"}`,
				`tenantcrypt_tenant_state_changes_total{from="active",to="key-unavailable"} 1`} {
				if !strings.Contains(metrics, want) {
					t.Errorf("metrics lack %s", want)
				}
			}

			if _, err := e.customer(t).EnableKey(context.Background(), &kms.EnableKeyInput{KeyId: aws.String(testkms.MultiRegionKeyID)}); err != nil {
				t.Fatal(err)
			}
			back := until(t, "decrypt after EnableKey", 3*bound, func() bool { return e.decrypt(svc, ct).status == 200 })
			t.Logf("%s: the tenant was active again %s after EnableKey", name, back.Round(time.Millisecond))
			if st := e.status(t, admin); st.State != "active" || st.KeyState != "Enabled" || st.Degraded {
				t.Errorf("status after EnableKey: %+v", st)
			}
		})
	}
}

// TestKeyPendingDeletionLocksTenant: scheduling the key's deletion locks the
// tenant (data plane and admin changes refused, status and reads served);
// cancelling the deletion and enabling the key unlocks it.
func TestKeyPendingDeletionLocksTenant(t *testing.T) {
	t.Parallel()
	e := startCMKEnv(t, "--revocation-bound", "2s")
	admin, svc, ct := e.cmkTenant(t, "acme")
	e.scheduleDeletion(t)
	until(t, "locked", 10*time.Second, func() bool {
		r := e.decrypt(svc, ct)
		return r.status == 423 && r.errorCode(t) == string(api.CodeTenantLocked)
	})
	if st := e.status(t, admin); st.State != "locked" || st.KeyState != "PendingDeletion" || !strings.Contains(st.StateReason, "scheduled for deletion") {
		t.Errorf("status while pending deletion: %+v", st)
	}

	fp := keyprovider.Fingerprint(e.primary.ARN(testkms.MultiRegionKeyID))
	for _, c := range []struct {
		method, path string
		body         any
		want         int
	}{
		{"GET", kp, nil, 200},
		{"GET", kp + "/" + fp, nil, 200},
		{"GET", kp + "/migration/actions/details", nil, 200},
		{"POST", kp + "/" + fp + "/actions/test", nil, 201},
		{"PATCH", kp + "/" + fp, []map[string]any{{"op": "replace", "path": "/name", "value": "renamed"}}, 423},
		{"DELETE", kp + "/" + fp, nil, 423},
		{"POST", kp + "/actions/reset-to-default-provider", nil, 423},
		{"POST", kp, register(e.primary.ARN(testkms.SecondMultiRegionKeyID), "another"), 423},
		{"POST", kp + "/" + fp + "/actions/migrate", nil, 423},
		{"POST", "/api/v1/encryption/encrypt", map[string]any{"plaintext": b64("x")}, 423},
	} {
		token := admin
		if strings.HasPrefix(c.path, "/api/v1/encryption/encrypt") {
			token = svc
		}
		if r := e.do(c.method, c.path, token, c.body); r.status != c.want {
			t.Errorf("%s %s while locked: %d %s, want %d", c.method, c.path, r.status, r.body, c.want)
		} else if c.want == 423 && r.errorCode(t) != string(api.CodeTenantLocked) {
			t.Errorf("%s %s: code %s, want %s", c.method, c.path, r.errorCode(t), api.CodeTenantLocked)
		}
	}

	e.restore(t)
	until(t, "unlocked", 10*time.Second, func() bool { return e.decrypt(svc, ct).status == 200 })
	if st := e.status(t, admin); st.State != "active" {
		t.Errorf("status after cancel and enable: %+v", st)
	}
	if r := e.do("PATCH", kp+"/"+fp, admin, []map[string]any{{"op": "replace", "path": "/name", "value": "renamed"}}); r.status != 204 && r.status != 200 {
		t.Errorf("PATCH after unlock: %d %s", r.status, r.body)
	}
}

// TestKeyDeletedDestroysTenant: once the key is gone from KMS the tenant is
// destroyed, and stays destroyed even if a key of that id answers again.
func TestKeyDeletedDestroysTenant(t *testing.T) {
	t.Parallel()
	e := startCMKEnv(t, fastChecks...)
	admin, svc, ct := e.cmkTenant(t, "acme")
	// A witness on another key, whose checks go on after acme's stop: its
	// checks count the check intervals below.
	witness := e.tenant(t, "witness", "enterprise")
	if _, r := e.migrateTo(t, witness, testkms.SecondMultiRegionKeyID); r.status != 200 {
		t.Fatalf("migrate the witness: %d %s", r.status, r.body)
	}
	e.waitMigration(t, witness)
	e.scheduleDeletion(t)
	until(t, "locked", 10*time.Second, func() bool { return e.decrypt(svc, ct).status == 423 })

	// The waiting period ends: the primary region's KMS no longer has the key.
	e.pProxy.Retarget(testkms.StartWithout(t, testkms.Options{Region: primaryRegion}, testkms.MultiRegionKeyID))
	until(t, "destroyed", 10*time.Second, func() bool {
		r := e.decrypt(svc, ct)
		return r.status == 410 && r.errorCode(t) == string(api.CodeTenantDestroyed)
	})
	st := e.status(t, admin)
	if st.State != "destroyed" || !strings.Contains(st.StateReason, "does not exist") {
		t.Errorf("status after deletion: %+v", st)
	}

	// Even a key that answers again does not bring the tenant back.
	e.pProxy.Retarget(e.primary)
	e.restore(t)
	e.waitKeyChecks(t, 3) // three check intervals (the witness's checks)
	if r := e.decrypt(svc, ct); r.status != 410 {
		t.Errorf("decrypt after the key answered again: %d %s, want 410", r.status, r.body)
	}
	if st := e.status(t, admin); st.State != "destroyed" {
		t.Errorf("state after the key answered again: %s, want destroyed", st.State)
	}
}

// TestKMSOutageServesCachedKeys: with the KMS unreachable in both regions
// the tenant stays active (degraded): cached data keys serve until their
// TTL, then requests that need the KMS get 503 with Retry-After; when the
// KMS is back, everything works again.
func TestKMSOutageServesCachedKeys(t *testing.T) {
	t.Parallel()
	e := startCMKEnv(t, "--revocation-bound", "2s", "--cache-ttl", "4s", "--cache-idle", "4s")
	admin, svc, ct := e.cmkTenant(t, "acme")
	if r := e.decrypt(svc, ct); r.status != 200 {
		t.Fatalf("decrypt: %d %s", r.status, r.body)
	}
	e.pProxy.Down()
	e.dProx.Down()
	if r := e.decrypt(svc, ct); r.status != 200 {
		t.Fatalf("decrypt with a cached key during the outage: %d %s", r.status, r.body)
	}
	e.until503(t, svc, ct, "during the outage")
	st := e.status(t, admin)
	if st.State != "active" || !st.Degraded || st.DegradedReason == "" || st.LastCheck == nil || st.LastCheck.Result != "unavailable" {
		t.Errorf("status during the outage: %+v", st)
	}
	e.pProxy.Up()
	e.dProx.Up()
	until(t, "decrypt after the outage", 20*time.Second, func() bool { return e.decrypt(svc, ct).status == 200 })
	until(t, "not degraded after the outage", 10*time.Second, func() bool { return !e.status(t, admin).Degraded })
}

// TestThrottlingNeverLocksTenant: throttling and KMS internal errors, on
// every call for several check intervals, are retried and reported as 503
// but never move the tenant out of active. (KMS internal errors are
// injected in both regions: in the primary alone, the multi-region key
// fails over to its replica and nothing fails at all.)
func TestThrottlingNeverLocksTenant(t *testing.T) {
	t.Parallel()
	e := startCMKEnv(t, append(fastChecks, "--cache-ttl", "1s", "--cache-idle", "1s")...)
	admin, svc, ct := e.cmkTenant(t, "acme")
	for _, code := range []string{"ThrottlingException", "KMSInternalException"} {
		remove := e.pProxy.Inject(testkms.Fault{AWSError: code})
		removeDR := func() {}
		if code == "KMSInternalException" {
			removeDR = e.dProx.Inject(testkms.Fault{AWSError: code})
		}
		// Three check intervals, and until a request needed the KMS.
		saw503, checks := false, e.keyChecks(t)+3
		for deadline := time.Now().Add(30 * time.Second); !saw503 || e.keyChecks(t) < checks; {
			if time.Now().After(deadline) {
				t.Fatalf("%s: after 30s, saw a 503: %v; key checks: %d of %d", code, saw503, e.keyChecks(t), checks)
			}
			r := e.decrypt(svc, ct)
			switch r.status {
			case 200:
			case 503:
				saw503 = true
				if r.header.Get("Retry-After") == "" {
					t.Errorf("%s: 503 without Retry-After", code)
				}
			default:
				t.Fatalf("%s: decrypt answered %d %s; only 200 or 503 may come back", code, r.status, r.body)
			}
			time.Sleep(20 * time.Millisecond)
		}
		st := e.status(t, admin)
		if st.State != "active" || !st.Degraded {
			t.Errorf("%s: status %+v, want active and degraded", code, st)
		}
		remove()
		removeDR()
		until(t, code+": decrypt after the fault", 10*time.Second, func() bool { return e.decrypt(svc, ct).status == 200 })
	}
}

// TestAccessDeniedOnUse: a key policy that denies Decrypt but still allows
// DescribeKey is noticed on the first refused call, not left to the
// monitor (which sees an enabled key), and the tenant only returns to
// active once a real probe of the key works.
func TestAccessDeniedOnUse(t *testing.T) {
	t.Parallel()
	e := startCMKEnv(t, append(fastChecks, "--cache-ttl", "1s", "--cache-idle", "1s")...)
	admin, svc, ct := e.cmkTenant(t, "acme")
	remove := e.pProxy.Inject(testkms.Fault{Action: "Decrypt", AWSError: "AccessDeniedException"})
	until(t, "refused", 10*time.Second, func() bool {
		r := e.decrypt(svc, ct)
		return r.status == 403 && r.errorCode(t) == string(api.CodeKeyUnavailable)
	})
	// Three check intervals: DescribeKey answers Enabled, yet the tenant
	// stays unavailable because the probe's Decrypt is refused.
	e.waitKeyChecks(t, 3)
	st := e.status(t, admin)
	if st.State != "key-unavailable" || !strings.Contains(st.StateReason, "deny") {
		t.Errorf("status with Decrypt denied: %+v", st)
	}
	remove()
	until(t, "active after access is restored", 10*time.Second, func() bool { return e.decrypt(svc, ct).status == 200 })
}

// BenchmarkRevocation measures, at the default settings (bound 10 s), how
// long a disabled key's tenant keeps being served: each iteration disables
// the key, decrypts until refused, then enables it and waits for the tenant
// to come back. Run it with a small -benchtime, each iteration takes
// seconds:
//
//	go test -run '^$' -bench Revocation -benchtime 5x ./cmd/tenantcrypt
func BenchmarkRevocation(b *testing.B) {
	e := startCMKEnv(b, "--log-level", "warn")
	const bound = 10 * time.Second
	_, svc, ct := e.cmkTenant(b, "acme")
	var total, worst time.Duration
	b.ResetTimer()
	for range b.N {
		d := measureRevocation(b, e, svc, ct, bound)
		total += d
		worst = max(worst, d)
		b.StopTimer()
		if _, err := e.customer(b).EnableKey(context.Background(), &kms.EnableKeyInput{KeyId: aws.String(testkms.MultiRegionKeyID)}); err != nil {
			b.Fatal(err)
		}
		until(b, "active again", 3*bound, func() bool { return e.decrypt(svc, ct).status == 200 })
		b.StartTimer()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/revocation")
	b.ReportMetric(worst.Seconds(), "worst-s")
	b.ReportMetric(0, "ns/op")
}
