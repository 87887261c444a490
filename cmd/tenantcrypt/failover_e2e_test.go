package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/testkms"
)

// TestFailoverToReplica is the DR drill: the primary region's KMS goes
// away while services use the tenant; old data keeps decrypting and new
// data keys keep coming, through the replica in the DR region, without one
// client-visible error. When the primary returns, traffic returns to it,
// and what the replica wrapped meanwhile decrypts there — and migrates to
// another multi-region key.
func TestFailoverToReplica(t *testing.T) {
	t.Parallel()
	e := startCMKEnv(t, "--revocation-bound", "2s", "--cache-ttl", "1s", "--cache-idle", "1s", "--kms-probe-interval", "200ms")
	admin, svc, ct := e.cmkTenant(t, "acme")
	ectx := map[string]string{"file": "report.pdf"}
	before, beforeKey := e.dataKey(t, svc, ectx)

	e.pProxy.Down()
	e.dProx.ResetCalls()
	var during []string
	duringKeys := map[string]string{}
	deadline := time.Now().Add(3 * time.Second) // three cache TTLs: the KMS is asked again and again
	for time.Now().Before(deadline) {
		if r := e.decrypt(svc, ct); r.status != 200 {
			t.Fatalf("decrypt with %s down: %d %s", primaryRegion, r.status, r.body)
		}
		if r := e.resolve(svc, before, ectx); r.status != 200 || r.json(t)["plaintext"] != beforeKey {
			t.Fatalf("resolve with %s down: %d %s", primaryRegion, r.status, r.body)
		}
		h, k := e.dataKey(t, svc, ectx)
		during = append(during, h)
		duringKeys[h] = k
		time.Sleep(100 * time.Millisecond)
	}
	if n, g := e.dProx.Calls("Decrypt"), e.dProx.Calls("GenerateDataKey"); n == 0 || g == 0 {
		t.Fatalf("%s served %d Decrypt and %d GenerateDataKey calls, want both", drRegion, n, g)
	}
	st := e.status(t, admin)
	if st.State != "active" || st.Failover == nil || st.Failover.From != primaryRegion || st.Failover.To != drRegion || st.Failover.Since.IsZero() {
		t.Errorf("status during the failover: state %s, failover %+v", st.State, st.Failover)
	}
	if !st.Degraded || !strings.Contains(st.DegradedReason, drRegion) {
		t.Errorf("status during the failover: degraded %v (%s)", st.Degraded, st.DegradedReason)
	}
	metrics := string(e.do("GET", "/metrics", "", nil).body)
	if !strings.Contains(metrics, `tenantcrypt_kms_failovers_total{region="eu-west-1"} 1`) ||
		!strings.Contains(metrics, `tenantcrypt_kms_region_healthy{region="eu-west-1"} 0`) {
		t.Errorf("metrics lack the failover")
	}

	// The primary returns: a probe fails back, and the KMS calls go there.
	e.pProxy.Up()
	until(t, "failback", 20*time.Second, func() bool {
		e.decrypt(svc, ct) // traffic starts the probes
		return e.status(t, admin).Failover == nil
	})
	waitCacheEmpty(t, e.testServer) // the next uses ask the KMS
	e.pProxy.ResetCalls()
	e.dProx.ResetCalls()
	for _, h := range during {
		if r := e.resolve(svc, h, ectx); r.status != 200 || r.json(t)["plaintext"] != duringKeys[h] {
			t.Fatalf("resolve in %s of a data key wrapped in %s: %d %s", primaryRegion, drRegion, r.status, r.body)
		}
	}
	// The key monitor describes the replica in the DR region at each check
	// (whenever one falls in this window); the data plane calls nothing there.
	if n, dr := e.pProxy.Calls("Decrypt"), e.dProx.Calls("")-e.dProx.Calls("DescribeKey"); n < len(during) || dr != 0 {
		t.Errorf("after failback: %d Decrypt calls in %s (want at least %d), %d calls but DescribeKey in %s (want 0)",
			n, primaryRegion, len(during), dr, drRegion)
	}
	metrics = string(e.do("GET", "/metrics", "", nil).body)
	if !strings.Contains(metrics, `tenantcrypt_kms_failbacks_total{region="eu-west-1"} 1`) {
		t.Errorf("metrics lack the failback")
	}

	// Data keys wrapped in either region migrate to another multi-region key.
	second := e.primary.ARN(testkms.SecondMultiRegionKeyID)
	if r := e.do("POST", kp, admin, register(second, "second")); r.status != 201 {
		t.Fatalf("register the second key: %d %s", r.status, r.body)
	}
	if r := e.do("POST", kp+"/"+keyprovider.Fingerprint(second)+"/actions/migrate", admin, nil); r.status != 200 {
		t.Fatalf("migrate: %d %s", r.status, r.body)
	}
	e.waitMigration(t, admin)
	for _, h := range append(during, before) {
		want := duringKeys[h]
		if h == before {
			want = beforeKey
		}
		if r := e.resolve(svc, h, ectx); r.status != 200 || r.json(t)["plaintext"] != want {
			t.Fatalf("resolve after migrating to the second key: %d %s", r.status, r.body)
		}
	}
	if r := e.decrypt(svc, ct); r.status != 200 {
		t.Errorf("decrypt after migrating to the second key: %d %s", r.status, r.body)
	}
}

// TestReplicaDisabledShowsInCompliance: the key's owner disables only the
// replica in the DR region. The tenant keeps working (its region serves),
// but the provider is no longer DR compliant — in its document and in the
// tenant's status, without a re-registration — until the replica is
// enabled again.
func TestReplicaDisabledShowsInCompliance(t *testing.T) {
	t.Parallel()
	e := startCMKEnv(t, "--revocation-bound", "2s")
	admin, svc, ct := e.cmkTenant(t, "acme")
	fp := keyprovider.Fingerprint(e.primary.ARN(testkms.MultiRegionKeyID))
	provider := func() api.KeyProvider {
		r := e.do("GET", kp+"/"+fp, admin, nil)
		var p api.KeyProvider
		if r.status != 200 || json.Unmarshal(r.body, &p) != nil {
			t.Fatalf("get provider: %d %s", r.status, r.body)
		}
		return p
	}
	if p := provider(); !p.DRCompliant {
		t.Fatalf("not DR compliant at the start: %+v", p)
	}
	replica := e.dr.Client(t)
	if _, err := replica.DisableKey(context.Background(), &kms.DisableKeyInput{KeyId: aws.String(testkms.MultiRegionKeyID)}); err != nil {
		t.Fatal(err)
	}
	until(t, "non-compliant", 30*time.Second, func() bool { return !provider().DRCompliant })
	p := provider()
	if p.ComplianceError.Region != drRegion || p.ComplianceError.Code != "Encryption-88" || !strings.Contains(p.ComplianceError.Message, "disabled") {
		t.Errorf("complianceError with the replica disabled: %+v", p.ComplianceError)
	}
	st := e.status(t, admin)
	if st.State != "active" || st.DRCompliant == nil || *st.DRCompliant || st.ComplianceError == nil || st.ComplianceError.Region != drRegion {
		t.Errorf("status with the replica disabled: state %s, drCompliant %v, complianceError %+v", st.State, st.DRCompliant, st.ComplianceError)
	}
	if r := e.decrypt(svc, ct); r.status != 200 {
		t.Errorf("decrypt with only the replica disabled: %d %s", r.status, r.body)
	}
	// actions/test finds the same.
	if r := e.do("POST", kp+"/"+fp+"/actions/test", admin, nil); r.status != 201 || !strings.Contains(string(r.body), `"drCompliant":false`) {
		t.Errorf("test with the replica disabled: %d %s", r.status, r.body)
	}

	if _, err := replica.EnableKey(context.Background(), &kms.EnableKeyInput{KeyId: aws.String(testkms.MultiRegionKeyID)}); err != nil {
		t.Fatal(err)
	}
	until(t, "compliant again", 30*time.Second, func() bool { return provider().DRCompliant })
	if p := provider(); p.ComplianceError != (api.ComplianceError{}) {
		t.Errorf("complianceError once the replica is enabled: %+v", p.ComplianceError)
	}
}
